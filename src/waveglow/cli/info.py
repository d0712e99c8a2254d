"""``waveglow info``: describe a checkpoint (:func:`waveglow.checkpoint.read_checkpoint`)."""

from __future__ import annotations

import argparse
import json

from .options import Subparsers, subparser

DESCRIPTION = "Print a checkpoint's layout, configuration and parameter count."
EXAMPLES = "example:\n  waveglow info waveglow.pt"


def add_info_parser(subparsers: Subparsers) -> None:
    parser = subparser(subparsers, "info", "describe a checkpoint", DESCRIPTION, EXAMPLES, run)
    parser.add_argument("checkpoint", metavar="CKPT")


def run(args: argparse.Namespace) -> int:
    from ..checkpoint import model_config_dict, read_checkpoint
    from ..model import multiply_adds_per_sample
    from ..streaming import right_context_frames

    checkpoint = read_checkpoint(args.checkpoint)
    print(f"file:        {args.checkpoint}")
    print(f"layout:      {checkpoint.layout}")
    print(f"parameters:  {checkpoint.parameter_count:,}")
    print(f"weight norm: {'yes' if checkpoint.has_weight_norm else 'no (folded)'}")
    config = checkpoint.config
    madds = multiply_adds_per_sample(config.waveglow_config, config.data_config)
    print(f"compute:     {madds / 1e3:,.1f} k multiply-adds per output sample")
    print(f"streaming:   R = {right_context_frames(config)} frames of lookahead for exact audio")
    if checkpoint.extra:
        print(f"extra:       {', '.join(sorted(map(str, checkpoint.extra)))}")
    if isinstance(checkpoint.extra.get("trained"), dict):
        print("trained:")
        print(json.dumps(checkpoint.extra["trained"], indent=2))
    print("config:")
    print(json.dumps(model_config_dict(checkpoint.config), indent=2))
    return 0
