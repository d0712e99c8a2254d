"""How the WN is evaluated: a backend and a precision, two independent choices defined here once.

Backends (:data:`BACKENDS`): ``conv``, the WN's dilated convolutions (the reference), in a reduced
precision under ``torch.autocast``; ``gemm``, the same function as matrix products
(:mod:`waveglow.fast`), its big products in the precision's dtype. ``auto`` (training) picks
``gemm`` where the products run in bf16/fp16 and ``conv`` in fp32.

Precisions (:data:`PRECISIONS`): ``fp32``, ``bf16``, ``fp16`` and ``auto`` (bf16 on CPUs with bf16
matrix hardware, else fp32; on CUDA bf16 where supported, else fp16). Whatever the choice, the
couplings, the 1x1 convolutions and the log-determinants stay in the audio's own dtype.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

import torch

BACKENDS = ("conv", "gemm")
AUTO = "auto"
PRECISIONS: Mapping[str, torch.dtype | None] = MappingProxyType(
    {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, AUTO: None}
)


def check_backend(backend: str, allow_auto: bool = False) -> str:
    """``backend`` if it names a backend (or ``auto``, where allowed); a ValueError otherwise."""
    names = (*BACKENDS, AUTO) if allow_auto else BACKENDS
    if backend not in names:
        raise ValueError(f"backend must be one of {', '.join(names)}; got {backend!r}")
    return backend


def check_precision(precision: str) -> str:
    """``precision`` if it names a precision; a ValueError otherwise."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    return precision


def resolve_precision(precision: str, device: torch.device | str = "cpu") -> torch.dtype:
    """The dtype ``precision`` stands for on ``device`` (``auto``: see the module doc)."""
    dtype = PRECISIONS[check_precision(precision)]
    if dtype is not None:
        return dtype
    if torch.device(device).type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_has_bf16_matmul() else torch.float32


def precision_name(dtype: torch.dtype) -> str:
    """The precision whose dtype is ``dtype`` (``fp32`` for any other dtype, e.g. float64)."""
    names = {dtype: name for name, dtype in PRECISIONS.items() if dtype is not None}
    return names.get(dtype, "fp32")


def resolve_backend(backend: str, dtype: torch.dtype) -> str:
    """``backend``, with ``auto`` made concrete for products in ``dtype`` (see the module doc)."""
    if check_backend(backend, allow_auto=True) != AUTO:
        return backend
    return "gemm" if dtype in (torch.bfloat16, torch.float16) else "conv"


def evaluation(backend: str | None, precision: str | None) -> tuple[str, str]:
    """``(backend, precision)`` checked, for a caller that may name either. Without a backend, a
    precision means ``gemm`` and ``precision=None`` means ``conv`` in fp32 (the spelling from
    before backends were named)."""
    if backend is None:
        backend = "conv" if precision is None else "gemm"
    return check_backend(backend), check_precision("fp32" if precision is None else precision)


@functools.cache
def cpu_has_bf16_matmul() -> bool:
    """True when this CPU multiplies bf16 matrices in hardware (AMX-BF16 or AVX512-BF16)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags: set[str] = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
            break
    return bool(flags & {"amx_bf16", "avx512_bf16"})


def resolve_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch.device that exists here; a ValueError in our words otherwise."""
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device {device!r}: not a device name (cpu, cuda, cuda:1...)") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: CUDA is not available on this machine")
    if resolved.type == "cuda" and (resolved.index or 0) >= torch.cuda.device_count():
        raise ValueError(
            f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)"
        )
    return resolved
