"""What a run reports: a tqdm bar, ``log.jsonl`` (one JSON object per event, for machines) and,
with ``with_tensorboard``, TensorBoard events in ``logs/``; the audio synthesized at each
validation goes to ``samples/``. Only rank 0 logs.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from ..audio import mel_transform, remove_stale_temporaries, save_wav
from ..config import Config


@dataclass(frozen=True)
class StepOutcome:
    """What one optimizer step did (:func:`waveglow.train.loop.train_step`)."""

    loss: float
    grad_norm: float
    samples: int
    seconds: float
    stop_signal: str | None
    spectral: float | None = None  # the spectral term's distance, on steps that added it


class RunLogger:
    """A tqdm bar, ``log.jsonl`` and (optionally) TensorBoard; silent on ranks other than 0."""

    def __init__(
        self, output: Path, enabled: bool, config: Config, progress_bar: bool, total_steps: int
    ) -> None:
        self.enabled = enabled
        self.output = output
        self.interval = config.train_config.iters_per_log
        self.sampling_rate = config.data_config.sampling_rate
        self.window: list[tuple[int, float]] = []
        self.spectral_window: list[float] = []
        self.bar = None
        self.board = None
        if not enabled:
            return
        output.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(output, output / "samples")
        self.json = open(output / "log.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        if config.train_config.with_tensorboard:
            self.board = _tensorboard(output / "logs", self)
        self.bar_total = total_steps if progress_bar else False

    def event(self, kind: str, **fields: Any) -> None:
        if not self.enabled:
            return
        self.json.write(json.dumps({"event": kind, "time": time.time(), **fields}) + "\n")
        self.json.flush()
        if kind in ("bad_file", "diverged", "note"):
            tqdm.write(f"waveglow train: {fields.get('problem') or fields.get('message')}")

    def step(
        self,
        outcome: StepOutcome,
        step: int,
        epoch: int,
        skipped_steps: int,
        learning_rate: float,
    ) -> None:
        """Count a finished step (the ``step``-th); every ``iters_per_log`` steps, log the
        throughput of the last ones and the step's loss, gradient norm and rate."""
        if not self.enabled:
            return
        self.window.append((outcome.samples, outcome.seconds))
        if outcome.spectral is not None:
            self.spectral_window.append(outcome.spectral)
        if self.bar is None and self.bar_total is not False:
            self.bar = tqdm(total=self.bar_total, initial=step - 1, unit="step", dynamic_ncols=True)
        if self.bar is not None:
            self.bar.update(1)
        if step % self.interval:
            return
        samples, seconds = (sum(values) for values in zip(*self.window, strict=True))
        self.window = []
        scalars = {
            "loss": outcome.loss,
            "grad_norm": outcome.grad_norm,
            "learning_rate": learning_rate,
            "samples_per_second": samples / max(seconds, 1e-9),
            "skipped_steps": skipped_steps,
        }
        if self.spectral_window:  # the mean over the steps since the last log that added it
            scalars["spectral_loss"] = sum(self.spectral_window) / len(self.spectral_window)
            self.spectral_window = []
        self.event(
            "step",
            step=step,
            epoch=epoch,
            cpu_seconds=time.process_time(),  # this process, all threads, since it started
            **scalars,
        )
        if self.bar is not None:
            self.bar.set_postfix(
                loss=f"{outcome.loss:.3f}", sps=f"{scalars['samples_per_second']:.0f}"
            )
        if self.board is not None:
            for name, value in scalars.items():
                self.board.add_scalar(f"train/{name}", value, step)

    def validation(
        self,
        step: int,
        loss: float,
        samples: list[tuple[torch.Tensor, torch.Tensor]],
        config: Config,
        spectral_distance: float = math.nan,
    ) -> None:
        if not self.enabled:
            return
        written = []
        for index, (_reference, audio) in enumerate(samples):
            path = self.output / "samples" / f"step_{step:08d}_{index}.wav"
            save_wav(path, audio, self.sampling_rate)
            written.append(str(path))
        self.event(
            "validation",
            step=step,
            validation_loss=loss,
            validation_spectral=spectral_distance,
            samples=written,
        )
        if self.bar is not None:
            tqdm.write(
                f"step {step}: validation loss {loss:.4f}, "
                f"spectral distance {spectral_distance:.4f}"
            )
        if self.board is not None:
            self.board.add_scalar("validation/loss", loss, step)
            self.board.add_scalar("validation/spectral", spectral_distance, step)
            mel = mel_transform(config)
            for index, (reference, audio) in enumerate(samples):
                self.board.add_audio(f"synthesis/{index}", audio[None], step, self.sampling_rate)
                reference_mel, synthesis_mel = mel(reference), mel(audio)
                frames = min(reference_mel.size(1), synthesis_mel.size(1))
                image = torch.cat([reference_mel[:, :frames], synthesis_mel[:, :frames]])  # (2M, F)
                self.board.add_image(f"mel/{index}", _image(image)[None], step)

    def close(self) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.close()
        if self.board is not None:
            self.board.close()
        self.json.close()


def _tensorboard(directory: Path, logger: RunLogger):  # noqa: ANN202 - SummaryWriter or None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        logger.event(
            "note",
            message="TensorBoard is not installed (pip install 'waveglow[train]'); "
            "logging to log.jsonl only",
        )
        return None
    return SummaryWriter(str(directory))


def _image(mel: torch.Tensor) -> torch.Tensor:
    """A log-mel (rows, F) scaled to [0, 1], low frequencies at the bottom."""
    low, high = mel.min(), mel.max()
    return ((mel - low) / (high - low).clamp(min=1e-6)).flip(0)
