"""Training by maximum likelihood, as NVIDIA's ``train.py`` does, with what it lacked.

:func:`train` is the library entry point; ``waveglow train`` calls it. A run lives in
``train_config.output_directory``::

    config.json                the merged configuration
    train_files.txt            the deterministic train / validation split (filelists)
    validation_files.txt
    waveglow_{step:08d}.pt     training checkpoints (the last ``keep_checkpoints``)
    best.pt                    the checkpoint with the lowest validation loss
    log.jsonl                  one JSON object per event, for machines
    samples/                   audio synthesised from validation mels
    logs/                      TensorBoard events (``with_tensorboard``)

Launch several processes with ``torchrun --nproc_per_node=N -m waveglow train ...``: each process
trains on its share of every batch through DistributedDataParallel (NCCL on GPUs, gloo on CPU);
rank 0 alone logs and writes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import re
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as torch_dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from . import fast
from .audio import MelSpectrogram, atomic_path, remove_stale_temporaries, save_wav
from .checkpoint import Checkpoint, CheckpointError, build_model, save
from .config import Config, ConfigError, TrainConfig
from .convert import read_checkpoint, safe_torch_load
from .data import (
    Batch,
    DataError,
    ResumableSampler,
    Sample,
    SegmentDataset,
    collate,
    prepare_split,
)
from .loss import nll_loss
from .model import WaveGlow

CHECKPOINT_PREFIX = "waveglow_"
BEST_CHECKPOINT = "best.pt"
SYNTHESIS_SIGMA = 0.6
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class TrainingError(RuntimeError):
    """Training cannot go on (diverged, no data, nothing to resume); the message says why."""


# ---------------------------------------------------------------------------- configuration
def apply_overrides(config: Config, overrides: Sequence[str]) -> Config:
    """Apply ``section.key=value`` overrides (``train.x`` is short for ``train_config.x``).

    Values are parsed as JSON where possible (numbers, true/false, null), else kept as strings;
    nested keys work (``waveglow_config.WN_config.n_channels=256``). Unknown keys are an error.
    """
    data = dataclasses.asdict(config)  # every field, ours included, can be set
    for override in overrides:
        key, separator, text = override.partition("=")
        if not separator or not key.strip():
            raise ConfigError(f"override {override!r} is not of the form section.key=value")
        *sections, name = [part.strip() for part in key.split(".")]
        target = data
        for section in sections:
            section = _SECTION_ALIASES.get(section, section)
            if not isinstance(target.get(section), dict):
                raise ConfigError(f"override {override!r}: unknown section {section!r}")
            target = target[section]
        if name not in target:
            raise ConfigError(f"override {override!r}: unknown key {name!r}")
        target[name] = _parse_value(text.strip())
    return Config.from_dict(data)


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


_SECTION_ALIASES = {
    "train": "train_config",
    "data": "data_config",
    "waveglow": "waveglow_config",
    "dist": "dist_config",
    "WN": "WN_config",
}


# ---------------------------------------------------------------------------- distributed
@dataclass(frozen=True)
class Distributed:
    """Where this process sits in a torchrun job (rank 0 of 1 without torchrun)."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup_distributed(device: str | torch.device | None = None) -> Distributed:
    """Join the process group torchrun describes in the environment (NCCL on GPU, gloo on CPU)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world_size > 1 and not torch_dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch_dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return Distributed(rank, world_size, local_rank, device)


def _all_reduce_sum(values: torch.Tensor, distributed: Distributed) -> torch.Tensor:
    if distributed.enabled:
        torch_dist.all_reduce(values, op=torch_dist.ReduceOp.SUM)
    return values


def _all_gather(value: Any, distributed: Distributed) -> list[Any]:
    if not distributed.enabled:
        return [value]
    gathered: list[Any] = [None] * distributed.world_size
    torch_dist.all_gather_object(gathered, value)
    return gathered


# ---------------------------------------------------------------------------- state
@dataclass
class Progress:
    """Where the run is; saved in every checkpoint."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    skipped_steps: int = 0
    bad_in_a_row: int = 0
    best_validation_loss: float = math.inf
    validation_loss: float = math.nan
    bad_files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


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


@dataclass
class Trainer:
    """Everything the loop needs; built by :func:`setup`."""

    config: Config
    distributed: Distributed
    model: WaveGlow
    network: torch.nn.Module  # the model, wrapped in DDP when distributed
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    loader: DataLoader
    sampler: ResumableSampler
    validation: SegmentDataset | None
    output: Path
    logger: RunLogger
    progress: Progress = field(default_factory=Progress)
    last_checkpoint: Path | None = None
    rollback_target: Path | None = None  # the last checkpoint known good (see save_checkpoint)
    validation_ok: bool = True  # False from a non-finite validation until a finite one
    pending_problems: list[str] = field(default_factory=list)

    @property
    def train_config(self) -> TrainConfig:
        return self.config.train_config

    def forward(self, mel: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The flow in the run's precision: the matrix-product WN (:mod:`waveglow.fast`) with its
        big products in bf16/fp16, or (``wn_implementation="conv"``) convolutions under autocast.
        Either way the couplings, 1x1 convolutions and log-determinants stay in fp32."""
        precision = self.train_config.amp_precision
        if self.train_config.wn_implementation == "gemm":
            return self.network(mel, audio, precision=precision)
        if precision == "fp32":
            return self.network(mel, audio)
        with torch.autocast(self.distributed.device.type, dtype=_DTYPES[precision]):
            return self.network(mel, audio)


# ---------------------------------------------------------------------------- entry point
def train(
    config: Config,
    *,
    resume: bool | str | Path = False,
    init_from: str | Path | None = None,
    device: str | torch.device | None = None,
    progress_bar: bool = True,
) -> TrainResult:
    """Train a WaveGlow as ``config`` says; see the module docstring for the files written.

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
            if distributed.enabled:  # no rank tears the group down while another still uses it
                torch_dist.barrier()
            return result
        finally:
            trainer.logger.close()
    finally:
        if distributed.enabled and torch_dist.is_initialized():
            torch_dist.destroy_process_group()


def setup(
    config: Config,
    distributed: Distributed,
    resume: bool | str | Path = False,
    init_from: str | Path | None = None,
    progress_bar: bool = True,
) -> Trainer:
    """Build model, optimizer, data and logger; restore a checkpoint when resuming."""
    resume_path = _resume_path(config, resume)
    if init_from is None and resume_path is None and config.train_config.checkpoint_path:
        resume_path, init_from = _nvidia_checkpoint_path(config.train_config.checkpoint_path)
    config = resolve_precision(config, distributed.device)
    model, config = _build_model(config, init_from, distributed.device)
    output = _prepare_output(config, distributed)
    train_data, validation = _datasets(config, output, distributed)
    sampler = ResumableSampler(
        train_data, distributed.rank, distributed.world_size, config.train_config.seed
    )
    loader = _loader(train_data, sampler, config, distributed)
    trainer = Trainer(
        config=config,
        distributed=distributed,
        model=model,
        network=_wrap(model, distributed),
        optimizer=torch.optim.Adam(model.parameters(), lr=config.train_config.learning_rate),
        scaler=torch.amp.GradScaler(
            distributed.device.type, enabled=config.train_config.amp_precision == "fp16"
        ),
        loader=loader,
        sampler=sampler,
        validation=validation,
        output=output,
        logger=RunLogger(
            output, distributed.is_main, config, progress_bar, _total_steps(config, loader)
        ),
    )
    if resume_path is not None:
        restore(trainer, resume_path)
        _check_not_finished(trainer, resume_path)
    trainer.logger.event(
        "start",
        step=trainer.progress.step,
        resumed_from=str(resume_path) if resume_path else None,
        init_from=str(init_from) if init_from else None,
        world_size=distributed.world_size,
        device=str(distributed.device),
        precision=config.train_config.amp_precision,
        train_utterances=len(train_data),
        validation_utterances=len(validation) if validation else 0,
    )
    return trainer


def _build_model(
    config: Config, init_from: str | Path | None, device: torch.device
) -> tuple[WaveGlow, Config]:
    """A fresh model (seeded), or one warm-started from ``init_from`` with that file's architecture."""
    torch.manual_seed(config.train_config.seed)
    if init_from is not None:
        model, config = warm_start(init_from, config)
    else:
        model = WaveGlow(config.waveglow_config, config.data_config)
    return model.to(device).train(), config


def _prepare_output(config: Config, distributed: Distributed) -> Path:
    """The run folder with the merged config.json; leftovers of a killed write removed."""
    output = Path(config.train_config.output_directory)
    if distributed.is_main:
        _write_json(output / "config.json", config.to_dict())
        for pattern in (f".{CHECKPOINT_PREFIX}*.tmp", f".{BEST_CHECKPOINT}.*.tmp"):
            for leftover in output.glob(pattern):
                leftover.unlink(missing_ok=True)
    return output


def _total_steps(config: Config, loader: DataLoader) -> int:
    accumulation = config.train_config.grad_accumulation
    steps_per_epoch = len(loader) // accumulation
    if steps_per_epoch == 0:
        raise DataError(
            f"an epoch has {len(loader)} batches, fewer than grad_accumulation "
            f"({accumulation}): add data or lower train_config.grad_accumulation"
        )
    return config.train_config.max_iters or config.train_config.epochs * steps_per_epoch


def resolve_precision(config: Config, device: torch.device) -> Config:
    """``precision="auto"`` made concrete for ``device``: bf16 where the hardware multiplies bf16
    matrices (CUDA with bf16, CPUs with AMX / AVX512-BF16), fp16 on older GPUs, else fp32; then
    ``wn_implementation="auto"``: the matrix-product WN where the products run in bf16/fp16, the
    convolutions in fp32 (the faster fp32 path on AVX2 CPUs)."""
    train_config = config.train_config
    if train_config.precision == "auto":
        dtype = fast.resolve_precision("auto", device)
        name = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "fp32")
        train_config = dataclasses.replace(train_config, precision=name, fp16_run=False)
    if train_config.wn_implementation == "auto":
        low = train_config.amp_precision != "fp32"
        train_config = dataclasses.replace(
            train_config, wn_implementation="gemm" if low else "conv"
        )
    return config.replace(train_config=train_config)


def _datasets(
    config: Config, output: Path, distributed: Distributed
) -> tuple[SegmentDataset, SegmentDataset | None]:
    train_config, data_config = config.train_config, config.data_config
    if not data_config.training_files:
        raise DataError("no training data: set data_config.training_files (a folder or filelist)")
    if distributed.is_main:
        prepare_split(
            data_config.training_files,
            output,
            train_config.validation_size,
            train_config.seed,
            train_config.data_root or None,
            train_config.validation_files or None,
        )
    if distributed.enabled:
        torch_dist.barrier()
    train_list, validation_list = prepare_split(data_config.training_files, output, 0, 0)
    options = {
        "data_config": data_config,
        "n_mel_channels": config.waveglow_config.n_mel_channels,
        "seed": train_config.seed,
        "min_duration": train_config.min_duration,
        "skip_silent": train_config.skip_silent,
        "cache_directory": train_config.cache_directory or None,
    }
    validation = SegmentDataset(validation_list, random_segments=False, **options)
    train_data = SegmentDataset(train_list, **options)
    train_data[0]  # in this process, before any worker: no usable clip at all is one clear error
    return train_data, validation if validation_list else None


def _loader(
    dataset: SegmentDataset, sampler: ResumableSampler, config: Config, distributed: Distributed
) -> DataLoader:
    batch_size = config.train_config.batch_size
    if len(sampler.sampler) < batch_size:
        raise DataError(
            f"{len(dataset)} training clips give no full batch of {batch_size} per process "
            f"({distributed.world_size} processes): lower train_config.batch_size or add data"
        )
    workers = config.train_config.num_workers
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate,
        drop_last=True,
        pin_memory=distributed.device.type == "cuda",
        worker_init_fn=_ignore_signals if workers else None,
    )


def _ignore_signals(_worker: int) -> None:
    """Data workers leave SIGINT/SIGTERM to the main process, which saves and stops cleanly."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _wrap(model: WaveGlow, distributed: Distributed) -> torch.nn.Module:
    if not distributed.enabled:
        return model
    device_ids = [distributed.device.index] if distributed.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


# ---------------------------------------------------------------------------- warm start
def warm_start(path: str | Path, config: Config) -> tuple[WaveGlow, Config]:
    """The weights of any file :func:`waveglow.load` reads, with weight norm, for fine-tuning.

    The architecture comes from the file; a bare state dict (no config inside) is read with the
    run's ``waveglow_config``. Returns the model and the config with the file's architecture.
    """
    checkpoint = _read_weights(Path(path), config)
    checkpoint = Checkpoint(
        config.replace(waveglow_config=checkpoint.config.waveglow_config),
        checkpoint.state_dict,
        checkpoint.layout,
    )
    model = build_model(checkpoint, weight_norm=True, source=str(path))
    return model.train(), checkpoint.config


def _read_weights(path: Path, config: Config) -> Checkpoint:
    try:
        return read_checkpoint(path)
    except CheckpointError:
        payload = safe_torch_load(path)
        if (
            isinstance(payload, dict)
            and payload
            and all(
                isinstance(key, str) and isinstance(value, torch.Tensor)
                for key, value in payload.items()
            )
        ):
            return Checkpoint(config, dict(payload), layout="state_dict")
        raise


# ---------------------------------------------------------------------------- the loop
def run_loop(trainer: Trainer, stop: StopRequest) -> str | None:
    """Train until ``max_iters``/``epochs`` or a stop signal; returns the signal's name or None."""
    config = trainer.train_config
    accumulation = config.grad_accumulation
    stopped_by = None
    while not _finished(trainer) and stopped_by is None:
        progress = trainer.progress
        trainer.sampler.set_epoch(progress.epoch, progress.batch_in_epoch * config.batch_size)
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


@dataclass(frozen=True)
class StepOutcome:
    loss: float
    grad_norm: float
    samples: int
    seconds: float
    stop_signal: str | None


def train_step(trainer: Trainer, batches: Sequence[Batch], stop: StopRequest) -> StepOutcome:
    """One optimizer step over ``batches`` (gradient accumulation); skips non-finite steps."""
    started = time.perf_counter()
    rate = learning_rate_at(trainer.train_config, trainer.progress.step)
    for group in trainer.optimizer.param_groups:
        group["lr"] = rate
    trainer.optimizer.zero_grad(set_to_none=True)
    loss = torch.zeros((), device=trainer.distributed.device)
    for index, batch in enumerate(batches):
        loss += _backward(trainer, batch, last=index == len(batches) - 1, parts=len(batches))
        trainer.pending_problems.extend(batch.failed + batch.skipped)
    grad_norm = _unscale_and_clip(trainer)
    stop_flag = torch.tensor(float(stop.signal is not None), device=loss.device)
    totals = _all_reduce_sum(torch.stack([loss, stop_flag]), trainer.distributed)
    mean_loss = float(totals[0]) / trainer.distributed.world_size
    finite = math.isfinite(mean_loss) and math.isfinite(grad_norm)
    if finite:
        trainer.scaler.step(trainer.optimizer)
    trainer.scaler.update()
    samples = sum(len(batch.audio) for batch in batches) * trainer.distributed.world_size
    signal_name = stop.signal or ("signal on another rank" if float(totals[1]) > 0 else None)
    return StepOutcome(
        mean_loss if finite else math.nan,
        grad_norm,
        samples,
        time.perf_counter() - started,
        signal_name,
    )


def learning_rate_at(config: TrainConfig, step: int) -> float:
    """The rate of the step after ``step`` finished ones: ``learning_rate``, times ``lr_decay``
    after every ``lr_decay_every`` steps (constant when that is 0, as in NVIDIA's training)."""
    if config.lr_decay_every == 0:
        return config.learning_rate
    return config.learning_rate * config.lr_decay ** (step // config.lr_decay_every)


def _backward(trainer: Trainer, batch: Batch, last: bool, parts: int) -> torch.Tensor:
    device = trainer.distributed.device
    mel = batch.mel.to(device, non_blocking=True)
    audio = batch.audio.to(device, non_blocking=True)
    synchronise = last or not trainer.distributed.enabled
    with nullcontext() if synchronise else trainer.network.no_sync():
        z, log_det = trainer.forward(mel, audio)
        loss = nll_loss(z.float(), log_det.float(), trainer.train_config.sigma) / parts
        trainer.scaler.scale(loss).backward()
    return loss.detach()


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
    trainer.logger.step(trainer, outcome)
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


def roll_back(trainer: Trainer) -> None:
    """Restore the last known-good checkpoint (model and optimizer), set the later ones aside
    (``.diverged``, so that a resume starts from the good one) and raise :class:`TrainingError`."""
    progress = trainer.progress
    step, count = progress.step, progress.bad_in_a_row
    rate = learning_rate_at(trainer.train_config, step - 1)
    target = trainer.rollback_target
    set_aside = _set_aside_after(trainer, target)
    if target is not None:
        restore(trainer, target)
        where = (
            f"rolled back to {target} (step {trainer.progress.step}), the last checkpoint with "
            "finite weights and a finite validation loss"
        )
    else:
        where = "there is no checkpoint with finite weights and validation to roll back to"
    if set_aside:
        where += f"; the {len(set_aside)} later checkpoint(s) were renamed *.diverged"
    advice = "lower train_config.learning_rate, set grad_clip_thresh"
    advice += ", or train in fp32/bf16" if trainer.train_config.amp_precision == "fp16" else ""
    message = (
        f"training diverged at learning rate {rate:g}: {count} consecutive steps had a "
        f"non-finite loss or gradient (up to step {step}); {where}. To go on, {advice}, "
        "then resume."
    )
    trainer.logger.event("diverged", step=step, message=message)
    raise TrainingError(message)


def _set_aside_after(trainer: Trainer, target: Path | None) -> list[Path]:
    """Rename the run's checkpoints newer than ``target`` (all without one) to ``*.diverged``."""
    if not trainer.distributed.is_main:
        return []
    found = checkpoints_in(trainer.output)
    later = found[found.index(target) + 1 :] if target in found else found
    for path in later:
        path.rename(path.with_name(path.name + ".diverged"))
    return later


def report_problems(trainer: Trainer) -> None:
    """Log every unreadable or skipped file once (gathered from all ranks)."""
    problems = _all_gather(trainer.pending_problems, trainer.distributed)
    trainer.pending_problems = []
    known = set(trainer.progress.bad_files)
    for problem in (p for rank_problems in problems for p in rank_problems):
        if problem not in known:
            known.add(problem)
            trainer.progress.bad_files.append(problem)
            trainer.logger.event("bad_file", step=trainer.progress.step, problem=problem)


# ---------------------------------------------------------------------------- validation
def evaluate(trainer: Trainer) -> float:
    """Mean NLL over the held-out clips (fp32, rank 0) plus synthesised samples; logs both.

    Every rank calls it (it gathers the RNG states for ``best.pt``); rank 0 alone evaluates.
    """
    rng_states = _rng_states(trainer.distributed)
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
        samples = _synthesise(trainer, validation)
    model.train()
    loss = float(np.mean(losses)) if losses else math.nan
    progress = trainer.progress
    trainer.validation_ok = math.isfinite(loss) or not losses
    progress.validation_loss = loss
    improved = loss < progress.best_validation_loss
    progress.best_validation_loss = min(loss, progress.best_validation_loss)
    trainer.logger.validation(progress.step, loss, samples, trainer.config)
    if improved:
        _save(trainer, trainer.output / BEST_CHECKPOINT, rng_states)
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


def _synthesise(
    trainer: Trainer, validation: list[Sample]
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(reference audio, synthesised audio) for the first validation clips."""
    device = trainer.distributed.device
    generator = torch.Generator(device=device).manual_seed(trainer.train_config.seed)
    pairs = []
    for sample in validation[: trainer.train_config.n_synthesis_samples]:
        audio = trainer.model.infer(
            sample.mel[None].to(device), SYNTHESIS_SIGMA, generator=generator
        )
        pairs.append((sample.audio, audio[0].float().cpu().clamp(-1, 1)))
    return pairs


# ---------------------------------------------------------------------------- checkpoints
def save_checkpoint(trainer: Trainer) -> Path | None:
    """Write ``waveglow_{step}.pt`` (rank 0), keep the last ``keep_checkpoints``."""
    states = _rng_states(trainer.distributed)  # collectives: every rank takes part
    agree = ranks_agree(trainer)
    path = trainer.output / f"{CHECKPOINT_PREFIX}{trainer.progress.step:08d}.pt"
    trainer.last_checkpoint = path
    if _known_good(trainer):
        trainer.rollback_target = path
    if not trainer.distributed.is_main:
        return None
    _save(trainer, path, states)
    for old in checkpoints_in(trainer.output)[: -trainer.train_config.keep_checkpoints]:
        if old != trainer.rollback_target:  # kept, however old, for a roll back
            old.unlink(missing_ok=True)
    trainer.logger.event(
        "checkpoint", step=trainer.progress.step, path=str(path), ranks_agree=agree
    )
    if not agree:
        trainer.logger.event("note", message="the processes hold different weights (DDP bug?)")
    return path


def _known_good(trainer: Trainer) -> bool:
    """A roll back may return here: the weights are finite, the last steps were, and so was the
    last validation (a finite but destructive step shows there first)."""
    if trainer.progress.bad_in_a_row or not trainer.validation_ok:
        return False
    with torch.no_grad():
        return all(bool(torch.isfinite(p).all()) for p in trainer.model.parameters())


def ranks_agree(trainer: Trainer) -> bool:
    """True when every rank holds bit-identical weights (compared through per-tensor sums)."""
    if not trainer.distributed.enabled:
        return True
    with torch.no_grad():
        parameters = [p.detach().double() for p in trainer.model.parameters()]
        ramp = [
            torch.linspace(1, 2, p.numel(), dtype=torch.float64, device=p.device)
            for p in parameters
        ]
        fingerprint = torch.stack(
            [p.sum() for p in parameters]
            + [(p.flatten() * r).sum() for p, r in zip(parameters, ramp, strict=True)]
        ).cpu()
    gathered = _all_gather(fingerprint, trainer.distributed)
    return all(torch.equal(gathered[0], other) for other in gathered[1:])


def _save(trainer: Trainer, path: Path, rng_states: list[dict]) -> None:
    save(
        trainer.model,
        path,
        run_config=trainer.config.to_dict(),
        training={
            "progress": trainer.progress.to_dict(),
            "optimizer": trainer.optimizer.state_dict(),
            "scaler": trainer.scaler.state_dict(),
            "rng": rng_states,
            "world_size": trainer.distributed.world_size,
        },
    )


def checkpoints_in(directory: Path) -> list[Path]:
    """The training checkpoints of a run folder, oldest step first."""
    found = []
    for path in Path(directory).glob(f"{CHECKPOINT_PREFIX}*.pt"):
        number = path.stem[len(CHECKPOINT_PREFIX) :]
        if number.isdigit():
            found.append((int(number), path))
    return [path for _, path in sorted(found)]


def restore(trainer: Trainer, path: Path) -> None:
    """Load model, optimizer, scaler, progress and this rank's RNG states from ``path``."""
    checkpoint = read_checkpoint(path)
    training = checkpoint.extra.get("training")
    if not isinstance(training, dict):
        raise TrainingError(
            f"{path}: holds no training state (a model-only file): use init_from to fine-tune it"
        )
    _check_same_architecture(checkpoint.config, trainer.config, Path(path))
    model_state = build_model(checkpoint, weight_norm=True, source=str(path)).state_dict()
    trainer.model.load_state_dict(model_state)
    trainer.optimizer.load_state_dict(training["optimizer"])
    trainer.scaler.load_state_dict(training["scaler"])
    progress = Progress(**training["progress"])
    progress.bad_in_a_row = 0
    trainer.progress = progress
    _note_changed_learning_rate(trainer, Path(path))
    rank_states = training["rng"]
    if trainer.distributed.rank < len(rank_states):
        _set_rng_state(rank_states[trainer.distributed.rank])
    trainer.last_checkpoint = Path(path)
    trainer.rollback_target = Path(path)  # its weights are finite: build_model checked


def _check_not_finished(trainer: Trainer, path: Path) -> None:
    """A resume of a run that already reached its ``max_iters`` would do nothing: say so."""
    limit, step = trainer.train_config.max_iters, trainer.progress.step
    if limit and step >= limit:
        raise TrainingError(
            f"{path}: the run is at step {step}, its train_config.max_iters is {limit} (saved in "
            f"its config.json): nothing to do. To go on, raise it, e.g. --resume --max-iters "
            f"{max(2 * limit, step + 1)}"
        )


def model_overrides(overrides: Sequence[str]) -> list[str]:
    """The keys of the ``section.key=value`` overrides that set the model's architecture
    (``waveglow_config``, ``WN_config``): a warm start takes those from its file instead."""
    keys = []
    for override in overrides:
        key = override.partition("=")[0].strip()
        sections = [_SECTION_ALIASES.get(part.strip(), part.strip()) for part in key.split(".")]
        if sections[0] == "waveglow_config" or (
            sections[:1] == ["data_config"] and sections[-1] == "filter_length"
        ):
            keys.append(key)
    return keys


def _check_same_architecture(saved: Config, wanted: Config, path: Path) -> None:
    """A resume continues the same model: every architecture setting must agree."""
    differences = [
        f"{name} {before} in the checkpoint, {after} in the config"
        for name, before, after in _architecture_differences(saved, wanted)
    ]
    if differences:
        raise TrainingError(
            f"{path}: --resume continues the same model, but {'; '.join(differences)}. "
            "Resume with the checkpoint's settings, or start a new run from its weights with "
            "--init-from (a fresh optimizer)"
        )


def _architecture_differences(saved: Config, wanted: Config) -> list[tuple[str, Any, Any]]:
    """(setting, value in ``saved``, value in ``wanted``) for each model setting that differs."""
    pairs = [
        ("waveglow_config", saved.waveglow_config, wanted.waveglow_config),
        ("WN_config", saved.waveglow_config.WN_config, wanted.waveglow_config.WN_config),
    ]
    found = []
    for section, before, after in pairs:
        for field_ in dataclasses.fields(before):
            old_value, new_value = getattr(before, field_.name), getattr(after, field_.name)
            if field_.name != "WN_config" and old_value != new_value:
                found.append((f"{section}.{field_.name}", old_value, new_value))
    filter_length = (saved.data_config.filter_length, wanted.data_config.filter_length)
    if filter_length[0] != filter_length[1]:
        found.append(("data_config.filter_length", *filter_length))
    return found


def _note_changed_learning_rate(trainer: Trainer, path: Path) -> None:
    """Log a resume whose learning rate differs from the checkpoint's. Every step sets the rate
    from the config (:func:`learning_rate_at`), and a resume reads the run's own config.json, so
    it changes only when asked to: ``--set train.learning_rate=...`` decays it by hand."""
    saved = trainer.optimizer.param_groups[0]["lr"]
    step = trainer.progress.step
    if saved == learning_rate_at(trainer.train_config, max(step - 1, 0)):
        return
    wanted = learning_rate_at(trainer.train_config, step)
    trainer.logger.event(
        "note",
        step=step,
        message=f"learning rate {saved:g} (saved in {path.name}) -> {wanted:g} (config)",
    )


def _resume_path(config: Config, resume: bool | str | Path) -> Path | None:
    if resume is False or resume is None:
        return None
    if resume is not True:
        return Path(resume)
    output = Path(config.train_config.output_directory)
    found = checkpoints_in(output)
    if not found:
        raise TrainingError(f"{output}: no {CHECKPOINT_PREFIX}*.pt checkpoint to resume from")
    return found[-1]


def _nvidia_checkpoint_path(path: str) -> tuple[Path | None, Path | None]:
    """NVIDIA's ``checkpoint_path``: resume from our training files, warm-start from others."""
    try:
        has_training = "training" in read_checkpoint(path).extra
    except CheckpointError:
        has_training = False
    return (Path(path), None) if has_training else (None, Path(path))


def _rng_states(distributed: Distributed) -> list[dict[str, Any]]:
    """The RNG states of every rank, gathered (``torch.load(weights_only=True)`` can read them)."""
    numpy_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "keys": torch.from_numpy(numpy_state[1].astype(np.int64)),
            "position": int(numpy_state[2]),
            "has_gauss": int(numpy_state[3]),
            "cached_gaussian": float(numpy_state[4]),
        },
        "python": random.getstate(),
    }
    return _all_gather(state, distributed)


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["position"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def _write_json(path: Path, data: Any) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(data, indent=2) + "\n")


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


# ---------------------------------------------------------------------------- logging
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

    def step(self, trainer: Trainer, outcome: StepOutcome) -> None:
        if not self.enabled:
            return
        self.window.append((outcome.samples, outcome.seconds))
        progress = trainer.progress
        if self.bar is None and self.bar_total is not False:
            self.bar = tqdm(
                total=self.bar_total, initial=progress.step - 1, unit="step", dynamic_ncols=True
            )
        if self.bar is not None:
            self.bar.update(1)
        if progress.step % self.interval:
            return
        samples, seconds = (sum(values) for values in zip(*self.window, strict=True))
        self.window = []
        scalars = {
            "loss": outcome.loss,
            "grad_norm": outcome.grad_norm,
            "learning_rate": trainer.optimizer.param_groups[0]["lr"],
            "samples_per_second": samples / max(seconds, 1e-9),
            "skipped_steps": progress.skipped_steps,
        }
        self.event(
            "step",
            step=progress.step,
            epoch=progress.epoch,
            cpu_seconds=time.process_time(),  # this process, all threads, since it started
            **scalars,
        )
        if self.bar is not None:
            self.bar.set_postfix(
                loss=f"{outcome.loss:.3f}", sps=f"{scalars['samples_per_second']:.0f}"
            )
        if self.board is not None:
            for name, value in scalars.items():
                self.board.add_scalar(f"train/{name}", value, progress.step)

    def validation(
        self,
        step: int,
        loss: float,
        samples: list[tuple[torch.Tensor, torch.Tensor]],
        config: Config,
    ) -> None:
        if not self.enabled:
            return
        written = []
        for index, (_reference, audio) in enumerate(samples):
            path = self.output / "samples" / f"step_{step:08d}_{index}.wav"
            save_wav(path, audio, self.sampling_rate)
            written.append(str(path))
        self.event("validation", step=step, validation_loss=loss, samples=written)
        if self.bar is not None:
            tqdm.write(f"step {step}: validation loss {loss:.4f}")
        if self.board is not None:
            self.board.add_scalar("validation/loss", loss, step)
            mel = MelSpectrogram(config.data_config, config.waveglow_config.n_mel_channels)
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
