"""recipes/long_run.py: a run carried from machine to machine through the repository."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch

import waveglow
from conftest import load_recipe, make_tiny
from waveglow.checkpoint import AVERAGE_KEY, read_checkpoint

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


def test_a_recipe_with_a_warm_start_starts_from_those_weights_at_zero_hours(tmp_path):
    recipe = tmp_path / "race" / "arm"
    recipe.mkdir(parents=True)
    weights = tmp_path / "base" / "state.pt"
    start = {"init_from": "../../base/state.pt", "step": 66948, "cpu_hours": 16.3}
    (recipe / long_run.WARM_START).write_text(json.dumps(start))
    command = long_run.train_command(recipe, tmp_path / "corpus", tmp_path / "run")
    assert "--resume" not in command
    assert command[command.index("--init-from") + 1] == str(weights.resolve())
    assert json.loads((tmp_path / "run" / long_run.ORIGIN).read_text())["cpu_hours"] == 0.0
    (recipe / long_run.STATE).write_bytes(b"state")  # once it has its own state, that wins
    command = long_run.train_command(recipe, tmp_path / "corpus", tmp_path / "run2")
    assert "--init-from" not in command and "--resume" in command


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


def _fake_evaluation(folder, scores):
    """A `waveglow evaluate` folder: ``scores`` {clip: {metric: value}} of the waveglow system."""
    folder.mkdir()
    metrics = ["stoi", "mr_stft"]
    with (folder / "metrics.csv").open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["clip", "system", *metrics])
        for clip, values in scores.items():
            writer.writerow([clip, "waveglow", *(values[m] for m in metrics)])
            writer.writerow([clip, "griffin_lim", 1.0, 0.0])  # another system: not compared
    directions = {"stoi": {"higher_is_better": True}, "mr_stft": {"higher_is_better": False}}
    (folder / "summary.json").write_text(json.dumps({"metrics": directions}))
    return folder


def test_paired_comparison_counts_clip_wins_by_each_metrics_direction(tmp_path):
    candidate = _fake_evaluation(
        tmp_path / "new",
        {
            "a": {"stoi": 0.7, "mr_stft": 3.0},
            "b": {"stoi": 0.6, "mr_stft": 2.0},
            "c": {"stoi": 0.5, "mr_stft": 9.0},
        },
    )
    reference = _fake_evaluation(
        tmp_path / "old",
        {
            "a": {"stoi": 0.6, "mr_stft": 3.5},
            "b": {"stoi": 0.6, "mr_stft": 2.5},
            "c": {"stoi": 0.4, "mr_stft": 1.0},
            "only-here": {"stoi": 0.0, "mr_stft": 0.0},
        },
    )
    rows = {row["metric"]: row for row in long_run.paired_comparison(candidate, reference)}
    assert rows["stoi"]["wins"] == 2 and rows["stoi"]["losses"] == 0  # b is a tie
    assert rows["stoi"]["candidate"] == pytest.approx(0.6)  # the clip only one scored is left out
    assert rows["stoi"]["reference"] == pytest.approx(1.6 / 3) and rows["stoi"]["better"]
    assert rows["mr_stft"]["wins"] == 2 and rows["mr_stft"]["losses"] == 1  # lower is better
    assert not rows["mr_stft"]["better"]  # the mean says otherwise: 4.67 against 2.33
    assert not long_run.beats(list(rows.values()))
    assert "does not beat" in long_run.comparison_markdown(list(rows.values()))


def test_a_clip_one_evaluation_could_not_score_is_left_out_of_that_metric_only(tmp_path):
    candidate = _fake_evaluation(
        tmp_path / "new", {"a": {"stoi": 0.7, "mr_stft": 3.0}, "b": {"stoi": 0.2, "mr_stft": 2.0}}
    )
    reference = _fake_evaluation(
        tmp_path / "old", {"a": {"stoi": 0.6, "mr_stft": 3.5}, "b": {"stoi": "", "mr_stft": 2.5}}
    )
    rows = {row["metric"]: row for row in long_run.paired_comparison(candidate, reference)}
    assert rows["stoi"]["wins"] == 1 and rows["stoi"]["losses"] == 0  # clip b: no stoi to pair
    assert rows["stoi"]["candidate"] == pytest.approx(0.7)
    assert rows["mr_stft"]["wins"] == 2  # both clips paired


def test_beats_needs_every_judged_metric_better_in_mean_and_in_clips():
    def row(metric, better=True, wins=10, losses=7):
        return {"metric": metric, "better": better, "wins": wins, "losses": losses}

    judged = [row(metric) for metric in long_run.JUDGED]
    assert long_run.beats(judged + [row("mcd_db", better=False, wins=0, losses=17)])
    assert not long_run.beats(judged[:-1])  # a judged metric missing
    assert not long_run.beats(judged[:-1] + [row(judged[-1]["metric"], wins=8, losses=8)])
    assert not long_run.beats(judged[:-1] + [row(judged[-1]["metric"], better=False)])
    listening = ("stoi", "estoi", "pesq_wb", "mcd_db")  # the metrics a spectral loss leaves out
    mcd_lost = judged + [row("mcd_db", better=False, wins=0, losses=17)]
    assert not long_run.beats(mcd_lost + [row("pesq_wb")], listening)
    assert long_run.beats([row(metric) for metric in listening], listening)


def test_sign_test_p_values():
    assert long_run.sign_test(17, 0) == pytest.approx(2 / 2**17)
    assert long_run.sign_test(0, 17) == long_run.sign_test(17, 0)
    assert long_run.sign_test(5, 5) == 1.0 and long_run.sign_test(0, 0) == 1.0
    low_tail = sum(math.comb(17, k) for k in range(5)) / 2**17  # 4 or fewer losses of 17
    assert long_run.sign_test(13, 4) == pytest.approx(2 * low_tail)


def test_ship_writes_the_newest_checkpoint_with_its_training_facts(tmp_path):
    recipe, run = tmp_path / "recipe", tmp_path / "run"
    recipe.mkdir()
    _fake_run(run)
    waveglow.save(make_tiny(seed=1), run / "waveglow_00000500.pt")
    config = {
        "data_config": {"segment_length": 16384},
        "train_config": {
            "precision": "auto",
            "wn_implementation": "auto",
            "sigma": 1.0,
            "batch_size": 4,
            "learning_rate": 2e-4,
            "spectral_loss_weight": 1.0,
            "spectral_sigma": 0.6,
        },
    }
    (recipe / "config.json").write_text(json.dumps(config))
    evaluation = {"step": 500, "cpu_hours": 1.5, "stoi": 0.9}
    (recipe / long_run.PROGRESS).write_text(json.dumps({"evaluations": [evaluation]}))
    destination = tmp_path / "demo.safetensors"
    facts = long_run.ship(recipe, run, None, destination)
    trained = read_checkpoint(destination).extra["trained"]
    assert trained == facts
    assert trained["steps"] == 500 and trained["cpu_hours"] == 1.5  # both segments of the log
    assert trained["held_out"] == {"stoi": 0.9}
    assert trained["batch"] == "4 x 16384-sample segments"
    assert waveglow.load(destination).config == make_tiny().config
    assert trained["spectral_loss"] == {"spectral_loss_weight": 1.0, "spectral_sigma": 0.6}
    assert trained["recipe"] == "recipes/recipe"  # a folder outside the repository: its name


def test_snapshot_counts_the_hours_to_its_checkpoint_not_the_steps_after_it(tmp_path):
    """A snapshot taken while the trainer runs: the log has gone on past the newest checkpoint,
    and a new machine resumes from that checkpoint, so the steps after it are not counted."""
    recipe, run = tmp_path / "recipe", tmp_path / "run"
    recipe.mkdir()
    _fake_run(run)
    with (run / "log.jsonl").open("a") as log:
        log.write(json.dumps({"event": "step", "time": 2500.0, "step": 450, "cpu_seconds": 2700.0}))
    (run / long_run.ORIGIN).write_text(json.dumps({"step": 0, "cpu_hours": 2.0, "wall_hours": 1.0}))
    progress = long_run.snapshot(recipe, run)
    assert progress["step"] == 400
    assert progress["cpu_hours"] == 2.0 + 1.5  # not 2.0 + 1.0 + 0.75
    assert progress["wall_hours"] == round(1.0 + (110 + 1000) / 3600, 3)  # not to 2500 s


def test_the_averaged_weights_are_shipped_scored_and_drawn_apart_from_the_weights(tmp_path):
    recipe, run = tmp_path / "recipe", tmp_path / "run"
    recipe.mkdir()
    _fake_run(run)
    weights, average = make_tiny(seed=1), make_tiny(seed=2)
    extra = {AVERAGE_KEY: average.state_dict()}
    waveglow.save(weights, run / "waveglow_00000500.pt", **extra)
    train = {"precision": "auto", "wn_implementation": "auto", "sigma": 1.0, "batch_size": 4}
    train.update(learning_rate=2e-4, ema_decay=0.998)
    config = {"data_config": {"segment_length": 16384}, "train_config": train}
    (recipe / "config.json").write_text(json.dumps(config))
    rows = [
        {"step": 500, "cpu_hours": 1.5, "stoi": 0.8},
        {"step": 500, "cpu_hours": 1.5, "weights": "averaged", "stoi": 0.9},
    ]
    changes = [{"step": 300, "change": "learning rate 4e-4 -> 2e-4"}, {"step": 600, "change": "x"}]
    (recipe / long_run.PROGRESS).write_text(json.dumps({"evaluations": rows, "changes": changes}))
    destination = tmp_path / "demo.safetensors"
    facts = long_run.ship(recipe, run, None, destination, averaged=True)
    assert facts["held_out"] == {"stoi": 0.9} and "ema_decay 0.998" in facts["weights"]
    assert facts["changes"] == changes[:1] and facts["learning_rate"] == "0.0002"  # not "flat"
    shipped = waveglow.load(destination)
    average.remove_weight_norm()
    for name, tensor in average.state_dict().items():
        torch.testing.assert_close(shipped.state_dict()[name], tensor.half().float())
    assert "weights" not in long_run.ship(recipe, run, None, destination)
    assert long_run.training_facts(recipe, run, 500)["held_out"] == {"stoi": 0.8}
    progress = json.loads((recipe / long_run.PROGRESS).read_text())
    progress["earlier_runs"] = [{"name": "old", "evaluations": rows}]
    series = long_run.curves(progress)
    for run in ("this run", "old"):
        assert series["stoi", run] == [(1.5, 0.8)]
        assert series["stoi", f"{run}, averaged"] == [(1.5, 0.9)]


RECIPE_CONFIG = long_run.Path(__file__).resolve().parents[1] / "recipes/spectral_mel/config.json"


def _recipe_with_a_run(tmp_path):
    recipe, run = tmp_path / "recipe", tmp_path / "run"
    recipe.mkdir()
    (recipe / "config.json").write_text(RECIPE_CONFIG.read_text())
    _fake_run(run)
    (run / long_run.ORIGIN).write_text(json.dumps({"step": 0, "cpu_hours": 2.0, "wall_hours": 1.0}))
    return recipe, run


def test_a_branch_is_a_recipe_that_goes_on_from_the_runs_checkpoint(tmp_path):
    from waveglow.config import apply_overrides, load_config

    recipe, run = _recipe_with_a_run(tmp_path)
    folder, change = tmp_path / "lower", ["train_config.learning_rate=1.25e-5"]
    progress = long_run.branch(recipe, run, run / "waveglow_200.pt", folder, change)
    assert load_config(folder / "config.json") == apply_overrides(
        load_config(recipe / "config.json"), change
    )
    assert load_config(folder / "config.json").train_config.learning_rate == 1.25e-5
    assert (folder / long_run.STATE).read_bytes() == b"weights of step 200"
    assert progress["step"] == 200 and progress["evaluations"] == []
    assert progress["cpu_hours"] == long_run.cpu_hours_at(run, 200) == 3.0  # not step 400's
    assert progress["wall_hours"] == round(1.0 + 110 / 3600, 3)
    assert progress["branched_from"]["changed"] == change
    command = long_run.train_command(folder, tmp_path / "corpus", folder / "run")
    assert command[command.index("--resume") + 1] == str(folder / long_run.STATE)
    origin = json.loads((folder / "run" / long_run.ORIGIN).read_text())
    assert origin == {key: progress[key] for key in ("step", "cpu_hours", "wall_hours")}


def test_a_branch_needs_a_change_a_new_folder_and_a_known_key(tmp_path):
    from waveglow.config import ConfigError

    recipe, run = _recipe_with_a_run(tmp_path)
    checkpoint = run / "waveglow_200.pt"
    with pytest.raises(SystemExit, match="what the branch changes"):
        long_run.branch(recipe, run, checkpoint, tmp_path / "b", [])
    with pytest.raises(SystemExit, match="not empty"):
        long_run.branch(recipe, run, checkpoint, run, ["train.learning_rate=1e-5"])
    with pytest.raises(ConfigError, match="unknown key"):
        long_run.branch(recipe, run, checkpoint, tmp_path / "c", ["train.learning_rat=1e-5"])
    with pytest.raises(SystemExit, match="not a run's checkpoint"):
        long_run.branch(recipe, run, recipe / "config.json", tmp_path / "d", ["train.seed=1"])


def test_adopt_makes_the_branch_the_line_and_keeps_the_run_it_replaces(tmp_path):
    recipe, run = _recipe_with_a_run(tmp_path)
    rows = [{"step": s, "cpu_hours": s / 100, "stoi": 0.8} for s in (100, 200, 400)]
    progress = {"evaluations": rows, "validation": [[200, -5.0], [400, -4.0]], "changes": []}
    (recipe / long_run.PROGRESS).write_text(json.dumps(progress))
    folder = tmp_path / "lower"
    long_run.branch(recipe, run, run / "waveglow_200.pt", folder, ["train.learning_rate=1e-5"])
    branch_row = {"step": 400, "cpu_hours": 3.5, "weights": "averaged", "stoi": 0.9}
    branched = json.loads((folder / long_run.PROGRESS).read_text())
    (folder / long_run.PROGRESS).write_text(json.dumps({**branched, "evaluations": [branch_row]}))
    adopted = long_run.adopt(recipe, folder, "old rate", "it spiked", "rate 1e-5 from step 200")
    assert adopted["evaluations"] == [rows[0], rows[1], branch_row]
    assert adopted["earlier_runs"] == [
        {"name": "old rate", "note": "it spiked", "evaluations": [rows[2]]}
    ]
    assert adopted["changes"] == [{"step": 200, "change": "rate 1e-5 from step 200"}]
    assert adopted["validation"] == [[200, -5.0]]  # the old line's later readings are not the run's
    assert (recipe / "config.json").read_text() == (folder / "config.json").read_text()
    assert json.loads((recipe / long_run.PROGRESS).read_text()) == adopted
    with pytest.raises(SystemExit, match="not a branch"):
        long_run.adopt(recipe, run, "x", "", "y")
