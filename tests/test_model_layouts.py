"""Cheaper layouts of the same flow: frame-rate conditioning (``mel_upsampling`` "linear" /
"nearest") and SqueezeWave's WN (``depthwise_separable``, ``dilation_base``), with the same single
inverse and every property NVIDIA's layout has: exact inversion, the log-determinant
against autograd, GEMM = convolutions, chunked = whole, padded batch = each item alone, export."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from conftest import TINY, TINY_DATA, make_tiny
from waveglow import Config, WaveGlow, WaveGlowConfig, load, save
from waveglow.config import ConfigError
from waveglow.model import multiply_adds_per_sample

LAYOUTS = {
    "linear": dataclasses.replace(TINY, mel_upsampling="linear"),
    "nearest": dataclasses.replace(TINY, mel_upsampling="nearest"),
    "linear-g8": dataclasses.replace(TINY, mel_upsampling="linear", n_group=8),
    "squeeze": dataclasses.replace(  # SqueezeWave-like: a step is half a frame, separable WN
        TINY,
        mel_upsampling="linear",
        n_group=8,
        WN_config=dataclasses.replace(TINY.WN_config, depthwise_separable=True, dilation_base=1),
    ),
}
HOP = TINY_DATA.hop_length


@pytest.fixture(params=sorted(LAYOUTS))
def layout(request) -> WaveGlowConfig:
    return LAYOUTS[request.param]


def _inputs(config: WaveGlowConfig, batch: int = 2, frames: int = 6, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    mel = torch.randn(batch, config.n_mel_channels, frames, generator=generator).double()
    audio = torch.randn(batch, frames * HOP, generator=generator).double() * 0.3
    return mel, audio


def _latent(config: WaveGlowConfig, batch: int, frames: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(2)
    steps = frames * HOP // config.n_group
    return torch.randn(batch, config.n_group, steps, generator=generator).double() * 0.6


def test_no_upsampler_and_cond_layers_take_the_mel_bins(layout):
    model = make_tiny(config=layout)
    names = model.state_dict().keys()
    assert not any(name.startswith("upsample.") for name in names)
    assert model.WN[0].cond_layer.weight_v.shape[1] == layout.n_mel_channels
    wn = layout.WN_config
    assert [layer.dilation for layer in model.WN[0].in_layers] == [
        wn.dilation_base**i for i in range(wn.n_layers)
    ]
    nvidia = make_tiny()
    assert nvidia.WN[0].cond_layer.weight_v.shape[1] == TINY.n_mel_channels * TINY.n_group


@pytest.mark.parametrize("weight_norm", [True, False], ids=["weight-norm", "folded"])
def test_parameter_count_from_the_config_matches_the_built_model(layout, weight_norm):
    """The count that bounds a file's declared config (checkpoint.check_size) knows each layout."""
    model = make_tiny(config=layout)
    if not weight_norm:
        model.remove_weight_norm()
    built = sum(parameter.numel() for parameter in model.parameters())
    assert WaveGlow.parameter_count(layout, TINY_DATA, weight_norm) == built


def test_linear_conditioning_interpolates_between_frame_centres():
    """Step j covers samples jG..jG+G-1; its centre jG+(G-1)/2 lies between the centres of
    frames f = floor(centre / hop) and f+1 (frame f is centred on sample f*hop)."""
    model = make_tiny(config=LAYOUTS["linear"], dtype=torch.float64)
    frames, group = 5, TINY.n_group
    mel = torch.arange(frames, dtype=torch.float64).expand(1, TINY.n_mel_channels, frames)
    steps = model.condition(mel, frames * HOP)[0, 0]  # (T_G,) of the first bin
    centres = torch.arange(frames * HOP // group, dtype=torch.float64) * group + (group - 1) / 2
    expected = (centres / HOP).clamp(max=frames - 1)  # a ramp: the frame index itself
    torch.testing.assert_close(steps, expected, rtol=0, atol=1e-12)
    nearest = make_tiny(config=LAYOUTS["nearest"], dtype=torch.float64)
    torch.testing.assert_close(
        nearest.condition(mel, frames * HOP)[0, 0], expected.round(), rtol=0, atol=0
    )


def test_float64_round_trip_is_exact(layout):
    model = make_tiny(config=layout, dtype=torch.float64)
    mel, audio = _inputs(layout)
    z, _ = model(mel, audio)
    for precision in (None, "fp32"):
        torch.testing.assert_close(
            model.infer(mel, z=z, precision=precision), audio, atol=1e-9, rtol=0
        )


def test_log_det_equals_autograd_jacobian(layout):
    model = make_tiny(config=layout, dtype=torch.float64)
    mel, audio = _inputs(layout, batch=1, frames=2)
    length = audio.size(1)

    def flow(x: torch.Tensor) -> torch.Tensor:
        return model(mel, x.view(1, length))[0].reshape(-1)

    jacobian = torch.autograd.functional.jacobian(flow, audio.reshape(-1))
    expected = torch.linalg.slogdet(jacobian)[1]
    torch.testing.assert_close(model(mel, audio)[1][0], expected, rtol=1e-10, atol=1e-10)
    assert abs(expected.item()) > 1e-3


def test_gemm_equals_convolutions_forward_and_gradients(layout):
    mel, audio = _inputs(layout)
    results = []
    for precision in (None, "fp32"):
        model = make_tiny(config=layout, dtype=torch.float64)
        z, log_det = model(mel, audio, precision=precision)
        (z.square().sum() - log_det.sum()).backward()
        grads = [p.grad.clone() for p in model.parameters()]
        results.append((z.detach(), log_det.detach(), grads))
    (z_conv, det_conv, grad_conv), (z_gemm, det_gemm, grad_gemm) = results
    torch.testing.assert_close(z_gemm, z_conv, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(det_gemm, det_conv, rtol=1e-10, atol=1e-10)
    for gemm, conv in zip(grad_gemm, grad_conv, strict=True):
        torch.testing.assert_close(gemm, conv, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("chunk_frames", [1, 3, 7])
def test_chunks_are_exact_in_float64(layout, chunk_frames):
    model = make_tiny(config=layout, dtype=torch.float64).remove_weight_norm()
    mel, _ = _inputs(layout, batch=1, frames=17)
    z = _latent(layout, 1, 17)
    whole = model.infer(mel, z=z)
    joined = torch.cat(list(model.infer_chunks(mel, chunk_frames, z=z)), dim=1)
    torch.testing.assert_close(joined, whole, rtol=0, atol=1e-12)


def test_chunks_need_the_frame_to_the_right(monkeypatch):
    """Without the one frame to the right, a window's last steps hold its last frame instead of
    mixing in the next one, and the join is no longer exact: the reach is needed."""
    config = dataclasses.replace(LAYOUTS["linear"], n_flows=1, n_early_every=1, n_early_size=0)
    model = make_tiny(config=config, dtype=torch.float64).remove_weight_norm()
    mel, _ = _inputs(config, batch=1, frames=9)
    z = _latent(config, 1, 9)
    whole = model.infer(mel, z=z)
    joined = torch.cat(list(model.infer_chunks(mel, 3, z=z)), dim=1)
    torch.testing.assert_close(joined, whole, rtol=0, atol=1e-12)
    monkeypatch.setattr(WaveGlow, "conditioning_reach", property(lambda self: (0, 0)))
    joined = torch.cat(list(model.infer_chunks(mel, 3, z=z)), dim=1)
    assert (joined - whole).abs().max() > 1e-10


@pytest.mark.parametrize("precision", [None, "fp32"], ids=["conv", "gemm"])
def test_padded_batch_items_equal_each_alone(layout, precision):
    model = make_tiny(config=layout, dtype=torch.float64)
    mel, _ = _inputs(layout, batch=2, frames=9)
    mel[0, :, 4:] = -11.5  # padding of another value than the item's own last frame
    lengths = [4, 9]
    z = _latent(layout, 2, 9)
    batched = model.infer(mel, z=z, precision=precision, lengths=lengths)
    for item, frames in enumerate(lengths):
        steps = frames * HOP // layout.n_group
        alone = model.infer(mel[item : item + 1, :, :frames], z=z[item : item + 1, :, :steps])
        torch.testing.assert_close(
            batched[item : item + 1, : frames * HOP], alone, rtol=1e-10, atol=1e-10
        )


def test_onnx_export_matches_eager(layout, tmp_path):
    pytest.importorskip("onnx", reason="ONNX export needs the onnx package (extra 'export')")
    runtime = pytest.importorskip("onnxruntime", reason="needs onnxruntime (extra 'export')")
    from waveglow.export import example_inputs, export_onnx

    model = make_tiny(config=layout)
    session = runtime.InferenceSession(
        str(export_onnx(model, tmp_path / "frame.onnx")), providers=["CPUExecutionProvider"]
    )
    for batch, frames in [(1, 8), (2, 13)]:
        mel, z = example_inputs(model, frames, batch)
        (audio,) = session.run(None, {"mel": mel.numpy(), "z": z.numpy()})
        torch.testing.assert_close(
            torch.from_numpy(audio), model.infer(mel, z=z), rtol=1e-4, atol=1e-4
        )


def test_checkpoint_round_trip_keeps_the_layout(layout, tmp_path):
    model = make_tiny(config=layout).remove_weight_norm()
    for name in ("frame.pt", "frame.safetensors"):
        loaded = load(save(model, tmp_path / name))
        assert loaded.config == layout
        mel, _ = _inputs(layout)
        z = _latent(layout, 2, 6).float()
        torch.testing.assert_close(loaded.infer(mel.float(), z=z), model.infer(mel.float(), z=z))


def test_config_dict_names_the_layout_only_when_it_is_not_nvidias():
    nvidia = Config(waveglow_config=TINY, data_config=TINY_DATA).to_dict()["waveglow_config"]
    assert "mel_upsampling" not in nvidia
    assert set(nvidia["WN_config"]) == {"n_layers", "n_channels", "kernel_size"}
    squeeze = Config(waveglow_config=LAYOUTS["squeeze"], data_config=TINY_DATA).to_dict()
    assert squeeze["waveglow_config"]["WN_config"]["depthwise_separable"] is True
    assert Config.from_dict(squeeze).waveglow_config == LAYOUTS["squeeze"]
    data = Config(waveglow_config=LAYOUTS["linear"], data_config=TINY_DATA).to_dict()
    assert data["waveglow_config"]["mel_upsampling"] == "linear"
    assert Config.from_dict(data).waveglow_config == LAYOUTS["linear"]
    with pytest.raises(ConfigError, match="mel_upsampling must be one of"):
        dataclasses.replace(TINY, mel_upsampling="cubic")


@pytest.mark.parametrize("name", ["nvidia", *sorted(LAYOUTS)])
def test_multiply_adds_per_sample_is_what_the_modules_compute(name):
    from torch.utils.flop_counter import FlopCounterMode

    config = TINY if name == "nvidia" else LAYOUTS[name]
    model = make_tiny(config=config).remove_weight_norm()
    frames = 10
    mel, _ = _inputs(config, batch=1, frames=frames)
    with FlopCounterMode(display=False) as counter:
        model.infer(mel.float(), precision=None)
    counted = counter.get_total_flops() / 2 / (frames * HOP)  # a multiply-add is 2 flops
    assert multiply_adds_per_sample(config, TINY_DATA) == pytest.approx(counted, rel=1e-9)


def test_separable_in_layers_have_squeezewaves_parameters_and_dense_equivalent():
    config = LAYOUTS["squeeze"]
    model = make_tiny(config=config, dtype=torch.float64)
    channels, taps = config.WN_config.n_channels, config.WN_config.kernel_size
    layer = model.WN[0].in_layers[0]
    assert layer.depthwise.weight_v.shape == (channels, 1, taps)
    assert layer.pointwise.weight_v.shape == (2 * channels, channels, 1)
    x = torch.randn(2, channels, 11, dtype=torch.float64)
    dense = torch.nn.functional.conv1d(x, layer.weight, layer.bias, padding=taps // 2)
    torch.testing.assert_close(layer(x), dense, rtol=1e-12, atol=1e-12)
    nvidia_macs = multiply_adds_per_sample(
        dataclasses.replace(config, WN_config=TINY.WN_config), TINY_DATA
    )
    assert multiply_adds_per_sample(config, TINY_DATA) < nvidia_macs
