"""The objective metrics of ``waveglow evaluate``: each scores a degraded signal against its
reference (both mono, one rate, equal lengths), except DNSMOS, which needs no reference.

``pesq_wb``
    PESQ wide-band (ITU-T P.862.2), both signals resampled to 16 kHz with soxr. 1.0 ... 4.64.
``stoi`` / ``estoi``
    Short-time objective intelligibility and its extended form (pystoi). 0 ... 1.
``mcd_db``
    Mel-cepstral distortion in dB, restricted to the mel's band (0 ... 8 kHz). Our definition:
    power STFT (1024-point periodic Hann, hop 256, reflect-padded, as the Tacotron 2 mel), 80
    Slaney mel bands from 0 to 8 kHz, log amplitude ``x = 0.5 ln(max(power, 1e-10))`` per band,
    ``y = DCT-II(x)`` with orthonormal scaling, and the mel-cepstrum ``c_d = y_d / sqrt(2 K)``
    (K = 80 bands; this scaling makes ``c`` the real cepstrum of the log mel amplitude). Per frame
    ``(10 / ln 10) sqrt(2 sum_{d=1..24} (c_d - c'_d)^2)`` (c0, the loudness, excluded), averaged
    over all frames; the frames are aligned one to one since the lengths are equal (no DTW).
``log_mel_l1``
    Mean absolute difference of the Tacotron 2 log-mels (natural log, 80 bands).
``mr_stft``
    Multi-resolution STFT distance: at FFT sizes 512, 1024 and 2048 (hops 50, 120, 240; Hann
    windows 240, 600, 1200) the spectral convergence ``||S - S'||_F / ||S||_F`` plus the mean
    absolute difference of ``ln max(S, 1e-7)``, averaged over the three resolutions.
``dnsmos_ovrl``
    DNSMOS P.835 overall quality (speechmos, at 16 kHz), a no-reference score of the output alone;
    left out when speechmos or its ONNX runtime cannot be loaded.
"""

from __future__ import annotations

import importlib
import math

import numpy as np
import soxr
import torch

from .audio import STFT, MelSpectrogram, mel_filters
from .config import DataConfig

PESQ_RATE = 16000
MCD_COEFFICIENTS = 24
MCD_BANDS = 80
MCD_FMAX = 8000.0
MR_STFT_RESOLUTIONS = ((512, 50, 240), (1024, 120, 600), (2048, 240, 1200))
REQUIRED_PACKAGES = ("pesq", "pystoi", "matplotlib")

# Metric name -> True when higher is better.
HIGHER_IS_BETTER = {
    "pesq_wb": True,
    "stoi": True,
    "estoi": True,
    "mcd_db": False,
    "log_mel_l1": False,
    "mr_stft": False,
    "dnsmos_ovrl": True,
}
REFERENCE_METRICS = ("pesq_wb", "stoi", "estoi", "mcd_db", "log_mel_l1", "mr_stft")


class MissingExtraError(ImportError):
    """The optional metric packages are not installed; the message says how to install them."""


def require_eval_extra() -> None:
    """Import the packages evaluation needs, or raise :class:`MissingExtraError` naming them."""
    missing = []
    for name in REQUIRED_PACKAGES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise MissingExtraError(
            f"evaluation needs the 'eval' extra (missing: {', '.join(missing)}); "
            "install it with: pip install 'waveglow[eval]'"
        )


# ---------------------------------------------------------------------------- metrics
def pesq_wideband(reference: np.ndarray, degraded: np.ndarray, rate: int) -> float:
    """PESQ-WB of ``degraded`` against ``reference`` (both resampled to 16 kHz); NaN if PESQ
    finds no speech."""
    from pesq import PesqError, pesq

    reference_16k = _resample(reference, rate, PESQ_RATE)
    degraded_16k = _resample(degraded, rate, PESQ_RATE)
    try:
        return float(pesq(PESQ_RATE, reference_16k, degraded_16k, "wb"))
    except PesqError:
        return math.nan


def intelligibility(
    reference: np.ndarray, degraded: np.ndarray, rate: int, extended: bool = False
) -> float:
    """STOI (or ESTOI when ``extended``) of ``degraded`` against ``reference``."""
    from pystoi import stoi

    return float(stoi(reference.astype(np.float64), degraded.astype(np.float64), rate, extended))


def mel_cepstrum(audio: np.ndarray, rate: int) -> np.ndarray:
    """Mel-cepstrum (frames, 1 + MCD_COEFFICIENTS) of the module's MCD definition (c0 included)."""
    import scipy.fft

    config = DataConfig(sampling_rate=rate, mel_fmax=min(MCD_FMAX, rate / 2))
    spectrum = stft_magnitude(
        audio, STFT(config.filter_length, config.hop_length, config.win_length)
    )
    power = mel_filters(config, MCD_BANDS) @ spectrum**2  # (K, frames)
    log_amplitude = 0.5 * np.log(np.maximum(power, 1e-10))
    cepstrum = scipy.fft.dct(log_amplitude, type=2, axis=0, norm="ortho") / math.sqrt(2 * MCD_BANDS)
    return cepstrum[: MCD_COEFFICIENTS + 1].T  # (frames, 1 + D)


def mel_cepstral_distortion(reference: np.ndarray, degraded: np.ndarray, rate: int) -> float:
    """MCD in dB over c1..c24, frame-aligned, averaged over frames (see the module docstring)."""
    difference = mel_cepstrum(reference, rate)[:, 1:] - mel_cepstrum(degraded, rate)[:, 1:]
    per_frame = (10.0 / math.log(10.0)) * np.sqrt(2.0 * np.sum(difference**2, axis=1))
    return float(per_frame.mean())


def log_mel_l1(reference: np.ndarray, degraded: np.ndarray, rate: int) -> float:
    """Mean absolute difference of the 80-band Tacotron 2 log-mels."""
    mel = MelSpectrogram(DataConfig(sampling_rate=rate, mel_fmax=min(MCD_FMAX, rate / 2)))
    with torch.no_grad():
        reference_mel = mel(torch.from_numpy(reference.astype(np.float32)))
        degraded_mel = mel(torch.from_numpy(degraded.astype(np.float32)))
    return float((reference_mel - degraded_mel).abs().mean())


def multi_resolution_stft(reference: np.ndarray, degraded: np.ndarray) -> float:
    """Spectral convergence plus log-magnitude L1, averaged over three STFT resolutions."""
    total = 0.0
    for n_fft, hop, window in MR_STFT_RESOLUTIONS:
        stft = STFT(n_fft, hop, window)
        target, estimate = stft_magnitude(reference, stft), stft_magnitude(degraded, stft)
        convergence = np.linalg.norm(target - estimate) / max(np.linalg.norm(target), 1e-12)
        log_distance = np.mean(
            np.abs(np.log(np.maximum(target, 1e-7)) - np.log(np.maximum(estimate, 1e-7)))
        )
        total += float(convergence + log_distance)
    return total / len(MR_STFT_RESOLUTIONS)


def dnsmos_overall(audio: np.ndarray, rate: int) -> float | None:
    """DNSMOS P.835 overall score, or None when speechmos (or onnxruntime) cannot be used."""
    try:
        from speechmos import dnsmos

        resampled = np.clip(_resample(audio, rate, PESQ_RATE), -1.0, 1.0)  # soxr can overshoot
        scores = dnsmos.run(resampled, sr=PESQ_RATE)
    except Exception:  # noqa: BLE001 - optional score: any failure to load or run skips it
        return None
    return float(scores["ovrl_mos"])


def score(
    reference: np.ndarray, degraded: np.ndarray, rate: int, dnsmos: bool = True
) -> dict[str, float]:
    """Every metric of ``degraded`` against ``reference`` (equal lengths; both clipped first)."""
    reference = np.clip(np.asarray(reference, dtype=np.float32), -1.0, 1.0)
    degraded = np.clip(np.asarray(degraded, dtype=np.float32), -1.0, 1.0)
    if reference.shape != degraded.shape:
        raise ValueError(
            f"cannot score signals of different lengths ({reference.size} and {degraded.size})"
        )
    scores = {
        "pesq_wb": pesq_wideband(reference, degraded, rate),
        "stoi": intelligibility(reference, degraded, rate),
        "estoi": intelligibility(reference, degraded, rate, extended=True),
        "mcd_db": mel_cepstral_distortion(reference, degraded, rate),
        "log_mel_l1": log_mel_l1(reference, degraded, rate),
        "mr_stft": multi_resolution_stft(reference, degraded),
    }
    if dnsmos:
        overall = dnsmos_overall(degraded, rate)
        if overall is not None:
            scores["dnsmos_ovrl"] = overall
    return scores


# ---------------------------------------------------------------------------- helpers
def _resample(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
    if rate == target:
        return np.asarray(audio, dtype=np.float64)
    return soxr.resample(np.asarray(audio, dtype=np.float64), rate, target, quality="HQ")


def stft_magnitude(audio: np.ndarray, stft: STFT) -> np.ndarray:
    """|STFT| (n_fft // 2 + 1, frames) of ``audio`` (T,), computed in float64."""
    signal = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float64))
    with torch.no_grad():
        return stft(signal).abs().numpy()
