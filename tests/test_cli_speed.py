"""The command line's speed features: --precision, streaming of long inputs, export."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

import waveglow
from conftest import TINY_DATA, make_tiny
from waveglow import save
from waveglow.cli import main
from waveglow.export import example_inputs
from waveglow.synthesize import OUTPUT_SUFFIX


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    return save(make_tiny(), tmp_path / "tiny.pt")


def _mel_file(folder: Path, frames: int, seed: int = 0) -> Path:
    mel = torch.randn(8, frames, generator=torch.Generator().manual_seed(seed)) * 2 - 5
    torch.save(mel, folder / "long.pt")
    return folder / "long.pt"


def _synthesize(checkpoint: Path, mel: Path, out: Path, *extra: str) -> np.ndarray:
    code = main(["synthesize", "-c", str(checkpoint), str(mel), "-o", str(out), "--seed", "4",
                 "-q", *extra])  # fmt: skip
    assert code == 0
    pcm, _ = soundfile.read(out / f"long{OUTPUT_SUFFIX}", dtype="int16")
    return pcm.astype(int)


def test_long_input_is_streamed_in_chunks_to_the_same_audio(tmp_path, checkpoint):
    mel = _mel_file(tmp_path, 41)
    whole = _synthesize(checkpoint, mel, tmp_path / "whole")
    streamed = _synthesize(checkpoint, mel, tmp_path / "chunks", "--chunk-frames", "6")
    assert len(streamed) == len(whole) == 41 * TINY_DATA.hop_length
    assert np.abs(streamed - whole).max() <= 1  # int16 rounding at most
    assert sorted(p.name for p in (tmp_path / "chunks").iterdir()) == [f"long{OUTPUT_SUFFIX}"]


@pytest.mark.parametrize("precision", ["bf16", "auto", "fp32"])
def test_precision_option(tmp_path, checkpoint, precision):
    mel = _mel_file(tmp_path, 12)
    reference = _synthesize(checkpoint, mel, tmp_path / "fp32")
    other = _synthesize(checkpoint, mel, tmp_path / precision, "--precision", precision)
    difference = np.abs(other - reference).max()
    assert difference <= 0.01 * np.abs(reference).max()
    if precision == "bf16":
        assert difference > 0  # the option reached the model


def test_unknown_precision_is_a_usage_error(tmp_path, checkpoint, capsys):
    code = main(["synthesize", "-c", str(checkpoint), "x.pt", "-o", str(tmp_path),
                 "--precision", "int8"])  # fmt: skip
    assert code == 2
    assert "--precision" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_export_torchscript_command(tmp_path, checkpoint, capsys):
    out = tmp_path / "tiny.ts"
    assert main(["export", "--format", "torchscript", str(checkpoint), str(out)]) == 0
    assert "exported" in capsys.readouterr().out
    model = waveglow.load(checkpoint)
    mel, z = example_inputs(model, 9, 2)
    torch.testing.assert_close(torch.jit.load(str(out))(mel, z), model.infer(mel, z=z))


def test_export_onnx_command_subprocess(tmp_path, checkpoint):
    pytest.importorskip("onnx", reason="ONNX export needs the onnx package (extra 'export')")
    runtime = pytest.importorskip("onnxruntime", reason="needs onnxruntime (extra 'export')")
    out = tmp_path / "tiny.onnx"
    env = {**os.environ, "PYTHONPATH": str(Path(waveglow.__file__).parents[1])}
    result = subprocess.run(
        [sys.executable, "-m", "waveglow", "export", str(checkpoint), str(out)],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    model = waveglow.load(checkpoint)
    mel, z = example_inputs(model, 7, 1)
    session = runtime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (audio,) = session.run(None, {"mel": mel.numpy(), "z": z.numpy()})
    torch.testing.assert_close(torch.from_numpy(audio), model.infer(mel, z=z), rtol=1e-4, atol=1e-4)


def test_export_of_a_missing_checkpoint_is_one_line(tmp_path, capsys):
    assert main(["export", str(tmp_path / "missing.pt"), str(tmp_path / "x.onnx")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("waveglow: error:") and "missing.pt" in err and "\n" not in err
    assert not (tmp_path / "x.onnx").exists()
