"""The mel doctor on mels of one real clip made the way other front ends make them.

The foreign front ends are written here from their published settings with librosa calls (never
their code): ESPnet/ParallelWaveGAN (fs 22050, n_fft 1024, hop 256, win 1024, fmin 80, fmax
7600, log10 of the mel magnitude clamped at 1e-10, global mean/variance normalisation with
statistics over the clip), HiFi-GAN (fmin 0, fmax 8000, natural log clamped at 1e-5, reflect
padding of (n_fft - hop) / 2 and center=False), Coqui/Mozilla TTS (20 log10 of the magnitude
less ref_level_db 20, min_level_db -100, symmetric normalisation to [-4, 4], mel_fmax 8000).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from waveglow.audio import MelSpectrogram, load_audio
from waveglow.meldoctor import Conversion, convert_mel, diagnose

CLIP = Path(__file__).resolve().parents[1] / "examples" / "demo-thanks.wav"
N_FFT, HOP, WIN, RATE = 1024, 256, 1024, 22050


@pytest.fixture(scope="module")
def audio() -> np.ndarray:
    return load_audio(CLIP, RATE)[0]


def _basis(fmin: float, fmax: float) -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=RATE, n_fft=N_FFT, n_mels=80, fmin=fmin, fmax=fmax)


def _magnitude(audio: np.ndarray, center: bool = True) -> np.ndarray:
    import librosa

    if not center:  # HiFi-GAN: reflect padding of (n_fft - hop) / 2, then no centring
        pad = (N_FFT - HOP) // 2
        audio = np.pad(audio, (pad, pad), mode="reflect")
    return np.abs(
        librosa.stft(audio, n_fft=N_FFT, hop_length=HOP, win_length=WIN, window="hann",
                     center=center, pad_mode="reflect")
    )  # fmt: skip


def espnet_mel(audio: np.ndarray) -> np.ndarray:
    """(F, M), as ESPnet stores its features: frame-major."""
    log10 = np.log10(np.maximum(1e-10, _basis(80, 7600) @ _magnitude(audio)))  # (M, F)
    mean, std = log10.mean(axis=1, keepdims=True), log10.std(axis=1, keepdims=True)
    return ((log10 - mean) / std).T  # (F, M)


def hifigan_mel(audio: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(1e-5, _basis(0, 8000) @ _magnitude(audio, center=False)))


def coqui_db(audio: np.ndarray) -> np.ndarray:
    return 20 * np.log10(np.maximum(1e-5, _basis(0, 8000) @ _magnitude(audio))) - 20


def coqui_mel(audio: np.ndarray) -> np.ndarray:
    return np.clip(8 * ((coqui_db(audio) + 100) / 100) - 4, -4, 4)


def ours(audio: np.ndarray) -> np.ndarray:
    return MelSpectrogram()(torch.from_numpy(audio)).numpy()


def test_espnet_is_named_and_sent_back_to_waveglow_mel(audio: np.ndarray):
    alone = diagnose(espnet_mel(audio))
    assert alone.transposed and alone.normalisation == "mean/var"
    assert alone.convention == "ESPnet / ParallelWaveGAN" and not alone.fine
    assert "--mel-mean" in alone.verdict
    found = diagnose(espnet_mel(audio), audio)
    assert found.convention == "ESPnet / ParallelWaveGAN"
    assert found.bands == (80.0, 7600.0) and found.framing == "centre"
    assert found.verdict.startswith("re-extract with `waveglow mel`") and found.conversion is None


def test_hifigan_is_named_by_its_framing(audio: np.ndarray):
    found = diagnose(hifigan_mel(audio), audio)
    assert found.convention == "HiFi-GAN" and found.framing == "no-centre"
    assert found.scale == "ln" and found.bands == (0.0, 8000.0)
    assert "re-extract" in found.verdict and "centre padding" in found.verdict


def test_coqui_is_named_and_its_conversion_is_exact(audio: np.ndarray):
    found = diagnose(coqui_mel(audio), audio)
    assert found.convention == "Coqui / Mozilla TTS" and found.normalisation == "symmetric"
    conversion = found.conversion
    assert conversion == Conversion(scale="db", db_norm="symmetric", max_norm=4,
                                    min_level_db=-100, ref_level_db=20)  # fmt: skip
    assert "--db-norm symmetric --max-norm 4 --min-level-db -100 --ref-level-db 20" in found.verdict
    converted = convert_mel(coqui_mel(audio), conversion).numpy()
    expected = np.maximum((coqui_db(audio) + 20) * math.log(10) / 20, math.log(1e-5))
    unclipped = np.abs(coqui_mel(audio)) < 4
    np.testing.assert_allclose(converted[unclipped], expected[unclipped], atol=1e-4)
    np.testing.assert_allclose(converted[unclipped], ours(audio)[unclipped], atol=1e-3)
    assert diagnose(coqui_mel(audio)).convention == "Coqui / Mozilla TTS"  # values alone


def test_our_own_mel_is_fine(audio: np.ndarray):
    for found in (diagnose(ours(audio)), diagnose(ours(audio), audio)):
        assert found.fine and found.convention == "waveglow / Tacotron 2 (ours)"
        assert found.verdict.startswith("fine")


def test_a_transposed_mel_is_detected_and_transposed_back(audio: np.ndarray):
    found = diagnose(ours(audio).T, audio)
    assert found.transposed and found.conversion == Conversion(transpose=True)
    assert "--transpose" in found.verdict
    back = convert_mel(ours(audio).T, found.conversion).numpy()
    np.testing.assert_allclose(back, ours(audio), atol=1e-6)


def test_a_mel_with_fmax_7600_is_flagged(audio: np.ndarray):
    mel = np.log(np.maximum(1e-5, _basis(0, 7600) @ _magnitude(audio)))
    found = diagnose(mel, audio)
    assert found.bands == (0.0, 7600.0) and "0-7600 Hz" in found.verdict
    assert found.verdict.startswith("re-extract") and not found.fine


@pytest.mark.parametrize(
    ("scale", "factor"), [("log10", 1 / math.log(10)), ("db", 20 / math.log(10))]
)
def test_log10_and_db_are_recognised_and_converted_exactly(audio, scale, factor):
    mel = ours(audio) * factor
    found = diagnose(mel, audio)
    assert found.scale == scale and found.conversion == Conversion(scale=scale)
    np.testing.assert_allclose(convert_mel(mel, found.conversion).numpy(), ours(audio), atol=1e-5)


def test_denormalisation_is_the_exact_inverse():
    rng = np.random.default_rng(0)
    log10 = rng.uniform(-5, 1, (80, 30))
    mean, std = log10.mean(axis=1), log10.std(axis=1)
    normalised = (log10 - mean[:, None]) / std[:, None]
    conversion = Conversion(scale="log10", mean=mean, std=std)
    back = convert_mel(normalised, conversion).numpy()
    np.testing.assert_allclose(back, np.maximum(log10 * math.log(10), math.log(1e-5)), atol=1e-5)
    assert "--mel-mean MEAN.npy --mel-std STD.npy" in conversion.options()


def test_mel_check_prints_the_verdict_and_fails_a_foreign_mel(audio, tmp_path, capsys):
    from waveglow.cli import main

    np.save(tmp_path / "ours.npy", ours(audio))
    np.save(tmp_path / "coqui.npy", coqui_mel(audio).astype(np.float32))
    assert main(["mel-check", str(tmp_path / "ours.npy"), "--audio", str(CLIP)]) == 0
    assert "verdict: fine" in capsys.readouterr().out
    assert main(["mel-check", str(tmp_path / "coqui.npy")]) == 1
    assert "--db-norm symmetric" in capsys.readouterr().out


def test_synthesize_converts_a_transposed_log10_mel_to_the_same_audio(audio, tmp_path):
    from waveglow.cli import main

    mel = ours(audio)[:, :40]  # (M, F)
    np.save(tmp_path / "ours.npy", mel)
    np.save(tmp_path / "foreign.npy", (mel / math.log(10)).T.copy())  # (F, M) log10
    common = ["synthesize", "-c", "demo", "-q", "--seed", "3", "-o"]
    assert main([*common, str(tmp_path / "a"), str(tmp_path / "ours.npy")]) == 0
    options = ["--transpose", "--mel-scale", "log10"]
    assert main([*common, str(tmp_path / "b"), str(tmp_path / "foreign.npy"), *options]) == 0
    first = load_audio(tmp_path / "a" / "ours_synthesis.wav", None)[0]
    second = load_audio(tmp_path / "b" / "foreign_synthesis.wav", None)[0]
    assert np.abs(first - second).max() <= 2 / 32768
    assert main([*common, str(tmp_path / "c"), str(tmp_path / "foreign.npy")]) == 1  # unconverted
