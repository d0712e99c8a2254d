"""The ``waveglow`` command line: argparse only, one module per command.

Each command module (``synthesize``, ``mel``, ``convert``, ``info``, ``export``, ``train``,
``evaluate``, ``bench``, ``serve``) is a thin layer over one library function: an
``add_<name>_parser(subparsers)`` that registers its options and a ``run(args) -> int`` that calls
the library and returns the exit code. The options several commands share, the argument types and
the error lines live in :mod:`waveglow.cli.common`; :mod:`waveglow.cli.program` builds the parser,
runs a command and turns expected errors into ``waveglow: error: <file>: <problem>`` (exit 1).
Adding a command is one module and one line in ``program.COMMANDS``.
"""

from .program import build_parser, main

__all__ = ["build_parser", "main"]
