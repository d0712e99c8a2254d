"""``waveglow mel``: audio files to Tacotron 2 mel spectrograms
(:func:`waveglow.synthesize.compute_mels`)."""

from __future__ import annotations

import argparse

from .common import error_line
from .options import Subparsers, add_shared, subparser

DESCRIPTION = """Compute the Tacotron 2 log-mel spectrogram of audio files (resampled to the config's
rate, mixed to mono). Each INPUT becomes OUTDIR/<stem>.pt (a float tensor (80, F), what NVIDIA's
inference.py loads) or OUTDIR/<stem>.npy."""
EXAMPLES = """examples:
  waveglow mel speech/*.wav -o mels
  waveglow mel speech.flac -o mels --format npy --config config.json"""


def add_mel_parser(subparsers: Subparsers) -> None:
    parser = subparser(
        subparsers, "mel", "audio files to Tacotron 2 mel spectrograms", DESCRIPTION, EXAMPLES, run
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="audio file")
    add_shared(parser, "output_dir", help="where the mels go")
    parser.add_argument("--format", choices=("pt", "npy"), default="pt", help="(default: pt)")
    parser.add_argument(
        "--config", help="NVIDIA-style config.json whose data_config defines the mel"
    )
    add_shared(parser, "quiet")


def run(args: argparse.Namespace) -> int:
    from ..audio import mel_transform
    from ..config import Config, load_config
    from ..synthesize import compute_mels

    config = load_config(args.config) if args.config else Config()
    report = compute_mels(
        args.inputs,
        args.output_dir,
        format=args.format,
        transform=mel_transform(config),
        progress=not args.quiet,
        on_error=error_line,
    )
    done = len(report.results) - len(report.failures)
    print(f"wrote {done} of {len(report.results)} mel file(s) to {args.output_dir}")
    return 1 if report.failures else 0
