"""The race of issue 10: candidate layouts trained one after another to equal CPU-hours.

Each candidate is a recipe folder under ``recipes/race/`` whose ``config.json`` differs from the
others only in ``waveglow_config`` (control: the old demo layout; frame16; squeeze128). ``run``
trains each in turn, alone on the machine (nice 19, the command of ``long_run.py train``), stops it
at every mark of ``--every`` CPU-hours (SIGINT: the trainer saves a checkpoint), scores that
checkpoint on the 17 held-out prompts (``long_run.py evaluate``: the candidate's
``progress.json``) and goes on to ``--hours``. Commit ``recipes/race`` after a session: a
candidate whose marks are all scored is skipped next time; one cut off part-way resumes from its
run folder on the same machine and starts again on a new one (checkpoints of the control's 12 M
parameters with Adam are too large to commit). Nothing else may run meanwhile: a trainer that
shares its cores spins and bills CPU-seconds it did not use.

    python recipes/race.py run --corpus /work/corpus --runs /work/runs/race [--hours 1.5] [--every 0.5]
    python recipes/race.py table
    python recipes/race.py plot [--png docs/race.png]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import long_run  # noqa: E402 - a sibling script

RACE = Path(__file__).resolve().parent / "race"
POLL_SECONDS = 10.0  # how often the trainer's CPU-hours are read
METRICS = {  # column title, in the order of docs/race.md
    "stoi": "STOI ↑",
    "estoi": "ESTOI ↑",
    "log_mel_l1": "log-mel L1 ↓",
    "mr_stft": "MR-STFT ↓",
    "pesq_wb": "PESQ-WB ↑",
    "mcd_db": "MCD dB ↓",
}


def candidates(race: Path = RACE) -> list[Path]:
    """The candidates' recipe folders (each with a config.json), by name."""
    return sorted(folder for folder in race.iterdir() if (folder / "config.json").is_file())


def marks(hours: float, every: float) -> list[float]:
    """The CPU-hours at which each candidate is stopped and scored."""
    count = round(hours / every)
    if count < 1 or abs(count * every - hours) > 1e-9:
        raise SystemExit(f"--hours {hours} is not a whole number of --every {every}")
    return [round(every * k, 6) for k in range(1, count + 1)]


def scored(recipe: Path) -> list[float]:
    """The CPU-hours of the candidate's evaluations so far."""
    progress = long_run.read_json(recipe / long_run.PROGRESS, {})
    return [row["cpu_hours"] for row in progress.get("evaluations", [])]


def spent(run: Path) -> float:
    """CPU-hours the run folder's trainer has spent (0 before its first logged step)."""
    if not (run / "log.jsonl").is_file():
        return 0.0
    return long_run.cpu_hours_at(run, sys.maxsize)


def train_until(recipe: Path, corpus: Path, run: Path, hours: float, threads: int = 0) -> None:
    """Train the candidate (resuming its run folder) until it has spent ``hours`` CPU-hours
    (``threads``: the trainer's intra-op threads; 0 leaves torch's default)."""
    command = long_run.train_command(recipe, corpus, run)
    environment = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    with (run.parent / f"{recipe.name}.out").open("a") as output:
        process = subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: os.nice(19),
            env=environment,
        )
        try:
            while process.poll() is None and spent(run) < hours:
                time.sleep(POLL_SECONDS)
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)  # the trainer saves a checkpoint, then exits
            process.wait()
    if process.returncode != 0 or spent(run) < hours:
        raise SystemExit(
            f"{recipe.name}: the trainer stopped (exit {process.returncode}) at "
            f"{spent(run):.3f} of {hours} CPU-hours; see {run.parent / f'{recipe.name}.out'}"
        )


def run_race(
    corpus: Path,
    runs: Path,
    hours: float,
    every: float,
    race: Path = RACE,
    only: Sequence[str] = (),
    threads: int = 0,
) -> None:
    """Train and score every candidate (or those named in ``only``) at every mark it has not
    been scored at; ``threads`` as for :func:`train_until`, and for the scoring too."""
    runs.mkdir(parents=True, exist_ok=True)
    if threads:
        import torch

        torch.set_num_threads(threads)
    chosen = [recipe for recipe in candidates(race) if not only or recipe.name in only]
    missing = set(only) - {recipe.name for recipe in chosen}
    if missing:
        raise SystemExit(f"no candidate named {', '.join(sorted(missing))} in {race}")
    for recipe in chosen:
        run = runs / recipe.name
        for mark in marks(hours, every):
            if any(done >= mark for done in scored(recipe)):
                continue
            if spent(run) < mark:
                train_until(recipe, corpus, run, mark, threads)
            row = long_run.evaluate_checkpoint(recipe, run, corpus, None)
            print(f"{recipe.name} at {row['cpu_hours']:.3f} CPU-hours: {row}", flush=True)


def table(race: Path = RACE) -> str:
    """Markdown: each candidate's held-out scores at each mark it reached."""
    lines = [
        f"| run | step | CPU-hours | {' | '.join(METRICS.values())} |",
        "|---|---|---|" + "---|" * len(METRICS),
    ]
    for recipe in candidates(race):
        progress = long_run.read_json(recipe / long_run.PROGRESS, {})
        for row in progress.get("evaluations", []):
            cells = [f"{row[metric]:.3f}" if metric in row else "" for metric in METRICS]
            lines.append(
                f"| {recipe.name} | {row['step']} | {row['cpu_hours']:.2f} | {' | '.join(cells)} |"
            )
    return "\n".join(lines)


def plot(destination: Path, race: Path = RACE) -> Path:
    """Every candidate's judged metrics against CPU-hours, the reference models as lines."""
    series: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for recipe in candidates(race):
        progress = long_run.read_json(recipe / long_run.PROGRESS, {})
        series.update(
            long_run.curves({"evaluations": progress.get("evaluations", [])}, recipe.name)
        )
    references = long_run.read_json(race.parent / "frame16" / long_run.PROGRESS, {})
    title = "The race: held-out metrics (17 prompts, sigma 0.6) against training CPU-hours"
    return long_run.plot_curves(series, references.get("references", {}), destination, title)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("action", choices=["run", "table", "plot"])
    parser.add_argument("--corpus", type=Path, default=Path("/work/corpus"))
    parser.add_argument("--runs", type=Path, default=Path("/work/runs/race"))
    parser.add_argument("--hours", type=float, default=1.5, help="CPU-hours each (default 1.5)")
    parser.add_argument("--every", type=float, default=0.5, help="score every N CPU-hours")
    parser.add_argument("--png", type=Path, default=RACE.parents[1] / "docs" / "race.png")
    parser.add_argument(
        "--race", type=Path, default=RACE, help="the folder of candidates (default recipes/race)"
    )
    parser.add_argument(
        "--only", default="", help="comma-separated candidates to run (default: all, in turn)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="threads per trainer (1 lets two candidates share a 2-core machine fairly)",
    )
    args = parser.parse_args()
    if args.action == "run":
        only = [name for name in args.only.split(",") if name]
        run_race(args.corpus, args.runs, args.hours, args.every, args.race, only, args.threads)
    elif args.action == "table":
        print(table(args.race))
    else:
        print(plot(args.png, args.race))


if __name__ == "__main__":
    main()
