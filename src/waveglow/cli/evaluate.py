"""``waveglow evaluate``: score copy synthesis against the originals
(:func:`waveglow.evaluate.evaluate`)."""

from __future__ import annotations

import argparse

from .common import error, error_line
from .options import Subparsers, add_shared, device, passed_on, subparser

DESCRIPTION = """Copy synthesis of each audio file (audio -> Tacotron 2 mel -> WaveGlow -> audio), scored
against the original: PESQ wide-band, STOI, ESTOI, mel-cepstral distortion (0-8 kHz), log-mel L1,
multi-resolution STFT distance, and DNSMOS when speechmos can run. The Griffin-Lim baseline
inverts the same mel (60 iterations) and is scored the same way. OUTDIR receives wavs/, plots/
(one PNG of spectrograms per clip), metrics.csv, summary.json and report.md.
Needs the 'eval' extra: pip install 'waveglow[eval]'."""
EXAMPLES = """examples:
  waveglow evaluate --checkpoint waveglow.pt heldout/ -o eval
  waveglow evaluate -c waveglow.pt a.wav b.flac -o eval --baseline none --sigma 0.5 --seed 3"""


def add_evaluate_parser(subparsers: Subparsers) -> None:
    parser = subparser(
        subparsers,
        "evaluate",
        "score copy synthesis against the originals (and Griffin-Lim)",
        DESCRIPTION,
        EXAMPLES,
        run,
    )
    add_shared(parser, "checkpoint")
    parser.add_argument(
        "inputs", nargs="+", metavar="AUDIO", help="audio file or folder of audio files"
    )
    add_shared(parser, "output_dir", help="where the results go")
    parser.add_argument(
        "--baseline",
        choices=("griffin-lim", "none"),
        default="griffin-lim",
        help="reference system scored alongside (default: %(default)s)",
    )
    add_shared(parser, "sigma")
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="N",
        help="noise seed, clip i uses N + i (default: 0)",
    )
    add_shared(
        parser,
        "denoise",
        help="NVIDIA's bias denoiser on the WaveGlow output, e.g. 0.1 (default: off)",
    )
    parser.add_argument("--no-dnsmos", action="store_true", help="skip the DNSMOS score")
    add_shared(parser, "device")
    add_shared(parser, "quiet")


def run(args: argparse.Namespace) -> int:
    from ..checkpoint import load
    from ..evaluate import MissingExtraError, evaluate, require_eval_extra

    try:
        require_eval_extra()
    except MissingExtraError as missing:
        error(str(missing))
        return 1
    model = load(args.checkpoint, device=device(args.device))
    options = passed_on(args, "baseline", "sigma", "seed", "denoise")
    report = evaluate(
        model, args.inputs, args.output_dir, dnsmos=not args.no_dnsmos, progress=not args.quiet,
        on_error=error_line, **options,
    )  # fmt: skip
    print(report.markdown(), end="")
    print(f"results in {args.output_dir}")
    return 1 if report.failures else 0
