"""The readers under fuzz, and the property each input must satisfy.

A harness writes the input bytes to a file of its kind (suffix) and reads it with the public
reader that the command line and the service use. The property (:func:`check`): any input gives a
result or our own one-line error naming the file (``CheckpointError``, ``AudioError``,
``ConfigError``, ``DataError``), never another exception, never a hang (:class:`Hang` after
:data:`HANG_S`), never resident memory beyond :data:`BASE_MEMORY` plus ``expansion`` times the
input's size (:class:`Finding`). ``waveglow`` is imported inside the functions so that a fuzzer can
instrument it before it is first imported.
"""

from __future__ import annotations

import contextlib
import resource
import signal
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

HANG_S = 10.0
BASE_MEMORY = 64 * 2**20  # what building a tiny model and a few torch ops may take
ALLOCATION_FAILED = ("can't allocate memory", "MemoryError", "Cannot allocate memory")


class Finding(AssertionError):  # noqa: N818 - a finding, not an error of the test
    """An input that breaks the property: the message says how."""


class Hang(BaseException):  # noqa: N818 - not an Exception: no reader may swallow it
    """An input that took longer than :data:`HANG_S`."""


@dataclass(frozen=True)
class Harness:
    """One reader: ``read(path)`` on a file named ``input<suffix>``; its own errors ``errors``."""

    name: str
    suffix: str
    read: Callable[[Path], object]
    errors: Callable[[], tuple[type[BaseException], ...]]
    expansion: int = 16
    about: str = ""


# ---------------------------------------------------------------------------- readers
def _load_checkpoint(path: Path) -> object:
    from waveglow.checkpoint import load

    return load(path)


def _unpickle(path: Path) -> object:
    from waveglow.checkpoint import safe_torch_load

    return safe_torch_load(path)


def _load_mel(path: Path) -> object:
    from waveglow.audio import load_mel

    return load_mel(path, n_mel_channels=80)


def _load_audio(path: Path) -> object:
    from waveglow.audio import load_audio

    return load_audio(path, sampling_rate=None)


def _load_config(path: Path) -> object:
    from waveglow.config import load_config

    return load_config(path)


def _read_filelist(path: Path) -> object:
    """The bytes as a filelist, then as an LJ Speech ``metadata.csv`` beside a ``wavs/`` folder."""
    from waveglow.data import find_utterances

    listed = find_utterances(path)
    root = path.parent / "ljspeech"
    (root / "wavs").mkdir(parents=True, exist_ok=True)
    (root / "metadata.csv").write_bytes(path.read_bytes())
    return listed, find_utterances(root)


def _checkpoint_errors() -> tuple[type[BaseException], ...]:
    from waveglow.checkpoint import CheckpointError

    return (CheckpointError,)


def _audio_errors() -> tuple[type[BaseException], ...]:
    from waveglow.audio import AudioError

    return (AudioError,)


def _config_errors() -> tuple[type[BaseException], ...]:
    from waveglow.config import ConfigError

    return (ConfigError,)


def _data_errors() -> tuple[type[BaseException], ...]:
    from waveglow.data import DataError

    return (DataError,)


HARNESSES = (
    Harness("unpickler", ".pt", _unpickle, _checkpoint_errors, about="restricted unpickler"),
    Harness("safetensors", ".safetensors", _load_checkpoint, _checkpoint_errors,
            about="our safetensors format: header, metadata, tensors"),
    Harness("nvidia_zip", ".pt", _load_checkpoint, _checkpoint_errors,
            about="NVIDIA pickles in torch's zip format; our .pt files"),
    Harness("nvidia_legacy", ".pt", _load_checkpoint, _checkpoint_errors,
            about="NVIDIA pickles in torch's pre-1.6 legacy format"),
    Harness("nemo", ".nemo", _load_checkpoint, _checkpoint_errors, about=".nemo tar archives"),
    Harness("dle_dict", ".pt", _load_checkpoint, _checkpoint_errors,
            about="DeepLearningExamples / NGC dicts, NeMo and bare state dicts"),
    Harness("mel_npy", ".npy", _load_mel, _audio_errors, about="mel files, .npy"),
    Harness("mel_pt", ".pt", _load_mel, _audio_errors, about="mel files, torch .pt"),
    Harness("audio", ".wav", _load_audio, _audio_errors, expansion=64,
            about="any audio soundfile reads (wav, flac, ogg, aiff, ...)"),
    Harness("config", ".json", _load_config, _config_errors, about="config.json"),
    Harness("filelist", ".txt", _read_filelist, _data_errors,
            about="filelists and LJ Speech metadata.csv"),
)  # fmt: skip


def harness(name: str) -> Harness:
    """The harness called ``name``; a KeyError listing the names otherwise."""
    for candidate in HARNESSES:
        if candidate.name == name:
            return candidate
    raise KeyError(f"no harness {name!r}; the harnesses: {', '.join(h.name for h in HARNESSES)}")


# ---------------------------------------------------------------------------- the property
def warm_up(target: Harness, seeds: list[bytes], folder: Path) -> None:
    """Read each seed once, whatever happens: imports and lazy initialisation are not charged to
    the first input."""
    for data in seeds:
        path = folder / f"input{target.suffix}"
        path.write_bytes(data)
        with contextlib.suppress(Exception), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            target.read(path)
        _clear(folder)


def check(target: Harness, data: bytes, folder: Path) -> str:
    """Read ``data`` as ``target``'s file in ``folder``: "ok" or the one-line error it gave.

    Raises :class:`Finding` (foreign exception, multi-line error, error not naming the file,
    memory beyond the bound), :class:`Hang`, or the foreign exception itself (chained).
    """
    path = folder / f"input{target.suffix}"
    path.write_bytes(data)
    bound = BASE_MEMORY + target.expansion * len(data)
    try:
        with _watchdog(HANG_S), _peak_memory() as peak, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                target.read(path)
            except target.errors() as error:
                message = str(error)
            else:
                message = "ok"
    finally:
        _clear(folder)
    if peak() > bound:
        raise Finding(f"{target.name}: {peak() / 2**20:.0f} MiB for a {len(data)}-byte input")
    if message != "ok":
        _check_message(target, message, folder)
    return message


def _check_message(target: Harness, message: str, folder: Path) -> None:
    if "\n" in message.strip():
        raise Finding(f"{target.name}: a multi-line error: {message!r}")
    if str(folder) not in message:
        raise Finding(f"{target.name}: the error does not name the file: {message!r}")
    if any(sign in message for sign in ALLOCATION_FAILED):
        raise Finding(f"{target.name}: tried to allocate too much memory: {message!r}")


def _clear(folder: Path) -> None:
    for child in sorted(folder.rglob("*"), reverse=True):
        with contextlib.suppress(OSError):
            child.rmdir() if child.is_dir() else child.unlink()


@contextlib.contextmanager
def _watchdog(seconds: float) -> Iterator[None]:
    """Raise :class:`Hang` in the main thread after ``seconds``."""

    def expire(signum: int, frame: object) -> None:
        raise Hang(f"no result after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def _peak_memory() -> Iterator[Callable[[], int]]:
    """Yields a function giving the bytes of resident memory gained at the peak of the block
    (Linux: the peak is reset through ``/proc/self/clear_refs``; elsewhere 0)."""
    before = _status("VmRSS")
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    peak = [0]
    try:
        yield lambda: peak[0]
    finally:
        peak[0] = max(0, _status("VmHWM") - before)


@contextlib.contextmanager
def address_space_cap(slack: int = 2 * 2**30) -> Iterator[None]:
    """Cap this process's address space at what it holds plus ``slack`` for the block (a soft
    limit: raised back afterwards), so that a reader asking for gigabytes fails instead."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = _status("VmSize") + slack
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _status(field: str) -> int:
    """A ``/proc/self/status`` field in bytes (0 where there is none)."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
