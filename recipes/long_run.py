"""A training run that outlives its machine: its state lives in the repository.

A recipe folder (``recipes/frame16``) holds the run's ``config.json`` and, once a session has
trained, ``state.pt`` (the newest training checkpoint: weights, optimizer, RNG and data position)
and ``progress.json`` (step, CPU-hours and wall hours across every machine, validation curve)::

    python recipes/long_run.py train recipes/frame16 --corpus /work/corpus --run /work/runs/frame16
    python recipes/long_run.py snapshot recipes/frame16 --run /work/runs/frame16
    python recipes/long_run.py evaluate recipes/frame16 --run /work/runs/frame16 [--checkpoint C]
        [--averaged]
    python recipes/long_run.py plot recipes/frame16 [--png docs/frame16.png]
    python recipes/long_run.py compare EVAL_FOLDER REFERENCE_EVAL_FOLDER
    python recipes/long_run.py ship recipes/frame16 --run /work/runs/frame16 [--checkpoint C]
        [--averaged]
    python recipes/long_run.py branch recipes/frame16 --run /work/runs/frame16 --checkpoint C
        --branch /work/runs/lower --set train_config.learning_rate=1e-4
    python recipes/long_run.py adopt recipes/frame16 --branch /work/runs/lower --name N
        --change C [--note T]

``train`` resumes the run folder where it exists (on the same machine), else starts one from
``state.pt`` with an exact resume (a new machine: the corpus is rebuilt by
``recipes/build_corpus.py``), else from the weights ``warm_start.json`` names (with a fresh
optimizer), else afresh. It runs in the foreground; start it with
``nohup nice -n 19 ... &`` and stop it with SIGINT or SIGTERM (a checkpoint is saved).
``snapshot`` copies the run's newest checkpoint into the recipe and updates ``progress.json``;
commit both to carry the run to the next machine (the file is replaced in place, not added).
``evaluate`` scores a checkpoint (default: the newest) on the corpus's held-out prompts with
``waveglow.evaluate`` (sigma 0.6, seed 0) and records the means in ``progress.json`` with the
step and the CPU-hours the run had spent when it wrote that checkpoint; with ``--averaged``, the
moving average of the weights the checkpoint holds (``train_config.ema_decay``), recorded apart
(``"weights": "averaged"``). ``plot`` draws those
evaluations (and those of ``earlier_runs`` in ``progress.json``) against CPU-hours.
``compare`` pairs two ``waveglow evaluate`` folders clip by clip (means, clips won and lost,
a sign test) and says whether the first beats the second on every judged metric: the test a
checkpoint passes before ``ship`` makes it the bundled model (fp16, with its training facts
in the file's metadata; ``--averaged``: the checkpoint's moving average of the weights).
``branch`` makes a new folder a recipe of its own that goes on from one of the run's checkpoints
with changed settings (its ``state.pt`` that checkpoint, its ``progress.json`` starting at the
checkpoint's step and CPU-hours): train, evaluate and compare it beside the run
(``train BRANCH --run BRANCH/run``). When it wins, ``adopt`` makes it the recipe's line: the
run's evaluations after the branch point go under ``earlier_runs``, the branch's config and
evaluations become the recipe's, its change is listed in ``changes``; then ``snapshot`` the
branch's run folder.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from waveglow.audio import atomic_path
from waveglow.train import checkpoints_in

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ship_model import ship as ship_weights  # noqa: E402 - a sibling script
from ship_model import training_cpu_hours, training_hours  # noqa: E402

STATE = "state.pt"
PROGRESS = "progress.json"
ORIGIN = "origin.json"  # in the run folder: where this folder's training began
WARM_START = "warm_start.json"  # in a recipe without state.pt: {"init_from": weights to start from}


def read_json(path: Path, default: Any) -> Any:
    return json.loads(path.read_text()) if path.is_file() else default


def train_command(recipe: Path, corpus: Path, run: Path) -> list[str]:
    """The ``waveglow train`` command that continues the run (and writes ``origin.json``)."""
    command = [sys.executable, "-m", "waveglow", "train", "-o", str(run), "--quiet"]
    if checkpoints_in(run):
        return [*command, "--resume"]
    run.mkdir(parents=True, exist_ok=True)
    progress = read_json(recipe / PROGRESS, {})
    origin = {key: progress.get(key, 0) for key in ("step", "cpu_hours", "wall_hours")}
    (run / ORIGIN).write_text(json.dumps(origin, indent=2) + "\n")
    command += [
        "--config",
        str(recipe / "config.json"),
        "--data",
        str(corpus / "train.txt"),
        "--set",
        f"train_config.validation_files={corpus / 'heldout.txt'}",
    ]
    if (recipe / STATE).is_file():
        command += ["--resume", str(recipe / STATE)]
    elif (recipe / WARM_START).is_file():  # a path relative to the recipe; a fresh optimizer
        source = read_json(recipe / WARM_START, {})["init_from"]
        command += ["--init-from", str((recipe / source).resolve())]
    return command


def checkpoint_step(checkpoint: Path) -> int:
    """The step in a training checkpoint's name (``waveglow_00009800.pt``)."""
    try:
        return int(checkpoint.stem.rsplit("_", 1)[-1])
    except ValueError:
        raise SystemExit(f"{checkpoint}: not a run's checkpoint (waveglow_STEP.pt)") from None


def validation_curve(log: Path) -> list[list[float]]:
    curve = []
    for line in log.read_text().splitlines():
        event = json.loads(line)
        if event["event"] == "validation":
            curve.append([event["step"], round(event["validation_loss"], 4)])
    return curve


def snapshot(recipe: Path, run: Path) -> dict[str, Any]:
    """Copy the newest checkpoint to ``recipe/state.pt``; write ``recipe/progress.json``."""
    found = checkpoints_in(run)
    if not found:
        raise SystemExit(f"{run}: no checkpoint to snapshot")
    newest = found[-1]
    with atomic_path(recipe / STATE) as temporary:
        shutil.copyfile(newest, temporary)
    log = run / "log.jsonl"
    earlier = read_json(recipe / PROGRESS, {}).get("validation", [])
    curve = {int(step): loss for step, loss in earlier + validation_curve(log)}
    step = checkpoint_step(newest)
    progress = {  # the hours up to the snapshot's step, not those of steps the log has beyond it
        **read_json(recipe / PROGRESS, {}),
        "step": step,
        "cpu_hours": round(cpu_hours_at(run, step), 3),
        "wall_hours": round(wall_hours_at(run, step), 3),
        "validation": [[s, curve[s]] for s in sorted(curve) if s <= step],
        "updated": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    (recipe / PROGRESS).write_text(json.dumps(progress, indent=1) + "\n")
    return progress


def cpu_hours_at(run: Path, step: int) -> float:
    """CPU-hours spent up to ``step``: the origin's plus each (re)start's last ``cpu_seconds``
    logged at or before ``step``."""
    origin = read_json(run / ORIGIN, {"cpu_hours": 0.0})["cpu_hours"]
    return origin + training_cpu_hours(run / "log.jsonl", step)[0]


def branch(
    recipe: Path, run: Path, checkpoint: Path, folder: Path, overrides: Sequence[str]
) -> dict[str, Any]:
    """Make ``folder`` a recipe of its own that goes on from ``checkpoint`` of the run with
    ``overrides`` (``section.key=value``): ``train``, ``evaluate`` and ``compare`` it as any
    recipe; its CPU-hours go on from the checkpoint's."""
    from waveglow.config import apply_overrides, load_config

    if not overrides:
        raise SystemExit("branch: say what the branch changes (--set section.key=value)")
    if folder.exists() and any(folder.iterdir()):
        raise SystemExit(f"{folder}: not empty; a branch starts in a new folder")
    step = checkpoint_step(checkpoint)
    config = apply_overrides(load_config(recipe / "config.json"), overrides)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    with atomic_path(folder / STATE) as temporary:
        shutil.copyfile(checkpoint, temporary)
    progress = {
        "branched_from": {"recipe": str(recipe), "step": step, "changed": list(overrides)},
        "step": step,
        "cpu_hours": round(cpu_hours_at(run, step), 3),
        "wall_hours": round(wall_hours_at(run, step), 3),
        "evaluations": [],
    }
    (folder / PROGRESS).write_text(json.dumps(progress, indent=1) + "\n")
    return progress


def adopt(recipe: Path, folder: Path, name: str, note: str, change: str) -> dict[str, Any]:
    """The branch in ``folder`` becomes the recipe's run: the run's evaluations after the branch's
    step are kept under ``earlier_runs`` (``name``, ``note``), the branch's join the recipe's,
    ``change`` is added to ``changes`` and the branch's config becomes the recipe's. Snapshot
    the branch's run folder next."""
    branched = read_json(folder / PROGRESS, {})
    if "branched_from" not in branched:
        raise SystemExit(f"{folder}: not a branch (no branched_from in its {PROGRESS})")
    step = branched["branched_from"]["step"]
    progress = read_json(recipe / PROGRESS, {})
    evaluations = progress.get("evaluations", [])
    progress["earlier_runs"] = [
        *progress.get("earlier_runs", []),
        {"name": name, "note": note, "evaluations": [r for r in evaluations if r["step"] > step]},
    ]
    kept = [r for r in evaluations if r["step"] <= step]
    progress["evaluations"] = sorted(kept + branched["evaluations"], key=lambda r: r["step"])
    progress["validation"] = [v for v in progress.get("validation", []) if v[0] <= step]
    progress["changes"] = [*progress.get("changes", []), {"step": step, "change": change}]
    shutil.copyfile(folder / "config.json", recipe / "config.json")
    (recipe / PROGRESS).write_text(json.dumps(progress, indent=1) + "\n")
    return progress


def wall_hours_at(run: Path, step: int) -> float:
    """Wall hours spent up to ``step``: the origin's plus the log's, as for the CPU-hours."""
    origin = read_json(run / ORIGIN, {"wall_hours": 0.0})["wall_hours"]
    return origin + training_hours(run / "log.jsonl", step)


AVERAGED = "averaged"  # an evaluation's "weights": the checkpoint's moving average of the weights


def evaluate_checkpoint(
    recipe: Path, run: Path, corpus: Path, checkpoint: Path | None, averaged: bool = False
) -> dict:
    """Held-out means of ``checkpoint`` (default: the run's newest; ``averaged``: its moving
    average of the weights), kept in progress.json."""
    import waveglow
    from waveglow.evaluate import evaluate

    checkpoint = checkpoint or checkpoints_in(run)[-1]
    step = checkpoint_step(checkpoint)
    heldout = [
        corpus / line.split("|")[0]
        for line in (corpus / "heldout.txt").read_text().split("\n")
        if line
    ]
    report = evaluate(
        waveglow.load(checkpoint, averaged=averaged),
        heldout,
        run / (f"eval_{step}_{AVERAGED}" if averaged else f"eval_{step}"),
        baseline="none",
        dnsmos=False,
        plots=False,
    )
    means = report.means()["waveglow"]
    row: dict[str, Any] = {"step": step, "cpu_hours": round(cpu_hours_at(run, step), 3)}
    if averaged:
        row["weights"] = AVERAGED
    row.update({name: round(value, 4) for name, value in means.items()})
    progress = read_json(recipe / PROGRESS, {})
    same = (step, row.get("weights"))
    rows = [r for r in progress.get("evaluations", []) if (r["step"], r.get("weights")) != same]
    progress["evaluations"] = sorted([*rows, row], key=lambda r: r["step"])
    (recipe / PROGRESS).write_text(json.dumps(progress, indent=1) + "\n")
    return row


JUDGED = {  # the metrics docs/race.md judges runs by: key, title, higher is better
    "stoi": ("STOI", True),
    "estoi": ("ESTOI", True),
    "log_mel_l1": ("log-mel L1", False),
    "mr_stft": ("MR-STFT", False),
}


def curves(
    progress: dict, name: str = "this run"
) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """Each run's held-out metrics against CPU-hours: {(metric, run): [(cpu_hours, value), ...]};
    ``name`` names the run whose evaluations ``progress`` holds (its ``earlier_runs`` keep theirs)."""
    runs = [(run["name"], run["evaluations"]) for run in progress.get("earlier_runs", [])]
    runs.append((name, progress.get("evaluations", [])))
    series: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for run, all_rows in runs:  # a run's averaged weights (ema_decay) are a curve of their own
        for weights, label in ((None, run), (AVERAGED, f"{run}, {AVERAGED}")):
            rows = [row for row in all_rows if row.get("weights") == weights]
            for metric in JUDGED:
                points = sorted((row["cpu_hours"], row[metric]) for row in rows if metric in row)
                if points:
                    series[metric, label] = points
    return series


def plot(recipe: Path, destination: Path) -> Path:
    """A PNG of the recipe's held-out metrics against CPU-hours, with the reference models as lines."""
    progress = read_json(recipe / PROGRESS, {})
    title = f"{recipe.name}: held-out metrics (17 prompts, sigma 0.6) against CPU-hours"
    return plot_curves(curves(progress), progress.get("references", {}), destination, title)


def plot_curves(
    series: dict[tuple[str, str], list[tuple[float, float]]],
    references: dict[str, dict[str, float]],
    destination: Path,
    title: str,
) -> Path:
    """One panel a judged metric: each run's curve, each reference as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True)
    runs = list(dict.fromkeys(run for _, run in series))  # one colour a run, in every panel
    palette = plt.get_cmap("tab20").colors
    for axis, (metric, (name, higher)) in zip(axes.flat, JUDGED.items(), strict=True):
        for (drawn, run), points in series.items():
            if drawn == metric:
                colour = palette[2 * runs.index(run) % 20 + runs.index(run) // 10 % 2]
                marker = "s" if run.endswith(AVERAGED) else "o"
                axis.plot(*zip(*points, strict=True), marker=marker, color=colour, label=run)
        for reference, values in references.items():
            axis.axhline(values[metric], linestyle="--", color="grey")
            axis.annotate(
                reference,
                (0, values[metric]),
                xycoords=("axes fraction", "data"),  # at the left edge, wherever the curves start
                xytext=(2, 3),
                textcoords="offset points",
                fontsize=7,
                color="grey",
            )
        axis.set_title(f"{name} ({'higher' if higher else 'lower'} is better)")
        axis.grid(alpha=0.3)
    for axis in axes[1]:
        axis.set_xlabel("training CPU-hours")
    axes[0][0].legend(fontsize=7)
    figure.suptitle(title)
    figure.tight_layout()
    with atomic_path(destination) as temporary:
        figure.savefig(temporary, format="png", dpi=80)
    plt.close(figure)
    return destination


def read_scores(folder: Path) -> dict[str, dict[str, float]]:
    """The WaveGlow system's scores by clip and metric from an evaluation's ``metrics.csv``."""
    path = folder / "metrics.csv"
    if not path.is_file():
        raise SystemExit(f"{folder}: no metrics.csv (is it a `waveglow evaluate` output folder?)")
    scores = {}
    with path.open(newline="") as file:
        for row in csv.DictReader(file):
            if row.pop("system") == "waveglow":
                clip = row.pop("clip")
                scores[clip] = {metric: float(value) for metric, value in row.items() if value}
    return scores


def sign_test(wins: int, losses: int) -> float:
    """Two-sided sign-test p-value of ``wins`` against ``losses`` (ties dropped)."""
    trials = wins + losses
    if trials == 0:
        return 1.0
    tail = sum(math.comb(trials, k) for k in range(min(wins, losses) + 1)) / 2**trials
    return min(1.0, 2 * tail)


def paired_comparison(candidate: Path, reference: Path) -> list[dict[str, Any]]:
    """Per metric, over the clips both evaluations scored: each mean, the candidate's clip wins
    and losses (by the metric's direction) and the sign test's p-value."""
    ours, theirs = read_scores(candidate), read_scores(reference)
    directions = read_json(candidate / "summary.json", {}).get("metrics", {})
    clips = sorted(set(ours) & set(theirs))
    if not clips:
        raise SystemExit(f"{candidate} and {reference} scored no clip in common")
    rows = []
    for metric, direction in directions.items():
        scored = [c for c in clips if metric in ours[c] and metric in theirs[c]]  # NaN: empty
        paired = [(ours[c][metric], theirs[c][metric]) for c in scored]
        if not paired:
            continue
        sign = 1 if direction["higher_is_better"] else -1
        wins = sum(sign * (a - b) > 0 for a, b in paired)
        losses = sum(sign * (a - b) < 0 for a, b in paired)
        means = [sum(column) / len(paired) for column in zip(*paired, strict=True)]
        rows.append(
            {
                "metric": metric,
                "candidate": means[0],
                "reference": means[1],
                "better": sign * (means[0] - means[1]) > 0,
                "wins": wins,
                "losses": losses,
                "p": sign_test(wins, losses),
            }
        )
    return rows


def beats(rows: list[dict[str, Any]], judged_metrics: Sequence[str] = tuple(JUDGED)) -> bool:
    """Better mean and more clips won than lost on every judged metric (default ``JUDGED``)."""
    judged = [row for row in rows if row["metric"] in judged_metrics]
    return len(judged) == len(judged_metrics) and all(
        row["better"] and row["wins"] > row["losses"] for row in judged
    )


def comparison_markdown(
    rows: list[dict[str, Any]], judged_metrics: Sequence[str] = tuple(JUDGED)
) -> str:
    lines = [
        "| metric | candidate | reference | clips won / lost | sign test p |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        mark = "**" if row["better"] else ""
        lines.append(
            f"| {row['metric']} | {mark}{row['candidate']:.3f}{mark} | {row['reference']:.3f} "
            f"| {row['wins']} / {row['losses']} | {row['p']:.2g} |"
        )
    verdict = "beats" if beats(rows, judged_metrics) else "does not beat"
    lines.append(
        f"\nThe candidate {verdict} the reference on the judged metrics "
        f"({', '.join(judged_metrics)})."
    )
    return "\n".join(lines)


CORPUS = "recipes/build_corpus.py: 816 clips (~39 min): Asterisk prompts, festival SLT, espeak-ng"


def training_facts(recipe: Path, run: Path, step: int, averaged: bool = False) -> dict[str, Any]:
    """What a shipped model's metadata says of its training (from the recipe and the run)."""
    config = read_json(recipe / "config.json", {})
    train, segment = config["train_config"], config["data_config"]["segment_length"]
    progress = read_json(recipe / PROGRESS, {})
    weights = AVERAGED if averaged else None
    evaluation = [
        r
        for r in progress.get("evaluations", [])
        if (r["step"], r.get("weights")) == (step, weights)
    ]
    changes = [c for c in progress.get("changes", []) if c["step"] < step]  # set by hand
    facts = {
        "recipe": _in_repository(recipe),
        "steps": step,
        "cpu_hours": round(cpu_hours_at(run, step), 2),
        "data": CORPUS,
        "precision": train["precision"],
        "wn_implementation": train["wn_implementation"],
        "optimizer": "Adam",
        "sigma": train["sigma"],
        "batch": f"{train['batch_size']} x {segment}-sample segments",
        "learning_rate": f"{train['learning_rate']}" + (" flat" if not changes else ""),
        "model_card": "src/waveglow/models/MODEL_CARD.md",
    }
    if train.get("spectral_loss_weight", 0):
        facts["spectral_loss"] = {key: train[key] for key in train if key.startswith("spectral_")}
    if changes:  # what the run changed on its way (rates, precision): the rate was not flat
        facts["changes"] = changes
    if averaged:
        facts["weights"] = f"moving average of the weights (ema_decay {train['ema_decay']})"
    warm_start = read_json(recipe / WARM_START, None)
    if warm_start is not None:  # the CPU-hours above count from these weights
        facts["warm_start"] = warm_start
    if evaluation:
        facts["held_out"] = {
            k: v for k, v in evaluation[0].items() if k not in ("step", "cpu_hours", "weights")
        }
    return facts


def _in_repository(recipe: Path) -> str:
    """The recipe folder as the repository names it (recipes/...), else its name under recipes/."""
    root = Path(__file__).resolve().parents[1]
    try:
        return recipe.resolve().relative_to(root).as_posix()
    except ValueError:
        return f"recipes/{recipe.name}"


def ship(
    recipe: Path, run: Path, checkpoint: Path | None, destination: Path, averaged: bool = False
) -> dict[str, Any]:
    """Make ``checkpoint`` (default: the run's newest; ``averaged``: its moving average of the
    weights) the bundled model at ``destination``."""
    checkpoint = checkpoint or checkpoints_in(run)[-1]
    facts = training_facts(recipe, run, checkpoint_step(checkpoint), averaged)
    ship_weights(checkpoint, destination, facts, averaged)
    return facts


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "action",
        choices=["train", "snapshot", "evaluate", "plot", "compare", "ship", "branch", "adopt"],
    )
    parser.add_argument(
        "recipe",
        type=Path,
        help="the recipe folder (config.json, state.pt); compare: the candidate's evaluation",
    )
    parser.add_argument(
        "reference", type=Path, nargs="?", help="compare: the reference's evaluation"
    )
    parser.add_argument("--run", type=Path, help="the run folder (outside git); not for plot")
    parser.add_argument("--corpus", type=Path, default=Path("/work/corpus"))
    parser.add_argument("--checkpoint", type=Path, help="evaluate: this checkpoint")
    parser.add_argument(
        "--averaged",
        action="store_true",
        help="evaluate, ship: the checkpoint's moving average of the weights (ema_decay)",
    )
    parser.add_argument("--png", type=Path, help="plot: the PNG to write (default docs/NAME.png)")
    parser.add_argument(
        "--destination",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "src/waveglow/models/demo.safetensors",
        help="ship: the model file to write (default: the bundled demo model)",
    )
    parser.add_argument(
        "--judged",
        default=",".join(JUDGED),
        help="compare: the comma-separated metrics a candidate must win (default: %(default)s)",
    )
    parser.add_argument("--branch", type=Path, help="branch, adopt: the branch's folder")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="branch: what it changes, e.g. train_config.learning_rate=1.25e-5 (repeatable)",
    )
    parser.add_argument("--name", help="adopt: a name for the line the branch replaces")
    parser.add_argument("--note", default="", help="adopt: what happened to that line")
    parser.add_argument("--change", help="adopt: the change, for the recipe's changes list")
    args = parser.parse_args()
    if args.action == "adopt":
        if args.branch is None or not args.name or not args.change:
            parser.error("adopt needs --branch, --name and --change")
        adopt(args.recipe, args.branch, args.name, args.note, args.change)
        print(f"{args.recipe}: now the branch's line; snapshot its run folder next")
        return
    if args.action == "compare":
        if args.reference is None:
            parser.error("compare needs two evaluation folders")
        judged = [name for name in args.judged.split(",") if name]
        print(comparison_markdown(paired_comparison(args.recipe, args.reference), judged))
        return
    if args.action == "plot":
        default = Path(__file__).resolve().parents[1] / "docs" / f"{args.recipe.name}.png"
        print(plot(args.recipe, args.png or default))
        return
    if args.run is None:
        parser.error(f"{args.action} needs --run (the run folder)")
    if args.action == "evaluate":
        row = evaluate_checkpoint(
            args.recipe, args.run, args.corpus, args.checkpoint, args.averaged
        )
        print(json.dumps(row))
        return
    if args.action == "ship":
        shipped = ship(args.recipe, args.run, args.checkpoint, args.destination, args.averaged)
        print(json.dumps(shipped, indent=1))
        return
    if args.action == "branch":
        if args.branch is None or args.checkpoint is None:
            parser.error("branch needs --checkpoint (of the run) and --branch (a new folder)")
        progress = branch(args.recipe, args.run, args.checkpoint, args.branch, args.overrides)
        print(json.dumps(progress, indent=1))
        return
    if args.action == "snapshot":
        progress = snapshot(args.recipe, args.run)
        print(json.dumps({k: progress[k] for k in ("step", "cpu_hours", "wall_hours", "updated")}))
        return
    command = train_command(args.recipe, args.corpus, args.run)
    print(" ".join(command), flush=True)
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
