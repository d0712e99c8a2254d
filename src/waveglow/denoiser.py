"""Removing WaveGlow's bias hum by spectral subtraction (NVIDIA's ``denoiser.py`` algorithm).

The "bias" is what the model says for a mel of zeros with no noise (``sigma=0``): a stationary hum.
Its spectrum (the magnitude of the first STFT frame) is scaled by ``strength``, subtracted from the
magnitude of every frame of the audio, floored at zero, and the audio is rebuilt with its own phase.
"""

from __future__ import annotations

import torch
from torch import nn

from .audio import STFT
from .model import WaveGlow

BIAS_FRAMES = 88


class Denoiser(nn.Module):
    """``Denoiser(model)(audio, strength=0.1)``: subtract ``model``'s bias spectrum from ``audio``.

    Works for any device, dtype and number of mel channels: the bias is computed once, with the
    model's own parameters, and the STFT follows the model's ``data_config``. Audio in half
    precision is processed in float32 and returned in its own dtype.
    """

    def __init__(self, model: WaveGlow, frames: int = BIAS_FRAMES) -> None:
        super().__init__()
        data = model.data_config
        self.stft = STFT(data.filter_length, data.hop_length, data.win_length)
        parameter = next(model.parameters())
        mel = torch.zeros(
            1,
            model.config.n_mel_channels,
            frames,
            device=parameter.device,
            dtype=parameter.dtype,
        )
        with torch.no_grad():
            bias_audio = model.infer(mel, sigma=0.0).to(_working_dtype(parameter.dtype))
            self.stft.to(parameter.device)
            bias_spectrum = self.stft(bias_audio).abs()[:, :, :1]  # (1, n_fft/2+1, 1)
        self.register_buffer("bias_spectrum", bias_spectrum, persistent=False)

    def forward(self, audio: torch.Tensor, strength: float = 0.1) -> torch.Tensor:
        """Denoised ``audio`` of the same shape ((T,) or (B, T)), dtype and device.

        Audio shorter than half the STFT's filter is zero-padded for the STFT and trimmed back.
        """
        if strength < 0:
            raise ValueError(f"denoising strength must be >= 0, got {strength}")
        squeeze = audio.dim() == 1
        batch = audio.unsqueeze(0) if squeeze else audio  # (B, T)
        length = batch.size(-1)
        shortfall = max(0, self.stft.filter_length // 2 + 1 - length)  # reflect padding's minimum
        working = torch.nn.functional.pad(batch.to(_working_dtype(audio.dtype)), (0, shortfall))
        spectrum = self.stft(working)  # (B, n_fft/2+1, F) complex
        bias = self.bias_spectrum.to(device=working.device, dtype=working.dtype)
        magnitude = subtract_bias(spectrum.abs(), bias, strength)
        phase = torch.polar(torch.ones_like(magnitude), spectrum.angle())
        denoised = self.stft.inverse(magnitude * phase, length=working.size(-1))  # (B, T)
        denoised = denoised[:, :length].to(audio.dtype)  # (B, T)
        return denoised.squeeze(0) if squeeze else denoised  # (T,) or (B, T)


def subtract_bias(magnitude: torch.Tensor, bias: torch.Tensor, strength: float) -> torch.Tensor:
    """The spectral step: ``clamp(magnitude - strength * bias, min=0)``."""
    return torch.clamp(magnitude - strength * bias, min=0.0)


def _working_dtype(dtype: torch.dtype) -> torch.dtype:
    """The STFT needs float32 or float64: half precision is promoted."""
    return torch.promote_types(dtype, torch.float32)
