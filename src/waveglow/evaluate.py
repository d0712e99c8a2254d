"""Objective quality of copy synthesis: the library behind ``waveglow evaluate``.

Each clip (audio file, any rate, mixed to mono and resampled to the model's rate) goes through
audio -> Tacotron 2 log-mel -> vocoder -> audio, and every system's output is clipped to [-1, 1],
cut to the clip's length and scored against the original by :mod:`waveglow.metrics`
(PESQ-WB, STOI, ESTOI, MCD, log-mel L1, MR-STFT and, when it loads, DNSMOS; each defined
there).

The Griffin-Lim baseline inverts the very mel the vocoder is given: ``exp`` of the log-mel, a
non-negative least-squares inverse of the Slaney filters to a linear magnitude
(``librosa.feature.inverse.mel_to_stft``, ``power=1``), then 60 iterations of librosa's
``griffinlim`` (its default fast variant, momentum 0.99, random initial phase from ``seed``) with
the same STFT parameters.

Outputs, all written atomically into ``output_dir``: ``wavs/<clip>_waveglow.wav`` and
``wavs/<clip>_griffin-lim.wav``, ``plots/<clip>.png`` (spectrograms of the original and of each
system, one above the other), ``metrics.csv`` (one row per clip and system), ``summary.json`` and
``report.md`` (means, and how many clips each system wins per metric).
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .audio import (
    STFT,
    AudioError,
    MelSpectrogram,
    atomic_path,
    load_audio,
    remove_stale_temporaries,
    save_wav,
)
from .config import DataConfig
from .denoiser import Denoiser
from .metrics import (  # noqa: F401 - re-exported: waveglow.evaluate has always offered them
    HIGHER_IS_BETTER,
    REFERENCE_METRICS,
    MissingExtraError,
    dnsmos_overall,
    intelligibility,
    log_mel_l1,
    mel_cepstral_distortion,
    multi_resolution_stft,
    pesq_wideband,
    require_eval_extra,
    score,
    stft_magnitude,
)
from .model import WaveGlow
from .noise import gaussian

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".au", ".mp3", ".opus")
BASELINES = ("griffin-lim", "none")
WAVEGLOW = "waveglow"
GRIFFIN_LIM = "griffin-lim"
MIN_SECONDS = 0.5
GRIFFIN_LIM_ITERATIONS = 60


# ---------------------------------------------------------------------------- systems
def griffin_lim(
    log_mel: torch.Tensor, config: DataConfig, length: int, seed: int = 0
) -> np.ndarray:
    """Invert a Tacotron 2 log-mel (M, F): NNLS to a linear magnitude, then 60 Griffin-Lim
    iterations with the mel's STFT parameters; ``length`` samples, whatever ``length`` is.

    Griffin-Lim alternates an inverse STFT of ``n`` samples with a centred STFT of those samples,
    which has ``1 + n // hop`` frames; it must have F, so the iterations run at the length of F
    frames closest to ``length`` and the result is then cut or zero-padded to ``length``
    (a vocoder's F * hop samples would otherwise make F + 1 frames against F magnitudes).
    """
    import librosa

    if length < 1:
        raise ValueError(f"length must be >= 1 sample, got {length}")
    frames = log_mel.size(-1)
    mel = np.exp(log_mel.detach().double().cpu().numpy())
    magnitude = librosa.feature.inverse.mel_to_stft(
        mel,
        sr=config.sampling_rate,
        n_fft=config.filter_length,
        power=1.0,
        fmin=config.mel_fmin,
        fmax=config.mel_fmax,
        htk=False,
        norm="slaney",
    )
    iterated = _length_of_frames(length, frames, config.hop_length)
    audio = librosa.griffinlim(
        magnitude,
        n_iter=GRIFFIN_LIM_ITERATIONS,
        hop_length=config.hop_length,
        win_length=config.win_length,
        n_fft=config.filter_length,
        window="hann",
        center=True,
        pad_mode="reflect",
        length=iterated,
        random_state=seed,
    )
    audio = np.pad(audio[:length], (0, max(0, length - audio.size)))
    return audio.astype(np.float32)


def _length_of_frames(length: int, frames: int, hop_length: int) -> int:
    """The sample count nearest ``length`` whose centred STFT has ``frames`` frames
    (``1 + n // hop == frames``: n in [(frames - 1) * hop, frames * hop - 1])."""
    return min(max(length, (frames - 1) * hop_length), frames * hop_length - 1)


def copy_synthesis(
    model: WaveGlow,
    log_mel: torch.Tensor,
    sigma: float,
    seed: int,
    denoiser: Denoiser | None = None,
    strength: float = 0.0,
) -> tuple[np.ndarray, float]:
    """Vocode one log-mel (M, F) with ``model`` (then ``denoiser`` at ``strength``, if given);
    returns (audio, seconds spent)."""
    parameter = next(model.parameters())
    generator = torch.Generator(device="cpu").manual_seed(seed)
    frames = log_mel.size(1)
    length = frames * model.hop_length
    z = gaussian((1, model.n_group, length // model.n_group), sigma, generator)
    mel = log_mel.unsqueeze(0).to(parameter.device, parameter.dtype)  # (1, M, F)
    start = time.perf_counter()
    with torch.inference_mode():
        audio = model.infer(mel, z=z.to(parameter.device, parameter.dtype))
        if denoiser is not None:
            audio = denoiser(audio, strength)
    if audio.is_cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return audio[0].float().cpu().numpy(), seconds


# ---------------------------------------------------------------------------- report
@dataclass(frozen=True)
class ClipScores:
    """One system's scores on one clip."""

    clip: str
    system: str
    scores: dict[str, float]


@dataclass(frozen=True)
class EvaluationReport:
    """Every clip's scores, with the summaries written to ``output_dir``."""

    rows: tuple[ClipScores, ...]
    systems: tuple[str, ...]
    output_dir: Path
    synthesis_khz: float | None = None
    sigma: float | None = None
    denoise: float | None = None
    seed: int = 0
    clips: tuple[str, ...] = field(default_factory=tuple)
    failures: tuple[tuple[str, str], ...] = ()  # (file, one-line error) of clips not scored

    @property
    def metrics(self) -> tuple[str, ...]:
        found = {name for row in self.rows for name in row.scores}
        return tuple(name for name in HIGHER_IS_BETTER if name in found)

    def means(self) -> dict[str, dict[str, float]]:
        """System -> metric -> mean over clips (NaN scores left out)."""
        result: dict[str, dict[str, float]] = {}
        for system in self.systems:
            rows = [row for row in self.rows if row.system == system]
            result[system] = {
                metric: _nan_mean([row.scores.get(metric, math.nan) for row in rows])
                for metric in self.metrics
            }
        return result

    def wins(self) -> dict[str, dict[str, int]]:
        """Metric -> system -> clips on which that system is strictly the best."""
        table = {metric: dict.fromkeys(self.systems, 0) for metric in self.metrics}
        if len(self.systems) < 2:
            return table
        by_clip: dict[str, dict[str, dict[str, float]]] = {}
        for row in self.rows:
            by_clip.setdefault(row.clip, {})[row.system] = row.scores
        for metric in self.metrics:
            for systems in by_clip.values():
                values = {name: scores.get(metric, math.nan) for name, scores in systems.items()}
                winner = _best(metric, values)
                if winner is not None:
                    table[metric][winner] += 1
        return table

    def summary(self) -> dict:
        return {
            "clips": list(self.clips),
            "systems": list(self.systems),
            "metrics": {
                name: {"higher_is_better": HIGHER_IS_BETTER[name]} for name in self.metrics
            },
            "means": self.means(),
            "wins": self.wins(),
            "synthesis_khz": self.synthesis_khz,
            "sigma": self.sigma,
            "denoise": self.denoise,
            "seed": self.seed,
            "griffin_lim_iterations": GRIFFIN_LIM_ITERATIONS
            if GRIFFIN_LIM in self.systems
            else None,
            "failures": [{"file": file, "error": error} for file, error in self.failures],
        }

    def markdown(self) -> str:
        """A table of means (best in bold) and clip wins per metric."""
        means, wins = self.means(), self.wins()
        header = ["metric", *self.systems]
        if len(self.systems) > 1:
            header.append("clips won (" + " / ".join(self.systems) + ")")
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for metric in self.metrics:
            arrow = "↑" if HIGHER_IS_BETTER[metric] else "↓"
            values = {system: means[system][metric] for system in self.systems}
            best = _best(metric, values) if len(self.systems) > 1 else None
            cells = [f"{metric} {arrow}"]
            for system in self.systems:
                text = f"{values[system]:.3f}" if math.isfinite(values[system]) else "n/a"
                cells.append(f"**{text}**" if system == best else text)
            if len(self.systems) > 1:
                cells.append(" / ".join(str(wins[metric][system]) for system in self.systems))
            lines.append("| " + " | ".join(cells) + " |")
        notes = [f"{len(self.clips)} clip{'s' if len(self.clips) != 1 else ''}."]
        if self.synthesis_khz is not None:
            settings = f"sigma {self.sigma}" + (
                f", denoiser {self.denoise}" if self.denoise else ""
            )
            notes.append(f"WaveGlow synthesis: {self.synthesis_khz:.1f} kHz ({settings}).")
        failed = "".join(f"- {file}: {error}\n" for file, error in self.failures)
        if failed:
            failed = f"\n{len(self.failures)} file(s) could not be scored:\n\n{failed}"
        return "\n".join(lines) + "\n\n" + " ".join(notes) + "\n" + failed


def _best(metric: str, values: dict[str, float]) -> str | None:
    """The system with the strictly best finite value of ``metric``, or None on a tie."""
    finite = {system: value for system, value in values.items() if math.isfinite(value)}
    if not finite:
        return None
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
    ranked = sorted(finite.items(), key=lambda item: -sign * item[1])
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        return None
    return ranked[0][0]


def _nan_mean(values: Sequence[float]) -> float:
    finite = [value for value in values if math.isfinite(value)]
    return float(np.mean(finite)) if finite else math.nan


# ---------------------------------------------------------------------------- evaluate
def collect_audio_files(inputs: Iterable[str | Path]) -> list[Path]:
    """Expand files and folders (their audio files, sorted, not recursive) into a file list."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(
                child
                for child in path.iterdir()
                if child.is_file() and child.suffix.lower() in AUDIO_SUFFIXES
            )
            if not found:
                raise AudioError(
                    f"{path}: the folder holds no audio files ({', '.join(AUDIO_SUFFIXES)})"
                )
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise AudioError(f"{path}: no such file or folder")
    if not files:
        raise AudioError("no audio files to evaluate")
    return files


def evaluate(
    model: WaveGlow | None,
    inputs: Iterable[str | Path],
    output_dir: str | Path,
    baseline: str = GRIFFIN_LIM,
    sigma: float = 0.6,
    seed: int = 0,
    denoise: float = 0.0,
    dnsmos: bool = True,
    plots: bool = True,
    progress: bool = False,
    on_error: Callable[[str], None] | None = None,
) -> EvaluationReport:
    """Copy-synthesize and score every clip; write wavs, plots, CSV, JSON and markdown.

    ``model=None`` scores the baseline alone (for a reference table without a trained model), at
    the Tacotron 2 defaults. Clip ``i`` draws its noise from a generator seeded ``seed + i``.
    ``denoise`` > 0 applies NVIDIA's bias denoiser at that strength to the WaveGlow output.
    A file that cannot be read or scored (corrupt, too short) is left out: ``on_error`` gets one
    line naming it, and the report lists it in ``failures``; the others are scored. No scorable
    clip at all is an :class:`AudioError`.
    """
    require_eval_extra()
    if baseline not in BASELINES:
        raise ValueError(f"unknown baseline {baseline!r}; choose one of {', '.join(BASELINES)}")
    if model is None and baseline == "none":
        raise ValueError("nothing to evaluate: no model and no baseline")
    mel = model.mel_transform() if model is not None else MelSpectrogram()
    config = mel.config
    output_dir = Path(output_dir)
    remove_stale_temporaries(output_dir, output_dir / "wavs", output_dir / "plots")
    failures: list[tuple[str, str]] = []

    def fail(path: Path, error: Exception) -> None:
        message = str(error) if str(path) in str(error) else f"{path}: {error}"
        failures.append((str(path), message))
        if on_error is not None:
            on_error(message)

    clips = _load_clips(collect_audio_files(inputs), config.sampling_rate, fail)
    if not clips:
        raise AudioError(f"no clip could be scored: {'; '.join(error for _, error in failures)}")
    systems = tuple(
        name
        for name, used in ((WAVEGLOW, model is not None), (GRIFFIN_LIM, baseline == GRIFFIN_LIM))
        if used
    )
    from tqdm import tqdm

    if denoise < 0:
        raise ValueError(f"denoising strength must be >= 0, got {denoise}")
    denoiser = Denoiser(model) if model is not None and denoise > 0 else None
    rows: list[ClipScores] = []
    synthesis_seconds, synthesized = 0.0, 0
    for index, (name, audio, path) in enumerate(tqdm(clips, desc="evaluate", disable=not progress)):
        with torch.no_grad():
            log_mel = mel(torch.from_numpy(audio))  # (M, F)
        outputs: dict[str, np.ndarray] = {}
        if model is not None:
            generated, seconds = copy_synthesis(
                model, log_mel, sigma, seed + index, denoiser, denoise
            )
            synthesis_seconds += seconds
            synthesized += generated.size
            outputs[WAVEGLOW] = generated[: audio.size]
        if baseline == GRIFFIN_LIM:
            outputs[GRIFFIN_LIM] = griffin_lim(log_mel, config, audio.size, seed + index)
        try:
            rows.extend(_score_clip(name, audio, outputs, output_dir, config, dnsmos))
        except (AudioError, OSError, ValueError) as error:
            fail(path, error)
            continue
        if plots:
            write_spectrogram_plot(output_dir / "plots" / f"{name}.png", audio, outputs, config)
    khz = synthesized / synthesis_seconds / 1000 if synthesis_seconds > 0 else None
    report = EvaluationReport(
        rows=tuple(rows),
        systems=systems,
        output_dir=output_dir,
        synthesis_khz=khz,
        sigma=sigma if model is not None else None,
        denoise=denoise if model is not None else None,
        seed=seed,
        clips=tuple(name for name, _, path in clips if str(path) not in dict(failures)),
        failures=tuple(failures),
    )
    write_report(report)
    return report


def _score_clip(
    name: str,
    audio: np.ndarray,
    outputs: dict[str, np.ndarray],
    output_dir: Path,
    config: DataConfig,
    dnsmos: bool,
) -> list[ClipScores]:
    """Write each system's output of one clip and score it against the original."""
    rows = []
    for system, generated in outputs.items():
        generated = np.clip(generated, -1.0, 1.0)
        save_wav(output_dir / "wavs" / f"{name}_{system}.wav", generated, config.sampling_rate)
        rows.append(ClipScores(name, system, score(audio, generated, config.sampling_rate, dnsmos)))
    return rows


def _load_clips(
    files: Sequence[Path], rate: int, fail: Callable[[Path, Exception], None]
) -> list[tuple[str, np.ndarray, Path]]:
    """Read every file (mono, ``rate``) with a unique output name; a file that cannot be read or
    is too short goes to ``fail`` and is left out."""
    clips: list[tuple[str, np.ndarray, Path]] = []
    used: set[str] = set()
    for path in files:
        try:
            audio, _ = load_audio(path, rate)
        except AudioError as error:
            fail(path, error)
            continue
        if audio.size < MIN_SECONDS * rate:
            fail(path, AudioError(f"{audio.size / rate:.2f} s is too short to score (needs "
                                  f"{MIN_SECONDS} s)"))  # fmt: skip
            continue
        name, suffix = path.stem, 2
        while name in used:
            name, suffix = f"{path.stem}-{suffix}", suffix + 1
        used.add(name)
        clips.append((name, np.clip(audio, -1.0, 1.0), path))
    return clips


# ---------------------------------------------------------------------------- writing
def write_report(report: EvaluationReport) -> None:
    """``metrics.csv``, ``summary.json`` and ``report.md`` in the report's folder, atomically."""
    folder = report.output_dir
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["clip", "system", *report.metrics])
    for row in report.rows:
        writer.writerow(
            [row.clip, row.system, *(_csv_number(row.scores.get(m)) for m in report.metrics)]
        )
    _write_text(folder / "metrics.csv", buffer.getvalue())
    summary = json.dumps(_json_safe(report.summary()), indent=2) + "\n"
    _write_text(folder / "summary.json", summary)
    _write_text(folder / "report.md", report.markdown())


def write_spectrogram_plot(
    path: Path, original: np.ndarray, outputs: dict[str, np.ndarray], config: DataConfig
) -> None:
    """A PNG with the dB spectrograms of the original and each output, one above the other."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = [("original", original), *outputs.items()]
    figure = Figure(figsize=(10, 2.6 * len(panels)), constrained_layout=True)
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    seconds = original.size / config.sampling_rate
    nyquist_khz = config.sampling_rate / 2000
    stft = STFT(1024, 256, 1024)
    spectrograms = [
        20 * np.log10(np.maximum(stft_magnitude(audio, stft), 1e-5)) for _, audio in panels
    ]
    top = float(spectrograms[0].max())  # every panel on the original's 80 dB range
    for axis, (title, _), decibels in zip(axes, panels, spectrograms, strict=True):
        image = axis.imshow(
            decibels,
            origin="lower",
            aspect="auto",
            extent=(0, seconds, 0, nyquist_khz),
            vmin=top - 80,
            vmax=top,
            cmap="magma",
        )
        axis.set_title(title)
        axis.set_ylabel("kHz")
        figure.colorbar(image, ax=axis, label="dB")
    axes[-1].set_xlabel("seconds")
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=80)


def _write_text(path: Path, text: str) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def _csv_number(value: float | None) -> str:
    return "" if value is None or not math.isfinite(value) else f"{value:.6g}"


def _json_safe(value):  # noqa: ANN001, ANN202 - recursive over JSON containers
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
