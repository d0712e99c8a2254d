"""Reading every checkpoint layout: ours and NVIDIA's, without NVIDIA's code, never executing code.

Layouts (see :func:`read_checkpoint`):
  waveglow          our self-describing format (torch or safetensors)
  (NVIDIA layouts are added here: official pickles, per-layer cond_layers, res/skip layers,
   DeepLearningExamples / NeMo dicts, bare state dicts)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .checkpoint import SAFETENSORS_SUFFIX, Checkpoint, CheckpointError, is_ours, read_ours, save


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read any supported file into a :class:`Checkpoint` (config + fused-layout state dict)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the file is empty")
    if path.suffix == SAFETENSORS_SUFFIX:
        return read_ours(path, None)
    payload = safe_torch_load(path)
    if is_ours(payload):
        return read_ours(path, payload)
    raise CheckpointError(f"{path}: not a WaveGlow checkpoint of any known layout")


def safe_torch_load(path: Path) -> Any:
    """``torch.load`` with ``weights_only=True`` on the CPU; errors name the file."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - every failure is the file's
        raise CheckpointError(f"{path}: cannot be read as a checkpoint ({error})") from None


def convert(source: str | Path, destination: str | Path) -> Checkpoint:
    """Convert any supported checkpoint to our format; returns what was read."""
    from .checkpoint import build_model

    checkpoint = read_checkpoint(source)
    model = build_model(checkpoint, weight_norm=False, source=str(source))
    save(model, destination)
    return checkpoint
