"""Evaluation: every metric is wired right, Griffin-Lim works, the report files exist and parse."""

from __future__ import annotations

import csv
import json
import sys

import numpy as np
import pytest
import soundfile

from conftest import make_tiny

pytest.importorskip("pesq", reason="the 'eval' extra (pesq) is not installed")
pytest.importorskip("pystoi", reason="the 'eval' extra (pystoi) is not installed")

from waveglow import evaluate as ev  # noqa: E402
from waveglow.audio import AudioError  # noqa: E402

RATE = 22050


def speech_like(seconds: float = 1.5, seed: int = 0, rate: int = RATE) -> np.ndarray:
    """Voiced 'syllables' (harmonics of a gliding f0 under formant-like peaks) with short pauses."""
    rng = np.random.default_rng(seed)
    time = np.arange(int(seconds * rate)) / rate
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.7 * time + rng.uniform(0, 6))
    phase = 2 * np.pi * np.cumsum(f0) / rate
    formants = rng.uniform([500, 1300, 2500], [800, 1900, 3200])
    signal = np.zeros_like(time)
    for harmonic in range(1, 40):
        frequency = harmonic * f0
        gain = sum(np.exp(-(((frequency - centre) / 150) ** 2)) for centre in formants)
        signal += (0.05 + gain) / harmonic * np.sin(harmonic * phase)
    syllables = np.clip(np.sin(2 * np.pi * 3.0 * time), 0, None) ** 0.5  # (T,) pauses between
    signal = signal * syllables + 0.002 * rng.standard_normal(time.size)
    return (0.5 * signal / np.abs(signal).max()).astype(np.float32)


def low_pass(audio: np.ndarray, cutoff: float) -> np.ndarray:
    spectrum = np.fft.rfft(audio)
    spectrum[np.fft.rfftfreq(audio.size, 1 / RATE) > cutoff] = 0
    return np.fft.irfft(spectrum, audio.size).astype(np.float32)


def degrade(audio: np.ndarray, level: int) -> np.ndarray:
    """Degradation ``level`` 0 (none) to 3: more noise and a lower cutoff at each step."""
    if level == 0:
        return audio.copy()
    noise = np.random.default_rng(level).standard_normal(audio.size).astype(np.float32)
    cutoff = {1: 6000.0, 2: 3000.0, 3: 1200.0}[level]
    return low_pass(audio, cutoff) + noise * 0.01 * 3**level


@pytest.fixture(scope="module")
def clean() -> np.ndarray:
    return speech_like()


def test_identical_audio_scores_perfect(clean):
    scores = ev.score(clean, clean, RATE, dnsmos=False)
    assert scores["pesq_wb"] > 4.5
    assert scores["stoi"] > 0.999
    assert scores["estoi"] > 0.999
    assert scores["mcd_db"] == pytest.approx(0, abs=1e-9)
    assert scores["log_mel_l1"] == pytest.approx(0, abs=1e-9)
    assert scores["mr_stft"] == pytest.approx(0, abs=1e-9)


@pytest.mark.parametrize("metric", ev.REFERENCE_METRICS)
def test_metric_worsens_monotonically_with_degradation(clean, metric):
    values = [
        ev.score(clean, degrade(clean, level), RATE, dnsmos=False)[metric] for level in range(4)
    ]
    if ev.HIGHER_IS_BETTER[metric]:
        values = [-value for value in values]
    assert all(a < b for a, b in zip(values[:-1], values[1:], strict=True)), values


def test_scores_clip_before_scoring(clean):
    loud = clean * 4  # peaks at 2.0: clipped to 1.0 before scoring, as the wav would be
    clipped = ev.score(clean, np.clip(loud, -1, 1), RATE, dnsmos=False)
    unclipped = ev.score(clean, loud, RATE, dnsmos=False)
    assert unclipped == pytest.approx(clipped, rel=1e-9)
    assert unclipped["mr_stft"] != pytest.approx(ev.multi_resolution_stft(clean, loud))


def test_mcd_uses_only_the_band_below_8khz(clean):
    noise = np.random.default_rng(3).standard_normal(clean.size)
    spectrum = np.fft.rfft(noise)
    spectrum[np.fft.rfftfreq(noise.size, 1 / RATE) < 9000] = 0  # noise above 9 kHz only
    noisy = clean + 0.05 * np.fft.irfft(spectrum, clean.size).astype(np.float32)
    assert ev.mel_cepstral_distortion(clean, noisy, RATE) < 0.05
    assert ev.multi_resolution_stft(clean, noisy) > 0.05  # the full-band metric does see it


def test_griffin_lim_gives_any_length_asked_for():
    """A vocoder's F * hop samples make a centred STFT of F + 1 frames against the mel's F: librosa
    raised "could not broadcast (513, F + 1) into (513, F)"; now any length is cut or padded."""
    import torch

    from waveglow import DataConfig, MelSpectrogram

    config = DataConfig()
    with torch.no_grad():
        log_mel = MelSpectrogram(config)(torch.from_numpy(speech_like(0.3)))
    frames, hop = log_mel.size(-1), config.hop_length
    longest = ev.griffin_lim(log_mel, config, frames * hop - 1, seed=0)  # 1 + n // hop == F
    shortest = ev.griffin_lim(log_mel, config, (frames - 1) * hop, seed=0)
    for length, natural in (
        (frames * hop, longest),
        (frames * hop + 700, longest),
        (1000, shortest),
    ):
        audio = ev.griffin_lim(log_mel, config, length, seed=0)
        assert audio.shape == (length,) and audio.dtype == np.float32
        shared = min(length, natural.size)
        assert np.array_equal(audio[:shared], natural[:shared]), length
        assert not audio[shared:].any()
    assert np.abs(longest).max() > 0.01
    with pytest.raises(ValueError, match="length"):
        ev.griffin_lim(log_mel, config, 0)


def test_griffin_lim_of_clean_speech_beats_white_noise(clean):
    import torch

    from waveglow import DataConfig, MelSpectrogram

    config = DataConfig()
    with torch.no_grad():
        log_mel = MelSpectrogram(config)(torch.from_numpy(clean))
    rebuilt = ev.griffin_lim(log_mel, config, clean.size, seed=0)
    assert rebuilt.shape == clean.shape
    noise = np.random.default_rng(0).standard_normal(clean.size).astype(np.float32) * 0.1
    ours = ev.score(clean, rebuilt, RATE, dnsmos=False)
    worse = ev.score(clean, noise, RATE, dnsmos=False)
    for metric in ev.REFERENCE_METRICS:
        sign = 1 if ev.HIGHER_IS_BETTER[metric] else -1
        assert sign * ours[metric] > sign * worse[metric], metric
    assert ours["stoi"] > 0.8


def test_missing_extra_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pesq", None)  # makes `import pesq` raise ImportError
    with pytest.raises(ev.MissingExtraError, match=r"waveglow\[eval\].*|pesq"):
        ev.require_eval_extra()
    try:
        ev.require_eval_extra()
    except ev.MissingExtraError as error:
        assert "pesq" in str(error) and "pip install 'waveglow[eval]'" in str(error)


def test_bad_inputs_name_the_file(tmp_path):
    empty_folder = tmp_path / "nothing"
    empty_folder.mkdir()
    with pytest.raises(AudioError, match="nothing"):
        ev.collect_audio_files([empty_folder])
    with pytest.raises(AudioError, match="missing.wav"):
        ev.collect_audio_files([tmp_path / "missing.wav"])
    short = tmp_path / "short.wav"
    soundfile.write(short, np.zeros(100, dtype=np.float32), RATE)
    with pytest.raises(AudioError, match="short.wav.*too short"):
        ev.evaluate(None, [short], tmp_path / "out")
    assert not (tmp_path / "out" / "metrics.csv").exists()


def test_wins_count_strict_improvements(tmp_path):
    rows = (
        ev.ClipScores("a", "waveglow", {"stoi": 0.9, "mcd_db": 3.0}),
        ev.ClipScores("a", "griffin-lim", {"stoi": 0.8, "mcd_db": 2.0}),
        ev.ClipScores("b", "waveglow", {"stoi": 0.7, "mcd_db": 4.0}),
        ev.ClipScores("b", "griffin-lim", {"stoi": 0.7, "mcd_db": 5.0}),
    )
    report = ev.EvaluationReport(rows, ("waveglow", "griffin-lim"), tmp_path, clips=("a", "b"))
    assert report.wins() == {
        "stoi": {"waveglow": 1, "griffin-lim": 0},
        "mcd_db": {"waveglow": 1, "griffin-lim": 1},
    }
    assert report.means()["waveglow"]["stoi"] == pytest.approx(0.8)
    assert "| stoi ↑ | **0.800** | 0.750 | 1 / 0 |" in report.markdown()


@pytest.mark.slow
def test_evaluate_end_to_end_with_tiny_model(tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    for seed in range(2):
        soundfile.write(clips / f"clip{seed}.wav", speech_like(1.0, seed), RATE, subtype="PCM_16")
    # A stereo 16 kHz file: resampled and mixed down like any input.
    stereo = np.stack([speech_like(1.0, 5, 16000)] * 2, axis=1)
    soundfile.write(tmp_path / "other.flac", stereo, 16000)
    output = tmp_path / "out"
    report = ev.evaluate(make_tiny(), [clips, tmp_path / "other.flac"], output, sigma=0.5, seed=1)

    assert report.systems == ("waveglow", "griffin-lim")
    assert report.clips == ("clip0", "clip1", "other")
    assert report.synthesis_khz is not None and report.synthesis_khz > 0
    with open(output / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6
    assert {row["system"] for row in rows} == {"waveglow", "griffin-lim"}
    assert all(0 <= float(row["stoi"]) <= 1 for row in rows)
    summary = json.loads((output / "summary.json").read_text())
    assert set(summary["means"]) == {"waveglow", "griffin-lim"}
    assert summary["wins"]["stoi"]["waveglow"] + summary["wins"]["stoi"]["griffin-lim"] <= 3
    assert "griffin-lim" in (output / "report.md").read_text()
    for clip in report.clips:
        assert (output / "plots" / f"{clip}.png").read_bytes()[:4] == b"\x89PNG"
        for system in report.systems:
            audio, rate = soundfile.read(output / "wavs" / f"{clip}_{system}.wav")
            assert rate == RATE and audio.size == RATE
    # A random tiny model is noise; Griffin-Lim of the clean mel is far better.
    means = summary["means"]
    assert means["griffin-lim"]["log_mel_l1"] < means["waveglow"]["log_mel_l1"]
    assert not list(output.rglob("*.tmp"))

    # Same seed, same output: the noise is drawn per clip from its own generator.
    again = ev.evaluate(
        make_tiny(), [clips], tmp_path / "again", baseline="none", sigma=0.5, seed=1
    )
    first = soundfile.read(output / "wavs" / "clip0_waveglow.wav")[0]
    second = soundfile.read(tmp_path / "again" / "wavs" / "clip0_waveglow.wav")[0]
    np.testing.assert_array_equal(first, second)
    assert again.systems == ("waveglow",)

    # --denoise: the same synthesis with the bias spectrum subtracted, recorded in the summary.
    denoised = ev.evaluate(
        make_tiny(), [clips], tmp_path / "denoised", baseline="none", sigma=0.5, seed=1, denoise=0.5
    )
    third = soundfile.read(tmp_path / "denoised" / "wavs" / "clip0_waveglow.wav")[0]
    assert np.abs(third - first).max() > 1e-3
    assert json.loads((tmp_path / "denoised" / "summary.json").read_text())["denoise"] == 0.5
    assert "denoiser 0.5" in denoised.markdown()


def test_dnsmos_is_optional(monkeypatch, clean):
    monkeypatch.setitem(sys.modules, "speechmos", None)
    assert ev.dnsmos_overall(clean, RATE) is None
    assert "dnsmos_ovrl" not in ev.score(clean, clean, RATE, dnsmos=True)


def test_dnsmos_scores_full_scale_audio(clean):
    pytest.importorskip("speechmos", reason="speechmos is not installed")
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    value = ev.dnsmos_overall(np.clip(clean * 4, -1, 1), RATE)  # resampling overshoots +-1
    assert value is not None and 1 <= value <= 5
