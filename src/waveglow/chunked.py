"""Synthesis to a wav file in bounded memory: :meth:`WaveGlow.infer_chunks` streamed to disk,
one chunk in memory at a time, the file written atomically."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import soundfile
import torch

from .audio import MAX_WAV_VALUE, AudioError, atomic_path
from .model import DEFAULT_CHUNK_FRAMES, WaveGlow


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
    """Synthesize ``mel`` (M, F) or (1, M, F) into a wav file chunk by chunk, in bounded memory.

    Written to a temporary file next to ``path`` and renamed onto it when complete (an existing
    file is never left half-written). 16-bit PCM, clipped to [-1, 1] and scaled like
    :func:`waveglow.audio.save_wav`. Returns the number of samples written.
    """
    if mel.dim() == 2:
        mel = mel.unsqueeze(0)  # (1, M, F)
    if mel.dim() != 3 or mel.size(0) != 1:
        raise ValueError(f"synthesize_to_wav takes one mel (M, F), got shape {tuple(mel.shape)}")
    chunks = model.infer_chunks(mel, chunk_frames, sigma, z, generator, precision)
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
