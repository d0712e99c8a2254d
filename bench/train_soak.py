"""Training soak: a run killed with SIGKILL at random moments and resumed each time must end
bit-identical to the same run uninterrupted.

    python bench/train_soak.py --kills 20 --out out/train-soak

The tiny model and corpus of the test suite (``tests/conftest.py``, ``tests/corpus.py``), a
checkpoint every step. Each life of ``waveglow train`` (``--resume`` once a checkpoint exists) is
killed ``--max-delay-s`` at most after it logged a new step (so kills land in steps, checkpoint
writes and validation alike), until ``--kills`` kills; the last life runs to ``--steps``. Then
every tensor of the final checkpoint (weights, optimizer state, the torch, NumPy and Python RNG
states it saves) and its step and epoch are compared with an uninterrupted run's: equal bit for
bit, or the soak fails. The RNG states are also listed apart (``saved_rng_state_differences``);
the output folder in ``run_config`` differs by design.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))


OUTPUT_DIRECTORY = ".run_config.train_config.output_directory"  # differs by design


def write_config(corpus: Path, output: Path, steps: int) -> Path:
    from conftest import TINY, TINY_DATA
    from corpus import tiny_config

    fields = {"max_iters": steps, "iters_per_checkpoint": 1, "iters_per_validation": 10}
    config = tiny_config(TINY, TINY_DATA, corpus, output, **fields)
    path = output.parent / f"{output.name}.json"
    path.write_text(json.dumps(config.to_dict()))
    return path


def start(config: Path, resume: bool) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "waveglow", "train", "--config", str(config), "-q"]
    command += ["--resume"] if resume else []
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)  # fmt: skip


def last_step(output: Path) -> int:
    log = output / "log.jsonl"
    if not log.exists():
        return -1
    steps = [-1]
    for line in log.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by the kill
        if entry.get("event") == "step":
            steps.append(entry["step"])
    return max(steps)


def one_life(
    config: Path, output: Path, generator: random.Random, max_delay: float, steps: int
) -> str:
    """Start (resuming when a checkpoint exists), wait for a new step, kill at a random moment
    before the run's last step (on a fast machine a whole run fits in ``max_delay``, and a kill
    after the last checkpoint leaves nothing to resume). Returns "killed" or "finished"."""
    from waveglow.train import checkpoints_in

    before = last_step(output)
    process = start(config, resume=bool(checkpoints_in(output)) if output.exists() else False)
    deadline = time.monotonic() + 300
    while process.poll() is None and last_step(output) <= before and time.monotonic() < deadline:
        time.sleep(0.02)
    kill_at = time.monotonic() + generator.uniform(0, max_delay)
    while time.monotonic() < kill_at and process.poll() is None and last_step(output) < steps - 1:
        time.sleep(0.002)
    if process.poll() is not None:
        text = process.stdout.read()
        if process.returncode != 0:
            raise RuntimeError(f"a life of the run failed (exit {process.returncode}):\n{text}")
        return "finished"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    return "killed"


def finish(config: Path) -> None:
    """The last life: resumed, run to the end."""
    process = start(config, resume=True)
    try:
        code = process.wait(timeout=900)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise
    if code != 0:
        raise RuntimeError(f"the last life failed (exit {code}):\n{process.stdout.read()}")


def final_state(output: Path, steps: int) -> dict:
    path = output / f"waveglow_{steps:08d}.pt"
    return torch.load(path, map_location="cpu", weights_only=True)


def differences(first: object, second: object, where: str = "") -> list[str]:
    """Where two nested checkpoints differ (tensors bit for bit)."""
    if isinstance(first, torch.Tensor) or isinstance(second, torch.Tensor):
        same = isinstance(first, torch.Tensor) and isinstance(second, torch.Tensor) and (
            first.dtype == second.dtype and first.shape == second.shape and torch.equal(first, second))  # fmt: skip
        return [] if same else [where]
    if isinstance(first, dict) and isinstance(second, dict):
        keys = set(first) | set(second)
        return [
            d
            for k in sorted(keys, key=str)
            for d in differences(first.get(k), second.get(k), f"{where}.{k}")
        ]
    if (
        isinstance(first, list | tuple)
        and isinstance(second, list | tuple)
        and len(first) == len(second)
    ):
        return [
            d
            for i, (a, b) in enumerate(zip(first, second, strict=True))
            for d in differences(a, b, f"{where}[{i}]")
        ]
    return [] if first == second else [where]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--max-delay-s", type=float, default=0.8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    from corpus import make_folder_corpus
    from fuzz import machine

    folder = Path(tempfile.mkdtemp(prefix="train-soak-"))
    corpus = make_folder_corpus(folder / "corpus", count=12)
    started = time.monotonic()
    straight = start(write_config(corpus, folder / "straight", args.steps), resume=False)
    if straight.wait() != 0:
        raise RuntimeError(straight.stdout.read())
    straight_s = time.monotonic() - started
    config = write_config(corpus, folder / "killed", args.steps)
    generator = random.Random(args.seed)
    lives, kills = 0, 0
    while True:
        outcome = one_life(config, folder / "killed", generator, args.max_delay_s, args.steps)
        lives += 1
        kills += outcome == "killed"
        if outcome == "finished":
            if kills >= args.kills:
                break
            raise RuntimeError(f"the run finished after {kills} kills: raise --steps")
        print(f"kill {kills} at step {last_step(folder / 'killed')}", flush=True)
        finished = (folder / "killed" / f"waveglow_{args.steps:08d}.pt").exists()
        if finished and kills < args.kills:  # killed after its last checkpoint all the same
            raise RuntimeError(f"the run finished after {kills} kills: raise --steps")
        if kills >= args.kills:
            if not finished:
                finish(config)  # else the last kill came after the last step's checkpoint
                lives += 1
            break
    every = differences(
        final_state(folder / "straight", args.steps), final_state(folder / "killed", args.steps)
    )
    rng = sorted({d.split("[")[0] + d.split("]")[1].split("[")[0] for d in every if ".rng" in d})
    diff = [d for d in every if d != OUTPUT_DIRECTORY]
    result = {"machine": machine(), "kills": kills, "lives": lives, "steps": args.steps,
              "uninterrupted_s": round(straight_s, 1), "soak_s": round(time.monotonic() - started, 1),
              "bit_identical": not diff, "differences": diff[:20], "saved_rng_state_differences": rng}  # fmt: skip
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "report.json").write_text(json.dumps(result, indent=1))
    return 0 if not diff else 1


if __name__ == "__main__":
    sys.exit(main())
