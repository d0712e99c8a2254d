"""Audio I/O and the Tacotron 2 mel spectrogram.

The mel is a contract with NVIDIA/tacotron2's ``TacotronSTFT``: reflect padding of filter_length/2,
STFT with a periodic Hann window of win_length (centred in filter_length), magnitude, librosa's Slaney
mel filters, natural log of clamp(x, MEL_FLOOR). Frames = 1 + T // hop. A model's own mel is
:meth:`waveglow.WaveGlow.mel_transform` (or :func:`mel_transform` of its config).
"""

from __future__ import annotations

import errno
import math
import os
import re
import secrets
import stat
import warnings
from pathlib import Path

import numpy as np
import soundfile
import soxr
import torch
from torch import nn

from .config import Config, DataConfig, WaveGlowConfig
from .torchfile import RefusedGlobal, read_torch_file

MAX_WAV_VALUE = 32768.0
MEL_SUFFIXES = (".pt", ".npy")


class AudioError(ValueError):
    """An audio or mel file that cannot be used; the message names the file and the problem."""


class InputWarning(UserWarning):
    """An input that is used but probably not what was meant (out-of-range values); the message
    names the file."""


MEL_FLOOR = 1e-5
"""The Tacotron 2 log-mel is the log of the mel magnitude clamped to at least this."""
SILENCE = math.log(MEL_FLOOR)
"""The Tacotron 2 log-mel of silence (about -11.5)."""
MEL_RANGE = (-30.0, 20.0)
"""Far outside what a Tacotron 2 log-mel of audio in [-1, 1] holds (about SILENCE to 3)."""


# ---------------------------------------------------------------------------- STFT
class STFT(nn.Module):
    """The STFT of NVIDIA's ``stft.py``: reflect-padded, periodic Hann window centred in ``n_fft``."""

    def __init__(self, filter_length: int = 1024, hop_length: int = 256, win_length: int = 1024):
        super().__init__()
        self.filter_length = filter_length
        self.hop_length = hop_length
        window = torch.hann_window(win_length, periodic=True, dtype=torch.float64)
        left = (filter_length - win_length) // 2
        window = nn.functional.pad(window, (left, filter_length - win_length - left))
        self.register_buffer("window", window.float(), persistent=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """Complex spectrum (B, filter_length // 2 + 1, 1 + T // hop) of audio (B, T)."""
        if audio.size(-1) <= self.filter_length // 2:
            raise AudioError(
                f"audio of {audio.size(-1)} samples is too short for the STFT: "
                f"it needs more than {self.filter_length // 2}"
            )
        return torch.stft(
            audio,
            n_fft=self.filter_length,
            hop_length=self.hop_length,
            window=self.window.to(audio.dtype),
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )

    def inverse(self, spectrum: torch.Tensor, length: int) -> torch.Tensor:
        """Overlap-add inverse of :meth:`forward` (window-sum normalised), ``length`` samples."""
        return torch.istft(
            spectrum,
            n_fft=self.filter_length,
            hop_length=self.hop_length,
            window=self.window.to(spectrum.real.dtype),
            center=True,
            length=length,
        )


def mel_filters(config: DataConfig, n_mel_channels: int) -> np.ndarray:
    """librosa's Slaney-style mel filter bank (M, filter_length // 2 + 1), as Tacotron 2 uses."""
    import librosa

    return librosa.filters.mel(
        sr=config.sampling_rate,
        n_fft=config.filter_length,
        n_mels=n_mel_channels,
        fmin=config.mel_fmin,
        fmax=config.mel_fmax,
        htk=False,
        norm="slaney",
    )


class MelSpectrogram(nn.Module):
    """Tacotron 2 log-mel: audio (B, T) or (T,) in [-1, 1] to (B, M, 1 + T // hop); by default
    with the parameters of NVIDIA's ``config.json`` (the defaults of :class:`DataConfig` and
    :class:`WaveGlowConfig`)."""

    def __init__(
        self,
        config: DataConfig | None = None,
        n_mel_channels: int = WaveGlowConfig.n_mel_channels,
    ) -> None:
        super().__init__()
        self.config = config or DataConfig()
        self.n_mel_channels = n_mel_channels
        self.stft = STFT(self.config.filter_length, self.config.hop_length, self.config.win_length)
        basis = torch.from_numpy(mel_filters(self.config, n_mel_channels)).float()
        self.register_buffer("mel_basis", basis, persistent=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        squeeze = audio.dim() == 1
        if squeeze:
            audio = audio.unsqueeze(0)  # (1, T)
        magnitude = self.stft(audio).abs()  # (B, n_fft/2+1, F)
        mel = torch.matmul(self.mel_basis.to(magnitude.dtype), magnitude)  # (B, M, F)
        mel = torch.log(torch.clamp(mel, min=MEL_FLOOR))
        return mel.squeeze(0) if squeeze else mel


def mel_transform(config: Config) -> MelSpectrogram:
    """The Tacotron 2 mel that a model of ``config`` is conditioned on."""
    return MelSpectrogram(config.data_config, config.waveglow_config.n_mel_channels)


# ---------------------------------------------------------------------------- audio files
def input_problem(path: Path) -> str | None:
    """Why ``path`` cannot be read as an input file (missing, a directory, a device or FIFO,
    empty), in a few words; None when it can."""
    try:
        status = path.stat()
    except OSError:
        return "no such file"
    if stat.S_ISDIR(status.st_mode):
        return "is a directory, not a file"
    if not stat.S_ISREG(status.st_mode):
        return "is not a regular file (a device, FIFO or socket)"
    return "the file is empty" if status.st_size == 0 else None


def _nonempty_file(path: str | Path) -> Path:
    """``path``, or an :class:`AudioError` saying why it cannot be read (see :func:`input_problem`)."""
    path = Path(path)
    if problem := input_problem(path):
        raise AudioError(f"{path}: {problem}")
    return path


def is_real(values: torch.Tensor) -> bool:
    """Whether a tensor holds real numbers (not complex ones, not booleans)."""
    return not (values.is_complex() or values.dtype == torch.bool)


def load_audio(path: str | Path, sampling_rate: int | None = 22050) -> tuple[np.ndarray, int]:
    """Read any file soundfile reads as float32 mono in [-1, 1], resampled (soxr) to ``sampling_rate``.

    Integer PCM becomes value / 32768 exactly (as NVIDIA's ``mel2samp.py``); several channels are
    averaged. Returns ``(audio, rate)``; ``sampling_rate=None`` keeps the file's rate.
    """
    path = _nonempty_file(path)
    try:
        data, rate = _read_blocks(path)
    except (soundfile.LibsndfileError, RuntimeError, ValueError) as error:
        raise AudioError(f"{path}: not a readable audio file ({error})") from None
    if data.shape[0] == 0:
        raise AudioError(f"{path}: the file holds no audio samples")
    audio = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.all(np.isfinite(audio)):
        raise AudioError(f"{path}: the audio contains NaN or infinite samples")
    peak = float(np.abs(audio).max())
    if peak > 1.0:  # only float files can: integer PCM is read as value / 32768
        warnings.warn(
            f"{path}: the samples peak at {peak:.3g}, outside [-1, 1]: they are used as they are "
            "(scale the file to [-1, 1] if that was not meant)",
            InputWarning,
            stacklevel=2,
        )
    if sampling_rate is not None and rate != sampling_rate:
        audio = soxr.resample(audio, rate, sampling_rate, quality="HQ").astype(np.float32)
        rate = sampling_rate
    return np.ascontiguousarray(audio, dtype=np.float32), rate


BLOCK_SAMPLES = 2**20  # what one read allocates at most (4 MiB of float32)


def _read_blocks(path: Path) -> tuple[np.ndarray, int]:
    """All the samples (frames, channels) as float32, and the rate, read block by block: memory
    follows the audio the file really holds, not the frame count its header claims (soundfile's
    ``read`` allocates that count first: 16 GiB for a 100-byte FLAC claiming 2^32 frames)."""
    with soundfile.SoundFile(str(path)) as sound:
        frames = max(1, BLOCK_SAMPLES // max(1, sound.channels))
        blocks = []
        while len(block := sound.read(frames, dtype="float32", always_2d=True)):
            blocks.append(block)
        rate, channels = sound.samplerate, sound.channels
    if not blocks:
        return np.zeros((0, max(1, channels)), dtype=np.float32), rate
    return np.concatenate(blocks) if len(blocks) > 1 else blocks[0], rate


def save_wav(path: str | Path, audio: np.ndarray | torch.Tensor, sampling_rate: int) -> None:
    """Write mono audio (T,) (or (1, T)) as 16-bit PCM, clipped to [-1, 1] (never wrapped
    around), atomically. NaN or infinite samples, or several channels, are an :class:`AudioError`
    and nothing is written."""
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().float().cpu().numpy()
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim == 2 and audio.shape[0] == 1:
        audio = audio[0]
    if audio.ndim != 1:
        raise AudioError(f"{path}: audio must have shape (samples,), got {audio.shape}")
    if not np.all(np.isfinite(audio)):
        raise AudioError(f"{path}: the audio contains NaN or infinite samples; nothing written")
    audio = np.clip(audio, -1.0, 1.0)
    pcm = np.clip(np.round(audio * MAX_WAV_VALUE), -MAX_WAV_VALUE, MAX_WAV_VALUE - 1).astype(
        np.int16
    )
    with atomic_path(path) as temporary:
        soundfile.write(str(temporary), pcm, sampling_rate, subtype="PCM_16", format="WAV")


class atomic_path:  # noqa: N801 - used as a context manager, reads like a function
    """Context manager giving a temporary path next to ``path``; renamed onto it on success.

    On any error the temporary file is removed and an existing ``path`` is left untouched. Only a
    regular file (or nothing) is ever replaced: a directory is an :class:`IsADirectoryError`, a
    device node, FIFO or socket an :class:`OSError`, both naming ``path``. The result gets the mode
    a plain write would (0o666 less the umask), whatever the writer used. A writer's own failure
    (torch and soundfile raise RuntimeErrors on a full disk) becomes an :class:`OSError` naming
    ``path``: ENOSPC where the file system is then full, else EIO with the writer's message. The
    temporary name holds the writer's pid, for :func:`remove_stale_temporaries`.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __enter__(self) -> Path:
        _refuse_non_regular(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:  # like mkstemp, but with the mode a plain write gets (0o666 less the umask)
            name = self.path.parent / f".{self.path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
            try:
                os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            except FileExistsError:
                continue
            self.temporary = name
            return self.temporary

    def __exit__(self, kind, error, traceback) -> None:  # noqa: ANN001
        if kind is None:
            try:
                _refuse_non_regular(self.path)
                os.chmod(self.temporary, 0o666 & ~_umask())
                with open(self.temporary, "rb") as handle:
                    os.fsync(handle.fileno())
                os.replace(self.temporary, self.path)
                return
            except BaseException:
                self.temporary.unlink(missing_ok=True)
                raise
        full = issubclass(kind, RuntimeError) and _no_space_left(self.path.parent)
        self.temporary.unlink(missing_ok=True)  # after looking: it holds the space it took
        if full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path)) from None
        if issubclass(kind, RuntimeError):
            first = str(error).strip().splitlines()[0] if str(error).strip() else kind.__name__
            raise OSError(errno.EIO, first, str(self.path)) from None


def _no_space_left(folder: Path) -> bool:
    """Whether ``folder``'s file system has no block left: a writer that failed there ran out of
    space, whatever its own message says (libsndfile: "System error.")."""
    try:
        return os.statvfs(folder).f_bavail == 0
    except OSError:
        return False


def _refuse_non_regular(path: Path) -> None:
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, "is a directory, not a file to write", str(path))
    if not stat.S_ISREG(mode):
        raise OSError(
            errno.EEXIST,
            "is not a regular file (a device, FIFO or socket): refusing to replace it",
            str(path),
        )


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_TEMPORARY = re.compile(r"^\..+\.(\d+)\.[0-9a-f]{8}\.tmp$")


def remove_stale_temporaries(*folders: str | Path) -> list[Path]:
    """Remove the temporary files that :class:`atomic_path` writers, now dead (kill -9), left in
    ``folders`` (missing ones are skipped); returns what was removed.

    Every job that writes into a folder calls it once as it starts (synthesis, mels, evaluation,
    training, checkpoint and export files): a single atomic write does not look, so that writing
    many files into one folder stays linear in their number.
    """
    removed = []
    for folder in folders:
        try:
            entries = list(os.scandir(folder))
        except OSError:  # no such folder (yet), or not a folder
            continue
        for entry in entries:
            match = _TEMPORARY.match(entry.name)
            if match and not _alive(int(match.group(1))) and entry.is_file(follow_symlinks=False):
                Path(entry.path).unlink(missing_ok=True)
                removed.append(Path(entry.path))
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


# ---------------------------------------------------------------------------- mel files
def load_mel(path: str | Path, n_mel_channels: int = WaveGlowConfig.n_mel_channels) -> torch.Tensor:
    """Read a mel (M, F) saved as a torch ``.pt`` tensor (NVIDIA/Tacotron 2) or a numpy ``.npy``.

    A batch dimension of 1 is accepted and dropped. Never executes code from the file.
    """
    return check_mel(read_mel_array(path), path, n_mel_channels)


def read_mel_array(path: str | Path) -> torch.Tensor:
    """The 2-D array of real numbers in a ``.pt`` or ``.npy`` mel file, as it is stored (either
    orientation, any number of bands; a batch dimension of 1 dropped), as float32; not yet
    checked for NaN (see :func:`check_mel`)."""
    path = _nonempty_file(path)
    try:
        mel = _read_mel_file(path)
    except RefusedGlobal as error:
        what = error.what or f"it names {error.name}, which a mel file never contains"
        raise AudioError(f"{path}: refused to load: {what}; nothing was executed") from None
    except Exception as error:  # noqa: BLE001 - any failure to parse is the file's fault
        raise AudioError(
            f"{path}: not a readable mel file ({type(error).__name__}: {error})"
        ) from None
    if not isinstance(mel, torch.Tensor):
        raise AudioError(f"{path}: expected a tensor, found {type(mel).__name__}")
    if mel.dim() == 3 and mel.size(0) == 1:
        mel = mel[0]
    if mel.dim() != 2:
        raise AudioError(f"{path}: a mel must have 2 dimensions, got shape {tuple(mel.shape)}")
    if not is_real(mel):
        raise AudioError(f"{path}: a mel must hold real numbers, got {mel.dtype}")
    return mel.float()


def check_mel(mel: torch.Tensor, path: str | Path, n_mel_channels: int) -> torch.Tensor:
    """``mel`` (M, F) if it has ``n_mel_channels`` bands and frames; warns (naming ``path``)
    when its values are far outside a Tacotron 2 log-mel."""
    if mel.size(0) != n_mel_channels:
        raise AudioError(
            f"{path}: a mel must have shape ({n_mel_channels}, frames), got {tuple(mel.shape)} "
            "('waveglow mel-check' tells what it is and how to convert it)"
        )
    if mel.size(1) == 0:
        raise AudioError(f"{path}: the mel has no frames")
    if not torch.isfinite(mel).all():
        raise AudioError(f"{path}: the mel contains NaN or infinite values")
    low, high = float(mel.min()), float(mel.max())
    if low < MEL_RANGE[0] or high > MEL_RANGE[1]:
        warnings.warn(
            f"{path}: the mel's values span [{low:.3g}, {high:.3g}], far outside a Tacotron 2 "
            "natural-log mel (about -11.5 to 3): the audio will be distorted or silent "
            "('waveglow mel-check' tells what it is and how to convert it)",
            InputWarning,
            stacklevel=3,
        )
    return mel


def _read_mel_file(path: Path) -> object:
    """The content of a ``.npy`` or torch file, read in memory bounded by the file's size."""
    if path.suffix == ".npy":
        check_npy_size(path)
        return torch.from_numpy(np.load(path, allow_pickle=False))
    return read_torch_file(path)[0]


NPY_VERSIONS = {(1, 0): 2, (2, 0): 4, (3, 0): 4}  # version -> bytes of the header length
NPY_MAX_HEADER = 10000  # numpy's own limit on the header's length (np.load's max_header_size)


def check_npy_size(path: str | Path) -> None:
    """Refuse a ``.npy`` file whose header declares more data than the file holds (numpy would
    allocate all of it before finding out), a negative dimension (numpy multiplies the shape in
    int64: (2**31 - 1, -2**33) comes out as 2**33 elements to allocate), or a header longer than
    the file or than numpy reads (numpy would allocate the declared length before reading it)."""
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        version = np.lib.format.read_magic(handle)
        if version not in NPY_VERSIONS:
            raise ValueError(f"unsupported .npy format version {version[0]}.{version[1]}")
        width = NPY_VERSIONS[version]
        header_length = int.from_bytes(handle.read(width), "little")
        if header_length > min(NPY_MAX_HEADER, size - handle.tell()):
            raise ValueError(
                f"its header claims {header_length:,} bytes, the file holds {size:,} in all"
            )
        handle.seek(-width, os.SEEK_CUR)
        read_header = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, _, dtype = read_header(handle)
        if any(dimension < 0 for dimension in shape):  # numpy's int64 product of them may wrap
            raise ValueError(f"its header declares a negative dimension, shape {shape}")
        declared = math.prod(shape) * dtype.itemsize
        available = size - handle.tell()
    if declared > available:
        raise ValueError(
            f"its header declares {declared:,} bytes of data, the file holds {available:,}"
        )


def save_mel(path: str | Path, mel: torch.Tensor) -> None:
    """Save a mel (M, F) as ``.pt`` (what NVIDIA's ``inference.py`` reads) or ``.npy``, atomically."""
    path = Path(path)
    mel = mel.detach().float().cpu().contiguous()
    with atomic_path(path) as temporary:
        if path.suffix == ".npy":
            with open(temporary, "wb") as handle:
                np.save(handle, mel.numpy())
        else:
            torch.save(mel, temporary)
