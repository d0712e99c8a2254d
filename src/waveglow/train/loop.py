"""The training loop: :func:`train` runs a run from its start (or a resume) to ``max_iters`` or
``epochs``, or to a stop signal.

Each step accumulates ``grad_accumulation`` batches and skips a non-finite update; then the run
logs, validates and checkpoints at their intervals. SIGINT/SIGTERM stop the run after the current
step, with a checkpoint.
"""

from __future__ import annotations

import math
import re
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..config import Config, TrainConfig
from ..data import Batch, DataError, Sample
from ..loss import nll_loss
from ..model import WaveGlow
from .average import update_average
from .distributed import all_gather, all_reduce_sum, barrier, leave, setup_distributed
from .log import StepOutcome
from .setup import setup
from .state import (
    BEST_CHECKPOINT,
    Trainer,
    gather_rng_states,
    learning_rate_at,
    roll_back,
    save_checkpoint,
    save_state,
)

SYNTHESIS_SIGMA = 0.6


@dataclass
class TrainResult:
    """What :func:`train` returns: the trained model (with weight norm) and how the run ended."""

    model: WaveGlow
    step: int
    epoch: int
    skipped_steps: int
    validation_loss: float
    best_validation_loss: float
    last_checkpoint: Path | None
    stopped_by: str | None
    bad_files: list[str]


def train(
    config: Config,
    *,
    resume: bool | str | Path = False,
    init_from: str | Path | None = None,
    device: str | torch.device | None = None,
    progress_bar: bool = True,
) -> TrainResult:
    """Train a WaveGlow as ``config`` says; see :mod:`waveglow.train` for the files written.

    ``resume=True`` continues from the newest checkpoint of the output directory (a path: from
    that file), exactly where it stopped. ``init_from`` warm-starts the weights from any file
    :func:`waveglow.load` accepts, with a fresh optimizer. SIGINT/SIGTERM save a checkpoint and
    return; ``N`` consecutive non-finite steps roll back to the last checkpoint and raise
    :class:`TrainingError`.
    """
    distributed = setup_distributed(device)
    try:
        trainer = setup(config, distributed, resume, init_from, progress_bar)
        try:
            with StopRequest() as stop:
                stopped_by = run_loop(trainer, stop)
            result = _result(trainer, stopped_by)
            barrier(distributed)  # no rank tears the group down while another still uses it
            return result
        finally:
            trainer.logger.close()
    finally:
        leave(distributed)


def _result(trainer: Trainer, stopped_by: str | None) -> TrainResult:
    progress = trainer.progress
    return TrainResult(
        model=trainer.model,
        step=progress.step,
        epoch=progress.epoch,
        skipped_steps=progress.skipped_steps,
        validation_loss=progress.validation_loss,
        best_validation_loss=progress.best_validation_loss,
        last_checkpoint=trainer.last_checkpoint,
        stopped_by=stopped_by,
        bad_files=list(progress.bad_files),
    )


# ---------------------------------------------------------------------------- the loop
def run_loop(trainer: Trainer, stop: StopRequest) -> str | None:
    """Train until ``max_iters``/``epochs`` or a stop signal; returns the signal's name or None."""
    config = trainer.train_config
    accumulation = config.grad_accumulation
    stopped_by = None
    while not _finished(trainer) and stopped_by is None:
        progress = trainer.progress
        trainer.sampler.set_epoch(progress.epoch, progress.batch_in_epoch * config.batch_size)
        trainer.loader.generator.manual_seed(config.seed + progress.epoch)
        pending: list[Batch] = []
        with _batches(trainer.loader) as batches:
            for batch in batches:
                pending.append(batch)
                if len(pending) < accumulation:
                    continue
                stopped_by = after_step(trainer, train_step(trainer, pending, stop))
                pending = []
                if stopped_by is not None or _finished(trainer):
                    break
            else:
                progress.epoch += 1
                progress.batch_in_epoch = 0
    finish(trainer, stopped_by)
    return stopped_by


@contextmanager
def _batches(loader: DataLoader) -> Iterator[Iterator[Batch]]:
    """The loader's batches; its workers are shut down however the loop ends, and an error raised
    in a worker comes back as the same error with its own message (not the worker's traceback)."""
    iterator = iter(loader)
    try:
        yield iterator
    except DataError as error:
        raise DataError(worker_message(error)) from None
    finally:
        shutdown = getattr(iterator, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()


def worker_message(error: BaseException) -> str:
    """The original message of an error a DataLoader worker raised (torch wraps it in the
    worker's traceback: "Caught X in DataLoader worker ... Original Traceback ... X: message")."""
    text = str(error)
    if "Original Traceback" not in text:
        return text
    last = [line for line in text.splitlines() if line.strip()][-1]
    return re.sub(r"^[\w.]+(Error|Exception): ", "", last)


def _finished(trainer: Trainer) -> bool:
    config, progress = trainer.train_config, trainer.progress
    if config.max_iters and progress.step >= config.max_iters:
        return True
    return progress.epoch >= config.epochs


def train_step(trainer: Trainer, batches: Sequence[Batch], stop: StopRequest) -> StepOutcome:
    """One optimizer step over ``batches`` (gradient accumulation); skips non-finite steps."""
    started = time.perf_counter()
    rate = learning_rate_at(trainer.train_config, trainer.progress.step)
    for group in trainer.optimizer.param_groups:
        group["lr"] = rate
    trainer.optimizer.zero_grad(set_to_none=True)
    spectral = with_spectral_term(trainer.train_config, trainer.progress.step)
    losses = torch.zeros(2, device=trainer.distributed.device)  # NLL, spectral distance
    for index, batch in enumerate(batches):
        losses += _backward(trainer, batch, index, len(batches), spectral)
        trainer.pending_problems.extend(batch.failed + batch.skipped)
    grad_norm = _unscale_and_clip(trainer)
    stop_flag = torch.tensor([float(stop.signal is not None)], device=losses.device)
    totals = all_reduce_sum(torch.cat([losses, stop_flag]), trainer.distributed)
    mean_loss, mean_spectral = (
        float(total) / trainer.distributed.world_size for total in totals[:2]
    )
    finite = math.isfinite(mean_loss) and math.isfinite(mean_spectral) and math.isfinite(grad_norm)
    if finite:
        trainer.scaler.step(trainer.optimizer)
        if trainer.average is not None:
            update_average(trainer.average, trainer.model, trainer.train_config.ema_decay)
    trainer.scaler.update()
    samples = sum(len(batch.audio) for batch in batches) * trainer.distributed.world_size
    signal_name = stop.signal or ("signal on another rank" if float(totals[2]) > 0 else None)
    return StepOutcome(
        mean_loss if finite else math.nan,
        grad_norm,
        samples,
        time.perf_counter() - started,
        signal_name,
        (mean_spectral if finite else math.nan) if spectral else None,
    )


def with_spectral_term(config: TrainConfig, step: int) -> bool:
    """True when the step after ``step`` finished ones adds the spectral term: every
    ``spectral_every``-th step of a run with ``spectral_loss_weight`` > 0, from the first."""
    return config.spectral and step % config.spectral_every == 0


def _backward(
    trainer: Trainer, batch: Batch, part: int, parts: int, spectral: bool
) -> torch.Tensor:
    """Back-propagate the share of the step's loss of its ``part``-th of ``parts`` batches;
    returns its (NLL, spectral) shares (the spectral one 0 without the term)."""
    device, config = trainer.distributed.device, trainer.train_config
    mel = batch.mel.to(device, non_blocking=True)
    audio = batch.audio.to(device, non_blocking=True)
    synchronise = part == parts - 1 or not trainer.distributed.enabled
    with nullcontext() if synchronise else trainer.network.no_sync():
        z, log_det = trainer.forward(mel, audio)
        nll = nll_loss(z.float(), log_det.float(), config.sigma) / parts
        distance = (
            trainer.spectral_distance(mel, audio, part) / parts if spectral else nll.new_zeros(())
        )
        loss = nll + config.spectral_loss_weight * distance if spectral else nll
        trainer.scaler.scale(loss).backward()
    return torch.stack([nll.detach(), distance.detach()])


def _unscale_and_clip(trainer: Trainer) -> float:
    trainer.scaler.unscale_(trainer.optimizer)
    threshold = trainer.train_config.grad_clip_thresh
    if threshold > 0:
        return float(torch.nn.utils.clip_grad_norm_(trainer.model.parameters(), threshold))
    grads = [p.grad for p in trainer.model.parameters() if p.grad is not None]
    return float(torch.nn.utils.get_total_norm(grads))


def after_step(trainer: Trainer, outcome: StepOutcome) -> str | None:
    """Count the step, guard against divergence, log, validate and checkpoint."""
    config, progress = trainer.train_config, trainer.progress
    progress.step += 1
    progress.batch_in_epoch += config.grad_accumulation
    if math.isfinite(outcome.loss):
        progress.bad_in_a_row = 0
    else:
        progress.skipped_steps += 1
        progress.bad_in_a_row += 1
        if progress.bad_in_a_row >= config.max_bad_steps:
            roll_back(trainer)
    learning_rate = trainer.optimizer.param_groups[0]["lr"]
    trainer.logger.step(
        outcome, progress.step, progress.epoch, progress.skipped_steps, learning_rate
    )
    if progress.step % config.iters_per_log == 0:
        report_problems(trainer)
    if progress.step % config.iters_per_validation == 0:
        evaluate(trainer)
    if progress.step % config.iters_per_checkpoint == 0:
        save_checkpoint(trainer)
    return outcome.stop_signal


def finish(trainer: Trainer, stopped_by: str | None) -> None:
    """End of the run: report, validate and save unless this step was already handled."""
    report_problems(trainer)
    step = trainer.progress.step
    if stopped_by is None and step % trainer.train_config.iters_per_validation:
        evaluate(trainer)
    if step % trainer.train_config.iters_per_checkpoint:
        save_checkpoint(trainer)
    trainer.logger.event("stop", step=step, stopped_by=stopped_by)


def report_problems(trainer: Trainer) -> None:
    """Log every unreadable or skipped file once (gathered from all ranks)."""
    problems = all_gather(trainer.pending_problems, trainer.distributed)
    trainer.pending_problems = []
    known = set(trainer.progress.bad_files)
    for problem in (p for rank_problems in problems for p in rank_problems):
        if problem not in known:
            known.add(problem)
            trainer.progress.bad_files.append(problem)
            trainer.logger.event("bad_file", step=trainer.progress.step, problem=problem)


# ---------------------------------------------------------------------------- validation
def evaluate(trainer: Trainer) -> float:
    """Mean NLL over the held-out clips (fp32, rank 0) plus synthesized samples; logs both.

    Every rank calls it (it gathers the RNG states for ``best.pt``); rank 0 alone evaluates.
    """
    rng_states = gather_rng_states(trainer.distributed)
    if trainer.validation is None or not trainer.distributed.is_main:
        return math.nan
    model, device = trainer.model, trainer.distributed.device
    model.eval()
    losses = []
    with torch.no_grad():
        validation = _validation_samples(trainer)
        for sample in validation:
            z, log_det = model(sample.mel[None].to(device), sample.audio[None].to(device))
            losses.append(float(nll_loss(z, log_det, trainer.train_config.sigma)))
        samples = _synthesize(trainer, validation)
        spectral = validation_spectral_distance(trainer, validation)
    model.train()
    loss = float(np.mean(losses)) if losses else math.nan
    progress = trainer.progress
    trainer.validation_ok = math.isfinite(loss) or not losses
    progress.validation_loss = loss
    improved = loss < progress.best_validation_loss
    progress.best_validation_loss = min(loss, progress.best_validation_loss)
    trainer.logger.validation(progress.step, loss, samples, trainer.config, spectral)
    if improved:
        save_state(trainer, trainer.output / BEST_CHECKPOINT, rng_states)
    return loss


def _validation_samples(trainer: Trainer) -> list[Sample]:
    """Each held-out clip once; unreadable ones are reported and left out."""
    dataset = trainer.validation
    samples = []
    for index in range(len(dataset)):
        try:
            sample = dataset[index]
        except DataError as error:
            trainer.pending_problems.append(str(error))
            continue
        trainer.pending_problems.extend(sample.failed + sample.skipped)
        if not (sample.failed or sample.skipped):  # else it stands in for another clip
            samples.append(sample)
    return samples


def validation_spectral_distance(trainer: Trainer, validation: list[Sample]) -> float:
    """Mean spectral distance (:class:`~waveglow.loss.SpectralLoss`) of the held-out clips
    synthesized at ``spectral_sigma`` (fp32, noise seeded by the run's seed) to the clips
    themselves; clips too short for the longest FFT are left out (NaN when none is left)."""
    device, config = trainer.distributed.device, trainer.train_config
    generator = torch.Generator(device=device).manual_seed(config.seed)
    distances = []
    for sample in validation:
        audio = trainer.model.infer(
            sample.mel[None].to(device), config.spectral_sigma, generator=generator
        )
        length = min(audio.size(1), sample.audio.size(0))
        if length > trainer.spectral.longest_fft // 2:
            reference = sample.audio[None, :length].to(device)
            distances.append(float(trainer.spectral(audio[:, :length], reference)))
    return float(np.mean(distances)) if distances else math.nan


def _synthesize(
    trainer: Trainer, validation: list[Sample]
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(reference audio, synthesized audio) for the first validation clips."""
    device = trainer.distributed.device
    generator = torch.Generator(device=device).manual_seed(trainer.train_config.seed)
    pairs = []
    for sample in validation[: trainer.train_config.n_synthesis_samples]:
        audio = trainer.model.infer(
            sample.mel[None].to(device), SYNTHESIS_SIGMA, generator=generator
        )
        pairs.append((sample.audio, audio[0].float().cpu().clamp(-1, 1)))
    return pairs


# ---------------------------------------------------------------------------- signals
class StopRequest:
    """Turns SIGINT/SIGTERM into a request the loop sees after the current step.

    A second signal of the same kind is not caught: the default action applies.
    """

    def __init__(self) -> None:
        self.signal: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for number in (signal.SIGINT, signal.SIGTERM):
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def _handle(self, number: int, _frame: Any) -> None:
        self.signal = signal.Signals(number).name
        signal.signal(number, self._previous.get(number, signal.SIG_DFL))

    def __exit__(self, *_exc: object) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()
