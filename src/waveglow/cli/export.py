"""``waveglow export``: the synthesis graph as ONNX or TorchScript
(:func:`waveglow.export.export_onnx`, :func:`waveglow.export.export_torchscript`)."""

from __future__ import annotations

import argparse

from .options import Subparsers, subparser

DESCRIPTION = """Export the deterministic synthesis graph (mel (B, M, F), z (B, G, F*hop/G)) -> audio
(B, F*hop), batch and time axes dynamic. Draw z ~ N(0, sigma^2) yourself (e.g. 0.6 * randn).
ONNX needs the 'export' extra (pip install 'waveglow[export]')."""
EXAMPLES = """examples:
  waveglow export --format onnx waveglow.pt waveglow.onnx
  waveglow export --format torchscript waveglow.pt waveglow.ts"""


def add_export_parser(subparsers: Subparsers) -> None:
    parser = subparser(
        subparsers,
        "export",
        "the synthesis graph as ONNX or TorchScript",
        DESCRIPTION,
        EXAMPLES,
        run,
    )
    parser.add_argument("--format", choices=("onnx", "torchscript"), default="onnx")
    parser.add_argument("checkpoint", metavar="CKPT")
    parser.add_argument("output", metavar="OUT")


def run(args: argparse.Namespace) -> int:
    from ..checkpoint import load
    from ..export import export_onnx, export_torchscript

    model = load(args.checkpoint)
    if args.format == "onnx":
        try:
            import onnx  # noqa: F401 - the exporter needs it
        except ImportError:
            raise ValueError(
                "ONNX export needs the onnx package: pip install 'waveglow[export]'"
            ) from None
        export_onnx(model, args.output)
    else:
        export_torchscript(model, args.output)
    print(f"exported {args.checkpoint} as {args.format} to {args.output}")
    return 0
