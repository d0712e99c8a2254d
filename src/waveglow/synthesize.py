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

Noise is drawn per file, on the CPU, as the position-tied noise of ``seed + index of the file``
(:func:`waveglow.noise.block_noise`: the noise ``waveglow serve`` and ``waveglow stream`` draw
for that seed), so a file's noise depends neither on the batch it is synthesized in nor on the
device. Batching pads
shorter mels and masks the padding inside the flow, so a file's audio is the same (to float
rounding) whatever batch it is synthesized in (see :func:`infer_batch`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from .audio import (
    MEL_SUFFIXES,
    SILENCE,
    AudioError,
    MelSpectrogram,
    load_audio,
    load_mel,
    remove_stale_temporaries,
    save_mel,
    save_wav,
)
from .backends import resolve_device
from .chunked import write_wav_chunks
from .denoiser import Denoiser
from .meldoctor import Conversion, load_converted_mel
from .model import DEFAULT_CHUNK_FRAMES, WaveGlow
from .noise import block_noise, draw_seed

OUTPUT_SUFFIX = "_synthesis.wav"
MEL_FORMATS = ("pt", "npy")

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
    conversion: Conversion | None = None,
) -> SynthesisReport:
    """Synthesize every input to ``output_dir/<stem>_synthesis.wav``; see the module docstring.

    The model is moved to ``device`` (default: where it is) and put in eval mode. ``denoise`` is
    the :class:`Denoiser` strength (0: off). ``on_error`` receives one line per failed file as
    it happens (the report keeps them all). ``precision`` is that of the WN matrix products
    (:meth:`WaveGlow.infer`). An input longer than ``chunk_frames`` mel frames, synthesized alone
    (batch of one) without denoising, is streamed to its file chunk by chunk in bounded memory
    (:meth:`WaveGlow.infer_chunks`; the same audio as in one piece, up to float rounding).
    ``conversion`` turns mel files from another front end into ours (:mod:`waveglow.meldoctor`).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if sigma < 0 or denoise < 0:
        raise ValueError("sigma and denoise must be >= 0")
    parameter = next(model.parameters())
    device = resolve_device(device) if device is not None else parameter.device
    model = model.to(device).eval()
    sources = [Path(source) for source in inputs]
    has_audio = any(source.suffix not in MEL_SUFFIXES for source in sources)
    mel = model.mel_transform() if has_audio else None
    denoiser = Denoiser(model) if denoise > 0 else None
    synthesis = _Synthesis(
        model, sigma, seed, precision, chunk_frames, mel, denoiser, denoise, conversion
    )
    remove_stale_temporaries(output_dir)
    names = _OutputNames(sources, Path(output_dir), OUTPUT_SUFFIX)
    outcomes: list[tuple[int, FileResult]] = []
    started = time.perf_counter()
    with _audio_progress(progress) as bar:
        for index, result in _synthesize_inputs(synthesis, sources, names, batch_size, bar):
            outcomes.append((index, _told(result, on_error)))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return SynthesisReport(
        results=[result for _, result in sorted(outcomes, key=lambda outcome: outcome[0])],
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


def _synthesize_inputs(
    synthesis: _Synthesis,
    sources: Sequence[Path],
    names: _OutputNames,
    batch_size: int,
    bar: tqdm,
) -> Iterator[tuple[int, FileResult]]:
    """Read the inputs in order, synthesizing each batch of ``batch_size`` readable ones (and the
    last, shorter one); yields (index of the input, its outcome) as each outcome is known."""
    rate = synthesis.model.data_config.sampling_rate
    batch: list[_Item] = []
    for index, source in enumerate(sources):
        try:
            item = _Item(index, source, names(source), synthesis.read(source))
        except AudioError as error:
            yield index, FileResult(source, error=str(error))
        else:
            batch.append(item)
            bar.total += item.mel.size(1) * synthesis.model.hop_length / rate
        if batch and (len(batch) == batch_size or index == len(sources) - 1):
            yield from synthesis.write(batch, lambda samples: bar.update(samples / rate))
            batch = []
        bar.set_postfix_str(f"{index + 1}/{len(sources)} files", refresh=True)


@dataclass(frozen=True)
class _Synthesis:
    """The settings of one :func:`synthesize_files` call: how an input is read, and how a batch of
    read items becomes files."""

    model: WaveGlow
    sigma: float
    seed: int | None
    precision: str | None
    chunk_frames: int
    mel: MelSpectrogram | None  # the model's mel (None: no input is audio)
    denoiser: Denoiser | None
    denoise: float
    conversion: Conversion | None = None  # of mel files from another front end

    def read(self, source: Path) -> torch.Tensor:
        """The mel (M, F) of an input: loaded from ``.pt``/``.npy``, or computed from an audio file
        with the model's mel."""
        if source.suffix in MEL_SUFFIXES and self.conversion is not None:
            return load_converted_mel(source, self.conversion, self.model.config.n_mel_channels)
        if source.suffix in MEL_SUFFIXES:
            return load_mel(source, self.model.config.n_mel_channels)
        assert self.mel is not None  # made whenever an input is audio
        return mel_of_audio_file(source, self.mel)

    def write(
        self, batch: Sequence[_Item], progress: Callable[[int], object]
    ) -> Iterator[tuple[int, FileResult]]:
        """Synthesize a batch into its files, yielding (index, outcome) per item; ``progress`` gets
        the samples of each piece of audio written. A long item alone, not denoised, is streamed
        to its file chunk by chunk; any other batch is synthesized in one pass."""
        noises = [self._noise(item) for item in batch]
        if len(batch) == 1 and self.denoiser is None and batch[0].mel.size(1) > self.chunk_frames:
            yield batch[0].index, self._stream(batch[0], noises[0], progress)
        else:
            yield from self._whole(batch, noises, progress)

    def _whole(
        self,
        batch: Sequence[_Item],
        noises: Sequence[torch.Tensor],
        progress: Callable[[int], object],
    ) -> Iterator[tuple[int, FileResult]]:
        """Synthesize a batch in one pass (denoised if asked) and save each item's audio."""
        audio = infer_batch(self.model, [item.mel for item in batch], noises, self.precision)
        for item, item_audio in zip(batch, audio, strict=True):
            if self.denoiser is not None:
                with torch.inference_mode():
                    item_audio = self.denoiser(item_audio, strength=self.denoise)
            yield item.index, self._save(item, item_audio)
            progress(item_audio.numel())

    def _noise(self, item: _Item) -> torch.Tensor:
        return item_noise(self.model, item.mel.size(1), self.sigma, self.seed, item.index)

    def _save(self, item: _Item, audio: torch.Tensor) -> FileResult:
        def write() -> int:
            save_wav(item.output, audio, self.model.data_config.sampling_rate)
            return audio.numel()

        return _record(item.source, item.output, write)

    def _stream(
        self, item: _Item, noise: torch.Tensor, progress: Callable[[int], object]
    ) -> FileResult:
        """Synthesize one long item chunk by chunk straight into its wav file."""
        model = self.model
        parameter = next(model.parameters())
        mel = item.mel.unsqueeze(0).to(parameter.device, parameter.dtype)  # (1, M, F)
        z = noise.unsqueeze(0).to(parameter.device, parameter.dtype)  # (1, G, T_G)
        chunks = model.infer_chunks(mel, self.chunk_frames, z=z, precision=self.precision)

        def write() -> int:
            rate = model.data_config.sampling_rate
            return write_wav_chunks(item.output, _reporting(chunks, progress), rate)

        return _record(item.source, item.output, write)


def _reporting(
    chunks: Iterable[torch.Tensor], progress: Callable[[int], object]
) -> Iterator[torch.Tensor]:
    """The first item of each batch chunk (B=1), telling ``progress`` its length once written."""
    for chunk in chunks:
        yield chunk[0]
        progress(chunk.size(-1))


def infer_batch(
    model: WaveGlow,
    mels: Sequence[torch.Tensor],
    noises: Sequence[torch.Tensor],
    precision: str | None = "fp32",
) -> list[torch.Tensor]:
    """Synthesize mels (M, F_i) of different lengths in one pass; returns audio (F_i * hop,) each.

    Mels are padded with log-silence and each z (G, F_i * hop / G) with zeros to the longest; the
    flow is told each item's length (``WaveGlow.infer(lengths=...)``), so its convolutions read
    zeros past an item's end exactly as when the item is synthesized alone, and each output,
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
    """z (G, frames * hop / G) ~ N(0, sigma^2): the position-tied noise of ``seed + index``
    (:func:`waveglow.noise.block_noise`, as the service and :class:`waveglow.Stream` draw it for
    that seed); fresh entropy when ``seed`` is None."""
    if seed is None:
        entropy = torch.Generator()
        entropy.seed()  # fresh entropy, torch's global generator untouched
        seed = draw_seed(entropy)
    else:
        seed = seed + index
    noise = block_noise(seed, (1, model.n_group), 0, frames, model.hop_length, sigma)
    return noise[0]  # (G, T_G)


# ---------------------------------------------------------------------------- mels
def compute_mels(
    inputs: Sequence[str | Path],
    output_dir: str | Path,
    format: str = "pt",  # noqa: A002 - the CLI's --format
    transform: MelSpectrogram | None = None,
    progress: bool = True,
    on_error: ErrorHandler | None = None,
) -> MelReport:
    """Write the mel (M, F) of every audio input to ``output_dir/<stem>.<format>``: ``transform``,
    a model's mel (:meth:`WaveGlow.mel_transform`), by default the Tacotron 2 mel of NVIDIA's
    ``config.json``.

    A ``.pt`` output holds one float32 tensor, as NVIDIA's ``inference.py`` loads it.
    """
    if format not in MEL_FORMATS:
        raise ValueError(f"mel format must be one of {', '.join(MEL_FORMATS)}, got {format!r}")
    transform = transform or MelSpectrogram()
    sources = [Path(source) for source in inputs]
    remove_stale_temporaries(output_dir)
    names = _OutputNames(sources, Path(output_dir), f".{format}")
    return MelReport(
        [
            _told(_compute_mel(source, names, transform), on_error)
            for source in tqdm(sources, unit="file", disable=not progress)
        ]
    )


def _compute_mel(source: Path, names: _OutputNames, transform: MelSpectrogram) -> FileResult:
    """Write one input's mel; its outcome (``samples``: its number of frames)."""
    try:
        output = names(source)
        mel = mel_of_audio_file(source, transform)
    except AudioError as error:
        return FileResult(source, error=str(error))

    def write() -> int:
        save_mel(output, mel)
        return mel.size(1)

    return _record(source, output, write)


# ---------------------------------------------------------------------------- helpers
class _OutputNames:
    """Names each input's output ``output_dir/<stem><suffix>``, in the order of the inputs; an
    output that would overwrite an input file or an earlier input's output is an
    :class:`AudioError` naming both."""

    def __init__(self, sources: Iterable[Path], output_dir: Path, suffix: str) -> None:
        self._inputs = {source.resolve() for source in sources}
        self._output_dir, self._suffix = output_dir, suffix
        self._taken: dict[Path, Path] = {}  # resolved output -> the input it belongs to

    def __call__(self, source: Path) -> Path:
        output = self._output_dir / f"{source.stem}{self._suffix}"
        key = output.resolve()
        if key in self._taken:
            raise AudioError(
                f"{source}: its output {output} would overwrite that of {self._taken[key]}"
            )
        if key in self._inputs:
            raise AudioError(f"{source}: its output {output} would overwrite an input file")
        self._taken[key] = source
        return output


def _record(source: Path, output: Path, write: Callable[[], int]) -> FileResult:
    """Run ``write`` (it returns the samples or frames written); the input's outcome."""
    try:
        count = write()
    except AudioError as error:
        return FileResult(source, error=str(error))
    except OSError as error:
        return FileResult(source, error=cannot_write(output, error))
    return FileResult(source, output, count)


def _told(result: FileResult, on_error: ErrorHandler | None) -> FileResult:
    """``result``, its error line first passed to ``on_error``."""
    if result.error is not None and on_error is not None:
        on_error(result.error)
    return result


def cannot_write(path: Path | str, error: OSError) -> str:
    """One line for a failed write (a full disk, a directory in the way...)."""
    return f"{path}: cannot write ({error.strerror or error})"
