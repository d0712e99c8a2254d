"""Training: the loss falls, exact resume, warm start, guards, signals, checkpoints, logging."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import waveglow
from conftest import NVIDIA_CONFIG, TINY, TINY_DATA, make_tiny
from corpus import run_log, tiny_config
from waveglow.config import Config, ConfigError, TrainConfig, load_config
from waveglow.train import (
    TrainingError,
    checkpoints_in,
    learning_rate_at,
    setup,
    setup_distributed,
    train,
    warm_start,
)
from waveglow.train import loop as train_loop


def _config(corpus: Path, output: Path, **train_fields) -> Config:
    return tiny_config(TINY, TINY_DATA, corpus, output, **train_fields)


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


# ---------------------------------------------------------------------------- config
def test_nvidia_config_json_loads_as_is(tmp_path):
    nvidia = copy.deepcopy(NVIDIA_CONFIG)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(nvidia))
    config = load_config(path)
    assert config.train_config.amp_precision == "fp16"  # NVIDIA's fp16_run switch
    assert config.data_config.training_files == "train_files.txt"


# ---------------------------------------------------------------------------- learning
@pytest.mark.slow
def test_loss_falls_and_validation_is_reported(corpus, tmp_path):
    output = tmp_path / "run"
    result = train(_config(corpus, output, max_iters=40, keep_checkpoints=2), progress_bar=False)
    losses = [entry["loss"] for entry in run_log(output, "step")]
    assert len(losses) == 40 and all(math.isfinite(loss) for loss in losses)
    cpu_seconds = [entry["cpu_seconds"] for entry in run_log(output, "step")]
    assert 0 < cpu_seconds[0] < cpu_seconds[-1]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.3
    validations = run_log(output, "validation")
    assert [entry["step"] for entry in validations] == [10, 20, 30, 40]
    assert validations[-1]["validation_loss"] < validations[0]["validation_loss"]
    assert result.validation_loss == validations[-1]["validation_loss"]
    for sample in validations[-1]["samples"]:
        assert waveglow.load_audio(sample)[0].size > 0
    assert [p.name for p in checkpoints_in(output)] == [
        "waveglow_00000030.pt",
        "waveglow_00000040.pt",
    ]
    assert json.loads((output / "config.json").read_text())["train_config"]["max_iters"] == 40
    split = (output / "validation_files.txt").read_text().splitlines()
    train_list = set((output / "train_files.txt").read_text().splitlines())
    assert len(split) == 2 and train_list.isdisjoint(split)


def test_training_checkpoint_is_safe_to_load_and_holds_the_run(corpus, tmp_path):
    output = tmp_path / "run"
    result = train(_config(corpus, output, max_iters=3, iters_per_checkpoint=3), progress_bar=False)
    payload = torch.load(result.last_checkpoint, weights_only=True)
    assert payload["run_config"]["train_config"]["max_iters"] == 3
    assert payload["training"]["progress"]["step"] == 3
    assert len(payload["training"]["rng"]) == 1 and payload["training"]["optimizer"]["state"]
    model = waveglow.load(result.last_checkpoint, weight_norm=True)
    for name, tensor in result.model.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name
    best = torch.load(output / "best.pt", weights_only=True)
    assert best["training"]["progress"]["best_validation_loss"] == result.best_validation_loss


@pytest.mark.parametrize("implementation", ["gemm", "conv"])
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_keeps_flow_bookkeeping_in_fp32(
    precision, implementation, corpus, tmp_path
):
    model = make_tiny()
    mel, audio = torch.randn(2, 8, 17), 0.1 * torch.randn(2, 256)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    with torch.autocast("cpu", dtype=dtype):
        z, log_det = model(mel, audio)
    assert z.dtype == torch.float32 and log_det.dtype == torch.float32
    reference_z, reference_log_det = model(mel, audio)
    torch.testing.assert_close(log_det, reference_log_det, rtol=0.05, atol=0.5)
    output = tmp_path / "run"
    config = _config(
        corpus, output, max_iters=12, precision=precision, wn_implementation=implementation
    )
    result = train(config, progress_bar=False)
    losses = [entry["loss"] for entry in run_log(output, "step")]
    assert result.skipped_steps == 0 and losses[-1] < losses[0]


def test_gemm_and_convolution_wn_train_alike_in_fp32(corpus, tmp_path):
    runs = {}
    for implementation in ("gemm", "conv"):
        output = tmp_path / implementation
        config = _config(corpus, output, max_iters=6, wn_implementation=implementation)
        runs[implementation] = train(config, progress_bar=False)
        runs[implementation].losses = [entry["loss"] for entry in run_log(output, "step")]
    assert runs["gemm"].losses == pytest.approx(runs["conv"].losses, rel=1e-4, abs=1e-5)
    for name, tensor in runs["gemm"].model.state_dict().items():
        torch.testing.assert_close(
            tensor, runs["conv"].model.state_dict()[name], rtol=1e-3, atol=1e-5
        )


# ---------------------------------------------------------------------------- resume
@pytest.mark.slow
def test_resume_continues_exactly(corpus, tmp_path):
    fields = {"iters_per_checkpoint": 3, "grad_accumulation": 2, "batch_size": 2}
    straight = train(_config(corpus, tmp_path / "a", max_iters=7, **fields), progress_bar=False)
    train(_config(corpus, tmp_path / "b", max_iters=3, **fields), progress_bar=False)
    resumed = train(
        _config(corpus, tmp_path / "b", max_iters=7, **fields), resume=True, progress_bar=False
    )
    assert resumed.step == straight.step == 7 and resumed.epoch == straight.epoch
    assert run_log(tmp_path / "b", "start")[-1]["step"] == 3
    for name, tensor in straight.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], tensor), name
    # the global RNGs saved at the end continue the uninterrupted run's too (iter(loader) once
    # drew its workers' seed from the global torch RNG after the resume had set it)
    saved = [
        torch.load(checkpoints_in(tmp_path / run)[-1], weights_only=True)["training"]["rng"][0]
        for run in ("a", "b")
    ]
    assert torch.equal(saved[0]["torch"], saved[1]["torch"])
    assert torch.equal(saved[0]["numpy"]["keys"], saved[1]["numpy"]["keys"])
    assert saved[0]["python"] == saved[1]["python"]


def test_resume_applies_a_changed_learning_rate(corpus, tmp_path):
    output = tmp_path / "run"
    fields = {"iters_per_checkpoint": 2}
    train(_config(corpus, output, max_iters=2, learning_rate=1e-3, **fields), progress_bar=False)
    same = train(
        _config(corpus, output, max_iters=3, learning_rate=1e-3, **fields),
        resume=True,
        progress_bar=False,
    )
    assert not run_log(output, "note")
    lowered = train(
        _config(corpus, output, max_iters=4, learning_rate=2.5e-4, **fields),
        resume=True,
        progress_bar=False,
    )
    assert same.step == 3 and lowered.step == 4
    (note,) = run_log(output, "note")
    assert note["step"] == 3 and "0.001" in note["message"] and "0.00025" in note["message"]
    rates = {entry["step"]: entry["learning_rate"] for entry in run_log(output, "step")}
    assert rates[3] == 1e-3 and rates[4] == 2.5e-4


def test_learning_rate_schedule_steps_down_and_survives_a_resume(corpus, tmp_path):
    assert learning_rate_at(TrainConfig(learning_rate=1e-3), 10**6) == 1e-3  # NVIDIA: constant
    schedule = {"learning_rate": 1e-3, "lr_decay_every": 2, "lr_decay": 0.5}
    output = tmp_path / "run"
    fields = {"iters_per_checkpoint": 3, **schedule}
    train(_config(corpus, output, max_iters=3, **fields), progress_bar=False)
    train(_config(corpus, output, max_iters=5, **fields), resume=True, progress_bar=False)
    rates = [entry["learning_rate"] for entry in run_log(output, "step")]
    assert rates == pytest.approx([1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4], rel=1e-12)
    assert not run_log(output, "note")  # same config: the resume changed nothing
    with pytest.raises(ConfigError, match="lr_decay"):
        TrainConfig(lr_decay=0)


def test_gradient_accumulation_equals_the_large_batch(corpus, tmp_path):
    fields = {"max_iters": 3, "iters_per_validation": 100}
    large = train(_config(corpus, tmp_path / "a", batch_size=4, **fields), progress_bar=False)
    accumulated = train(
        _config(corpus, tmp_path / "b", batch_size=2, grad_accumulation=2, **fields),
        progress_bar=False,
    )
    for name, tensor in large.model.state_dict().items():
        torch.testing.assert_close(
            accumulated.model.state_dict()[name], tensor, rtol=1e-4, atol=1e-5
        )
    losses = [[e["loss"] for e in run_log(tmp_path / run, "step")] for run in ("a", "b")]
    assert losses[0] == pytest.approx(losses[1], rel=1e-4)


def test_resume_without_checkpoint_or_from_model_only_file_is_an_error(corpus, tmp_path):
    with pytest.raises(TrainingError, match="no waveglow_"):
        train(_config(corpus, tmp_path / "empty"), resume=True, progress_bar=False)
    model_only = tmp_path / "model.pt"
    waveglow.save(make_tiny(), model_only)
    with pytest.raises(TrainingError, match="init_from"):
        train(_config(corpus, tmp_path / "run"), resume=model_only, progress_bar=False)


# ---------------------------------------------------------------------------- warm start
def test_warm_start_from_bare_state_dict_and_our_files(corpus, tmp_path):
    source = make_tiny(seed=5)
    bare = tmp_path / "nvidia_state_dict.pt"
    torch.save(source.state_dict(), bare)
    folded = tmp_path / "ours_folded.pt"
    waveglow.save(make_tiny(seed=5).remove_weight_norm(), folded)
    config = _config(corpus, tmp_path / "run", max_iters=2)
    model, _ = warm_start(bare, config)
    assert model.has_weight_norm
    for name, tensor in source.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name
    model, _ = warm_start(folded, config)  # weight norm re-created: the same weights
    audio, mel = 0.1 * torch.randn(1, 256), torch.randn(1, 8, 17)
    torch.testing.assert_close(model(mel, audio), source(mel, audio), rtol=1e-4, atol=1e-4)
    result = train(config, init_from=bare, progress_bar=False)
    assert run_log(tmp_path / "run", "start")[0]["init_from"] == str(bare)
    payload = torch.load(result.last_checkpoint, weights_only=True)
    assert int(next(iter(payload["training"]["optimizer"]["state"].values()))["step"]) == 2


def test_warm_start_from_nvidia_official_pickle(corpus, tmp_path, monkeypatch):
    from nvidia_layouts import assert_same_model, write_official_pickle

    path = tmp_path / "waveglow_580000"
    source = write_official_pickle(monkeypatch, path)  # NVIDIA's train.py dict, pickled module
    config = _config(corpus, tmp_path / "run", max_iters=1)
    model, warm_config = warm_start(path, config)
    assert warm_config.waveglow_config == source.config
    assert_same_model(source, model.eval())
    train(config, init_from=path, progress_bar=False)
    assert run_log(tmp_path / "run", "start")[0]["init_from"] == str(path)


def test_nvidia_checkpoint_path_warm_starts(corpus, tmp_path):
    bare = tmp_path / "state_dict.pt"
    torch.save(make_tiny(seed=5).state_dict(), bare)
    config = _config(corpus, tmp_path / "run", max_iters=1, checkpoint_path=str(bare))
    train(config, progress_bar=False)
    assert run_log(tmp_path / "run", "start")[0]["init_from"] == str(bare)


# ---------------------------------------------------------------------------- guards
class _PoisonedLoss:
    """nll_loss that returns NaN on the calls listed in ``bad``."""

    def __init__(self, bad: set[int]) -> None:
        self.bad, self.calls = bad, 0

    def __call__(self, *args, **kwargs) -> torch.Tensor:
        loss = train_loop.__dict__["_real_nll_loss"](*args, **kwargs)
        self.calls += 1
        return loss * math.nan if self.calls in self.bad else loss


@pytest.fixture
def poison(monkeypatch):
    def install(bad: set[int]) -> _PoisonedLoss:
        poisoned = _PoisonedLoss(bad)
        monkeypatch.setitem(train_loop.__dict__, "_real_nll_loss", train_loop.nll_loss)
        monkeypatch.setattr(train_loop, "nll_loss", poisoned)
        return poisoned

    return install


def test_non_finite_steps_are_skipped_and_counted(corpus, tmp_path, poison):
    config = _config(corpus, tmp_path / "run", max_iters=6, iters_per_validation=100)
    clean = train(config, progress_bar=False)
    poison({3, 4})
    config = _config(corpus, tmp_path / "run2", max_iters=6, iters_per_validation=100)
    poisoned = train(config, progress_bar=False)
    assert poisoned.skipped_steps == 2 and clean.skipped_steps == 0
    steps = run_log(tmp_path / "run2", "step")
    assert [entry["skipped_steps"] for entry in steps] == [0, 0, 1, 2, 2, 2]
    assert all(math.isfinite(entry["loss"]) for entry in steps[4:])
    changed = [
        not torch.equal(tensor, clean.model.state_dict()[name])
        for name, tensor in poisoned.model.state_dict().items()
    ]
    assert any(changed)  # two updates were really skipped


def test_consecutive_bad_steps_roll_back_and_stop(corpus, tmp_path, poison):
    config = _config(
        corpus, tmp_path / "run", max_iters=50, iters_per_checkpoint=4, max_bad_steps=3
    )
    poison(set(range(5, 100)))
    with pytest.raises(TrainingError, match="3 consecutive steps.*rolled back to .*00000004"):
        train(config, progress_bar=False)
    assert [p.name for p in checkpoints_in(tmp_path / "run")] == ["waveglow_00000004.pt"]
    assert run_log(tmp_path / "run", "diverged")[0]["step"] == 7


def test_gradient_clipping_bounds_the_norm(corpus, tmp_path):
    config = _config(corpus, tmp_path / "run", grad_clip_thresh=1e-3)
    trainer = setup(config, setup_distributed("cpu"), progress_bar=False)
    batch = next(iter(trainer.loader))
    train_loop._backward(trainer, batch, part=0, parts=1, spectral=False)
    norm_before = train_loop._unscale_and_clip(trainer)
    norm_after = torch.nn.utils.get_total_norm([p.grad for p in trainer.model.parameters()])
    assert norm_before > 0.01 and float(norm_after) == pytest.approx(1e-3, rel=1e-3)
    trainer.logger.close()


# ---------------------------------------------------------------------------- data problems
def test_corrupt_files_do_not_stop_training(corpus, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for path in corpus.iterdir():
        (broken / path.name).write_bytes(path.read_bytes())
    (broken / "zz_corrupt.wav").write_bytes(b"RIFF----WAVEfmt garbage" * 20)
    (broken / "zz_empty.wav").write_bytes(b"")
    config = _config(
        broken, tmp_path / "run", max_iters=8, num_workers=2, validation_size=1, batch_size=6
    )
    result = train(config, progress_bar=False)
    assert result.step == 8
    reported = [entry["problem"] for entry in run_log(tmp_path / "run", "bad_file")]
    assert len(reported) == 2 and len(set(reported)) == 2  # each reported once
    assert any("zz_corrupt.wav" in p for p in reported) and any("zz_empty" in p for p in reported)


# ---------------------------------------------------------------------------- logging
def test_tensorboard_events_are_written(corpus, tmp_path):
    pytest.importorskip("tensorboard")
    output = tmp_path / "run"
    train(_config(corpus, output, max_iters=2, with_tensorboard=True, iters_per_validation=2))
    assert list((output / "logs").glob("events.out.tfevents.*"))


# ---------------------------------------------------------------------------- processes
def _python_env() -> dict[str, str]:
    source = str(Path(waveglow.__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": source, "OMP_NUM_THREADS": "1"}


def _start(config: Config, tmp_path: Path, *options: str, launcher: tuple = ()) -> subprocess.Popen:
    """``waveglow train`` (through ``launcher``, e.g. torchrun) on ``config`` in a new process."""
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config.to_dict()))
    launcher = launcher or (sys.executable,)
    command = [*launcher, "-m", "waveglow", "train", "--config", str(config_path), "-q", *options]
    return subprocess.Popen(
        command, env=_python_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _wait_for_step(output: Path, step: int, process: subprocess.Popen, limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read()
        log = output / "log.jsonl"
        if log.exists() and any(e["step"] >= step for e in run_log(output, "step")):
            return
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"training did not reach step {step}")


def _run_to_step(
    corpus: Path, tmp_path: Path, step: int, **train_fields
) -> tuple[Path, Config, subprocess.Popen]:
    """A long ``waveglow train`` subprocess that has reached ``step``: (its output folder, its
    config, the process)."""
    output = tmp_path / "run"
    config = _config(corpus, output, max_iters=10_000, **train_fields)
    process = _start(config, tmp_path)
    _wait_for_step(output, step, process)
    return output, config, process


@pytest.mark.slow
def test_kill_9_then_resume_loses_at_most_one_interval(corpus, tmp_path):
    output, config, process = _run_to_step(corpus, tmp_path, 10, iters_per_checkpoint=4)
    process.send_signal(signal.SIGKILL)
    process.wait()
    reached = max(entry["step"] for entry in run_log(output, "step"))
    last = checkpoints_in(output)[-1]
    saved_step = int(last.stem.split("_")[1])
    assert reached - saved_step < 4 + 1  # at most one interval (plus the step in flight)
    assert waveglow.load(last).has_weight_norm is False  # the newest file is whole
    (output / f".{last.name}.abc123.tmp").write_bytes(b"half a checkpoint")
    (output / ".best.pt.def456.tmp").write_bytes(b"half a best checkpoint")
    process = _start(config, tmp_path, "--resume", "--max-iters", str(saved_step + 2))
    output_text, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output_text
    assert f"trained to step {saved_step + 2};" in output_text
    assert run_log(output, "start")[-1]["resumed_from"] == str(last)
    assert not list(output.glob(".*.tmp"))  # a killed write's leftovers are cleared


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_exits_cleanly(corpus, tmp_path):
    output, _, process = _run_to_step(corpus, tmp_path, 3, iters_per_checkpoint=1000)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0, process.stdout.read()
    stop = run_log(output, "stop")[-1]
    assert stop["stopped_by"] == "SIGTERM"
    assert checkpoints_in(output)[-1].name == f"waveglow_{stop['step']:08d}.pt"


@pytest.mark.multiprocess
@pytest.mark.slow
def test_two_process_gloo_run_matches_one_process(corpus, tmp_path):
    fields = {"max_iters": 4, "iters_per_checkpoint": 4, "iters_per_validation": 4}
    distributed = _config(corpus, tmp_path / "ddp", batch_size=2, **fields)
    launcher = (sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2")
    process = _start(distributed, tmp_path, launcher=launcher)
    single = train(_config(corpus, tmp_path / "single", batch_size=4, **fields), progress_bar=False)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 0, output
    assert output.count("trained to step 4;") == 1  # rank 0 alone reports
    assert run_log(tmp_path / "ddp", "start")[0]["world_size"] == 2
    assert len(run_log(tmp_path / "ddp", "start")) == 1  # rank 0 alone logs
    assert [e["ranks_agree"] for e in run_log(tmp_path / "ddp", "checkpoint")] == [True]
    ddp = waveglow.load(tmp_path / "ddp" / "waveglow_00000004.pt", weight_norm=True)
    for name, tensor in ddp.state_dict().items():
        torch.testing.assert_close(tensor, single.model.state_dict()[name], rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------- command line
def test_cli_train_flags_and_overrides(corpus, tmp_path, capsys):
    from waveglow.cli import main

    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(_config(corpus, tmp_path / "unused").to_dict()))
    output = tmp_path / "run"
    common = ["train", "--config", str(config_path), "-o", str(output), "-q"]
    code = main([*common, "--data", str(corpus), "--max-iters", "2", "--set", "train.seed=3"])
    assert code == 0, capsys.readouterr().err
    written = json.loads((output / "config.json").read_text())
    assert written["train_config"]["seed"] == 3 and written["train_config"]["max_iters"] == 2
    assert "trained to step 2;" in capsys.readouterr().out
    assert main(["train", "-o", str(output), "--resume", "--max-iters", "3", "-q"]) == 0
    assert run_log(output, "start")[-1]["step"] == 2
    assert main([*common, "--set", "train.no_such_key=1"]) == 1
    assert "unknown key 'no_such_key'" in capsys.readouterr().err
    assert main([*common, "--resume", "-o", str(tmp_path / "fresh")]) == 1
    assert "no waveglow_*.pt checkpoint to resume from" in capsys.readouterr().err


def test_a_destructive_learning_rate_rolls_back_to_the_last_good_checkpoint(corpus, tmp_path):
    """learning_rate=1e6: one finite but destructive step, then non-finite ones; the checkpoints
    after it are not roll back targets, and the good one survives keep_checkpoints=1."""
    output = tmp_path / "run"
    fields = {"iters_per_checkpoint": 1, "iters_per_validation": 1}
    train(_config(corpus, output, max_iters=2, **fields), progress_bar=False)
    poisoned = _config(
        corpus, output, max_iters=30, max_bad_steps=2, keep_checkpoints=1, learning_rate=1e6
    )
    poisoned = poisoned.replace(train_config=dataclasses.replace(poisoned.train_config, **fields))
    with pytest.raises(TrainingError) as caught:
        train(poisoned, resume=True, progress_bar=False)
    message = str(caught.value)
    assert "training diverged at learning rate 1e+06" in message
    assert re.search(r"rolled back to \S*waveglow_00000002\.pt \(step 2\)", message)
    assert "fp32/bf16" not in message  # this run is fp32 already
    assert [path.name for path in checkpoints_in(output)] == ["waveglow_00000002.pt"]
    assert list(output.glob("*.diverged"))
    resumed = train(_config(corpus, output, max_iters=3, **fields), resume=True, progress_bar=False)
    assert resumed.step == 3 and math.isfinite(resumed.validation_loss)


def test_resume_with_another_wn_size_names_both_and_suggests_init_from(corpus, tmp_path):
    output = tmp_path / "run"
    train(_config(corpus, output, max_iters=1, iters_per_checkpoint=1), progress_bar=False)
    wider = dataclasses.replace(TINY, WN_config=dataclasses.replace(TINY.WN_config, n_channels=16))
    config = tiny_config(wider, TINY_DATA, corpus, output, max_iters=2)
    with pytest.raises(TrainingError) as caught:
        train(config, resume=True, progress_bar=False)
    message = str(caught.value)
    assert "WN_config.n_channels 8 in the checkpoint, 16 in the config" in message
    assert "--init-from" in message


def test_a_folder_of_corrupt_files_fails_in_seconds_with_one_line(tmp_path):
    corpus = tmp_path / "corrupt"
    corpus.mkdir()
    for index in range(8):
        (corpus / f"clip_{index}.wav").write_bytes(b"RIFF" + bytes(64))
    source = str(Path(waveglow.__file__).resolve().parents[1])
    result = subprocess.run(
        [sys.executable, "-m", "waveglow", "train", "--data", str(corpus), "-o",
         str(tmp_path / "run"), "-q", "--set", "train.num_workers=2", "--set",
         "train.validation_size=1", "--set", "train.batch_size=2"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": source}, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "none of the 7 clips is usable" in lines[0]
    assert "Traceback" not in result.stderr


def test_a_worker_error_keeps_only_its_own_message():
    from waveglow.data import DataError
    from waveglow.train import worker_message

    wrapped = DataError(
        "Caught DataError in DataLoader worker process 0.\nOriginal Traceback (most recent call "
        'last):\n  File "x.py", line 1, in f\nwaveglow.data.DataError: none of the 3 clips is usable'
    )
    assert worker_message(wrapped) == "none of the 3 clips is usable"


def test_resume_of_a_finished_run_says_how_to_go_on(corpus, tmp_path):
    output = tmp_path / "run"
    train(_config(corpus, output, max_iters=1, iters_per_checkpoint=1), progress_bar=False)
    with pytest.raises(TrainingError, match=r"max_iters is 1 .*nothing to do.*--max-iters 2"):
        train(_config(corpus, output, max_iters=1), resume=True, progress_bar=False)


def test_a_run_starts_from_its_config_file_else_its_own_when_resumed_else_the_defaults(tmp_path):
    from waveglow.train import starting_config

    def config_file(path: Path, batch_size: int) -> Path:
        config = Config().replace(train_config=TrainConfig(batch_size=batch_size))
        path.write_text(json.dumps(config.to_dict()))
        return path

    config_file(tmp_path / "config.json", 3)
    given = config_file(tmp_path / "given.json", 5)
    assert starting_config(given, tmp_path, resume=True).train_config.batch_size == 5
    assert starting_config(None, tmp_path, resume=True).train_config.batch_size == 3
    assert starting_config(None, tmp_path, resume=False) == Config()
    assert starting_config(None, tmp_path / "new", resume=True) == Config()


def test_the_training_docs_figures_are_the_models_and_their_laptop_recipe_runs(
    corpus, tmp_path, capsys
):
    """docs/training.md: its parameter counts and checkpoint size are the default model's, and
    its tiny recipe trains (two steps here, on the test corpus)."""
    import shlex

    from waveglow import DataConfig, WaveGlow, WaveGlowConfig
    from waveglow.cli import main

    text = (Path(__file__).resolve().parents[1] / "docs" / "training.md").read_text()
    norm, folded = (
        WaveGlow.parameter_count(WaveGlowConfig(), DataConfig(), weight_norm=weight_norm)
        for weight_norm in (True, False)
    )
    assert f"{norm:,} parameters" in text and f"({folded:,} folded" in text
    assert f"about {norm * 12 / 1e9:.2f} GB per" in text  # weights and Adam's two moments
    recipe = re.search(r"```sh\n(waveglow train --data my_wavs/.*?)\n```", text, re.DOTALL)
    assert recipe, "no laptop recipe in docs/training.md"
    argv = shlex.split(recipe.group(1).replace("\\\n", " "))[1:]
    places = {"my_wavs/": str(corpus), "runs/tiny": str(tmp_path / "tiny")}
    argv = [places.get(argument, argument) for argument in argv]
    argv[argv.index("--max-iters") + 1] = "2"
    assert main([*argv, "-q"]) == 0, capsys.readouterr().err
    assert "trained to step 2;" in capsys.readouterr().out
