"""The optional post-filter (``postfilter_config``): a WN at the sample rate behind the flow.

It is identity until trained, outside the likelihood, and every synthesis path holds for it:
chunked = whole (its reach counted in the context), padded batch = each item alone, GEMM =
convolutions, ONNX export, checkpoints, the denoiser; a warm start adds one to a flow without."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from conftest import TINY, TINY_DATA, make_tiny
from waveglow import Config, Denoiser, WaveGlow, WaveGlowConfig, WNConfig, load, save
from waveglow.model import context_frames, multiply_adds_per_sample, postfilter_reach

POSTFILTER = WNConfig(n_layers=3, n_channels=4, kernel_size=3, dilation_base=3)
LAYOUTS = {
    "linear": dataclasses.replace(TINY, mel_upsampling="linear", postfilter_config=POSTFILTER),
    "upsampler": dataclasses.replace(TINY, postfilter_config=POSTFILTER),
}
HOP = TINY_DATA.hop_length


@pytest.fixture(params=sorted(LAYOUTS))
def layout(request) -> WaveGlowConfig:
    return LAYOUTS[request.param]


def _inputs(config: WaveGlowConfig, batch: int, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    mel = torch.randn(batch, config.n_mel_channels, frames, generator=generator).double()
    steps = frames * HOP // config.n_group
    z = torch.randn(batch, config.n_group, steps, generator=generator).double() * 0.6
    return mel, z


def _without_postfilter(model: WaveGlow) -> WaveGlow:
    config = dataclasses.replace(model.config, postfilter_config=None)
    flow = WaveGlow(config, model.data_config).to(next(model.parameters()).dtype)
    if not model.has_weight_norm:
        flow.remove_weight_norm()
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("postfilter.")}
    flow.load_state_dict(state)
    return flow


def test_a_fresh_postfilter_is_identity_and_a_trained_one_is_not(layout):
    fresh = make_tiny(config=layout, dtype=torch.float64, active=False)
    with torch.no_grad():
        for wn in fresh.WN:  # an active flow, an untrained post-filter
            wn.end.weight.normal_(0, 0.1)
    mel, z = _inputs(layout, 1, 9)
    flow_only = _without_postfilter(fresh).infer(mel, z=z)
    torch.testing.assert_close(fresh.infer(mel, z=z), flow_only, rtol=0, atol=0)
    trained = make_tiny(config=layout, dtype=torch.float64)
    assert (
        trained.infer(mel, z=z) - _without_postfilter(trained).infer(mel, z=z)
    ).abs().max() > 1e-3


def test_the_likelihood_never_sees_the_postfilter(layout):
    model = make_tiny(config=layout, dtype=torch.float64)
    mel, _ = _inputs(layout, 2, 6)
    audio = torch.randn(2, 6 * HOP, dtype=torch.float64) * 0.3
    z, log_det = model(mel, audio)
    z_flow, log_det_flow = _without_postfilter(model)(mel, audio)
    torch.testing.assert_close(z, z_flow, rtol=0, atol=0)
    torch.testing.assert_close(log_det, log_det_flow, rtol=0, atol=0)


@pytest.mark.parametrize("chunk_frames", [1, 3, 7])
def test_chunks_join_into_the_whole_utterance(layout, chunk_frames):
    model = make_tiny(config=layout, dtype=torch.float64).remove_weight_norm()
    mel, z = _inputs(layout, 1, 17)
    whole = model.infer(mel, z=z)
    joined = torch.cat(list(model.infer_chunks(mel, chunk_frames, z=z)), dim=1)
    torch.testing.assert_close(joined, whole, rtol=0, atol=1e-12)


def test_the_context_counts_the_postfilters_reach(monkeypatch):
    assert postfilter_reach(LAYOUTS["linear"]) == 1 + 3 + 9
    wide = dataclasses.replace(POSTFILTER, dilation_base=5)  # reaches 31 samples, ~2 frames
    layout = dataclasses.replace(LAYOUTS["linear"], postfilter_config=wide)
    without = context_frames(dataclasses.replace(layout, postfilter_config=None), TINY_DATA)
    assert context_frames(layout, TINY_DATA) > without
    model = make_tiny(config=layout, dtype=torch.float64).remove_weight_norm()
    mel, z = _inputs(layout, 1, 17)
    whole = model.infer(mel, z=z)
    monkeypatch.setattr("waveglow.model.context_frames", lambda config, data: without)
    joined = torch.cat(list(model.infer_chunks(mel, 2, z=z)), dim=1)
    assert (joined - whole).abs().max() > 1e-10  # the flow's context alone is not enough


@pytest.mark.parametrize("precision", [None, "fp32"], ids=["conv", "gemm"])
def test_padded_batch_items_equal_each_alone(layout, precision):
    model = make_tiny(config=layout, dtype=torch.float64)
    mel, z = _inputs(layout, 2, 9)
    mel[0, :, 4:] = -11.5  # padding of another value than the item's own last frame
    lengths = [4, 9]
    batched = model.infer(mel, z=z, precision=precision, lengths=lengths)
    for item, frames in enumerate(lengths):
        steps = frames * HOP // layout.n_group
        alone = model.infer(mel[item : item + 1, :, :frames], z=z[item : item + 1, :, :steps])
        torch.testing.assert_close(
            batched[item : item + 1, : frames * HOP], alone, rtol=1e-10, atol=1e-10
        )


def test_gemm_equals_convolutions_with_gradients(layout):
    model = make_tiny(config=layout, dtype=torch.float64)
    mel, z = _inputs(layout, 2, 6)
    outputs, grads = [], []
    for backend in ("conv", "gemm"):
        model.zero_grad()
        audio = model.decode(mel, z, "fp32", backend=backend, differentiable=True)
        audio.square().sum().backward()
        outputs.append(audio.detach())
        grads.append({n: p.grad.clone() for n, p in model.postfilter.named_parameters()})
    torch.testing.assert_close(outputs[0], outputs[1], rtol=1e-9, atol=1e-10)
    for name, conv in grads[0].items():
        torch.testing.assert_close(grads[1][name], conv, rtol=1e-7, atol=1e-9)
    # all but start.weight_v: a one-input weight-normed 1x1 convolution has no direction to learn
    assert [name for name, grad in grads[0].items() if not grad.abs().sum() > 0] == [
        "start.weight_v"
    ]


def test_onnx_export_matches_eager(tmp_path):
    pytest.importorskip("onnx", reason="ONNX export needs the onnx package (extra 'export')")
    runtime = pytest.importorskip("onnxruntime", reason="needs onnxruntime (extra 'export')")
    from waveglow.export import example_inputs, export_onnx

    model = make_tiny(config=LAYOUTS["linear"])
    session = runtime.InferenceSession(
        str(export_onnx(model, tmp_path / "postfilter.onnx")), providers=["CPUExecutionProvider"]
    )
    for batch, frames in [(1, 8), (2, 13)]:
        mel, z = example_inputs(model, frames, batch)
        (audio,) = session.run(None, {"mel": mel.numpy(), "z": z.numpy()})
        torch.testing.assert_close(
            torch.from_numpy(audio), model.infer(mel, z=z), rtol=1e-4, atol=1e-4
        )


def test_checkpoints_keep_the_postfilter_and_nvidias_config_has_none(layout, tmp_path):
    model = make_tiny(config=layout).remove_weight_norm()
    mel, z = (tensor.float() for tensor in _inputs(layout, 2, 6))
    for name in ("post.pt", "post.safetensors"):
        loaded = load(save(model, tmp_path / name))
        assert loaded.config == layout
        torch.testing.assert_close(loaded.infer(mel, z=z), model.infer(mel, z=z))
    data = Config(waveglow_config=layout, data_config=TINY_DATA).to_dict()
    assert Config.from_dict(data).waveglow_config == layout
    plain = Config(waveglow_config=TINY, data_config=TINY_DATA).to_dict()["waveglow_config"]
    assert "postfilter_config" not in plain


@pytest.mark.parametrize("weight_norm", [True, False])
def test_parameters_and_multiply_adds_are_counted(layout, weight_norm):
    from torch.utils.flop_counter import FlopCounterMode

    model = make_tiny(config=layout)
    if not weight_norm:
        model.remove_weight_norm()
    counted = sum(p.numel() for p in model.parameters())
    assert WaveGlow.parameter_count(layout, TINY_DATA, weight_norm) == counted
    mel, _ = _inputs(layout, 1, 10)
    with FlopCounterMode(display=False) as counter:
        model.infer(mel.float(), precision=None)
    per_sample = counter.get_total_flops() / 2 / (10 * HOP)
    assert multiply_adds_per_sample(layout, TINY_DATA) == pytest.approx(per_sample, rel=1e-9)


def test_with_postfilter_adds_an_identity_behind_the_same_flow():
    flow = make_tiny(config=dataclasses.replace(LAYOUTS["linear"], postfilter_config=None))
    extended = flow.with_postfilter(POSTFILTER)
    assert extended.config.postfilter_config == POSTFILTER and extended.has_weight_norm
    mel, z = (tensor.float() for tensor in _inputs(extended.config, 1, 7))
    torch.testing.assert_close(extended.infer(mel, z=z), flow.infer(mel, z=z), rtol=0, atol=0)


def test_the_denoiser_runs_on_a_model_with_a_postfilter():
    model = make_tiny(config=LAYOUTS["linear"])
    mel, z = (tensor.float() for tensor in _inputs(model.config, 1, 40))
    audio = model.infer(mel, z=z)
    denoised = Denoiser(model)(audio, strength=0.1)
    assert denoised.shape == audio.shape and bool(torch.isfinite(denoised).all())
    assert not torch.equal(denoised, audio)


def test_the_service_synthesizes_a_postfilter_model_in_batches_exactly():
    from waveglow.noise import block_noise
    from waveglow.serve.engine import Job, synthesize_rows

    model = make_tiny(config=LAYOUTS["linear"]).remove_weight_norm()
    generator = torch.Generator().manual_seed(5)
    jobs = []
    for frames, seed in ((23, 1), (9, 2)):
        mel = torch.randn(model.config.n_mel_channels, frames, generator=generator)
        job = Job(mel, seed, 0.6, 0.0, False, sink=None)
        job.windows = model.chunk_windows(frames, 4)
        jobs.append(job)
    rows = [(job, index) for job in jobs for index in range(len(job.windows))]
    chunks = iter(synthesize_rows(model, rows, "fp32"))
    for job in jobs:
        frames = job.mel.size(1)
        served = torch.cat([next(chunks) for _ in job.windows])
        z = block_noise(job.seed, (1, model.n_group), 0, frames, HOP, job.sigma)
        alone = model.infer(job.mel[None], z=z)[0]
        torch.testing.assert_close(served, alone, rtol=1e-5, atol=1e-5)
