"""Turn a training run into the bundled model: weight norm folded, fp16, safetensors.

    python recipes/ship_model.py runs/demo/best.pt src/waveglow/models/demo.safetensors

Also prints the run's learning curve (train loss and validation NLL by step) and its total
training wall time and CPU time from its log.jsonl, for the model card.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import torch

import waveglow

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model_metadata import rewrite_metadata  # noqa: E402 - a sibling script


def ship(
    checkpoint: Path,
    destination: Path,
    trained: dict[str, Any] | None = None,
    averaged: bool = False,
) -> None:
    """Write ``checkpoint``'s model (``averaged``: its moving average of the weights) to
    ``destination`` in fp16; ``trained`` (facts of its training for the model card) goes into
    the file's metadata."""
    model = waveglow.load(checkpoint, averaged=averaged)  # eval mode, weight norm folded
    waveglow.save(model.to(torch.float16), destination)
    if trained is not None:
        rewrite_metadata(destination, trained)
    size = destination.stat().st_size / 2**20
    print(
        f"wrote {destination} ({size:.1f} MiB, {sum(p.numel() for p in model.parameters())} parameters)"
    )


def curve(log: Path) -> None:
    print("| step | train NLL (mean of the logged steps since the last row) | validation NLL |")
    print("|---|---|---|")
    losses: list[float] = []
    for line in log.read_text().splitlines():
        event = json.loads(line)
        if event["event"] == "step":
            losses.append(event["loss"])
        elif event["event"] == "validation":
            train = sum(losses) / len(losses) if losses else float("nan")
            print(f"| {event['step']} | {train:.3f} | {event['validation_loss']:.3f} |")
            losses = []


def training_hours(log: Path, up_to_step: float = math.inf) -> float:
    """Wall-clock hours the run spent training: each (re)start to the last event before the next
    (and at or before ``up_to_step``), summed over the sessions in its log (time paused for
    benchmarks included)."""
    hours, start, last = 0.0, None, None
    for line in log.read_text().splitlines():
        event = json.loads(line)
        if event["event"] == "start":
            if start is not None:
                hours += (last - start) / 3600
            start = event["time"]
        if event.get("step", 0) <= up_to_step:
            last = event["time"]
    if start is not None:
        hours += (last - start) / 3600
    return hours


def training_cpu_hours(log: Path, up_to_step: float = math.inf) -> tuple[float, int]:
    """CPU hours of the training processes (all threads; data workers not included): the last
    ``cpu_seconds`` logged after each (re)start (at or before ``up_to_step``), summed; also how
    many starts logged none (runs from before the field existed, counted in the wall time only)."""
    segments: list[float | None] = []
    for line in log.read_text().splitlines():
        event = json.loads(line)
        if event["event"] == "start":
            segments.append(None)
        elif (
            event["event"] == "step"
            and "cpu_seconds" in event
            and event["step"] <= up_to_step
            and segments
        ):
            segments[-1] = event["cpu_seconds"]
    measured = [seconds for seconds in segments if seconds is not None]
    return sum(measured) / 3600, len(segments) - len(measured)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("destination", type=Path)
    parser.add_argument(
        "--trained", type=Path, help="a JSON file of training facts to keep in the file's metadata"
    )
    args = parser.parse_args()
    trained = json.loads(args.trained.read_text()) if args.trained else None
    ship(args.checkpoint, args.destination, trained)
    log = args.checkpoint.parent / "log.jsonl"
    if log.is_file():
        curve(log)
        print(f"training wall time so far: {training_hours(log):.2f} h")
        cpu_hours, unmeasured = training_cpu_hours(log)
        print(
            f"training CPU time so far: {cpu_hours:.2f} CPU-hours"
            f" ({unmeasured} earlier (re)starts logged no CPU time)"
        )


if __name__ == "__main__":
    main()
