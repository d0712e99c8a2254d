"""``waveglow convert``: any supported checkpoint to our format
(:func:`waveglow.checkpoint.convert`)."""

from __future__ import annotations

import argparse

from .options import Subparsers, subparser

DESCRIPTION = """Convert a checkpoint (NVIDIA's published or training checkpoints, or ours) to our
self-describing format, with weight norm folded. A DST ending in .safetensors writes
safetensors. --averaged takes a training checkpoint's moving average of the weights (a run with
train_config.ema_decay > 0) instead of its weights."""
EXAMPLES = """examples:
  waveglow convert waveglow_256channels_universal_v5.pt waveglow.pt
  waveglow convert waveglow_256channels_universal_v5.pt waveglow.safetensors
  waveglow convert --averaged runs/mine/waveglow_00020000.pt averaged.pt"""


def add_convert_parser(subparsers: Subparsers) -> None:
    parser = subparser(
        subparsers, "convert", "any supported checkpoint to our format", DESCRIPTION, EXAMPLES, run
    )
    parser.add_argument("source", metavar="SRC")
    parser.add_argument("destination", metavar="DST")
    parser.add_argument(
        "--glow-old",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="read an NVIDIA file as glow_old.py did (odd flows' coupling halves swapped), or "
        "with --no-glow-old as glow.py did (default: from the pickled module; a bare state "
        "dict as glow.py)",
    )
    parser.add_argument(
        "--averaged",
        action="store_true",
        help="the moving average of the weights a training checkpoint holds "
        "(train_config.ema_decay > 0) instead of its weights",
    )


def run(args: argparse.Namespace) -> int:
    from ..checkpoint import convert

    checkpoint = convert(
        args.source, args.destination, glow_old=args.glow_old, averaged=args.averaged
    )
    weights = "averaged weights" if args.averaged else checkpoint.layout
    print(f"converted {args.source} ({weights}) to {args.destination}")
    return 0
