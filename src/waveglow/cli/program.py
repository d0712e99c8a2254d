"""The ``waveglow`` program: its parser, the run of one command, and how it ends.

Expected errors (bad files, bad configs, bad values) print one line
``waveglow: error: <file>: <problem>`` on stderr and exit with 1; usage errors exit with 2;
Ctrl-C exits with 130 and SIGTERM with 143.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import warnings
from collections.abc import Sequence
from typing import Any

from .. import __version__
from ..audio import InputWarning
from .bench import add_bench_parser
from .common import EXPECTED_ERRORS, PROGRAM, describe, error, show_warning
from .convert import add_convert_parser
from .evaluate import add_evaluate_parser
from .export import add_export_parser
from .info import add_info_parser
from .mel import add_mel_parser
from .mel_check import add_mel_check_parser
from .serve import add_serve_parser
from .stream import add_stream_parser
from .synthesize import add_synthesize_parser
from .train import add_train_parser

# In the order of ``waveglow --help``.
COMMANDS = (
    add_synthesize_parser,
    add_mel_parser,
    add_mel_check_parser,
    add_convert_parser,
    add_info_parser,
    add_export_parser,
    add_train_parser,
    add_evaluate_parser,
    add_bench_parser,
    add_serve_parser,
    add_stream_parser,
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); returns the exit code.

    SIGTERM unwinds like an exception (temporary files are removed) and exits with 143; a closed
    stdout (``waveglow info demo | head -1``) ends the command quietly with 0.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_request:  # --help, --version (0) or a usage error (2)
        return exit_request.code if isinstance(exit_request.code, int) else 2
    previous = _raise_on_sigterm()
    try:
        code = _run(args)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        _discard_stdout()
        return 0
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: the program's options and one subparser per command."""
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description="WaveGlow vocoder: Tacotron 2 mel spectrograms to 22050 Hz speech.",
        epilog="Run 'waveglow <command> --help' for a command's options and examples.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROGRAM} {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="<command>", required=True)
    for add_parser in COMMANDS:
        add_parser(subparsers)
    return parser


class Terminated(BaseException):
    """SIGTERM, raised where the program is, so that every ``with`` block cleans up."""


def _run(args: argparse.Namespace) -> int:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", InputWarning)
            warnings.showwarning = show_warning(warnings.showwarning)
            return args.handler(args)
    except BrokenPipeError:
        raise
    except EXPECTED_ERRORS as expected:
        error(describe(expected))
        return 1
    except KeyboardInterrupt:
        error("interrupted")
        return 130
    except Terminated:
        error("terminated (SIGTERM)")
        return 143


def _raise_on_sigterm() -> Any:
    """Install a SIGTERM handler raising :class:`Terminated`; returns the previous handler
    (None where signals cannot be set: not the main thread)."""

    def terminate(_number: int, _frame: object) -> None:
        raise Terminated

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, terminate)


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it at exit raises no second BrokenPipeError."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
