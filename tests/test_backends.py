"""Backends and precisions: two independent choices, named once, resolved the same everywhere."""

from __future__ import annotations

import pytest
import torch

from conftest import TINY, TINY_DATA, make_tiny
from waveglow.backends import (
    BACKENDS,
    PRECISIONS,
    cpu_has_bf16_matmul,
    evaluation,
    precision_name,
    resolve_backend,
    resolve_precision,
)


def test_resolve_precision():
    assert resolve_precision("fp32") == torch.float32
    assert resolve_precision("bf16") == torch.bfloat16
    assert resolve_precision("fp16") == torch.float16
    expected = torch.bfloat16 if cpu_has_bf16_matmul() else torch.float32
    assert resolve_precision("auto", "cpu") == expected
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("int8")


def test_every_concrete_precision_names_its_dtype_back():
    for name, dtype in PRECISIONS.items():
        if dtype is not None:
            assert precision_name(dtype) == name == precision_name(resolve_precision(name))
    assert precision_name(torch.float64) == "fp32"


def test_auto_backend_follows_the_dtype():
    assert resolve_backend("auto", torch.float32) == "conv"
    assert resolve_backend("auto", torch.bfloat16) == resolve_backend("auto", torch.float16)
    assert resolve_backend("auto", torch.float16) == "gemm"
    assert [resolve_backend(name, torch.bfloat16) for name in BACKENDS] == list(BACKENDS)
    with pytest.raises(ValueError, match="backend must be one of"):
        resolve_backend("cuda-graphs", torch.float32)


def test_a_precision_alone_means_gemm_and_none_means_conv():
    assert evaluation(None, None) == ("conv", "fp32")
    assert evaluation(None, "bf16") == ("gemm", "bf16")
    assert evaluation("conv", "bf16") == ("conv", "bf16")
    with pytest.raises(ValueError, match="backend must be one of conv, gemm"):
        evaluation("auto", "fp32")
    with pytest.raises(ValueError, match="precision must be one of"):
        evaluation("gemm", "int8")


def _inputs(frames: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    mel = torch.randn(2, TINY.n_mel_channels, frames, generator=generator)
    audio = torch.randn(2, frames * TINY_DATA.hop_length, generator=generator) * 0.3
    return mel, audio


def test_conv_in_bf16_is_the_flow_under_autocast():
    """The conv backend in a reduced precision is what training did with autocast around the
    model; it differs from fp32 (the precision reaches the convolutions)."""
    model = make_tiny(seed=4)
    mel, audio = _inputs()
    with torch.no_grad():
        z, log_det = model(mel, audio, precision="bf16", backend="conv")
        with torch.autocast("cpu", dtype=torch.bfloat16):
            z_autocast, log_det_autocast = model(mel, audio)
        z_fp32, _ = model(mel, audio, backend="conv")
    assert z.dtype == log_det.dtype == torch.float32
    assert torch.equal(z, z_autocast) and torch.equal(log_det, log_det_autocast)
    assert not torch.equal(z, z_fp32)
    assert torch.allclose(z, z_fp32, atol=0.05)


@pytest.mark.parametrize("backend", BACKENDS)
def test_synthesis_in_bf16_stays_close_to_fp32_on_either_backend(backend):
    model = make_tiny(seed=4).remove_weight_norm()
    mel, _ = _inputs()
    z = torch.randn(2, TINY.n_group, 6 * TINY_DATA.hop_length // TINY.n_group) * 0.6
    full = model.infer(mel, z=z, precision="fp32", backend=backend)
    reduced = model.infer(mel, z=z, precision="bf16", backend=backend)
    assert reduced.dtype == torch.float32
    assert not torch.equal(reduced, full)
    assert (reduced - full).abs().max() <= 0.05 * full.abs().max()
