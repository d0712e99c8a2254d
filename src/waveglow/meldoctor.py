"""The mel doctor: what front end made a mel, and how (or whether) it becomes ours.

Our mel is Tacotron 2's (:mod:`waveglow.audio`): natural log of the Slaney mel magnitude (80 bands,
0-8000 Hz) clamped at 1e-5, STFT centred (reflect padding of n_fft/2), hop 256, stored (M, F).
Other front ends differ in ways that a conversion undoes exactly (orientation, log base, dB,
mean/variance or [-4, 4] normalisation) and in ways it cannot (band edges, framing, hop): those
mels must be re-extracted from the audio with ``waveglow mel``.

:func:`diagnose` looks at the values alone (shape, spread, clipping, per-band statistics) and,
given the audio the mel was made from, compares the mel with our mel of it under each known
framing and filter bank (:data:`REFERENCES`) and fits the mel's values against the closest one
(the slope tells the log base or the dB normalisation). :func:`convert_mel` applies a
:class:`Conversion`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .audio import SILENCE, AudioError, check_mel, check_npy_size, load_audio, read_mel_array
from .config import DataConfig

LN10 = math.log(10.0)
SCALES = {"ln": 1.0, "log10": 1.0 / LN10, "db": 20.0 / LN10}  # value per nat of magnitude
DB_NORMS = ("symmetric", "positive")
KNOWN_FLOORS = {  # clamp floors: value -> what it is
    "ln": {math.log(1e-5): "ln(1e-5), ours", math.log(1e-10): "ln(1e-10)"},
    "log10": {-5.0: "log10(1e-5)", -10.0: "log10(1e-10)"},
    "db": {-100.0: "20 log10(1e-5)", -200.0: "20 log10(1e-10)"},
}
MATCH = 0.01  # the most 1 - (mean per-band correlation) a matching framing/filter bank leaves
TOP_EMPTY = 3.0  # top bands this many nats below the upper-middle bands: nearly empty


@dataclass(frozen=True)
class Conversion:
    """How a foreign mel becomes ours, step by step: ``transpose`` (F, M) -> (M, F); undo a
    normalisation (``x * std + mean``, scalars or per band (M,); or ``db_norm`` "symmetric"
    ([-max_norm, max_norm]) / "positive" ([0, max_norm]) of dB over ``min_level_db``..0 after
    subtracting ``ref_level_db``); then ``scale`` ("ln", "log10" or "db": 20 log10) to the
    natural log; values below our floor ln(1e-5) are raised to it."""

    transpose: bool = False
    scale: str = "ln"
    mean: float | np.ndarray | None = None
    std: float | np.ndarray | None = None
    db_norm: str | None = None
    max_norm: float = 4.0
    min_level_db: float = -100.0
    ref_level_db: float = 0.0

    def __post_init__(self) -> None:
        if self.scale not in SCALES:
            raise ValueError(f"mel scale must be one of {', '.join(SCALES)}, got {self.scale!r}")
        if self.db_norm is not None and self.db_norm not in DB_NORMS:
            raise ValueError(f"db norm must be one of {', '.join(DB_NORMS)}, got {self.db_norm!r}")
        if self.db_norm is not None and self.scale != "db":
            raise ValueError("a dB normalisation (--db-norm) holds dB values: add --mel-scale db")
        if self.db_norm is not None and (self.mean is not None or self.std is not None):
            raise ValueError("give either a dB normalisation or a mean/std, not both")
        if self.max_norm <= 0 or self.min_level_db >= 0:
            raise ValueError("max_norm must be > 0 and min_level_db < 0")

    @property
    def identity(self) -> bool:
        return self == Conversion()

    def options(self) -> str:
        """The ``waveglow synthesize`` options that apply this conversion."""
        words = ["--transpose"] if self.transpose else []
        if self.scale != "ln":
            words += ["--mel-scale", self.scale]
        if self.db_norm is not None:
            words += ["--db-norm", self.db_norm, "--max-norm", f"{self.max_norm:g}"]
            words += ["--min-level-db", f"{self.min_level_db:g}"]
        if self.scale == "db" and self.ref_level_db:
            words += ["--ref-level-db", f"{self.ref_level_db:g}"]
        for name, value in (("mean", self.mean), ("std", self.std)):
            if value is not None:
                words += [f"--mel-{name}", _stat_text(value, name)]
        return " ".join(words)


def _stat_text(value: float | np.ndarray, name: str) -> str:
    return f"{value:g}" if np.ndim(value) == 0 else f"{name.upper()}.npy"


def convert_mel(mel: torch.Tensor | np.ndarray, conversion: Conversion) -> torch.Tensor:
    """``mel`` as our natural-log mel (M, F) by ``conversion`` (exact where it is invertible:
    log10 x ln 10, dB x ln 10 / 20, de-normalisation; only the floor is raised to ln(1e-5))."""
    mel = torch.as_tensor(np.asarray(mel), dtype=torch.float64)
    if conversion.transpose:
        mel = mel.T  # (F, M) -> (M, F)
    if conversion.std is not None:
        mel = mel * _per_band(conversion.std, mel.size(0))
    if conversion.mean is not None:
        mel = mel + _per_band(conversion.mean, mel.size(0))
    if conversion.db_norm is not None:
        mel = _db_of_normalised(mel, conversion)
    if conversion.scale == "db":
        mel = mel + conversion.ref_level_db
    mel = mel / SCALES[conversion.scale]
    return torch.clamp(mel, min=SILENCE).float().contiguous()


def _per_band(value: float | np.ndarray, bands: int) -> torch.Tensor:
    """A scalar, or per-band values (M,) as a column (M, 1)."""
    values = torch.as_tensor(np.asarray(value, dtype=np.float64))
    if values.dim() == 0:
        return values
    if values.numel() != bands:
        raise ValueError(f"per-band statistics hold {values.numel()} values, the mel {bands} bands")
    return values.reshape(bands, 1)  # (M, 1)


def _db_of_normalised(mel: torch.Tensor, conversion: Conversion) -> torch.Tensor:
    """dB below ``ref_level_db`` of a Coqui/Mozilla-style normalised mel."""
    span, top = -conversion.min_level_db, conversion.max_norm
    if conversion.db_norm == "symmetric":  # x = 2 top (S - min) / span - top
        return (mel + top) * span / (2 * top) + conversion.min_level_db
    return mel * span / top + conversion.min_level_db  # x = top (S - min) / span


def load_converted_mel(
    path: str | Path, conversion: Conversion | None, n_mel_channels: int = 80
) -> torch.Tensor:
    """A mel file read and converted to ours (M, F) (``conversion`` None: as it is)."""
    mel = read_mel_array(path)
    if conversion is not None:
        try:
            mel = convert_mel(mel, conversion)
        except ValueError as error:
            raise AudioError(f"{path}: {error}") from None
    return check_mel(mel, path, n_mel_channels)


def load_stat(text: str) -> float | np.ndarray:
    """``--mel-mean`` / ``--mel-std``: a number, or a ``.npy`` file of per-band values (M,)."""
    try:
        return float(text)
    except ValueError:
        pass
    path = Path(text)
    try:
        check_npy_size(path)  # a hostile header would make numpy allocate what it declares
        values = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise AudioError(
            f"{path}: not a number nor a readable .npy of per-band values ({error})"
        ) from None
    return np.asarray(values, dtype=np.float64).reshape(-1)


# ---------------------------------------------------------------------------- diagnosis
@dataclass(frozen=True)
class Convention:
    """A front end's mel, by the features the doctor can tell apart."""

    name: str
    scale: str
    normalisation: str | None  # None, "mean/var", "symmetric", "positive"
    framing: str  # "centre" (n_fft/2 reflect padding) or "no-centre" ((n_fft - hop)/2)
    bands: tuple[float, float]  # fmin, fmax


CONVENTIONS = (
    Convention("waveglow / Tacotron 2 (ours)", "ln", None, "centre", (0.0, 8000.0)),
    Convention("HiFi-GAN", "ln", None, "no-centre", (0.0, 8000.0)),
    Convention("ESPnet / ParallelWaveGAN", "log10", "mean/var", "centre", (80.0, 7600.0)),
    Convention("Coqui / Mozilla TTS", "db", "symmetric", "centre", (0.0, 8000.0)),
)
REFERENCES = tuple(
    (framing, bands)
    for framing in ("centre", "no-centre")
    for bands in ((0.0, 8000.0), (80.0, 7600.0), (0.0, 7600.0), (80.0, 8000.0), (125.0, 7600.0))
)


@dataclass
class Diagnosis:
    """What :func:`diagnose` found: each feature (None where it cannot tell), the closest known
    ``convention``, the ``conversion`` to apply (None when there is none: see ``reextract``),
    the findings as lines and the one-line ``verdict``."""

    source: str
    shape: tuple[int, int]
    audio: bool = False  # compared with our mel of the audio
    transposed: bool = False
    scale: str | None = None
    normalisation: str | None = None
    floor: str | None = None
    top_band_level: float | None = None  # nats relative to the upper-middle bands
    framing: str | None = None
    bands: tuple[float, float] | None = None
    hop: float | None = None  # audio samples per frame (with the audio)
    max_norm: float = 4.0  # a dB normalisation's levels (see Conversion)
    min_level_db: float = -100.0
    ref_level_db: float = 0.0
    convention: str | None = None
    conversion: Conversion | None = None
    reextract: list[str] = field(default_factory=list)
    needs: list[str] = field(default_factory=list)  # what the conversion still needs
    findings: list[str] = field(default_factory=list)
    verdict: str = ""

    @property
    def fine(self) -> bool:
        """Usable as it is."""
        return (
            not self.reextract
            and not self.needs
            and bool(self.conversion)
            and (self.conversion.identity)
        )

    def report(self) -> str:
        lines = [f"{self.source}: {self.shape[0]} x {self.shape[1]}"]
        lines += [f"  {finding}" for finding in self.findings]
        return "\n".join([*lines, f"  verdict: {self.verdict}"])


def diagnose_file(
    path: str | Path, audio: str | Path | None = None, config: DataConfig | None = None,
    n_mel_channels: int = 80,
) -> Diagnosis:  # fmt: skip
    """:func:`diagnose` of a mel file (``.pt``/``.npy``), with the audio file it was made from."""
    config = config or DataConfig()
    mel = read_mel_array(path).numpy()
    if not np.isfinite(mel).all():
        raise AudioError(f"{path}: the mel contains NaN or infinite values; re-extract it")
    wave = load_audio(audio, config.sampling_rate)[0] if audio is not None else None
    return diagnose(mel, wave, config, n_mel_channels, source=str(path))


def diagnose(
    mel: np.ndarray,
    audio: np.ndarray | None = None,
    config: DataConfig | None = None,
    n_mel_channels: int = 80,
    source: str = "mel",
) -> Diagnosis:
    """Diagnose ``mel`` (either orientation) against our front end (``config``, M bands), with
    the ``audio`` (T,) at the config's rate it was made from, if known."""
    config = config or DataConfig()
    mel = np.asarray(mel, dtype=np.float64)
    result = Diagnosis(source, tuple(mel.shape), audio=audio is not None)
    mel = _orient(mel, n_mel_channels, result)  # (M, F)
    _read_values(mel, result)
    if audio is not None and not result.reextract:
        _compare_with_audio(mel, np.asarray(audio, dtype=np.float64), config, result)
    _top_bands(mel, result)
    _conclude(result)
    return result


def _orient(mel: np.ndarray, bands: int, result: Diagnosis) -> np.ndarray:
    rows, columns = mel.shape
    if rows == bands and columns != bands:
        result.findings.append(f"shape: ({bands}, F) band-major, as ours")
        return mel
    if columns == bands:
        result.transposed = rows != bands
        if result.transposed:
            result.findings.append(f"shape: (F, {bands}) frame-major: transpose it")
            return mel.T  # (F, M) -> (M, F)
        result.findings.append(f"shape: {bands} x {bands}, taken as (M, F)")
        return mel
    result.reextract.append(f"it has {min(rows, columns)} bands, the model {bands}")
    result.findings.append(f"shape: neither dimension is {bands} bands")
    return mel if rows <= columns else mel.T  # (M', F)


def _read_values(mel: np.ndarray, result: Diagnosis) -> None:
    """Scale and normalisation from the values alone."""
    low, high = float(mel.min()), float(mel.max())
    at_low = float(np.mean(np.abs(mel - low) < 1e-4 * max(1.0, abs(low))))
    band_means, band_stds = mel.mean(axis=1), mel.std(axis=1)
    spread = float(np.percentile(mel, 99.5) - np.percentile(mel, 0.5))
    result.findings.append(
        f"values: [{low:.4g}, {high:.4g}], {100 * at_low:.1f}% at the minimum, 99% within "
        f"{spread:.3g}; per band: mean |mean| {np.abs(band_means).mean():.3g}, median std "
        f"{np.median(band_stds):.3g}"
    )
    if at_low > 0.005 and low < 0 and high <= -low + 1e-6 and _round_half(-low) == -low:
        result.scale, result.normalisation, result.max_norm = "db", "symmetric", -low
        result.findings.append(f"normalisation: dB clipped to [{low:g}, {-low:g}] (symmetric)")
    elif at_low > 0.005 and abs(low) < 1e-6 and high <= 4 + 1e-6:
        result.scale, result.normalisation = "db", "positive"
        result.max_norm = 1.0 if high <= 1 + 1e-6 else 4.0
        result.findings.append(f"normalisation: dB clipped to [0, {result.max_norm:g}]")
    elif np.abs(band_means).mean() < 0.6 and 0.5 < np.median(band_stds) < 1.6:
        result.normalisation = "mean/var"
        result.findings.append("normalisation: mean/variance per band (means ~0, stds ~1)")
    else:
        result.scale = _scale_of_spread(spread, low)
        result.floor = _floor(low, result.scale)
        result.findings.append(f"scale: {_scale_words(result.scale, spread)}")
        if result.floor:
            result.findings.append(f"clamp floor: {result.floor}")


def _round_half(value: float) -> float:
    return round(value * 2) / 2


def _scale_of_spread(spread: float, low: float) -> str | None:
    """The log base of a log-mel from the spread of its values (gain-free): speech spans about
    10-14 nats between its quietest and loudest 0.5%, i.e. 4-6 in log10 and 90-120 in dB."""
    if low >= 0 and spread > 0:
        return None  # no log: a linear (magnitude or power) mel?
    if 1.5 <= spread < 7:
        return "log10"
    if 7 <= spread < 25:
        return "ln"
    if 25 <= spread < 300:
        return "db"
    return None


def _scale_words(scale: str | None, spread: float) -> str:
    words = {"ln": "natural log (ours)", "log10": "log10", "db": "dB (20 log10)"}
    if scale is None:
        return f"not a log-mel we know (spread {spread:.3g}): re-extract"
    return words[scale]


def _floor(low: float, scale: str | None) -> str | None:
    for value, name in KNOWN_FLOORS.get(scale or "", {}).items():
        if abs(low - value) < 0.01:
            return name
    return None


# ---------------------------------------------------------------------------- with the audio
def _compare_with_audio(
    mel: np.ndarray, audio: np.ndarray, config: DataConfig, result: Diagnosis
) -> None:
    """Framing, band edges and hop from the closest reference mel of the audio; the log scale
    (or the dB normalisation's levels) from a fit of the mel against it."""
    frames, ours = mel.shape[1], 1 + audio.shape[0] // config.hop_length
    result.hop = audio.shape[0] / max(frames - 1, 1)
    result.findings.append(
        f"frames: {frames} for {audio.shape[0]} samples (ours: {ours}, hop {config.hop_length})"
    )
    if abs(frames - ours) > 2:
        result.reextract.append(f"another hop (about {result.hop:.0f} samples per frame)")
        return
    scored = sorted(
        (_mismatch(mel, reference), framing, bands, reference)
        for framing, bands in REFERENCES
        for reference in [reference_mel(audio, config, mel.shape[0], framing, bands)]
    )  # fmt: skip
    mismatch, framing, bands, reference = scored[0]
    result.findings.append(
        f"closest framing and filter bank: {framing}, {bands[0]:g}-{bands[1]:g} Hz "
        f"(1 - correlation {mismatch:.4f}; next {scored[1][0]:.4f})"
    )
    if mismatch > MATCH:
        result.reextract.append("no framing and filter bank we know matches it")
        return
    result.framing, result.bands = framing, bands
    if framing != "centre":
        result.reextract.append("frames without centre padding (half a hop later)")
    if bands != (config.mel_fmin, config.mel_fmax):
        result.reextract.append(f"bands {bands[0]:g}-{bands[1]:g} Hz, ours 0-8000 Hz")
    _fit_levels(mel[:, : reference.shape[1]], reference[:, : mel.shape[1]], result)


def reference_mel(
    audio: np.ndarray, config: DataConfig, bands: int, framing: str, edges: tuple[float, float]
) -> np.ndarray:
    """Our natural-log mel (M, F) of ``audio``, framed (``centre`` or ``no-centre``) and with the
    band edges ``edges`` given."""
    import librosa

    n_fft, hop = config.filter_length, config.hop_length
    if framing == "no-centre":
        pad = (n_fft - hop) // 2
        audio = np.pad(audio, (pad, pad), mode="reflect")
    spectrum = np.abs(
        librosa.stft(
            audio, n_fft=n_fft, hop_length=hop, win_length=config.win_length, window="hann",
            center=framing == "centre", pad_mode="reflect",
        )
    )  # fmt: skip
    basis = librosa.filters.mel(
        sr=config.sampling_rate, n_fft=n_fft, n_mels=bands, fmin=edges[0], fmax=edges[1]
    )
    return np.log(np.maximum(basis @ spectrum, 1e-5))  # (M, F)


def _mismatch(mel: np.ndarray, reference: np.ndarray) -> float:
    """1 - the mean over bands of the correlation over frames (blind to any per-band affine map:
    log base, dB, normalisation)."""
    frames = min(mel.shape[1], reference.shape[1])
    return float(1 - np.mean(_standard(mel[:, :frames]) * _standard(reference[:, :frames])))


def _standard(mel: np.ndarray) -> np.ndarray:
    return (mel - mel.mean(axis=1, keepdims=True)) / (mel.std(axis=1, keepdims=True) + 1e-12)


def _fit_levels(mel: np.ndarray, reference: np.ndarray, result: Diagnosis) -> None:
    """Fit ``mel ~ slope * reference + offset`` over entries above the floors and not clipped."""
    if result.normalisation == "mean/var":
        return  # per-band slopes: the statistics, not the base
    use = (reference > SILENCE + 2) & (mel > mel.min() + 1e-6) & (mel < mel.max() - 1e-6)
    slope, offset = np.polyfit(reference[use], mel[use], 1)
    result.findings.append(f"fit against our mel: {slope:.4g} x ours + {offset:.4g}")
    if result.normalisation in DB_NORMS:
        _db_levels(slope, offset, result)
        return
    scale = min(SCALES, key=lambda name: abs(math.log(slope / SCALES[name])) if slope > 0 else 1)
    if slope <= 0 or abs(math.log(slope / SCALES[scale])) > 0.1:
        power = slope > 0 and any(abs(math.log(slope / (2 * v))) < 0.1 for v in SCALES.values())
        result.reextract.append("a power mel (|S|^2)" if power else f"values {slope:.3g} x ours")
        return
    result.scale = scale
    if scale == "db":
        result.ref_level_db = round(-offset)


def _db_levels(slope: float, offset: float, result: Diagnosis) -> None:
    """min_level_db and ref_level_db of a dB normalisation from the fit's slope and offset."""
    top = result.max_norm
    width = 2 * top if result.normalisation == "symmetric" else top
    span = SCALES["db"] * width / slope  # -min_level_db
    base = offset + top if result.normalisation == "symmetric" else offset
    ref = -span * base / width + span  # from offset = width (-ref + span) / span - (top or 0)
    result.min_level_db, result.ref_level_db = -round(span), round(ref)
    result.findings.append(f"dB levels: min_level_db {-span:.1f}, ref_level_db {ref:.1f}")


# ---------------------------------------------------------------------------- conclusions
def _top_bands(mel: np.ndarray, result: Diagnosis) -> None:
    """How loud the top band is against bands at 50-95% of the range, in nats."""
    if result.scale is None or result.normalisation == "mean/var" or mel.shape[0] < 20:
        return
    ln = convert_mel(mel, _conversion(result, transpose=False)).double().numpy()
    bands = mel.shape[0]
    upper = np.median(ln[bands // 2 : bands - 5], axis=0)
    level = float(np.median(ln[-1] - upper))
    result.top_band_level = level
    empty = level < -TOP_EMPTY
    result.findings.append(
        f"top bands: {level:+.2f} nats against the upper-middle ones"
        + (
            ": nearly empty (fmax 7600 or a band-limited source? ours reach 8000 Hz)"
            if empty
            else ""
        )
    )
    if empty:
        result.needs.append("its top bands are nearly empty: was it made with fmax 7600?")


def _conversion(result: Diagnosis, transpose: bool | None = None) -> Conversion:
    scale = result.scale or "ln"
    norm = result.normalisation if result.normalisation in DB_NORMS else None
    return Conversion(
        transpose=result.transposed if transpose is None else transpose,
        scale=scale,
        db_norm=norm,
        max_norm=result.max_norm,
        min_level_db=result.min_level_db,
        ref_level_db=result.ref_level_db if scale == "db" else 0.0,
    )


def _closest(result: Diagnosis) -> tuple[Convention, list[str]]:
    """The known convention agreeing on most of what was found, and where it differs."""

    def differences(convention: Convention) -> list[str]:
        found = {"scale": result.scale, "normalisation": result.normalisation,
                 "framing": result.framing, "bands": result.bands}  # fmt: skip
        return [
            name for name, value in found.items()
            if value is not None or name == "normalisation"
            if value != getattr(convention, name)
        ]  # fmt: skip

    return min(((c, differences(c)) for c in CONVENTIONS), key=lambda pair: len(pair[1]))


def _conclude(result: Diagnosis) -> None:
    if result.scale is None and result.normalisation is None and not result.reextract:
        result.reextract.append("its values are not a log-mel the doctor knows")
    convention, differences = _closest(result)
    if not result.reextract or result.bands is not None:
        result.convention = convention.name
        result.findings.append(
            f"closest convention: {convention.name}"
            + (f" (differs in {', '.join(differences)})" if differences else "")
        )
    if result.normalisation == "mean/var":
        result.needs.append(
            "the front end's mean and std (its stats file): --mel-mean MEAN.npy --mel-std STD.npy"
            + (", with --mel-scale log10 for ESPnet's log10 mels" if result.scale is None else "")
        )
    if result.reextract:
        result.verdict = (
            f"re-extract with `waveglow mel` from the audio ({'; '.join(result.reextract)}): "
            "no conversion of the values fixes that"
        )
        return
    result.conversion = _conversion(result)
    if result.fine:
        result.verdict = f"fine: {convention.name}, use it as it is" + _unchecked(result)
        return
    options = result.conversion.options()
    then = f"convert with `waveglow synthesize {options} ...`" if options else "no conversion"
    needs = f"; needs {'; '.join(result.needs)}" if result.needs else ""
    result.verdict = f"{then}{needs}{_unchecked(result)}"


def _unchecked(result: Diagnosis) -> str:
    if result.audio:
        return ""
    return " (from its values alone: --audio checks the framing, hop and band edges)"
