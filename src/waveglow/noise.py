"""The latent noise of synthesis. :func:`gaussian` is the one function that draws it; the callers
differ only in the generator they pass (a seed per file, per block of frames, or the caller's).

Without an explicit ``z`` a chunked synthesis draws its latent per fixed block of
:data:`NOISE_BLOCK_FRAMES` frames from a generator seeded by (seed, block index):
:func:`block_noise` gives the same latent for any range of frames (e.g. the whole utterance).
"""

from __future__ import annotations

import torch

NOISE_BLOCK_FRAMES = 32
_SEED_MIX = 0x9E3779B97F4A7C15


def gaussian(
    shape: tuple[int, ...],
    sigma: float = 1.0,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """A latent of ``shape`` ~ N(0, sigma^2), drawn from ``generator`` (torch's global one if
    None) on its device."""
    return torch.randn(shape, generator=generator, dtype=dtype, device=device) * sigma


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
        shape = (batch, group, NOISE_BLOCK_FRAMES * steps)
        blocks.append(gaussian(shape, sigma, generator, dtype))
    noise = torch.cat(blocks, dim=2)  # (B, G, blocks * block_steps)
    offset = (start_frame - first * NOISE_BLOCK_FRAMES) * steps
    return noise[:, :, offset : offset + (end_frame - start_frame) * steps]


def draw_seed(generator: torch.Generator | None = None) -> int:
    """A 62-bit seed from ``generator`` (or torch's global generator)."""
    return int(torch.randint(0, 2**62, (1,), generator=generator).item())
