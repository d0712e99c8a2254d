"""What every ``waveglow`` command shares: its subparser, the options several commands take, the
argument types, and the one-line ``waveglow: error:`` / ``waveglow: warning:`` messages."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import torch

from ..audio import AudioError, InputWarning
from ..checkpoint import CheckpointError
from ..config import ConfigError

PROGRAM = "waveglow"
EXPECTED_ERRORS = (AudioError, CheckpointError, ConfigError, ValueError, OSError)
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
def add_checkpoint(
    parser: argparse.ArgumentParser, help: str = CHECKPOINT_HELP, default: str | None = None
) -> None:
    """``--checkpoint/-c CKPT``: required unless it has a ``default``."""
    parser.add_argument(
        "--checkpoint",
        "-c",
        required=default is None,
        default=default,
        metavar="CKPT",
        help=help,
    )


def add_output_dir(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--output-dir", "-o", required=True, metavar="OUTDIR", help=help)


def add_sigma(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sigma", type=non_negative, default=0.6, help="noise scale (default: %(default)s)"
    )


def add_denoise(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--denoise", type=non_negative, default=0.0, metavar="STRENGTH", help=help)


def add_device(parser: argparse.ArgumentParser, help: str = DEVICE_HELP) -> None:
    parser.add_argument("--device", default="cpu", help=help)


def add_quiet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


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


# ---------------------------------------------------------------------------- messages
def describe(error: BaseException) -> str:
    """One line for an expected error; OS errors get ``<file>: <problem>``."""
    if isinstance(error, OSError) and error.filename is not None:
        return f"{error.filename}: {error.strerror or error}"
    return " ".join(str(error).split()) or type(error).__name__


def error_line(message: str) -> None:
    """An error about one input, printed above the progress bar."""
    from tqdm import tqdm

    tqdm.write(f"{PROGRAM}: error: {' '.join(message.split())}", file=sys.stderr)


def show_warning(default: Callable[..., None]) -> Callable[..., None]:
    """A ``warnings.showwarning`` printing an :class:`InputWarning` as one ``warning:`` line."""

    def show(message: Warning | str, category: type[Warning], *args: object, **kwargs: object):
        if not issubclass(category, InputWarning):
            return default(message, category, *args, **kwargs)
        from tqdm import tqdm

        tqdm.write(f"{PROGRAM}: warning: {' '.join(str(message).split())}", file=sys.stderr)
        return None

    return show


def warning(message: str) -> None:
    print(f"{PROGRAM}: warning: {message}", file=sys.stderr, flush=True)


def error(message: str) -> None:
    print(f"{PROGRAM}: error: {message}", file=sys.stderr)
