"""Synthesis from files: the library functions behind ``waveglow synthesize`` and ``waveglow mel``.

Inputs are mel files (``.pt`` tensors (M, F) as NVIDIA's ``mel2samp.py`` and Tacotron 2 save them,
or ``.npy`` arrays (M, F)) or any audio file soundfile reads (copy synthesis: audio -> Tacotron 2
mel -> audio; any rate and channel count, resampled and mixed to mono).

Outputs are named ``<stem>_synthesis.wav`` (as NVIDIA's ``inference.py``), so copy synthesis into
the folder of its input never overwrites the input. They are 16-bit PCM at the model's rate,
clipped to [-1, 1] (NVIDIA's int16 cast wraps loud samples around; we never do) and written
atomically: a failed file leaves nothing behind.

A bad input (missing, empty, corrupt, wrong number of mel channels, NaN) is reported with one line
naming the file; the other files are still processed, and the report says which failed.

Noise is drawn per file, on the CPU, from its own generator (``seed + index of the file``), so a
file's noise depends neither on the batch it is synthesised in nor on the device. Batching pads
shorter mels and masks the padding inside the flow, so a file's audio is the same (to float
rounding) whatever batch it is synthesised in (see :func:`infer_batch`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from .audio import (
    MEL_SUFFIXES,
    AudioError,
    MelSpectrogram,
    load_audio,
    load_mel,
    remove_stale_temporaries,
    save_mel,
    save_wav,
)
from .chunked import DEFAULT_CHUNK_FRAMES, write_wav_chunks
from .config import DataConfig
from .denoiser import Denoiser
from .fast import resolve_device
from .model import WaveGlow

OUTPUT_SUFFIX = "_synthesis.wav"
MEL_FORMATS = ("pt", "npy")
SILENCE = math.log(1e-5)  # the Tacotron 2 mel of silence, used to pad mels in a batch

ErrorHandler = Callable[[str], None]


@dataclass(frozen=True)
class FileResult:
    """The outcome for one input: ``output`` on success, ``error`` (one line) on failure."""

    source: Path
    output: Path | None = None
    samples: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class SynthesisReport:
    """Per-file results and the throughput summary of one :func:`synthesize_files` call."""

    results: list[FileResult] = field(default_factory=list)  # in the order of the inputs
    sampling_rate: int = 22050
    wall_seconds: float = 0.0

    @property
    def failures(self) -> list[FileResult]:
        return [result for result in self.results if not result.ok]

    @property
    def samples(self) -> int:
        return sum(result.samples for result in self.results)

    @property
    def audio_seconds(self) -> float:
        return self.samples / self.sampling_rate

    @property
    def khz(self) -> float:
        """Audio samples produced per wall-clock second, in thousands (the wall clock covers
        reading, synthesis, denoising and writing, not loading the model)."""
        return self.samples / max(self.wall_seconds, 1e-9) / 1000

    def summary(self) -> str:
        done = len(self.results) - len(self.failures)
        failed = f", {len(self.failures)} failed" if self.failures else ""
        return (
            f"synthesized {done} of {len(self.results)} file(s){failed}: "
            f"{self.audio_seconds:.2f} s of audio in {self.wall_seconds:.2f} s "
            f"({self.khz:.1f} kHz)"
        )


@dataclass
class MelReport:
    """Per-file results of one :func:`compute_mels` call (there ``FileResult.samples`` holds the
    number of mel frames)."""

    results: list[FileResult] = field(default_factory=list)

    @property
    def failures(self) -> list[FileResult]:
        return [result for result in self.results if not result.ok]


@dataclass(frozen=True)
class _Item:
    """One readable input, waiting in a batch."""

    index: int
    source: Path
    output: Path
    mel: torch.Tensor  # (M, F) on the CPU


# ---------------------------------------------------------------------------- reading inputs
def read_mel_input(
    path: str | Path, n_mel_channels: int = 80, transform: MelSpectrogram | None = None
) -> torch.Tensor:
    """The mel (M, F) of an input: loaded from ``.pt``/``.npy``, or computed from an audio file
    with ``transform`` (default: the standard Tacotron 2 mel with ``n_mel_channels`` bins)."""
    path = Path(path)
    if path.suffix in MEL_SUFFIXES:
        return load_mel(path, n_mel_channels)
    return mel_of_audio_file(path, transform or MelSpectrogram(n_mel_channels=n_mel_channels))


def mel_of_audio_file(path: str | Path, transform: MelSpectrogram) -> torch.Tensor:
    """The Tacotron 2 mel (M, F) of an audio file, resampled to the transform's sampling rate."""
    config = transform.config
    audio, _ = load_audio(path, config.sampling_rate)
    if audio.shape[0] <= config.filter_length // 2:
        raise AudioError(
            f"{path}: {audio.shape[0]} samples is too short for a mel "
            f"(more than {config.filter_length // 2} are needed)"
        )
    with torch.inference_mode():
        return transform(torch.from_numpy(audio))


# ---------------------------------------------------------------------------- synthesis
def synthesize_files(
    model: WaveGlow,
    inputs: Sequence[str | Path],
    output_dir: str | Path,
    sigma: float = 0.6,
    denoise: float = 0.0,
    seed: int | None = None,
    batch_size: int = 1,
    device: str | torch.device | None = None,
    progress: bool = True,
    on_error: ErrorHandler | None = None,
    precision: str | None = "fp32",
    chunk_frames: int = DEFAULT_CHUNK_FRAMES,
) -> SynthesisReport:
    """Synthesise every input to ``output_dir/<stem>_synthesis.wav``; see the module docstring.

    The model is moved to ``device`` (default: where it is) and put in eval mode. ``denoise`` is
    the :class:`Denoiser` strength (0: off). ``on_error`` receives one line per failed file as
    it happens (the report keeps them all). ``precision`` is that of the WN matrix products
    (:meth:`WaveGlow.infer`). An input longer than ``chunk_frames`` mel frames, synthesised alone
    (batch of one) without denoising, is streamed to its file chunk by chunk in bounded memory
    (:mod:`waveglow.chunked`; the same audio as in one piece, up to float rounding).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if sigma < 0 or denoise < 0:
        raise ValueError("sigma and denoise must be >= 0")
    parameter = next(model.parameters())
    device = resolve_device(device) if device is not None else parameter.device
    model = model.to(device).eval()
    denoiser = Denoiser(model) if denoise > 0 else None
    n_mel_channels = model.config.n_mel_channels
    has_audio = any(Path(source).suffix not in MEL_SUFFIXES for source in inputs)
    transform = MelSpectrogram(model.data_config, n_mel_channels) if has_audio else None
    results: list[FileResult | None] = [None] * len(inputs)
    remove_stale_temporaries(output_dir)
    outputs = _output_paths(inputs, Path(output_dir), OUTPUT_SUFFIX)

    rate = model.data_config.sampling_rate

    def flush(batch: list[_Item], bar: tqdm) -> None:
        noises = [item_noise(model, item.mel.size(1), sigma, seed, item.index) for item in batch]
        if len(batch) == 1 and denoiser is None and batch[0].mel.size(1) > chunk_frames:
            progress = lambda samples: bar.update(samples / rate)  # noqa: E731 - chunk by chunk
            _stream(
                model, batch[0], noises[0], precision, chunk_frames, results, on_error, progress
            )
            return
        audio = infer_batch(model, [item.mel for item in batch], noises, precision)
        for item, item_audio in zip(batch, audio, strict=True):
            if denoiser is not None:
                with torch.inference_mode():
                    item_audio = denoiser(item_audio, strength=denoise)
            _write(item, item_audio, rate, results, on_error)
            bar.update(item_audio.numel() / rate)

    started = time.perf_counter()
    with _audio_progress(progress) as bar:
        batch: list[_Item] = []
        for index, source in enumerate(map(Path, inputs)):
            item = _read_item(
                n_mel_channels, transform, index, source, outputs[index], results, on_error
            )
            if item is not None:
                batch.append(item)
                bar.total += item.mel.size(1) * model.hop_length / rate
            if batch and (len(batch) == batch_size or index == len(inputs) - 1):
                flush(batch, bar)
                batch = []
            bar.set_postfix_str(f"{index + 1}/{len(inputs)} files", refresh=True)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return SynthesisReport(
        results=[result for result in results if result is not None],
        sampling_rate=model.data_config.sampling_rate,
        wall_seconds=time.perf_counter() - started,
    )


def _audio_progress(enabled: bool) -> tqdm:
    """A progress bar in seconds of audio (its rate: seconds of audio per second, i.e. the real-time
    factor); its total grows as the inputs are read."""
    return tqdm(
        total=0.0,
        unit="s",
        disable=not enabled,
        bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} s of audio [{elapsed}<{remaining}, "
        "{rate_fmt}{postfix}]",
    )


def _read_item(
    n_mel_channels: int,
    transform: MelSpectrogram | None,
    index: int,
    source: Path,
    output: Path | str,
    results: list[FileResult | None],
    on_error: ErrorHandler | None,
) -> _Item | None:
    """Load one input's mel; on failure record it and return None."""
    try:
        if isinstance(output, str):  # an error found while naming the outputs
            raise AudioError(output)
        mel = read_mel_input(source, n_mel_channels, transform)
    except AudioError as error:
        _fail(results, index, source, str(error), on_error)
        return None
    return _Item(index, source, output, mel)


def infer_batch(
    model: WaveGlow,
    mels: Sequence[torch.Tensor],
    noises: Sequence[torch.Tensor],
    precision: str | None = "fp32",
) -> list[torch.Tensor]:
    """Synthesise mels (M, F_i) of different lengths in one pass; returns audio (F_i * hop,) each.

    Mels are padded with log-silence and each z (G, F_i * hop / G) with zeros to the longest; the
    flow is told each item's length (``WaveGlow.infer(lengths=...)``), so its convolutions read
    zeros past an item's end exactly as when the item is synthesised alone, and each output,
    trimmed to its own length, equals the item's own synthesis to float rounding.
    """
    hop, group = model.hop_length, model.n_group
    parameter = next(model.parameters())
    frames = max(mel.size(1) for mel in mels)
    batch = torch.full((len(mels), model.config.n_mel_channels, frames), SILENCE)  # (B, M, F)
    z = torch.zeros(len(mels), group, frames * hop // group)  # (B, G, T_G)
    for row, (mel, noise) in enumerate(zip(mels, noises, strict=True)):
        batch[row, :, : mel.size(1)] = mel
        z[row, :, : noise.size(1)] = noise
    with torch.inference_mode():
        audio = model.infer(
            batch.to(parameter.device, parameter.dtype),
            z=z.to(parameter.device, parameter.dtype),
            precision=precision,
            lengths=[mel.size(1) for mel in mels],
        )  # (B, T)
    return [audio[row, : mel.size(1) * hop] for row, mel in enumerate(mels)]


def item_noise(
    model: WaveGlow, frames: int, sigma: float, seed: int | None, index: int = 0
) -> torch.Tensor:
    """z (G, frames * hop / G) ~ N(0, sigma^2) from the item's own CPU generator (``seed + index``);
    fresh entropy when ``seed`` is None."""
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed + index)
    steps = frames * model.hop_length // model.n_group
    return torch.randn(model.n_group, steps, generator=generator) * sigma  # (G, T_G)


def _stream(
    model: WaveGlow,
    item: _Item,
    noise: torch.Tensor,
    precision: str | None,
    chunk_frames: int,
    results: list[FileResult | None],
    on_error: ErrorHandler | None,
    progress: Callable[[int], object] = lambda _samples: None,
) -> None:
    """Synthesise one long item chunk by chunk straight into its wav file; ``progress`` gets the
    samples of each chunk written."""
    parameter = next(model.parameters())
    mel = item.mel.unsqueeze(0).to(parameter.device, parameter.dtype)  # (1, M, F)
    z = noise.unsqueeze(0).to(parameter.device, parameter.dtype)  # (1, G, T_G)
    chunks = model.infer_chunks(mel, chunk_frames, z=z, precision=precision)
    try:
        samples = write_wav_chunks(
            item.output, _reporting(chunks, progress), model.data_config.sampling_rate
        )
    except AudioError as error:
        _fail(results, item.index, item.source, str(error), on_error)
        return
    except OSError as error:
        message = cannot_write(item.output, error)
        _fail(results, item.index, item.source, message, on_error)
        return
    results[item.index] = FileResult(item.source, item.output, samples)


def _reporting(
    chunks: Iterable[torch.Tensor], progress: Callable[[int], object]
) -> Iterator[torch.Tensor]:
    """The first item of each batch chunk (B=1), telling ``progress`` its length once written."""
    for chunk in chunks:
        yield chunk[0]
        progress(chunk.size(-1))


def _write(
    item: _Item,
    audio: torch.Tensor,
    sampling_rate: int,
    results: list[FileResult | None],
    on_error: ErrorHandler | None,
) -> None:
    try:
        save_wav(item.output, audio, sampling_rate)
    except AudioError as error:
        _fail(results, item.index, item.source, str(error), on_error)
        return
    except OSError as error:
        message = cannot_write(item.output, error)
        _fail(results, item.index, item.source, message, on_error)
        return
    results[item.index] = FileResult(item.source, item.output, audio.numel())


# ---------------------------------------------------------------------------- mels
def compute_mels(
    inputs: Sequence[str | Path],
    output_dir: str | Path,
    format: str = "pt",  # noqa: A002 - the CLI's --format
    data_config: DataConfig | None = None,
    n_mel_channels: int = 80,
    progress: bool = True,
    on_error: ErrorHandler | None = None,
) -> MelReport:
    """Write the Tacotron 2 mel (M, F) of every audio input to ``output_dir/<stem>.<format>``.

    A ``.pt`` output holds one float32 tensor, as NVIDIA's ``inference.py`` loads it.
    """
    if format not in MEL_FORMATS:
        raise ValueError(f"mel format must be one of {', '.join(MEL_FORMATS)}, got {format!r}")
    transform = MelSpectrogram(data_config, n_mel_channels)
    results: list[FileResult | None] = [None] * len(inputs)
    remove_stale_temporaries(output_dir)
    outputs = _output_paths(inputs, Path(output_dir), f".{format}")
    sources = list(map(Path, inputs))
    for index, source in enumerate(tqdm(sources, unit="file", disable=not progress)):
        output = outputs[index]
        try:
            if isinstance(output, str):
                raise AudioError(output)
            mel = mel_of_audio_file(source, transform)
            save_mel(output, mel)
        except AudioError as error:
            _fail(results, index, source, str(error), on_error)
            continue
        except OSError as error:
            _fail(results, index, source, cannot_write(output, error), on_error)
            continue
        results[index] = FileResult(source, output, mel.size(1))
    return MelReport([result for result in results if result is not None])


# ---------------------------------------------------------------------------- helpers
def _output_paths(inputs: Iterable[str | Path], output_dir: Path, suffix: str) -> list[Path | str]:
    """``output_dir/<stem><suffix>`` per input, or an error line where two inputs would collide or
    an output would overwrite an input."""
    sources = [Path(source) for source in inputs]
    resolved_sources = {source.resolve() for source in sources}
    taken: dict[Path, Path] = {}
    outputs: list[Path | str] = []
    for source in sources:
        output = output_dir / f"{source.stem}{suffix}"
        key = output.resolve()
        if key in taken:
            outputs.append(f"{source}: its output {output} would overwrite that of {taken[key]}")
        elif key in resolved_sources:
            outputs.append(f"{source}: its output {output} would overwrite an input file")
        else:
            taken[key] = source
            outputs.append(output)
    return outputs


def cannot_write(path: Path | str, error: OSError) -> str:
    """One line for a failed write (a full disk, a directory in the way...)."""
    return f"{path}: cannot write ({error.strerror or error})"


def _fail(
    results: list[FileResult | None],
    index: int,
    source: Path,
    message: str,
    on_error: ErrorHandler | None,
) -> None:
    results[index] = FileResult(source, error=message)
    if on_error is not None:
        on_error(message)
