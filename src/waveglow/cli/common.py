"""How every ``waveglow`` command reports: the errors it expects, and the one-line
``waveglow: error:`` / ``waveglow: warning:`` messages."""

from __future__ import annotations

import sys
from collections.abc import Callable

from ..audio import AudioError, InputWarning
from ..checkpoint import CheckpointError
from ..config import ConfigError

PROGRAM = "waveglow"
EXPECTED_ERRORS = (AudioError, CheckpointError, ConfigError, ValueError, OSError)


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
