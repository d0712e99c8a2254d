"""recipes/ship_model.py: the bundled model's fp16 file and the model card's curve and costs."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

import waveglow
from conftest import load_recipe, make_tiny
from waveglow.checkpoint import read_checkpoint


def write_log(path: Path, events: list[dict]) -> Path:
    path.write_text("".join(json.dumps(event) + "\n" for event in events))
    return path


def test_ship_writes_fp16_weights_that_synthesize_like_the_checkpoint(tmp_path, capsys):
    recipe = load_recipe("ship_model")
    model = make_tiny(seed=3)
    checkpoint = waveglow.save(model, tmp_path / "best.pt")
    destination = tmp_path / "demo.safetensors"
    recipe.ship(checkpoint, destination)
    assert "wrote" in capsys.readouterr().out
    dtypes = {tensor.dtype for tensor in load_file(str(destination)).values()}
    assert dtypes == {torch.float16}
    shipped = waveglow.load(destination)
    reference = waveglow.load(checkpoint)
    mel = torch.randn(1, reference.config.n_mel_channels, 12)

    def synthesize(model: waveglow.WaveGlow) -> torch.Tensor:
        return model.infer(mel, sigma=0.6, generator=torch.Generator().manual_seed(0))

    expected, got = synthesize(reference), synthesize(shipped)
    relative = (got - expected).norm() / expected.norm()
    assert relative < 1e-2  # fp16 rounding of the weights, not a different model
    assert not torch.equal(got, expected)  # the weights really were rounded


def test_costs_sum_each_restart_and_count_the_unmeasured(tmp_path):
    recipe = load_recipe("ship_model")
    log = write_log(
        tmp_path / "log.jsonl",
        [
            {"event": "start", "time": 0.0},
            {"event": "step", "time": 1800.0, "step": 10, "loss": -1.0},  # before cpu_seconds
            {"event": "start", "time": 10_000.0},
            {"event": "step", "time": 11_000.0, "step": 20, "loss": -2.0, "cpu_seconds": 1000.0},
            {"event": "step", "time": 13_600.0, "step": 30, "loss": -3.0, "cpu_seconds": 5400.0},
            {"event": "start", "time": 20_000.0},
            {"event": "step", "time": 21_800.0, "step": 40, "loss": -4.0, "cpu_seconds": 1800.0},
        ],
    )
    assert abs(recipe.training_hours(log) - (0.5 + 1.0 + 0.5)) < 1e-9
    cpu_hours, unmeasured = recipe.training_cpu_hours(log)
    assert abs(cpu_hours - (1.5 + 0.5)) < 1e-9  # the last reading of each restart, summed
    assert unmeasured == 1


def test_curve_averages_the_training_losses_between_validations(tmp_path, capsys):
    recipe = load_recipe("ship_model")
    log = write_log(
        tmp_path / "log.jsonl",
        [
            {"event": "start", "time": 0.0},
            {"event": "step", "time": 1.0, "step": 1, "loss": -1.0},
            {"event": "step", "time": 2.0, "step": 2, "loss": -2.0},
            {"event": "validation", "time": 3.0, "step": 2, "validation_loss": -2.5},
            {"event": "step", "time": 4.0, "step": 3, "loss": -4.0},
            {"event": "validation", "time": 5.0, "step": 3, "validation_loss": -4.25},
        ],
    )
    recipe.curve(log)
    rows = capsys.readouterr().out.splitlines()[2:]
    assert rows == ["| 2 | -1.500 | -2.500 |", "| 3 | -4.000 | -4.250 |"]


def test_rewriting_the_metadata_keeps_every_tensor_byte(tmp_path):
    metadata = load_recipe("model_metadata")
    destination = tmp_path / "demo.safetensors"
    checkpoint = waveglow.save(make_tiny(seed=4), tmp_path / "best.pt")
    load_recipe("ship_model").ship(checkpoint, destination)
    header, tensors = metadata.read_header(destination)
    written = metadata.rewrite_metadata(destination, {"steps": 7, "cost": "a minute"})
    new_header, new_tensors = metadata.read_header(destination)
    assert new_tensors == tensors
    assert {k: v for k, v in new_header.items() if k != "__metadata__"} == {
        k: v for k, v in header.items() if k != "__metadata__"
    }
    assert read_checkpoint(destination).extra["trained"] == {"steps": 7, "cost": "a minute"}
    assert written["trained"]["steps"] == 7
