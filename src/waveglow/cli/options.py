"""What the ``waveglow`` commands take: each command's subparser, the options several commands
share (written once here), and the argument types that check values as they are parsed."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import torch

CHECKPOINT_HELP = "WaveGlow checkpoint (ours or NVIDIA's)"
DEVICE_HELP = "cpu, cuda, cuda:1... (default: cpu)"

Subparsers = argparse._SubParsersAction
Handler = Callable[[argparse.Namespace], int]


def subparser(
    subparsers: Subparsers,
    name: str,
    summary: str,
    description: str,
    epilog: str,
    handler: Handler,
) -> argparse.ArgumentParser:
    """The parser of the command ``name``, which runs ``handler(args) -> exit code``."""
    parser = subparsers.add_parser(
        name,
        help=summary,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(handler=handler)
    return parser


# ---------------------------------------------------------------------------- shared options
def add_shared(parser: argparse.ArgumentParser, name: str, **changes: Any) -> None:
    """Add the shared option ``name`` (see :func:`shared_option`); ``changes`` replace its
    settings (a command's own ``help``, a ``default`` for a ``--checkpoint`` it need not have)."""
    flags, settings = shared_option(name)
    parser.add_argument(*flags, **{**settings, **changes})


def shared_option(name: str) -> tuple[tuple[str, ...], dict[str, Any]]:
    """The flags and argparse settings of an option several commands take, written once:
    ``checkpoint``, ``output_dir``, ``sigma``, ``denoise``, ``device``, ``quiet``."""
    options: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
        "checkpoint": (("--checkpoint", "-c"), {"required": True, "metavar": "CKPT", "help": CHECKPOINT_HELP}),
        "output_dir": (("--output-dir", "-o"), {"required": True, "metavar": "OUTDIR"}),
        "sigma": (("--sigma",), {"type": non_negative, "default": 0.6, "help": "noise scale (default: %(default)s)"}),
        "denoise": (("--denoise",), {"type": non_negative, "default": 0.0, "metavar": "STRENGTH"}),
        "device": (("--device",), {"default": "cpu", "help": DEVICE_HELP}),
        "quiet": (("--quiet", "-q"), {"action": "store_true", "help": "no progress bar"}),
    }  # fmt: skip
    if name not in options:
        raise KeyError(f"no shared option {name!r}; one of {', '.join(options)}")
    return options[name]


def add_count(
    parser: argparse.ArgumentParser, flag: str, help: str, default: int | None = None
) -> None:
    """An option taking a whole number >= 1, shown as ``N``."""
    parser.add_argument(flag, type=positive, default=default, metavar="N", help=help)


def passed_on(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """The options ``names`` as keyword arguments of the same names, for the library call."""
    return {name: getattr(args, name) for name in names}


# ---------------------------------------------------------------------------- argument types
def number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def non_negative(text: str) -> float:
    value = number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def positive_number(text: str) -> float:
    value = number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def device(name: str) -> torch.device:
    """``--device NAME`` resolved; an unusable device is a ValueError naming the option."""
    from ..backends import resolve_device

    try:
        return resolve_device(name)
    except ValueError as error:
        raise ValueError(f"--{error}") from None
