"""recipes/race.py: candidates trained in turn to equal CPU-hours, scored at every mark."""

from __future__ import annotations

import json
import sys

import pytest

from conftest import load_recipe

race = load_recipe("race")
long_run = sys.modules["long_run"]  # the sibling race.py imports

# A stand-in for `waveglow train`: logs a step worth 0.05 CPU-hours every 20 ms and, on SIGINT,
# writes a checkpoint and exits 0 as the real trainer does; DIE_AT makes it crash instead.
FAKE_TRAINER = """
import json, signal, sys, time
from pathlib import Path
run, die_at = Path(sys.argv[1]), float(sys.argv[2])
run.mkdir(exist_ok=True)
stopped = []
signal.signal(signal.SIGINT, lambda *_: stopped.append(True))
log = (run / "log.jsonl").open("a")
log.write(json.dumps({"event": "start", "time": 0.0}) + "\\n")
checkpoints = sorted(run.glob("waveglow_*.pt"))
step = int(checkpoints[-1].stem.rsplit("_", 1)[-1]) if checkpoints else 0
seconds = 0.0
while not stopped:
    step, seconds = step + 1, seconds + 180.0
    if step * 180.0 / 3600 >= die_at or step > 500:  # 500: never hang the suite  # the whole run's hours, over its restarts
        sys.exit(3)
    log.write(json.dumps({"event": "step", "time": 1.0, "step": step, "cpu_seconds": seconds}) + "\\n")
    log.flush()
    time.sleep(0.02)
(run / f"waveglow_{step:08d}.pt").write_bytes(b"weights")
"""


@pytest.fixture
def fake_race(tmp_path, monkeypatch):
    """Two candidates, a fake trainer and a fake evaluation that records its checkpoint's hours."""
    folder = tmp_path / "race"
    for name in ("alpha", "beta"):
        (folder / name).mkdir(parents=True)
        (folder / name / "config.json").write_text("{}")
    (folder / "notes").mkdir()  # no config.json: not a candidate
    script = tmp_path / "fake_trainer.py"
    script.write_text(FAKE_TRAINER)
    die_at = {"value": 99.0}
    trained = []

    def train_command(recipe, corpus, run):
        trained.append(recipe.name)
        return [sys.executable, str(script), str(run), str(die_at["value"])]

    def evaluate_checkpoint(recipe, run, corpus, checkpoint):
        newest = long_run.checkpoints_in(run)[-1]
        step = int(newest.stem.rsplit("_", 1)[-1])
        row = {"step": step, "cpu_hours": round(long_run.cpu_hours_at(run, step), 3), "stoi": 0.5}
        progress = long_run.read_json(recipe / long_run.PROGRESS, {})
        progress.setdefault("evaluations", []).append(row)
        (recipe / long_run.PROGRESS).write_text(json.dumps(progress))
        return row

    monkeypatch.setattr(long_run, "train_command", train_command)
    monkeypatch.setattr(long_run, "evaluate_checkpoint", evaluate_checkpoint)
    monkeypatch.setattr(race, "POLL_SECONDS", 0.01)
    return folder, trained, die_at


def test_every_candidate_is_stopped_and_scored_at_each_mark(fake_race, tmp_path):
    folder, trained, _ = fake_race
    race.run_race(tmp_path / "corpus", tmp_path / "runs", hours=0.3, every=0.1, race=folder)
    for name in ("alpha", "beta"):
        hours = race.scored(folder / name)
        assert len(hours) == 3
        assert all(
            mark <= spent < mark + 0.1 for mark, spent in zip((0.1, 0.2, 0.3), hours, strict=True)
        )
    assert trained == ["alpha"] * 3 + ["beta"] * 3  # in turn, resumed at each mark
    race.run_race(tmp_path / "corpus", tmp_path / "runs", hours=0.3, every=0.1, race=folder)
    assert len(trained) == 6  # every mark scored: nothing trains again
    rows = race.table(folder).splitlines()[2:]
    assert len(rows) == 6 and rows[0].startswith("| alpha |") and "0.500" in rows[0]
    png = race.plot(tmp_path / "race.png", folder)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_trainer_that_dies_stops_the_race_and_says_where(fake_race, tmp_path):
    folder, _, die_at = fake_race
    die_at["value"] = 0.2
    with pytest.raises(SystemExit, match=r"alpha: the trainer stopped \(exit 3\) at 0\.15"):
        race.run_race(tmp_path / "corpus", tmp_path / "runs", hours=0.3, every=0.1, race=folder)
    assert len(race.scored(folder / "alpha")) == 1  # the mark it reached was scored


def test_marks_must_divide_the_budget():
    assert race.marks(1.5, 0.5) == [0.5, 1.0, 1.5]
    assert race.marks(1.5, 0.25)[-1] == 1.5
    with pytest.raises(SystemExit, match="whole number"):
        race.marks(1.5, 0.4)


def test_the_committed_candidates_differ_only_in_their_layout():
    configs = {
        recipe.name: json.loads((recipe / "config.json").read_text())
        for recipe in race.candidates()
    }
    assert set(configs) == {"control", "frame16", "squeeze128"}
    frame16 = json.loads((race.RACE.parent / "frame16" / "config.json").read_text())
    assert configs["frame16"]["waveglow_config"] == frame16["waveglow_config"]
    for config in configs.values():
        assert config["data_config"] == frame16["data_config"]
        other = {k: v for k, v in config["train_config"].items() if k != "output_directory"}
        assert other == {
            k: v for k, v in frame16["train_config"].items() if k != "output_directory"
        }
