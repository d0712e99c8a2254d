"""The maximum-likelihood loss, normalised exactly as NVIDIA's ``WaveGlowLoss``, and an optional
spectral term on the synthesis (:class:`SpectralLoss`, off unless a run asks for it)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from torch import nn

from .audio import STFT, mel_filters
from .config import DataConfig, TrainConfig


def nll_loss(z: torch.Tensor, log_det: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """Negative log-likelihood in nats per audio sample, without the Gaussian constant.

    ``(sum(z^2) / (2 sigma^2) - sum(log_det)) / (B * G * T_G)`` where ``log_det`` (B,) already holds
    the log-scales and the 1x1 log-determinants. Published WaveGlow training reaches about -5.7 to -6.1.
    """
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    dtype = torch.promote_types(z.dtype, torch.float32)
    z = z.to(dtype)
    return (z.pow(2).sum() / (2 * sigma * sigma) - log_det.to(dtype).sum()) / z.numel()


class WaveGlowLoss(nn.Module):
    """Module form of :func:`nll_loss`, taking the ``(z, log_det)`` pair the model returns."""

    def __init__(self, sigma: float = 1.0) -> None:
        super().__init__()
        self.sigma = sigma

    def forward(self, model_output: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        z, log_det = model_output
        return nll_loss(z, log_det, self.sigma)


# ---------------------------------------------------------------------------- spectral term
MAGNITUDE_FLOOR = 1e-5  # magnitudes (and mel magnitudes) are clamped here before their logarithm
SYNTHESIS_CLAMP = 4.0  # the synthesized audio is clamped to +-this before its STFT


class SpectralLoss(nn.Module):
    """Multi-resolution STFT distance of synthesized audio to the true audio, both (B, T).

    Not WaveGlow's loss (that is :func:`nll_loss` alone): an optional training term on the
    inverse flow's output (``train_config.spectral_loss_weight``). At each FFT size ``n`` (hop
    ``n / 4``, Hann window of ``n``) it takes the spectral convergence
    ``||Y| - |X||_F / ||Y||_F`` over the batch plus the mean ``|log|X| - log|Y||``, and with
    ``mel_weight`` that weight times the mean log-mel magnitude distance (Slaney mel bands,
    ``n / 8`` of them up to ``n_mel_channels``); the result is the mean over the sizes.
    """

    def __init__(
        self,
        fft_sizes: Sequence[int] = (256, 512, 1024, 2048),
        mel_weight: float = 0.0,
        data_config: DataConfig | None = None,
        n_mel_channels: int = 80,
    ) -> None:
        super().__init__()
        data_config = data_config or DataConfig()
        self.mel_weight = mel_weight
        self.stfts = nn.ModuleList(STFT(size, size // 4, size) for size in fft_sizes)
        for index, size in enumerate(fft_sizes):
            basis = _mel_basis(data_config, size, min(n_mel_channels, size // 8))
            self.register_buffer(f"mel_basis_{index}", basis, persistent=False)

    @property
    def longest_fft(self) -> int:
        return max(stft.filter_length for stft in self.stfts)

    def forward(self, audio: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        audio = audio.float().clamp(-SYNTHESIS_CLAMP, SYNTHESIS_CLAMP)
        reference = reference.float()
        total = audio.new_zeros(())
        for index, stft in enumerate(self.stfts):
            estimate, target = _magnitude(stft(audio)), _magnitude(stft(reference))  # (B, K, N)
            convergence = (target - estimate).norm() / target.norm().clamp_min(MAGNITUDE_FLOOR)
            total = total + convergence + _log_distance(estimate, target)
            if self.mel_weight > 0:
                basis = getattr(self, f"mel_basis_{index}")  # (M_n, K)
                mel_distance = _log_distance(basis @ estimate, basis @ target)
                total = total + self.mel_weight * mel_distance
        return total / len(self.stfts)


def _magnitude(spectrum: torch.Tensor) -> torch.Tensor:
    """|spectrum|, at least the floor (a square root with a finite gradient at 0)."""
    power = spectrum.real.square() + spectrum.imag.square()
    return power.clamp_min(MAGNITUDE_FLOOR**2).sqrt()


def _log_distance(estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    floor = MAGNITUDE_FLOOR
    return (estimate.clamp_min(floor).log() - target.clamp_min(floor).log()).abs().mean()


def _mel_basis(data_config: DataConfig, fft_size: int, bands: int) -> torch.Tensor:
    """Slaney mel filters (bands, fft_size // 2 + 1) for the spectral term's FFT size."""
    config = dataclasses.replace(
        data_config,
        filter_length=fft_size,
        win_length=fft_size,
        hop_length=fft_size // 4,
    )
    return torch.from_numpy(mel_filters(config, bands)).float()


def spectral_loss(
    train_config: TrainConfig, data_config: DataConfig, n_mel_channels: int
) -> SpectralLoss:
    """The spectral term a run's ``train_config`` asks for."""
    return SpectralLoss(
        train_config.spectral_fft_sizes,
        train_config.spectral_mel_weight,
        data_config,
        n_mel_channels,
    )
