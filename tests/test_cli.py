"""The ``waveglow`` command line end to end, in a temporary folder with a tiny model (speed options:
--precision, streaming of long inputs, export, at the end)."""

from __future__ import annotations

import errno
import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

import waveglow
from conftest import TINY_DATA, make_tiny, random_mel
from waveglow import MelSpectrogram, WaveGlow, load, load_audio, save
from waveglow.backends import resolve_precision
from waveglow.cli import main
from waveglow.export import example_inputs
from waveglow.synthesize import OUTPUT_SUFFIX

HOP = TINY_DATA.hop_length


def read_pcm(path: Path) -> np.ndarray:
    pcm, rate = soundfile.read(path, dtype="int16")
    assert rate == 22050
    return pcm


def stereo_wav(path: Path, rate: int = 16000, samples: int = 4000) -> Path:
    t = np.arange(samples) / rate
    left, right = np.sin(2 * np.pi * 220 * t), np.sin(2 * np.pi * 330 * t + 1)
    soundfile.write(path, 0.3 * np.stack([left, right], axis=1), rate, subtype="PCM_16")
    return path


def run(*args: str | Path) -> int:
    return main([str(arg) for arg in args])


def synthesize(checkpoint: Path, inputs: list[Path], out: Path, *options: str) -> int:
    """``waveglow synthesize -c CHECKPOINT INPUTS -o OUT -q OPTIONS``; its exit code."""
    return run("synthesize", "-c", checkpoint, *inputs, "-o", out, "-q", *options)


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"]


def test_synthesize_pt_npy_and_copy_synthesis(tmp_path, checkpoint, capsys):
    torch.save(random_mel(20, 0), tmp_path / "a.pt")
    np.save(tmp_path / "b.npy", random_mel(11, 1).numpy())
    wav = stereo_wav(tmp_path / "c.wav")
    out = tmp_path / "out"
    code = synthesize(checkpoint, [tmp_path / "a.pt", tmp_path / "b.npy", wav], out)
    assert code == 0
    resampled = len(load_audio(wav, 22050)[0])
    assert len(read_pcm(out / f"a{OUTPUT_SUFFIX}")) == 20 * HOP
    assert len(read_pcm(out / f"b{OUTPUT_SUFFIX}")) == 11 * HOP
    assert len(read_pcm(out / f"c{OUTPUT_SUFFIX}")) == (1 + resampled // HOP) * HOP
    summary = capsys.readouterr().out
    assert "3 of 3 file(s)" in summary and "s of audio" in summary and "kHz" in summary
    assert not leftovers(tmp_path)


def test_seed_makes_output_reproducible(tmp_path, checkpoint):
    torch.save(random_mel(15, 2), tmp_path / "m.pt")
    outputs = {}
    for name, seed in [("one", "4"), ("two", "4"), ("three", "5")]:
        assert synthesize(checkpoint, [tmp_path / "m.pt"], tmp_path / name, "--seed", seed) == 0
        outputs[name] = read_pcm(tmp_path / name / f"m{OUTPUT_SUFFIX}")
    np.testing.assert_array_equal(outputs["one"], outputs["two"])
    assert np.abs(outputs["one"].astype(int) - outputs["three"]).max() > 100


def test_batch_size_two_equals_batch_size_one(tmp_path, checkpoint):
    lengths = [30, 17, 24]
    inputs = []
    for index, frames in enumerate(lengths):
        torch.save(random_mel(frames, 10 + index), tmp_path / f"u{index}.pt")
        inputs.append(tmp_path / f"u{index}.pt")
    for batch in ("1", "2"):
        code = synthesize(
            checkpoint, inputs, tmp_path / batch, "--seed", "3", "--batch-size", batch
        )
        assert code == 0
    for index, frames in enumerate(lengths):
        single = read_pcm(tmp_path / "1" / f"u{index}{OUTPUT_SUFFIX}").astype(int)
        batched = read_pcm(tmp_path / "2" / f"u{index}{OUTPUT_SUFFIX}").astype(int)
        assert len(single) == len(batched) == frames * HOP
        # within a batch u0 (30 frames) pads u1 (whole file compared); u2 is alone in batch two
        assert np.abs(single - batched).max() <= 1  # int16 rounding at most


def test_denoise_option_changes_output(tmp_path, checkpoint):
    torch.save(random_mel(25, 3), tmp_path / "m.pt")
    for name, strength in [("plain", "0"), ("denoised", "0.5")]:
        synthesize(
            checkpoint, [tmp_path / "m.pt"], tmp_path / name, "--seed", "1", "--denoise", strength
        )
    plain = read_pcm(tmp_path / "plain" / f"m{OUTPUT_SUFFIX}").astype(int)
    denoised = read_pcm(tmp_path / "denoised" / f"m{OUTPUT_SUFFIX}").astype(int)
    assert len(plain) == len(denoised) and np.abs(plain - denoised).max() > 10


def test_bad_inputs_one_line_each_good_files_written(tmp_path, checkpoint, capsys):
    torch.save(random_mel(12, 4), tmp_path / "good.pt")
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "corrupt.pt").write_bytes(b"this is not a tensor" * 3)
    torch.save(random_mel(12, 5, bins=80), tmp_path / "channels.pt")
    np.save(tmp_path / "nan.npy", np.full((8, 6), np.nan, dtype=np.float32))
    stereo_wav(tmp_path / "also_good.wav")
    bad = ["missing.npy", "empty.wav", "corrupt.pt", "channels.pt", "nan.npy"]
    inputs = [tmp_path / name for name in ["good.pt", *bad, "also_good.wav"]]
    code = synthesize(checkpoint, inputs, tmp_path / "out", "--batch-size", "2")
    assert code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == len(bad)
    for name, line in zip(bad, lines, strict=True):
        assert line.startswith(f"waveglow: error: {tmp_path / name}: ")
    assert "Traceback" not in "".join(lines)
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == [f"also_good{OUTPUT_SUFFIX}", f"good{OUTPUT_SUFFIX}"]
    assert not leftovers(tmp_path)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (
            ["synthesize", "-c", "{tmp}/nothing.pt", "{tmp}/m.pt", "-o", "{tmp}/o"],
            "nothing.pt: no such file",
        ),
        (["synthesize", "-c", "{tmp}/m.pt", "{tmp}/m.pt", "-o", "{tmp}/o"], "m.pt: "),
        (["info", "{tmp}/m.pt"], "m.pt: "),
        (["mel", "{tmp}/x.wav", "-o", "{tmp}/o", "--config", "{tmp}/bad.json"], "bad.json: "),
        (["bench", "-c", "{tmp}/nothing.pt"], "nothing.pt: no such file"),
    ],
)
def test_expected_errors_are_one_line_exit_1(tmp_path, capsys, args, needle):
    torch.save(random_mel(5, 0), tmp_path / "m.pt")  # a mel, not a checkpoint
    (tmp_path / "bad.json").write_text('{"data_config": {"hop_lenght": 256}}')
    assert run(*[arg.format(tmp=tmp_path) for arg in args]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("waveglow: error: ") and needle in error


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_a_clear_error(tmp_path, checkpoint, capsys):
    torch.save(random_mel(5, 0), tmp_path / "m.pt")
    assert (
        run("synthesize", "-c", checkpoint, tmp_path / "m.pt", "-o", tmp_path, "--device", "cuda")
        == 1
    )
    assert "CUDA is not available" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys):
    assert run("synthesize", "--sigma", "-1", "x.pt", "-o", "o", "-c", "c.pt") == 2
    assert run("frobnicate") == 2
    assert run() == 2
    assert "usage:" in capsys.readouterr().err


def test_version_and_help(capsys):
    assert run("--version") == 0
    assert capsys.readouterr().out.strip() == f"waveglow {waveglow.__version__}"
    for command in ("synthesize", "mel", "convert", "info", "bench"):
        assert run(command, "--help") == 0
        assert "example" in capsys.readouterr().out


@pytest.mark.parametrize("fmt", ["pt", "npy"])
def test_mel_command_matches_mel_spectrogram(tmp_path, capsys, fmt):
    wav = stereo_wav(tmp_path / "voice.wav", rate=44100, samples=9000)
    assert run("mel", wav, "-o", tmp_path / "mels", "--format", fmt, "-q") == 0
    path = tmp_path / "mels" / f"voice.{fmt}"
    mel = torch.load(path, weights_only=True) if fmt == "pt" else torch.from_numpy(np.load(path))
    expected = MelSpectrogram()(torch.from_numpy(load_audio(wav, 22050)[0]))
    assert mel.dtype == torch.float32 and mel.shape[0] == 80
    torch.testing.assert_close(mel, expected, rtol=0, atol=0)
    assert "wrote 1 of 1" in capsys.readouterr().out


def test_mel_command_with_nvidia_config(tmp_path):
    config = waveglow.Config(waveglow_config=make_tiny().config, data_config=TINY_DATA)
    (tmp_path / "config.json").write_text(__import__("json").dumps(config.to_dict()))
    wav = stereo_wav(tmp_path / "v.wav")
    assert run("mel", wav, "-o", tmp_path, "--config", tmp_path / "config.json", "-q") == 0
    mel = torch.load(tmp_path / "v.pt", weights_only=True)
    expected = MelSpectrogram(TINY_DATA, 8)(torch.from_numpy(load_audio(wav, 22050)[0]))
    torch.testing.assert_close(mel, expected, rtol=0, atol=0)


def test_info_and_convert(tmp_path, checkpoint, capsys):
    assert run("info", checkpoint) == 0
    text = capsys.readouterr().out
    model = make_tiny()
    assert "layout:      waveglow" in text
    assert f"parameters:  {sum(p.numel() for p in model.parameters()):,}" in text
    assert '"n_mel_channels": 8' in text
    assert run("convert", checkpoint, tmp_path / "converted.safetensors") == 0
    converted = load(tmp_path / "converted.safetensors")
    mel = random_mel(6, 0)[None]
    with torch.no_grad():
        expected = load(checkpoint).infer(mel, sigma=0.0)
        torch.testing.assert_close(converted.infer(mel, sigma=0.0), expected)


def _subprocess_env() -> dict[str, str]:
    source = str(Path(waveglow.__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": source}


def test_entry_point_help_subprocess():
    result = subprocess.run(
        [sys.executable, "-m", "waveglow", "--help"],
        capture_output=True,
        text=True,
        env=_subprocess_env(),
        timeout=120,
    )
    assert result.returncode == 0
    assert all(name in result.stdout for name in ("synthesize", "mel", "convert", "info"))


def test_entry_point_synthesize_subprocess(tmp_path, checkpoint):
    torch.save(random_mel(9, 0), tmp_path / "m.pt")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "waveglow",
            "synthesize",
            "-c",
            str(checkpoint),
            str(tmp_path / "m.pt"),
            str(tmp_path / "missing.pt"),
            "-o",
            str(tmp_path / "out"),
            "--seed",
            "0",
        ],
        capture_output=True,
        text=True,
        env=_subprocess_env(),
        timeout=120,
    )
    assert result.returncode == 1
    assert f"waveglow: error: {tmp_path / 'missing.pt'}: no such file" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(read_pcm(tmp_path / "out" / f"m{OUTPUT_SUFFIX}")) == 9 * HOP


def test_evaluate_command_writes_the_report(tmp_path, checkpoint, capsys):
    pytest.importorskip("pesq", reason="the eval extra is not installed")
    pytest.importorskip("pystoi", reason="the eval extra is not installed")
    clip = tmp_path / "clip.wav"
    t = np.arange(11025) / 22050
    soundfile.write(clip, 0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(6 * t)), 22050)
    out = tmp_path / "eval"
    code = run(
        "evaluate", "-c", checkpoint, clip, "-o", out, "--baseline", "none", "--no-dnsmos", "-q"
    )
    assert code == 0
    assert (out / "metrics.csv").is_file() and (out / "summary.json").is_file()
    assert "waveglow" in capsys.readouterr().out
    assert run("evaluate", "-c", tmp_path / "missing.pt", clip, "-o", out, "-q") == 1


# ---------------------------------------------------------------------------- bench
def precision_lines(output: str) -> list[str]:
    pattern = re.compile(r"^ *(fp32|bf16|fp16|auto=(fp32|bf16|fp16)): ")
    return [line.strip() for line in output.splitlines() if pattern.match(line)]


def test_bench_prints_the_machine_and_one_line_per_precision(checkpoint, capsys):
    code = run("bench", "-c", checkpoint, "--seconds", "0.1", "--repeat", "1",
               "--precisions", "fp32,auto,fp32", "--threads", "1")  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith(f"torch {torch.__version__}, device cpu, 1 CPU threads")
    lines = precision_lines(out)
    assert len(lines) == 2, out
    assert lines[0].startswith("fp32: ") and lines[1].startswith("auto=")
    assert all("kHz" in line and "x real time" in line for line in lines)
    assert "0.10 s of audio" in lines[0]


def test_bench_skips_bf16_without_hardware_unless_asked(checkpoint, capsys, monkeypatch):
    monkeypatch.setattr("waveglow.benchmark.cpu_has_bf16_matmul", lambda: False)
    monkeypatch.setattr("waveglow.backends.cpu_has_bf16_matmul", lambda: False)
    assert run("bench", "-c", checkpoint, "--seconds", "0.05", "--repeat", "1") == 0
    captured = capsys.readouterr()
    lines = precision_lines(captured.out)
    assert [line.split(":")[0] for line in lines] == ["bf16", "fp32", "auto=fp32"]
    assert "skipped" in lines[0] and "--precisions bf16" in lines[0]
    assert captured.err == ""
    assert run("bench", "-c", checkpoint, "--seconds", "0.05", "--repeat", "1",
               "--precisions", "bf16") == 0  # fmt: skip
    captured = capsys.readouterr()
    assert captured.err.startswith("waveglow: warning: bf16") and "emulates" in captured.err
    (line,) = precision_lines(captured.out)
    assert line.startswith("bf16: ") and "kHz" in line


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--precisions", "fp32,fp8"], "unknown precision fp8"),
        (["--precisions", ","], "unknown precision"),
        (["--seconds", "0"], "must be > 0"),
        (["--seconds", "inf"], "not a finite number"),
    ],
)
def test_bench_usage_errors_are_one_line_exit_2(checkpoint, capsys, args, needle):
    assert run("bench", "-c", checkpoint, *args) == 2
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if "error" in line]
    assert len(errors) == 1 and needle in errors[0] and captured.out == ""


def test_out_of_range_input_is_one_warning_line(tmp_path, checkpoint, capsys):
    np.save(tmp_path / "absurd.npy", np.full((8, 6), 1e30, dtype=np.float32))
    assert synthesize(checkpoint, [tmp_path / "absurd.npy"], tmp_path) == 0
    error = capsys.readouterr().err
    assert error.startswith(f"waveglow: warning: {tmp_path / 'absurd.npy'}: the mel's values")
    assert error.count("\n") == 1


_SIGTERM_AFTER_WRITING = """
import os, signal, sys
import soundfile
from waveglow.cli import main
from waveglow.export import example_inputs

real_write = soundfile.write


def write(*args, **kwargs):  # the wav is written, not yet renamed: a SIGTERM arrives
    real_write(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGTERM)


soundfile.write = write
sys.exit(main(sys.argv[1:]))
"""


def test_sigterm_during_synthesis_leaves_no_temporary_file(tmp_path, checkpoint):
    torch.save(random_mel(9, 0), tmp_path / "m.pt")
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-c", _SIGTERM_AFTER_WRITING, "synthesize", "-c", str(checkpoint),
         str(tmp_path / "m.pt"), "-o", str(out), "-q"],
        capture_output=True, text=True, env=_subprocess_env(), timeout=120,
    )  # fmt: skip
    assert result.returncode == 143
    assert result.stderr.strip() == "waveglow: error: terminated (SIGTERM)"
    assert list(out.iterdir()) == []


@pytest.mark.parametrize(
    "failure",
    [
        lambda: OSError(errno.ENOSPC, "No space left on device"),
        lambda: soundfile.LibsndfileError(2, "Error writing: "),  # what soundfile raises then
    ],
    ids=["oserror", "libsndfile"],
)
def test_a_full_disk_fails_that_file_and_the_batch_goes_on(
    tmp_path, checkpoint, capsys, monkeypatch, failure
):
    from waveglow import audio

    inputs = []
    for index in range(3):
        inputs.append(tmp_path / f"m{index}.pt")
        torch.save(random_mel(6, index), inputs[-1])
    real_write, calls = soundfile.write, []

    def write(path, *args, **kwargs):
        calls.append(path)
        real_write(path, *args, **kwargs)
        if len(calls) == 2:
            raise failure()

    monkeypatch.setattr(audio.soundfile, "write", write)
    out = tmp_path / "out"
    assert synthesize(checkpoint, inputs, out) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"waveglow: error: {out / f'm1{OUTPUT_SUFFIX}'}: cannot write (")
    assert sorted(p.name for p in out.iterdir()) == [f"m0{OUTPUT_SUFFIX}", f"m2{OUTPUT_SUFFIX}"]


def test_evaluate_scores_the_readable_clips_and_lists_the_others(tmp_path, checkpoint, capsys):
    pytest.importorskip("pesq", reason="the eval extra is not installed")
    pytest.importorskip("pystoi", reason="the eval extra is not installed")
    t = np.arange(11025) / 22050
    soundfile.write(tmp_path / "good.wav", 0.3 * np.sin(2 * np.pi * 180 * t), 22050)
    soundfile.write(tmp_path / "short.wav", np.zeros(100), 22050)
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF nothing else")
    inputs = [tmp_path / name for name in ("corrupt.wav", "good.wav", "short.wav")]
    out = tmp_path / "eval"
    code = run("evaluate", "-c", checkpoint, *inputs, "-o", out, "--baseline", "none",
               "--no-dnsmos", "-q")  # fmt: skip
    assert code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert [line.split(": ")[2] for line in lines] == [
        str(tmp_path / "corrupt.wav"),
        str(tmp_path / "short.wav"),
    ]
    import json

    summary = json.loads((out / "summary.json").read_text())
    assert summary["clips"] == ["good"]
    assert [failure["file"] for failure in summary["failures"]] == [str(p) for p in inputs[::2]]
    assert "2 file(s) could not be scored" in (out / "report.md").read_text()


def test_a_closed_stdout_ends_quietly(checkpoint):
    read_end, write_end = os.pipe()
    os.close(read_end)  # like `| head -1` having exited: every write fails with EPIPE
    try:
        result = subprocess.run(
            [sys.executable, "-m", "waveglow", "info", str(checkpoint)],
            stdout=write_end, stderr=subprocess.PIPE, text=True, env=_subprocess_env(),
            timeout=120,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert (result.returncode, result.stderr) == (0, "")


def test_info_of_a_model_file_shows_no_machine_path_nor_training_defaults(tmp_path, capsys):
    import dataclasses

    model = make_tiny()
    model.data_config = dataclasses.replace(model.data_config, training_files="/home/me/lj.txt")
    path = save(model, tmp_path / "model.safetensors")
    assert run("info", path) == 0
    out = capsys.readouterr().out
    assert "/home/me" not in out and "learning_rate" not in out and "train_config" not in out
    assert '"n_mel_channels": 8' in out


def test_convert_help_names_the_published_file(capsys):
    assert run("convert", "--help") == 0
    out = capsys.readouterr().out
    assert "waveglow_256channels_universal_v5.pt" in out and "universe" not in out


def test_init_from_with_an_architecture_set_warns(tmp_path, checkpoint, capsys, monkeypatch):
    from waveglow import train as train_module

    def stop(*_args, **_kwargs):
        raise train_module.TrainingError("stopped here")

    monkeypatch.setattr(train_module, "train", stop)
    code = run("train", "--init-from", checkpoint, "-o", tmp_path / "run", "--data", tmp_path,
               "--set", "waveglow.WN.n_channels=16", "--set", "train.batch_size=2")  # fmt: skip
    assert code == 1
    error = capsys.readouterr().err
    assert "warning: --set waveglow.WN.n_channels: not used: --init-from" in error
    assert "batch_size" not in error


def test_the_bundled_model_carries_no_machine_path_and_its_true_training(capsys):
    assert run("info", "demo") == 0
    out = capsys.readouterr().out
    assert "training_files" not in out and "/work/" not in out.replace("src/waveglow", "")
    trained = json.loads(out.split("trained:\n", 1)[1].split("\nconfig:", 1)[0])
    card = (Path(waveglow.__file__).parent / "models" / "MODEL_CARD.md").read_text()
    assert f"({trained['steps']} steps)" in card  # the file and its card tell one story
    assert f"STOI {trained['held_out']['stoi']:.3f}" in card


# ---------------------------------------------------------------------------- speed options
def _mel_file(folder: Path, frames: int, seed: int = 0) -> Path:
    torch.save(random_mel(frames, seed), folder / "long.pt")
    return folder / "long.pt"


def _synthesize(checkpoint: Path, mel: Path, out: Path, *extra: str) -> np.ndarray:
    assert synthesize(checkpoint, [mel], out, "--seed", "4", *extra) == 0
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
def test_precision_option(tmp_path, checkpoint, precision, monkeypatch):
    mel = _mel_file(tmp_path, 12)
    reference = _synthesize(checkpoint, mel, tmp_path / "default")
    received: list[str] = []
    decode = WaveGlow.decode

    def recording_decode(*args, **kwargs):
        received.append(inspect.signature(decode).bind(*args, **kwargs).arguments["precision"])
        return decode(*args, **kwargs)

    monkeypatch.setattr(WaveGlow, "decode", recording_decode)
    other = _synthesize(checkpoint, mel, tmp_path / precision, "--precision", precision)
    assert received and set(received) == {precision}  # the option reached the model as given
    difference = np.abs(other - reference).max()
    assert difference <= 0.01 * np.abs(reference).max()
    if resolve_precision(precision) != torch.float32:
        assert difference > 0  # and changed its arithmetic (the default is fp32)


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
