"""Synthesis of any length in bounded memory: mel chunks with enough context to be exact.

One output step depends on the latent and the mel within a fixed receptive field: every WN reaches
``sum_i (k - 1) / 2 * dilation_base^i`` steps of T_G to each side and the inverse flow stacks ``n_flows`` of them;
the upsampler adds ``(filter_length - 1) // hop`` frames to the left, frame-rate conditioning one
frame to the right (:attr:`WaveGlow.conditioning_reach`). A chunk of output frames
[a, b) is therefore synthesised from the window [a - context, b + context) (clipped to the mel) with
:meth:`WaveGlow.inverse` -- the one inverse-flow implementation -- and cut back to [a, b): away from
the window's artificial edges every value is computed from exactly the same inputs as in a
whole-utterance synthesis, so the chunks join into the same audio up to float rounding.

Noise: without an explicit ``z`` the latent is drawn per fixed block of :data:`NOISE_BLOCK_FRAMES`
frames from a generator seeded by (seed, block index), so the audio does not depend on the chunk
size; :func:`block_noise` gives the same latent for any range (e.g. the whole utterance).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile
import torch

from .audio import MAX_WAV_VALUE, AudioError, atomic_path

if TYPE_CHECKING:
    from .config import DataConfig, WaveGlowConfig
    from .model import WaveGlow

NOISE_BLOCK_FRAMES = 32
DEFAULT_CHUNK_FRAMES = 1024  # ~12 s at hop 256: the context (~1.1 s each side) costs ~18 %
_SEED_MIX = 0x9E3779B97F4A7C15


def receptive_field_steps(config: WaveGlowConfig) -> int:
    """How many T_G steps to each side one output step of the inverse flow depends on."""
    wn = config.WN_config
    per_wn = sum((wn.kernel_size - 1) // 2 * wn.dilation_base**i for i in range(wn.n_layers))
    return config.n_flows * per_wn


def context_frames(config: WaveGlowConfig, data_config: DataConfig) -> int:
    """Mel frames of context needed on each side of a chunk for exact chunked synthesis."""
    samples = receptive_field_steps(config) * config.n_group
    return math.ceil(samples / data_config.hop_length)


# ---------------------------------------------------------------------------- noise
def block_noise(
    seed: int,
    shape: tuple[int, int],
    start_frame: int,
    end_frame: int,
    samples_per_frame: int,
    sigma: float = 1.0,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The latent (B, G, steps) of frames [start, end) for ``seed``, drawn per fixed block.

    ``shape`` is (B, G); each frame has ``samples_per_frame`` / G steps. The same frame always
    gets the same noise, whatever range it is asked with.
    """
    batch, group = shape
    steps = samples_per_frame // group
    first, last = start_frame // NOISE_BLOCK_FRAMES, (end_frame - 1) // NOISE_BLOCK_FRAMES
    blocks = []
    for block in range(first, last + 1):
        generator = torch.Generator().manual_seed((seed + block * _SEED_MIX) % 2**63)
        blocks.append(
            torch.randn(batch, group, NOISE_BLOCK_FRAMES * steps, generator=generator, dtype=dtype)
        )
    noise = torch.cat(blocks, dim=2)  # (B, G, blocks * block_steps)
    offset = (start_frame - first * NOISE_BLOCK_FRAMES) * steps
    return noise[:, :, offset : offset + (end_frame - start_frame) * steps] * sigma


def draw_seed(generator: torch.Generator | None = None) -> int:
    """A 62-bit seed from ``generator`` (or torch's global generator)."""
    return int(torch.randint(0, 2**62, (1,), generator=generator).item())


# ---------------------------------------------------------------------------- synthesis
def infer_chunks(
    model: WaveGlow,
    mel: torch.Tensor,
    chunk_frames: int = DEFAULT_CHUNK_FRAMES,
    sigma: float = 0.6,
    z: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    precision: str | None = "fp32",
) -> Iterator[torch.Tensor]:
    """Yield the audio of ``mel`` (B, M, F) chunk by chunk: (B, chunk_frames * hop) each, the last
    one shorter. Joined, they equal ``model.infer(mel, z=z)`` up to float rounding.

    ``z`` (B, G, F * hop / G) is sliced per chunk; without it the noise is drawn per fixed block
    (see :func:`block_noise`) from a seed taken from ``generator``.
    """
    model._check_mel(mel)
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
    batch, _, frames = mel.shape
    hop, group = model.hop_length, model.n_group
    steps_per_frame = hop // group
    if z is not None and tuple(z.shape) != (batch, group, frames * steps_per_frame):
        raise ValueError(
            f"z has shape {tuple(z.shape)}; a mel of {frames} frames needs "
            f"{(batch, group, frames * steps_per_frame)}"
        )
    seed = draw_seed(generator) if z is None else 0
    for start, end, window_start, window_end, mel_start, mel_end in chunk_windows(
        model, frames, chunk_frames
    ):
        if z is None:
            z_window = block_noise(
                seed, (batch, group), window_start, window_end, hop, sigma, mel.dtype
            ).to(mel.device)
        else:
            z_window = z[:, :, window_start * steps_per_frame : window_end * steps_per_frame]
        with torch.no_grad():
            mel_groups = model.condition(
                mel[:, :, mel_start:mel_end], (window_end - mel_start) * hop
            )  # (B, M*G or M, window + left steps)
            mel_groups = mel_groups[:, :, (window_start - mel_start) * steps_per_frame :]
            audio = model.inverse(mel_groups, z_window.to(mel.dtype), precision)  # (B, G, T_G)
        keep = audio[:, :, (start - window_start) * steps_per_frame :][
            :, :, : (end - start) * steps_per_frame
        ]  # (B, G, chunk steps)
        yield keep.transpose(1, 2).reshape(batch, (end - start) * hop)  # (B, chunk samples)


def chunk_windows(
    model: WaveGlow, frames: int, chunk_frames: int = DEFAULT_CHUNK_FRAMES
) -> list[tuple[int, int, int, int, int, int]]:
    """The chunks :func:`infer_chunks` synthesises a mel of ``frames`` frames in, in order:
    ``(start, end, window_start, window_end, mel_start, mel_end)`` per chunk -- output frames
    [start, end) are cut from the synthesis of frames [window_start, window_end), conditioned on
    the mel frames [mel_start, mel_end) (the window widened by :attr:`WaveGlow.conditioning_reach`).
    """
    context = context_frames(model.config, model.data_config)
    left_frames, right_frames = model.conditioning_reach
    windows = []
    for start in range(0, frames, chunk_frames):
        end = min(frames, start + chunk_frames)
        window_start, window_end = max(0, start - context), min(frames, end + context)
        mel_start = max(0, window_start - left_frames)
        mel_end = min(frames, window_end + right_frames)
        windows.append((start, end, window_start, window_end, mel_start, mel_end))
    return windows


def synthesize_to_wav(
    model: WaveGlow,
    mel: torch.Tensor,
    path: str | Path,
    chunk_frames: int = DEFAULT_CHUNK_FRAMES,
    sigma: float = 0.6,
    z: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    precision: str | None = "fp32",
) -> int:
    """Synthesise ``mel`` (M, F) or (1, M, F) into a wav file chunk by chunk, in bounded memory.

    Written to a temporary file next to ``path`` and renamed onto it when complete (an existing
    file is never left half-written). 16-bit PCM, clipped to [-1, 1] and scaled like
    :func:`waveglow.audio.save_wav`. Returns the number of samples written.
    """
    if mel.dim() == 2:
        mel = mel.unsqueeze(0)  # (1, M, F)
    if mel.dim() != 3 or mel.size(0) != 1:
        raise ValueError(f"synthesize_to_wav takes one mel (M, F), got shape {tuple(mel.shape)}")
    chunks = infer_chunks(model, mel, chunk_frames, sigma, z, generator, precision)
    return write_wav_chunks(path, (chunk[0] for chunk in chunks), model.data_config.sampling_rate)


def write_wav_chunks(path: str | Path, chunks: Iterable[torch.Tensor], sampling_rate: int) -> int:
    """Write audio chunks (T_i,) one after the other as a 16-bit PCM wav, atomically.

    Only one chunk is in memory at a time. On any error (including one raised by the iterator)
    the temporary file is removed and an existing ``path`` is left as it was.
    """
    written = 0
    with (
        atomic_path(path) as temporary,
        soundfile.SoundFile(
            str(temporary),
            "w",
            samplerate=sampling_rate,
            channels=1,
            subtype="PCM_16",
            format="WAV",
        ) as output,
    ):
        for chunk in chunks:
            if not bool(torch.isfinite(chunk).all()):
                raise AudioError(f"{path}: the audio contains NaN or infinite samples")
            pcm = _pcm16(chunk)
            output.write(pcm)
            written += pcm.size
    return written


def _pcm16(audio: torch.Tensor) -> np.ndarray:
    scaled = audio.detach().double().clamp(-1.0, 1.0).cpu().numpy() * MAX_WAV_VALUE
    return np.clip(np.round(scaled), -MAX_WAV_VALUE, MAX_WAV_VALUE - 1).astype(np.int16)
