"""The Denoiser: NVIDIA's bias-spectrum subtraction, checked against an independent librosa
version."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from conftest import TINY_DATA, librosa_stft, make_tiny
from waveglow import Denoiser
from waveglow.denoiser import BIAS_FRAMES, subtract_bias


def signal(length: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    t = torch.arange(length, dtype=torch.float64) / TINY_DATA.sampling_rate
    tone = 0.3 * torch.sin(2 * torch.pi * 700 * t) * torch.sin(2 * torch.pi * 3 * t) ** 2
    return (tone + 0.05 * torch.randn(length, generator=generator, dtype=torch.float64)).to(dtype)


def test_bias_spectrum_is_first_frame_of_zero_mel_audio():
    model = make_tiny()
    bias_audio = model.infer(torch.zeros(1, 8, BIAS_FRAMES), sigma=0.0)[0].detach().double()
    expected = np.abs(librosa_stft(bias_audio.numpy()))[:, :1]
    bias = Denoiser(model).bias_spectrum[0].double().numpy()
    assert expected.max() > 1e-3  # the tiny model really hums
    np.testing.assert_allclose(bias, expected, rtol=1e-4, atol=1e-6)


def test_strength_zero_is_identity():
    audio = signal(3000)
    torch.testing.assert_close(Denoiser(make_tiny())(audio, strength=0.0), audio, atol=1e-6, rtol=0)


@pytest.mark.parametrize("strength", [0.5, 3.0])
def test_denoise_equals_independent_spectral_subtraction(strength):
    model = make_tiny()
    denoiser = Denoiser(model)
    audio = signal(2000, seed=1, dtype=torch.float64)
    spectrum = librosa_stft(audio.numpy())
    bias = denoiser.bias_spectrum[0].double().numpy()
    magnitude = np.maximum(np.abs(spectrum) - strength * bias, 0.0)
    assert (magnitude == 0).any() and (magnitude > 0).any()  # the clamp really acts
    expected = librosa.istft(
        magnitude * np.exp(1j * np.angle(spectrum)),
        hop_length=TINY_DATA.hop_length,
        win_length=TINY_DATA.win_length,
        n_fft=TINY_DATA.filter_length,
        window="hann",
        center=True,
        length=len(audio),
    )
    denoised = denoiser(audio, strength=strength)
    assert denoised.dtype == torch.float64 and denoised.shape == audio.shape
    np.testing.assert_allclose(denoised.numpy(), expected, atol=1e-6)


def test_subtract_bias_clamps_at_zero():
    magnitude = torch.tensor([[[0.0, 1.0, 2.0]], [[3.0, 0.5, 0.1]]]).transpose(1, 2)  # (2, 3, 1)
    bias = torch.tensor([1.0, 2.0, 0.0]).reshape(1, 3, 1)  # (1, 3, 1)
    expected = torch.tensor([[0.0, 0.0, 2.0], [2.5, 0.0, 0.1]]).unsqueeze(-1)  # (2, 3, 1)
    torch.testing.assert_close(subtract_bias(magnitude, bias, 0.5), expected)


def test_removes_the_model_hum_added_to_a_signal():
    model = make_tiny()
    frames = 160
    hum = model.infer(torch.zeros(1, 8, frames), sigma=0.0)[0].detach()  # (T,)
    clean = signal(frames * TINY_DATA.hop_length, seed=2)
    noisy = clean + hum
    hum_bins = hum_frequency_bins(hum)
    denoised = Denoiser(model)(noisy, strength=1.0)

    def energy(audio: torch.Tensor) -> float:
        return float(
            torch.stft(audio, 64, 16, window=torch.hann_window(64), return_complex=True)
            .abs()[hum_bins, 8:-8]
            .pow(2)
            .sum()
        )

    assert energy(denoised) < 0.3 * energy(noisy)
    assert energy(clean) < energy(noisy)
    # the speech band away from the hum is mostly kept
    assert (denoised - clean).pow(2).mean() < 0.5 * (noisy - clean).pow(2).mean()


def hum_frequency_bins(hum: torch.Tensor) -> list[int]:
    """The STFT bins (n_fft 64) where the hum has most of its energy (excluding DC)."""
    spectrum = torch.stft(hum, 64, 16, window=torch.hann_window(64), return_complex=True).abs()
    mean = spectrum.mean(dim=1)
    mean[0] = 0
    return torch.topk(mean, 3).indices.tolist()


def test_works_for_float64_model_and_batches():
    model = make_tiny(dtype=torch.float64)
    denoiser = Denoiser(model)
    assert denoiser.bias_spectrum.dtype == torch.float64
    audio = torch.stack([signal(1500, seed=3), signal(1500, seed=4)]).double()  # (2, T)
    denoised = denoiser(audio, strength=0.2)
    assert denoised.shape == (2, 1500) and denoised.dtype == torch.float64
    torch.testing.assert_close(denoised[1], denoiser(audio[1], strength=0.2))


def test_half_precision_audio_is_processed_in_float32():
    denoiser = Denoiser(make_tiny())
    audio = signal(1500, seed=5)
    denoised = denoiser(audio.to(torch.bfloat16), strength=0.2)
    assert denoised.dtype == torch.bfloat16
    expected = denoiser(audio.to(torch.bfloat16).float(), strength=0.2)
    torch.testing.assert_close(denoised.float(), expected, atol=1e-2, rtol=0)


def test_negative_strength_is_refused():
    with pytest.raises(ValueError, match="strength"):
        Denoiser(make_tiny())(signal(1000), strength=-0.1)


def test_audio_shorter_than_the_filter_keeps_its_length():
    denoiser = Denoiser(make_tiny())
    short = signal(20, seed=6)
    denoised = denoiser(short, strength=0.0)
    assert denoised.shape == (20,)
    torch.testing.assert_close(denoised, short, atol=1e-6, rtol=0)
    assert denoiser(short, strength=0.5).shape == (20,)
