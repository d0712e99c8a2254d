"""The moving average of the weights (waveglow.train.average): its formula, training left as it
was, an exact resume, and the model file ``waveglow convert --averaged`` makes of it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import waveglow
from conftest import TINY, TINY_DATA
from corpus import run_log, tiny_config
from waveglow.checkpoint import AVERAGE_KEY, CheckpointError, read_checkpoint
from waveglow.cli import main
from waveglow.config import ConfigError, TrainConfig
from waveglow.train import checkpoints_in, train

DECAY = 0.75


def _config(corpus: Path, output: Path, **train_fields):
    fields = {"iters_per_checkpoint": 1, "keep_checkpoints": 10, **train_fields}
    return tiny_config(TINY, TINY_DATA, corpus, output, **fields)


def _saved(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None]:
    """(weights, average) of a training checkpoint, as stored."""
    payload = torch.load(path, weights_only=True)
    return payload["state_dict"], payload.get(AVERAGE_KEY)


def test_the_average_follows_its_formula_and_leaves_training_as_it_was(corpus, tmp_path):
    averaged = train(
        _config(corpus, tmp_path / "ema", max_iters=3, ema_decay=DECAY), progress_bar=False
    )
    plain = train(_config(corpus, tmp_path / "plain", max_iters=3), progress_bar=False)
    for name, tensor in plain.model.state_dict().items():  # the optimizer saw the same weights
        assert torch.equal(averaged.model.state_dict()[name], tensor), name
    steps = [_saved(path) for path in checkpoints_in(tmp_path / "ema")]
    assert len(steps) == 3 and all(_saved(p)[1] is None for p in checkpoints_in(tmp_path / "plain"))
    (weights_1, average_1), (weights_2, average_2), (weights_3, average_3) = steps
    assert set(average_3) == {
        name for name, value in weights_3.items() if value.is_floating_point()
    }
    for name in average_3:
        for weights, before, after in ((weights_2, average_1, average_2), (weights_3, average_2, average_3)):  # fmt: skip
            expected = DECAY * before[name] + (1 - DECAY) * weights[name].float()
            torch.testing.assert_close(after[name], expected, rtol=1e-6, atol=1e-7)
    moved = [name for name in average_3 if not torch.equal(average_3[name], weights_3[name])]
    assert moved, "the average lags the weights"
    assert run_log(tmp_path / "ema", "start")[0]["ema_decay"] == DECAY


def test_resume_continues_the_average_exactly_and_a_late_start_begins_at_the_weights(
    corpus, tmp_path
):
    straight = train(
        _config(corpus, tmp_path / "a", max_iters=4, ema_decay=DECAY), progress_bar=False
    )
    train(_config(corpus, tmp_path / "b", max_iters=2, ema_decay=DECAY), progress_bar=False)
    resumed = train(
        _config(corpus, tmp_path / "b", max_iters=4, ema_decay=DECAY),
        resume=True,
        progress_bar=False,
    )
    assert resumed.step == straight.step == 4
    for name, tensor in _saved(checkpoints_in(tmp_path / "a")[-1])[1].items():
        assert torch.equal(_saved(checkpoints_in(tmp_path / "b")[-1])[1][name], tensor), name
    # turned on at a resume of a run that had none: it starts at that step's weights
    train(_config(corpus, tmp_path / "late", max_iters=2), progress_bar=False)
    train(
        _config(corpus, tmp_path / "late", max_iters=3, ema_decay=DECAY),
        resume=True,
        progress_bar=False,
    )
    (weights_2, none), (weights_3, average_3) = map(_saved, checkpoints_in(tmp_path / "late")[-2:])
    assert none is None
    for name, tensor in average_3.items():
        expected = DECAY * weights_2[name].float() + (1 - DECAY) * weights_3[name].float()
        torch.testing.assert_close(tensor, expected, rtol=1e-6, atol=1e-7)


def test_convert_averaged_makes_a_model_of_the_average_and_refuses_files_without_one(
    corpus, tmp_path, capsys
):
    train(_config(corpus, tmp_path / "run", max_iters=2, ema_decay=DECAY), progress_bar=False)
    source = checkpoints_in(tmp_path / "run")[-1]
    destination = tmp_path / "averaged.safetensors"
    assert main(["convert", "--averaged", str(source), str(destination)]) == 0
    assert "averaged weights" in capsys.readouterr().out
    converted, weights = waveglow.load(destination), waveglow.load(source)
    direct = waveglow.load(source, averaged=True)
    for name, tensor in direct.state_dict().items():
        torch.testing.assert_close(converted.state_dict()[name], tensor)
    differs = [
        n for n, t in direct.state_dict().items() if not torch.equal(t, weights.state_dict()[n])
    ]
    assert differs, "the averaged model is not the weights"
    with pytest.raises(CheckpointError, match="no averaged weights"):
        read_checkpoint(destination, averaged=True)  # a model file holds none
    assert main(["convert", "--averaged", str(destination), str(tmp_path / "x.pt")]) != 0
    assert "no averaged weights" in capsys.readouterr().err


def test_a_checkpoint_whose_average_does_not_fit_the_model_is_refused_on_resume(corpus, tmp_path):
    output = tmp_path / "run"
    train(_config(corpus, output, max_iters=1, ema_decay=DECAY), progress_bar=False)
    path = checkpoints_in(output)[-1]
    payload = torch.load(path, weights_only=True)
    name = next(iter(payload[AVERAGE_KEY]))
    payload[AVERAGE_KEY][name] = torch.zeros(3)
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=rf"{AVERAGE_KEY}\['{name}'\] is not a tensor"):
        train(
            _config(corpus, output, max_iters=2, ema_decay=DECAY), resume=True, progress_bar=False
        )


def test_the_decay_is_checked():
    assert TrainConfig().ema_decay == 0  # NVIDIA's training: no average
    for wrong in (1.0, -0.1):
        with pytest.raises(ConfigError, match="ema_decay"):
            TrainConfig(ema_decay=wrong)
