"""recipes/long_run.py: a run carried from machine to machine through the repository."""

from __future__ import annotations

import json

from conftest import load_recipe

long_run = load_recipe("long_run")


def _fake_run(run, steps=(200, 400), cpu_seconds=(3600.0, 1800.0)):
    run.mkdir()
    for step in steps:
        (run / f"waveglow_{step}.pt").write_bytes(f"weights of step {step}".encode())
    events = [
        {"event": "start", "time": 0.0},
        {"event": "step", "time": 100.0, "step": 10, "cpu_seconds": cpu_seconds[0]},
        {"event": "validation", "time": 110.0, "step": 200, "validation_loss": -3.0},
        {"event": "start", "time": 1000.0},
        {"event": "step", "time": 1900.0, "step": 300, "cpu_seconds": cpu_seconds[1]},
        {"event": "validation", "time": 2000.0, "step": 400, "validation_loss": -3.5},
    ]
    (run / "log.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))


def test_snapshot_copies_the_newest_checkpoint_and_adds_the_origins_hours(tmp_path):
    recipe, run = tmp_path / "recipe", tmp_path / "run"
    recipe.mkdir()
    _fake_run(run)
    (run / long_run.ORIGIN).write_text(json.dumps({"step": 0, "cpu_hours": 2.0, "wall_hours": 1.0}))
    (recipe / long_run.PROGRESS).write_text(json.dumps({"validation": [[100, -2.0]]}))
    progress = long_run.snapshot(recipe, run)
    assert (recipe / long_run.STATE).read_bytes() == b"weights of step 400"
    assert progress["step"] == 400
    assert progress["cpu_hours"] == 2.0 + 1.5  # origin + both segments' last cpu_seconds
    assert progress["wall_hours"] == round(1.0 + (110 + 1000) / 3600, 3)  # start to last event
    assert progress["validation"] == [[100, -2.0], [200, -3.0], [400, -3.5]]
    assert json.loads((recipe / long_run.PROGRESS).read_text()) == progress


def test_train_resumes_a_run_folder_that_has_checkpoints(tmp_path):
    run = tmp_path / "run"
    _fake_run(run)
    command = long_run.train_command(tmp_path / "recipe", tmp_path / "corpus", run)
    assert command[-1] == "--resume" and "--config" not in command


def test_a_new_machine_resumes_exactly_from_the_recipes_state(tmp_path):
    recipe, run = tmp_path / "recipe", tmp_path / "run"
    recipe.mkdir()
    (recipe / long_run.STATE).write_bytes(b"state")
    progress = {"step": 800, "cpu_hours": 1.25, "wall_hours": 0.9}
    (recipe / long_run.PROGRESS).write_text(json.dumps(progress))
    command = long_run.train_command(recipe, tmp_path / "corpus", run)
    assert command[command.index("--resume") + 1] == str(recipe / long_run.STATE)
    assert command[command.index("--config") + 1] == str(recipe / "config.json")
    assert f"train_config.validation_files={tmp_path / 'corpus' / 'heldout.txt'}" in command
    assert json.loads((run / long_run.ORIGIN).read_text()) == progress


def test_without_a_state_the_run_starts_afresh(tmp_path):
    recipe = tmp_path / "recipe"
    recipe.mkdir()
    command = long_run.train_command(recipe, tmp_path / "corpus", tmp_path / "run")
    assert "--resume" not in command
    assert json.loads((tmp_path / "run" / long_run.ORIGIN).read_text())["cpu_hours"] == 0.0


def test_cpu_hours_at_a_step_count_only_the_steps_before_it(tmp_path):
    run = tmp_path / "run"
    _fake_run(run)
    (run / long_run.ORIGIN).write_text(json.dumps({"cpu_hours": 0.5}))
    assert long_run.cpu_hours_at(run, 200) == 0.5 + 1.0  # the second start's steps come later
    assert long_run.cpu_hours_at(run, 400) == 0.5 + 1.5


def test_a_new_machine_with_only_earlier_evaluations_starts_at_zero_hours(tmp_path):
    recipe = tmp_path / "recipe"
    recipe.mkdir()
    (recipe / long_run.PROGRESS).write_text(json.dumps({"earlier_runs": []}))
    long_run.train_command(recipe, tmp_path / "corpus", tmp_path / "run")
    origin = json.loads((tmp_path / "run" / long_run.ORIGIN).read_text())
    assert origin == {"step": 0, "cpu_hours": 0, "wall_hours": 0}


def test_curves_and_plot_show_every_run_against_cpu_hours(tmp_path):
    rows = [
        {"step": 400, "cpu_hours": 0.2, "stoi": 0.5, "estoi": 0.1},
        {"step": 200, "cpu_hours": 0.1, "stoi": 0.4, "estoi": 0.0},
    ]
    progress = {
        "evaluations": rows,
        "earlier_runs": [{"name": "lost", "evaluations": [{"cpu_hours": 3.0, "stoi": 0.6}]}],
        "references": {"GL": dict.fromkeys(long_run.JUDGED, 1.0)},
    }
    series = long_run.curves(progress)
    assert series["stoi", "this run"] == [(0.1, 0.4), (0.2, 0.5)]  # sorted by CPU-hours
    assert series["estoi", "this run"] == [(0.1, 0.0), (0.2, 0.1)]
    assert series["stoi", "lost"] == [(3.0, 0.6)]
    assert ("log_mel_l1", "this run") not in series  # never measured: no empty curve
    recipe = tmp_path / "frame"
    recipe.mkdir()
    (recipe / long_run.PROGRESS).write_text(json.dumps(progress))
    png = long_run.plot(recipe, tmp_path / "curve.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
