"""The latent noise of synthesis: drawn per fixed block of frames, so that a frame's noise does not
depend on how the utterance is cut.

Without an explicit ``z`` a chunked synthesis draws its latent per fixed block of
:data:`NOISE_BLOCK_FRAMES` frames from a generator seeded by (seed, block index):
:func:`block_noise` gives the same latent for any range of frames (e.g. the whole utterance).
"""

from __future__ import annotations

import torch

NOISE_BLOCK_FRAMES = 32
_SEED_MIX = 0x9E3779B97F4A7C15


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
