"""``waveglow synthesize``: mel or audio files to speech (:func:`waveglow.synthesize.synthesize_files`)."""

from __future__ import annotations

import argparse

from ..backends import PRECISIONS
from ..model import DEFAULT_CHUNK_FRAMES
from .common import error_line
from .mel_check import add_conversion_options, conversion_of
from .options import Subparsers, add_count, add_shared, device, passed_on, subparser

DESCRIPTION = """Synthesize speech from mel spectrograms (.pt tensors (80, F) as Tacotron 2 and NVIDIA's
mel2samp.py save them, or .npy arrays) or from audio files (copy synthesis: audio -> mel -> audio,
any sampling rate or channel count). Each INPUT becomes OUTDIR/<stem>_synthesis.wav (16-bit PCM,
clipped to [-1, 1]). A bad input is reported and skipped; the exit code is 1 if any failed."""
EXAMPLES = """examples:
  waveglow synthesize --checkpoint waveglow.pt mels/*.pt -o wavs
  waveglow synthesize --checkpoint waveglow.pt speech.wav -o out --sigma 0.666 --denoise 0.1
  waveglow synthesize -c waveglow.pt mels/*.npy -o wavs --device cuda --batch-size 8 --seed 1
  waveglow synthesize -c demo coqui_mel.npy -o wavs --mel-scale db --db-norm symmetric \
      --max-norm 4 --min-level-db -100 --ref-level-db 20"""


def add_synthesize_parser(subparsers: Subparsers) -> None:
    parser = subparser(
        subparsers, "synthesize", "mel or audio files to speech", DESCRIPTION, EXAMPLES, run
    )
    add_shared(parser, "checkpoint")
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="mel (.pt, .npy) or audio file")
    add_shared(parser, "output_dir", help="where the wavs go")
    add_shared(parser, "sigma")
    add_shared(parser, "denoise", help="bias-removal strength, e.g. 0.1 (default: 0, off)")
    parser.add_argument(
        "--seed", type=int, metavar="N", help="seed for reproducible noise (per file)"
    )
    add_shared(parser, "device")
    add_count(parser, "--batch-size", "files per forward pass (default: 1)", default=1)
    parser.add_argument(
        "--precision",
        choices=tuple(PRECISIONS),
        default="fp32",
        help="precision of the WN matrix products; auto = bf16 on CPUs with bf16 matrix "
        "hardware (AMX, AVX512-BF16) and on CUDA, else fp32 (default: %(default)s)",
    )
    help = ("longer inputs are streamed to their file in chunks of N mel frames, in bounded "
            "memory (batch size 1, no --denoise) (default: %(default)s, about 12 s)")  # fmt: skip
    add_count(parser, "--chunk-frames", help, default=DEFAULT_CHUNK_FRAMES)
    add_shared(parser, "quiet")
    add_conversion_options(parser)


def run(args: argparse.Namespace) -> int:
    from ..checkpoint import load
    from ..synthesize import synthesize_files

    target = device(args.device)
    model = load(args.checkpoint, device=target)
    options = passed_on(args, "sigma", "denoise", "seed", "batch_size", "precision", "chunk_frames")
    report = synthesize_files(
        model, args.inputs, args.output_dir, device=target, progress=not args.quiet,
        on_error=error_line, conversion=conversion_of(args), **options,
    )  # fmt: skip
    print(report.summary())
    return 1 if report.failures else 0
