"""Request bodies to mels and audio, with the library's own readers and checks.

Uploaded bytes are written to a private temporary file and read with :func:`waveglow.load_mel` /
:func:`waveglow.load_audio` (the CLI's readers: same formats, same checks, never executing code
from the upload); their one-line errors name "the upload" instead of the temporary path.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..audio import AudioError, MelSpectrogram, load_mel
from ..synthesize import mel_of_audio_file

NPY_MAGIC = b"\x93NUMPY"
UPLOAD = "the upload"


class InputError(Exception):
    """A request the service refuses: ``status`` 400 (bad input) or 413 (too large)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(" ".join(message.split()))
        self.status = status


@dataclass(frozen=True)
class Options:
    """The synthesis options of one request."""

    sigma: float = 0.6
    seed: int | None = None
    denoise: float = 0.0
    stream: bool = False


def parse_options(fields: dict[str, object]) -> Options:
    """``sigma``, ``seed``, ``denoise``, ``stream`` from query/form/JSON fields (strings or values)."""
    options = Options()
    sigma = _number(fields, "sigma", options.sigma)
    denoise = _number(fields, "denoise", options.denoise)
    seed = fields.get("seed")
    if seed is not None and seed != "":
        try:
            seed = int(seed) if not isinstance(seed, float) or seed.is_integer() else None
        except (TypeError, ValueError):
            seed = None
        if seed is None or not 0 <= seed < 2**63:
            raise InputError(f"seed must be an integer in [0, 2^63), got {fields['seed']!r}")
    else:
        seed = None
    return Options(sigma, seed, denoise, _flag(fields.get("stream", False)))


def _number(fields: dict[str, object], name: str, default: float) -> float:
    value = fields.get(name)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise InputError(f"{name} must be a finite number >= 0, got {value!r}")
    return number


def _flag(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("", "0", "false", "no", "off"):
        return False
    raise InputError(f"stream must be true or false, got {value!r}")


# ---------------------------------------------------------------------------- mels
def mel_from_json(payload: object, n_mel_channels: int) -> torch.Tensor:
    """The mel (M, F) of a JSON body ``{"mel": [[...], ...]}``."""
    if not isinstance(payload, dict) or "mel" not in payload:
        raise InputError('a JSON body must be an object with a "mel" field: [[...], ...] (M, F)')
    try:
        array = np.asarray(payload["mel"], dtype=np.float32)
    except (TypeError, ValueError):
        raise InputError('"mel" must be a list of equally long lists of numbers') from None
    return mel_from_bytes(_npy_bytes(array), n_mel_channels)


def mel_from_bytes(body: bytes, n_mel_channels: int) -> torch.Tensor:
    """The mel (M, F) in ``.npy`` or torch ``.pt`` bytes (told apart by the npy magic)."""
    if not body:
        raise InputError("the request has no body: send a mel (.npy or .pt bytes, or JSON)")
    suffix = ".npy" if body.startswith(NPY_MAGIC) else ".pt"
    with _upload_file(body, suffix) as path:
        try:
            return load_mel(path, n_mel_channels)
        except AudioError as error:
            raise InputError(str(error).replace(str(path), UPLOAD)) from None


def parse_json(body: bytes) -> object:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"the body is not valid JSON ({error})") from None


# ---------------------------------------------------------------------------- audio
def mel_from_audio_bytes(body: bytes, transform: MelSpectrogram) -> torch.Tensor:
    """The Tacotron 2 mel (M, F) of any audio file soundfile reads (any rate, any channels)."""
    if not body:
        raise InputError("the request has no body: send an audio file")
    with _upload_file(body, ".audio") as path:
        try:
            return mel_of_audio_file(path, transform)
        except AudioError as error:
            raise InputError(str(error).replace(str(path), UPLOAD)) from None


def check_frames(frames: int, hop_length: int, sampling_rate: int, max_seconds: float) -> None:
    """413 when ``frames`` mel frames are more than ``max_seconds`` of audio."""
    seconds = frames * hop_length / sampling_rate
    if seconds > max_seconds:
        raise InputError(
            f"{seconds:.1f} s of audio is over this service's limit of {max_seconds:g} s", 413
        )


# ---------------------------------------------------------------------------- helpers
def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


class _upload_file:  # noqa: N801 - a context manager read like a function
    """A private temporary file holding ``body``, removed on exit."""

    def __init__(self, body: bytes, suffix: str) -> None:
        self.body, self.suffix = body, suffix

    def __enter__(self) -> Path:
        self.directory = tempfile.TemporaryDirectory(prefix="waveglow-serve-")
        path = Path(self.directory.name) / f"upload{self.suffix}"
        path.write_bytes(self.body)
        return path

    def __exit__(self, *exc_info: object) -> None:
        self.directory.cleanup()
