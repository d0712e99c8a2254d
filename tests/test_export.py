"""Export: the ONNX graph in ONNX Runtime and the TorchScript module match eager synthesis."""

from __future__ import annotations

import pytest
import torch

from conftest import make_tiny
from waveglow.export import example_inputs, export_onnx, export_torchscript

SHAPES = [(1, 8), (2, 13), (3, 5)]  # (batch, frames): the axes are dynamic


def test_onnx_export_runs_in_onnxruntime_and_matches_eager(tmp_path):
    pytest.importorskip("onnx", reason="ONNX export needs the onnx package (extra 'export')")
    runtime = pytest.importorskip(
        "onnxruntime", reason="running the export needs onnxruntime (extra 'export')"
    )
    model = make_tiny()
    path = export_onnx(model, tmp_path / "tiny.onnx")
    session = runtime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["mel", "z"]
    for batch, frames in SHAPES:
        mel, z = example_inputs(model, frames, batch)
        (audio,) = session.run(None, {"mel": mel.numpy(), "z": z.numpy()})
        expected = model.infer(mel, z=z)
        torch.testing.assert_close(torch.from_numpy(audio), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_torchscript_export_matches_eager_for_other_shapes(tmp_path):
    model = make_tiny()
    path = export_torchscript(model, tmp_path / "tiny.pt")
    loaded = torch.jit.load(str(path))
    for batch, frames in SHAPES:
        mel, z = example_inputs(model, frames, batch)
        torch.testing.assert_close(loaded(mel, z), model.infer(mel, z=z), rtol=1e-4, atol=1e-5)


def test_export_leaves_the_model_untouched(tmp_path):
    model = make_tiny()
    before = {name: p.clone() for name, p in model.state_dict().items()}
    export_torchscript(model, tmp_path / "tiny.pt")
    assert model.has_weight_norm
    assert all(p.requires_grad for p in model.parameters())
    for name, p in model.state_dict().items():
        assert torch.equal(p, before[name]), name


def test_gemm_onnx_export_matches_eager_fp32_for_another_batch_and_length(tmp_path):
    onnx = pytest.importorskip("onnx", reason="ONNX export needs the onnx package (extra 'export')")
    runtime = pytest.importorskip(
        "onnxruntime", reason="running the export needs onnxruntime (extra 'export')"
    )
    model = make_tiny()
    path = export_onnx(model, tmp_path / "tiny-gemm.onnx", precision="fp32")
    operators = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert "MatMul" in operators and "Conv" not in operators  # the WNs are matrix products
    session = runtime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    mel, z = example_inputs(model, frames=13, batch=2)  # the export example is (1, 8)
    (audio,) = session.run(None, {"mel": mel.numpy(), "z": z.numpy()})
    expected = model.infer(mel, z=z, precision="fp32")
    assert audio.shape == (2, 13 * model.hop_length)
    torch.testing.assert_close(torch.from_numpy(audio), expected, rtol=1e-4, atol=1e-4)
