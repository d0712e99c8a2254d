"""Our self-describing checkpoint format: writing it, reading it, and building a model from any
:class:`Checkpoint`.

A file is either a ``torch.save`` dict of plain containers and tensors (readable with
``torch.load(weights_only=True)``) or a ``.safetensors`` file whose metadata holds the same header::

    {"format": "waveglow", "format_version": 1, "config": {...NVIDIA config sections...},
     "weight_norm": bool, "state_dict": {NVIDIA fused-layout names -> tensors},
     ...training files add "optimizer", "step", ...}

Writes are atomic: a temporary file in the same folder, fsync, then rename.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..audio import atomic_path, remove_stale_temporaries
from ..config import Config
from ..model import WaveGlow
from ..modules import norm_except_dim0

FORMAT_NAME = "waveglow"
FORMAT_VERSION = 1
SAFETENSORS_SUFFIX = ".safetensors"


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not describe a WaveGlow; names the file."""


@dataclass
class Checkpoint:
    """What any supported file holds, normalised to NVIDIA's fused state-dict names."""

    config: Config
    state_dict: dict[str, torch.Tensor]
    layout: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def parameter_count(self) -> int:
        """The numbers the state dict holds (with weight norm: g and v, as stored)."""
        return sum(value.numel() for value in self.state_dict.values() if hasattr(value, "numel"))

    @property
    def has_weight_norm(self) -> bool:
        """True when the weights are stored as weight norm's g and v (not folded)."""
        return any(name.endswith("weight_g") for name in self.state_dict)


# ---------------------------------------------------------------------------- writing
def save(model: WaveGlow, path: str | Path, **extra: Any) -> Path:
    """Write ``model`` to ``path`` in our format (``.safetensors`` suffix: safetensors), atomically.

    ``extra`` entries (optimizer state, step, ...) go into torch files only; they must be plain
    containers, numbers, strings and tensors so that ``weights_only`` loading can read them back.
    """
    path = Path(path)
    remove_stale_temporaries(path.parent)
    state = {
        name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()
    }
    header = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "config": model_config_dict(model.full_config()),
        "weight_norm": model.has_weight_norm,
    }
    with atomic_path(path) as temporary:
        if path.suffix == SAFETENSORS_SUFFIX:
            if extra:
                raise ValueError("extra training state cannot be stored in a .safetensors file")
            from safetensors.torch import save_file

            save_file(state, str(temporary), metadata={"waveglow": json.dumps(header)})
        else:
            torch.save({**header, "state_dict": state, **extra}, temporary)
    return path


def model_config_dict(config: Config) -> dict[str, Any]:
    """What a model file says about its config: the model and audio sections only, without
    ``training_files`` (a path of the training machine); no training defaults posing as facts
    (a training checkpoint keeps its run's whole config apart, in ``run_config``)."""
    data = config.to_dict()
    data["data_config"].pop("training_files", None)
    return {"waveglow_config": data["waveglow_config"], "data_config": data["data_config"]}


# ---------------------------------------------------------------------------- reading
def build_model(checkpoint: Checkpoint, weight_norm: bool = False, source: str = "") -> WaveGlow:
    """A WaveGlow with ``checkpoint``'s config and weights (strict: every key must match)."""
    config = checkpoint.config
    check_size(checkpoint, source)
    model = WaveGlow(config.waveglow_config, config.data_config)
    if not weight_norm:
        model.remove_weight_norm()
    state = adapt_weight_norm(checkpoint.state_dict, model.state_dict())
    expected, found = set(model.state_dict()), set(state)
    if expected != found:
        raise CheckpointError(key_mismatch(source, expected - found, found - expected))
    for name, tensor in state.items():
        wanted = model.state_dict()[name].shape
        if tensor.shape != wanted:
            raise CheckpointError(
                f"{source}: {name} has shape {tuple(tensor.shape)}, the config needs {tuple(wanted)}"
            )
    check_finite(checkpoint.state_dict, source)  # after the shapes: each tensor is bounded
    model.load_state_dict({name: tensor.float() for name, tensor in state.items()})
    return model


def check_size(checkpoint: Checkpoint, source: str = "") -> None:
    """Refuse a config that declares a bigger model than the file's tensors hold, before anything
    is built: the model's size is bounded by the file's, whatever its config claims."""
    held = values_held(checkpoint.state_dict)
    config = checkpoint.config
    needed = WaveGlow.parameter_count(
        config.waveglow_config, config.data_config, weight_norm=False, limit=held
    )
    if needed > held:
        raise CheckpointError(
            f"{source}: its config declares a WaveGlow of at least {needed:,} values, but the "
            f"file holds only {held:,}: the config does not describe these weights"
        )


def values_held(state: Mapping[str, Any]) -> int:
    """How many tensor values ``state`` really stores: each storage counted once, and a tensor
    (a view, a stride-0 broadcast) never counted for more than its storage holds."""
    storages: dict[tuple[int, int], int] = {}
    for tensor in state.values():
        if isinstance(tensor, torch.Tensor):
            storage = tensor.untyped_storage()
            key = (storage.data_ptr(), storage.nbytes())
            held = min(tensor.numel(), storage.nbytes() // tensor.element_size())
            storages[key] = max(storages.get(key, 0), held)
    return sum(storages.values())


def check_finite(state: Mapping[str, torch.Tensor], source: str = "") -> None:
    """Refuse weights with NaN or infinite values (they synthesize silence or noise), naming the
    first such tensor."""
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(
                f"{source}: {name} holds NaN or infinite values: the weights are corrupt "
                "(saved from a diverged training?)"
            )


def read_ours(path: Path, payload: Mapping[str, Any] | None) -> Checkpoint:
    """Parse our format from an already-loaded torch payload, or from a safetensors file."""
    if path.suffix == SAFETENSORS_SUFFIX:
        from safetensors import SafetensorError
        from safetensors.torch import load_file, safe_open

        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
            state = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as error:
            raise CheckpointError(f"{path}: not a readable safetensors file ({error})") from None
        if "waveglow" not in metadata:
            raise CheckpointError(f"{path}: safetensors file without WaveGlow metadata")
        try:
            header = json.loads(metadata["waveglow"])
        except json.JSONDecodeError as error:
            raise CheckpointError(f"{path}: its WaveGlow metadata is not JSON ({error})") from None
        if not isinstance(header, dict):
            raise CheckpointError(
                f"{path}: its WaveGlow metadata is a JSON {type(header).__name__}, not an object"
            )
        payload = {**header, "state_dict": state}
    assert payload is not None
    version = payload.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: format version {version!r} is newer than this package reads "
            f"({FORMAT_VERSION}); upgrade waveglow"
        )
    try:
        config = Config.from_dict(payload["config"])
    except (KeyError, ValueError) as error:
        raise CheckpointError(f"{path}: invalid config ({error})") from None
    state = payload.get("state_dict")
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path}: no state_dict")
    extra = {key: value for key, value in payload.items() if key not in _HEADER_KEYS}
    return Checkpoint(config, dict(state), layout="waveglow", extra=extra)


def averaged(checkpoint: Checkpoint, source: str = "") -> Checkpoint:
    """``checkpoint`` with its averaged weights (:data:`AVERAGE_KEY`) as its state dict."""
    state = checkpoint.extra.get(AVERAGE_KEY)
    if not isinstance(state, Mapping):
        raise CheckpointError(
            f"{source}: holds no averaged weights (only training checkpoints of a run with "
            "train_config.ema_decay > 0 do); leave out --averaged to use its weights"
        )
    extra = {key: value for key, value in checkpoint.extra.items() if key != AVERAGE_KEY}
    return Checkpoint(checkpoint.config, dict(state), checkpoint.layout, extra)


def is_ours(payload: Any) -> bool:
    return isinstance(payload, Mapping) and payload.get("format") == FORMAT_NAME


# ---------------------------------------------------------------------------- weight norm
def adapt_weight_norm(
    state: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Convert (weight_g, weight_v) pairs to plain ``weight`` or back, to match ``target``'s keys.

    Folding computes g * v / ||v|| (norm over all dims but 0); the reverse takes g = ||w||, v = w,
    which is the same function.
    """
    adapted = dict(state)
    for name in list(adapted):
        prefix = name[: -len("weight_g")] if name.endswith("weight_g") else None
        if prefix is not None and prefix + "weight" in target and prefix + "weight_v" in adapted:
            g, v = adapted.pop(prefix + "weight_g"), adapted.pop(prefix + "weight_v")
            adapted[prefix + "weight"] = g * v / norm_except_dim0(v)
    for name in list(adapted):
        prefix = name[: -len("weight")] if name.endswith(".weight") else None
        if prefix is not None and prefix + "weight_g" in target and prefix + "weight" not in target:
            weight = adapted.pop(name)
            adapted[prefix + "weight_g"] = norm_except_dim0(weight)
            adapted[prefix + "weight_v"] = weight
    return adapted


def key_mismatch(source: str, missing: set[str], unexpected: set[str]) -> str:
    def listing(keys: set[str]) -> str:
        names = sorted(keys)
        return ", ".join(names[:12]) + (f" ... ({len(names)} in all)" if len(names) > 12 else "")

    parts = [f"{source}: the weights do not match a WaveGlow of the inferred config."]
    if missing:
        parts.append(f"Missing: {listing(missing)}.")
    if unexpected:
        parts.append(f"Unexpected: {listing(unexpected)}.")
    return " ".join(parts)


# a training checkpoint's exponential moving average of the weights (train_config.ema_decay):
# a state dict like ``state_dict``, read in its place by ``read_checkpoint(..., averaged=True)``
AVERAGE_KEY = "averaged_state_dict"
_HEADER_KEYS = frozenset({"format", "format_version", "config", "state_dict", "weight_norm"})
