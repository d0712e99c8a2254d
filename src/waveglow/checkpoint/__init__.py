"""Checkpoints: our format (:mod:`.ours`), NVIDIA's layouts (:mod:`.nvidia`) and the one entry
point that reads them all (:mod:`.read`: :func:`load`, :func:`read_checkpoint`)."""

from .nvidia import LayoutWarning
from .ours import (
    AVERAGE_KEY,
    FORMAT_NAME,
    FORMAT_VERSION,
    SAFETENSORS_SUFFIX,
    Checkpoint,
    CheckpointError,
    adapt_weight_norm,
    build_model,
    check_finite,
    check_size,
    model_config_dict,
    save,
    values_held,
)
from .read import (
    BUNDLED_MODELS,
    convert,
    load,
    read_checkpoint,
    resolve_bundled,
    safe_torch_load,
)

__all__ = [
    "AVERAGE_KEY",
    "BUNDLED_MODELS",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "SAFETENSORS_SUFFIX",
    "Checkpoint",
    "CheckpointError",
    "LayoutWarning",
    "adapt_weight_norm",
    "build_model",
    "check_finite",
    "check_size",
    "convert",
    "load",
    "model_config_dict",
    "read_checkpoint",
    "resolve_bundled",
    "safe_torch_load",
    "save",
    "values_held",
]
