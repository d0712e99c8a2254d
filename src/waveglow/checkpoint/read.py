"""Reading any checkpoint: :func:`load` and :func:`read_checkpoint` take our format or any of
NVIDIA's layouts (see :mod:`waveglow.checkpoint.nvidia`) and never execute code from the file."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch

from ..audio import input_problem
from ..backends import resolve_device
from ..model import WaveGlow
from ..torchfile import RefusedGlobal, read_torch_file
from .nvidia import LayoutError, read_nvidia
from .ours import (
    SAFETENSORS_SUFFIX,
    Checkpoint,
    CheckpointError,
    build_model,
    check_size,
    is_ours,
    read_ours,
    save,
)
from .ours import averaged as ours_averaged  # aliased: load() and convert() take `averaged`

BUNDLED_MODELS = MappingProxyType({"demo": "models/demo.safetensors"})


def load(
    path: str | Path,
    device: str | torch.device = "cpu",
    weight_norm: bool = False,
    glow_old: bool | None = None,
    averaged: bool = False,
) -> WaveGlow:
    """Load our format or any NVIDIA checkpoint layout; returns an eval-mode :class:`WaveGlow`.

    Weight norm is folded into plain convolutions unless ``weight_norm=True`` (for training).
    ``glow_old``: for NVIDIA files, True reads them as ``glow_old.py`` did, False as ``glow.py``,
    None from the file (see :func:`read_checkpoint`). ``averaged``: the moving average of the
    weights a training checkpoint holds (``train_config.ema_decay``) instead of its weights.
    Loading never executes code from the file.
    """
    device = resolve_device(device)
    checkpoint = read_checkpoint(path, glow_old, averaged)
    model = build_model(checkpoint, weight_norm=weight_norm, source=str(path))
    return model.to(device).eval()


def read_checkpoint(
    path: str | Path, glow_old: bool | None = None, averaged: bool = False
) -> Checkpoint:
    """Read any supported file into a :class:`Checkpoint` (config + fused-layout state dict).

    ``path`` may also name a model shipped inside the package (``"demo"``), unless a file of that
    name exists. ``glow_old`` (NVIDIA files only): True reads the file as NVIDIA's ``glow_old.py``
    did (odd flows' coupling halves swapped), False as ``glow.py`` did; None decides from the
    pickled module, and reads a bare state dict as ``glow.py`` (with a :class:`LayoutWarning`
    where its split res/skip layers could have come from either). ``averaged``: the state dict
    is the training checkpoint's moving average of the weights (:func:`.ours.averaged`).
    """
    path = resolve_bundled(path)
    if problem := input_problem(path):
        raise CheckpointError(f"{path}: {problem}")
    checkpoint = _read_any(path, glow_old)
    if averaged:
        checkpoint = ours_averaged(checkpoint, str(path))
    check_size(checkpoint, str(path))
    return checkpoint


def _read_any(path: Path, glow_old: bool | None) -> Checkpoint:
    if path.suffix == SAFETENSORS_SUFFIX:
        return read_ours(path, None)
    payload, legacy = _load_payload(path)
    if is_ours(payload):
        return read_ours(path, payload)
    try:
        return read_nvidia(payload, legacy, glow_old, str(path))
    except LayoutError as error:
        raise CheckpointError(f"{path}: {error}") from None


def resolve_bundled(path: str | Path) -> Path:
    """The file a bundled model name (see :data:`BUNDLED_MODELS`) stands for, else ``path``."""
    name = str(path)
    if name not in BUNDLED_MODELS or Path(name).exists():
        return Path(path)
    resource = Path(str(resources.files("waveglow") / BUNDLED_MODELS[name]))
    if not resource.is_file():
        raise CheckpointError(
            f"the bundled model {name!r} is missing from this installation ({resource}); "
            "reinstall waveglow"
        )
    return resource


def convert(
    source: str | Path,
    destination: str | Path,
    glow_old: bool | None = None,
    averaged: bool = False,
) -> Checkpoint:
    """Convert any supported checkpoint to our format; returns what was read (``glow_old``,
    ``averaged``: as for :func:`read_checkpoint`)."""
    checkpoint = read_checkpoint(source, glow_old, averaged)
    model = build_model(checkpoint, weight_norm=False, source=str(source))
    save(model, destination)
    return checkpoint


def safe_torch_load(path: str | Path) -> Any:
    """Unpickle a torch file (zip or legacy format) on the CPU, allowing only WaveGlow globals."""
    return _load_payload(Path(path))[0]


def _load_payload(path: Path) -> tuple[Any, bool]:
    """:func:`read_torch_file`, every failure a :class:`CheckpointError` naming the file."""
    try:
        return read_torch_file(path)
    except RefusedGlobal as error:
        raise _refusal(path, error) from None
    except Exception as error:  # noqa: BLE001 - every other failure is the file's
        raise CheckpointError(
            f"{path}: cannot be read as a checkpoint, the file is truncated or corrupt "
            f"({type(error).__name__}: {_first_line(error)})"
        ) from None


def _refusal(path: Path, error: RefusedGlobal) -> CheckpointError:
    name = re.sub(r"^__builtin__\.", "builtins.", error.name)  # protocol 2 writes Python 2's name
    what = error.what or f"it names {name}, which a WaveGlow checkpoint never contains"
    return CheckpointError(f"{path}: refused to load: {what}; nothing was executed")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else "no details"
