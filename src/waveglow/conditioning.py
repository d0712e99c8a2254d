"""How the mel reaches the flow's WNs (and the post-filter): NVIDIA's learned transposed
convolution to the samples, or frame-rate interpolation to the grouped steps.

Both are computed so that a sample's value, to the last bit, does not depend on how many frames
around it are given: chunked and streamed synthesis are then bit for bit whole-utterance
synthesis."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def transposed_conv(
    upsample: nn.ConvTranspose1d, mel: torch.Tensor, hop: int, filter_length: int
) -> torch.Tensor:
    """``upsample(mel)`` (B, M, (F - 1) * hop + filter_length) for ``upsample`` of stride
    ``hop``: one matrix product per frame, then the overlapping taps added in a fixed order
    (torch's ConvTranspose1d rounds differently for different lengths)."""
    batch, mel_bins, frames = mel.shape
    taps = -(-filter_length // hop)  # frames one frame's kernel spans
    weight = nn.functional.pad(upsample.weight, (0, taps * hop - filter_length))
    weight = weight.reshape(mel_bins, mel_bins * taps * hop)  # (M_in, M * taps * hop)
    pieces = mel.transpose(1, 2) @ weight.to(mel.dtype)  # (B, F, M * taps * hop)
    pieces = pieces.reshape(batch, frames, mel_bins, taps, hop).permute(
        0, 2, 3, 1, 4
    )  # (B, M, taps, F, hop)
    total = None  # (B, M, F + taps - 1, hop): tap j of frame f lands on frame f + j
    for tap in range(taps):
        shifted = nn.functional.pad(pieces[:, :, tap], (0, 0, tap, taps - 1 - tap))
        total = shifted if total is None else total + shifted
    total = total.reshape(batch, mel_bins, (frames + taps - 1) * hop)  # (B, M, T_all)
    bias = upsample.bias.to(mel.dtype).unsqueeze(1)  # (M, 1)
    return total[:, :, : (frames - 1) * hop + filter_length] + bias


def interpolate_frames(
    mel: torch.Tensor,
    length: int,
    hop: int,
    group: int,
    nearest: bool,
    lengths: Sequence[int] | None = None,
) -> torch.Tensor:
    """Frame-rate conditioning (B, M, length / group): step j (samples jG .. jG+G-1, centre
    jG + (G-1)/2) mixes frames f and f+1 around it, frame f being centred on sample f*hop
    (``nearest``: the nearer frame alone); past the last frame (of the batch, or of each item
    with ``lengths``) the last frame is held."""
    batch, mel_bins, frames = mel.shape
    steps_per_frame = hop // group
    following = torch.cat([mel[:, :, 1:], mel[:, :, -1:]], dim=2)  # (B, M, F)
    if lengths is not None:
        for item, own in enumerate(lengths):
            following[item, :, own - 1] = mel[item, :, own - 1]
    offsets = torch.arange(steps_per_frame, device=mel.device, dtype=torch.float64)
    weight = (offsets * group + (group - 1) / 2) / hop
    if nearest:
        weight = (weight >= 0.5).double()
    weight = weight.to(mel.dtype)  # (S,)
    mixed = mel.unsqueeze(3) * (1 - weight) + following.unsqueeze(3) * weight  # (B, M, F, S)
    return mixed.reshape(batch, mel_bins, frames * steps_per_frame)[
        :, :, : length // group
    ]  # (B, M, T / group)
