"""The matrix-product (GEMM) evaluation of the WN: the same function as the convolutions.

Documented tolerance of bf16 against fp32 for the same z (measured: waveform relative L2 3.4e-4 on
the tiny model, 2.9e-4 on the moderate one; log-mel relative L2 1.0e-4 and 0.5e-4): waveform < 0.2 %,
log-mel < 0.1 %. The error grows with the size of the log-scales, so a trained
model should be checked with ``bench/synth_speed.py --checkpoint``.
"""

from __future__ import annotations

import pytest
import torch

from conftest import TINY, TINY_DATA, four_flows, make_model, make_tiny
from waveglow import DataConfig, MelSpectrogram, WaveGlow, WaveGlowConfig, WNConfig
from waveglow.fast import GemmCondition, gemm_weights

MODERATE = four_flows(n_mel_channels=20, n_group=8, n_layers=4, n_channels=64)
MODERATE_DATA = DataConfig(filter_length=256, hop_length=64, win_length=256)


def make_moderate(seed: int = 0) -> WaveGlow:
    return make_model(MODERATE, MODERATE_DATA, seed, end_std=0.02).eval()


def relative_error(value: torch.Tensor, reference: torch.Tensor) -> float:
    return ((value - reference).norm() / reference.norm()).item()


def _wn_inputs(model: WaveGlow, k: int, length: int = 40, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    wn = model.WN[k]
    channels = wn.start.weight.size(1)
    audio = torch.randn(2, channels, length, generator=generator)
    mel = torch.randn(2, wn.cond_layer.weight.size(1), length, generator=generator)
    return wn, audio, mel


# ---------------------------------------------------------------------------- fp32 equality
@pytest.mark.parametrize("fold", [False, True])
@pytest.mark.parametrize("grad", [False, True])
def test_gemm_wn_equals_convolution_wn(fold: bool, grad: bool):
    model = make_tiny()
    if fold:
        model.remove_weight_norm()
    for k in range(TINY.n_flows):
        wn, audio, mel = _wn_inputs(model, k, seed=k)
        with torch.set_grad_enabled(grad):
            reference = wn(audio, mel)
            fast = wn(audio, GemmCondition.prepare(mel, "fp32"))
        assert fast.shape == reference.shape
        assert relative_error(fast, reference) < 1e-6


def test_gemm_wn_handles_dilations_longer_than_the_input():
    config = WaveGlowConfig(
        n_mel_channels=8, n_flows=2, n_group=4, n_early_every=4, n_early_size=2,
        WN_config=WNConfig(n_layers=5, n_channels=8),
    )  # fmt: skip
    model = WaveGlow(config, TINY_DATA)
    with torch.no_grad():
        model.WN[0].end.weight.normal_()
    wn, audio, mel = _wn_inputs(model, 0, length=5)  # dilations 1..16 against 5 steps
    with torch.no_grad():
        reference = wn(audio, mel)
        fast = wn(audio, GemmCondition.prepare(mel, "fp32"))
    assert relative_error(fast, reference) < 1e-6


def test_fast_fp32_inference_equals_reference_inference():
    model = make_moderate().remove_weight_norm()
    mel = torch.randn(2, MODERATE.n_mel_channels, 7, generator=torch.Generator().manual_seed(1))
    z = torch.randn(2, 8, 7 * 64 // 8, generator=torch.Generator().manual_seed(2)) * 0.6
    reference = model.infer(mel, z=z, precision=None)
    assert relative_error(model.infer(mel, z=z, precision="fp32"), reference) < 1e-6


def test_float64_round_trip_through_the_gemm_path_is_exact():
    model = make_tiny(dtype=torch.float64)
    mel = torch.randn(2, TINY.n_mel_channels, 6, dtype=torch.float64)
    audio = torch.randn(2, 6 * TINY_DATA.hop_length, dtype=torch.float64) * 0.3
    z, log_det = model(mel, audio, precision="fp32")
    z_reference, log_det_reference = model(mel, audio)
    torch.testing.assert_close(z, z_reference, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(log_det, log_det_reference, rtol=1e-12, atol=1e-10)
    assert torch.allclose(model.infer(mel, z=z, precision="fp32"), audio, rtol=0, atol=1e-9)


def test_gradients_through_the_gemm_path_equal_the_reference():
    mel = torch.randn(2, TINY.n_mel_channels, 5, generator=torch.Generator().manual_seed(3))
    audio = torch.randn(2, 5 * TINY_DATA.hop_length, generator=torch.Generator().manual_seed(4))
    grads = []
    for precision in (None, "fp32"):
        model = make_tiny(seed=5)
        z, log_det = model(mel, audio * 0.3, precision=precision)
        (z.pow(2).sum() / 2 - log_det.sum()).backward()
        grads.append({name: p.grad for name, p in model.named_parameters()})
    reference, fast = grads
    assert reference.keys() == fast.keys()
    scale = torch.cat([grad.flatten() for grad in reference.values()]).abs().max().item()
    for name, grad in reference.items():
        assert fast[name] is not None, name
        torch.testing.assert_close(fast[name], grad, rtol=1e-4, atol=1e-6 * scale, msg=name)


# ---------------------------------------------------------------------------- caches
def test_gemm_weights_follow_weight_changes_and_load_state_dict():
    model = make_tiny(dtype=torch.float64)
    mel = torch.randn(1, TINY.n_mel_channels, 6, dtype=torch.float64)
    audio = torch.randn(1, 6 * TINY_DATA.hop_length, dtype=torch.float64) * 0.3
    model.infer(mel, z=model(mel, audio)[0], precision="fp32")  # fills the caches
    with torch.no_grad():
        for wn in model.WN:
            wn.in_layers[0].weight_v.add_(0.1 * torch.randn_like(wn.in_layers[0].weight_v))
    z, _ = model(mel, audio)
    assert torch.allclose(model.infer(mel, z=z, precision="fp32"), audio, atol=1e-9)
    model.load_state_dict(make_tiny(seed=9, dtype=torch.float64).state_dict())
    z, _ = model(mel, audio)
    assert torch.allclose(model.infer(mel, z=z, precision="fp32"), audio, atol=1e-9)


def test_gemm_weights_are_cached_without_autograd_only():
    wn = make_tiny().WN[0]
    with torch.no_grad():
        assert gemm_weights(wn, torch.float32) is gemm_weights(wn, torch.float32)
    assert gemm_weights(wn, torch.float32).layer_weights[0].requires_grad


# ---------------------------------------------------------------------------- reduced precision
def _log_mel(audio: torch.Tensor, data_config: DataConfig) -> torch.Tensor:
    bins = 20 if data_config.filter_length >= 256 else 6
    return MelSpectrogram(data_config, n_mel_channels=bins)(audio.clamp(-1, 1))


@pytest.mark.parametrize(
    ("make", "frames", "waveform_tolerance"), [(make_tiny, 12, 2e-3), (make_moderate, 10, 2e-3)]
)
def test_bf16_synthesis_is_close_to_fp32(make, frames: int, waveform_tolerance: float):
    model = make().remove_weight_norm()
    config, data_config = model.config, model.data_config
    mel = torch.randn(1, config.n_mel_channels, frames, generator=torch.Generator().manual_seed(6))
    length = frames * data_config.hop_length
    z = torch.randn(1, config.n_group, length // config.n_group) * 0.6
    full = model.infer(mel, z=z, precision="fp32")
    half = model.infer(mel, z=z, precision="bf16")
    assert half.dtype == torch.float32
    full_mel, half_mel = _log_mel(full, data_config), _log_mel(half, data_config)
    assert relative_error(half, full) < waveform_tolerance
    assert relative_error(half_mel, full_mel) < 1e-3


def test_bf16_training_forward_gives_gradients_close_to_fp32():
    mel = torch.randn(2, TINY.n_mel_channels, 5, generator=torch.Generator().manual_seed(7))
    audio = torch.randn(2, 5 * TINY_DATA.hop_length, generator=torch.Generator().manual_seed(8))
    grads = []
    for precision in ("fp32", "bf16"):
        model = make_tiny(seed=5)
        z, log_det = model(mel, audio * 0.3, precision=precision)
        assert z.dtype == log_det.dtype == torch.float32
        (z.pow(2).sum() / 2 - log_det.sum()).backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert torch.isfinite(grads[1]).all()
    assert relative_error(grads[1], grads[0]) < 0.05
