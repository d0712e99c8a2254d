"""The training state: everything the loop needs (:class:`Trainer`), where the run is
(:class:`Progress`), and the checkpoints that save and restore both.

A training checkpoint ``waveglow_{step:08d}.pt`` is a model file (:func:`waveglow.checkpoint.save`,
written atomically) with a ``training`` entry: the progress, the optimizer and grad-scaler states,
the RNG states of every rank and the world size, so that a resume continues exactly where the run
stopped. The last ``keep_checkpoints`` are kept, and ``best.pt`` has the lowest validation loss.
After ``max_bad_steps`` consecutive non-finite steps the run rolls back to the last checkpoint
known to be good.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..checkpoint import CheckpointError, build_model, read_checkpoint, save
from ..config import Config, TrainConfig
from ..data import ResumableSampler, SegmentDataset
from ..loss import SpectralLoss
from ..model import WaveGlow
from ..noise import gaussian
from .average import AVERAGE_KEY, continue_average
from .distributed import Distributed, all_gather, ranks_agree
from .log import RunLogger

CHECKPOINT_PREFIX = "waveglow_"
BEST_CHECKPOINT = "best.pt"


class TrainingError(RuntimeError):
    """Training cannot go on (diverged, no data, nothing to resume); the message says why."""


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
class Trainer:
    """Everything the loop needs; built by :func:`waveglow.train.setup.setup`."""

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
    # the spectral term's STFTs: trained with when train_config.spectral, validated with always
    spectral: SpectralLoss = field(default_factory=SpectralLoss)
    # the moving average of the weights (train_config.ema_decay > 0; see waveglow.train.average)
    average: dict[str, torch.Tensor] | None = None
    # train_config.torch_compile: compiled "forward" (of the network) and "decode" for the steps
    compiled: dict[str, Callable[..., Any]] = field(default_factory=dict)

    @property
    def train_config(self) -> TrainConfig:
        return self.config.train_config

    def forward(self, mel: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The flow with the run's backend (``wn_implementation``) and precision (see
        :mod:`waveglow.backends`); either way the couplings, 1x1 convolutions and
        log-determinants stay in fp32."""
        train_config = self.train_config
        backend, precision = train_config.wn_implementation, train_config.amp_precision
        network = self.compiled.get("forward", self.network)
        return network(mel, audio, precision=precision, backend=backend)

    def spectral_distance(self, mel: torch.Tensor, audio: torch.Tensor, part: int) -> torch.Tensor:
        """The spectral term (:class:`~waveglow.loss.SpectralLoss`) of the batch's own mels
        synthesized with autograd from a fresh z ~ N(0, spectral_sigma^2), against the true
        audio (B, T). The noise of part ``part`` of the step is drawn from a generator seeded by
        the run's seed, the step, the part and the rank: a resume draws the same noise."""
        train_config, model = self.train_config, self.model
        batch, length = audio.shape
        shape = (batch, model.n_group, length // model.n_group)
        entropy = (train_config.seed, self.progress.step, part, self.distributed.rank)
        seed = int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0] >> 1)
        generator = torch.Generator(device=audio.device).manual_seed(seed)
        z = gaussian(shape, train_config.spectral_sigma, generator, audio.dtype, audio.device)
        backend, precision = train_config.wn_implementation, train_config.amp_precision
        decode = self.compiled.get("decode", model.decode)
        synthesized = decode(mel, z, precision, backend=backend, differentiable=True)  # (B, T)
        return self.spectral(synthesized, audio)


def learning_rate_at(config: TrainConfig, step: int) -> float:
    """The rate of the step after ``step`` finished ones: ``learning_rate``, times ``lr_decay``
    after every ``lr_decay_every`` steps (constant when that is 0, as in NVIDIA's training)."""
    if config.lr_decay_every == 0:
        return config.learning_rate
    return config.learning_rate * config.lr_decay ** (step // config.lr_decay_every)


# ---------------------------------------------------------------------------- saving
def save_checkpoint(trainer: Trainer) -> Path | None:
    """Write ``waveglow_{step}.pt`` (rank 0), keep the last ``keep_checkpoints``."""
    states = gather_rng_states(trainer.distributed)  # collectives: every rank takes part
    agree = ranks_agree(trainer.model, trainer.distributed)
    path = trainer.output / f"{CHECKPOINT_PREFIX}{trainer.progress.step:08d}.pt"
    trainer.last_checkpoint = path
    if _known_good(trainer):
        trainer.rollback_target = path
    if not trainer.distributed.is_main:
        return None
    save_state(trainer, path, states)
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


def save_state(trainer: Trainer, path: Path, rng_states: list[dict]) -> None:
    """Write the model and the training state (``rng_states``: every rank's) to ``path``,
    atomically; with the moving average of the weights where the run keeps one."""
    average = {} if trainer.average is None else {AVERAGE_KEY: trainer.average}
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
        **average,
    )


def checkpoints_in(directory: Path) -> list[Path]:
    """The training checkpoints of a run folder, oldest step first."""
    found = []
    for path in Path(directory).glob(f"{CHECKPOINT_PREFIX}*.pt"):
        number = path.stem[len(CHECKPOINT_PREFIX) :]
        if number.isdigit():
            found.append((int(number), path))
    return [path for _, path in sorted(found)]


# ---------------------------------------------------------------------------- restoring
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
    trainer.average = continue_average(
        trainer.model, trainer.train_config.ema_decay, checkpoint.extra.get(AVERAGE_KEY), str(path)
    )
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


def check_not_finished(trainer: Trainer, path: Path) -> None:
    """A resume of a run that already reached its ``max_iters`` would do nothing: say so."""
    limit, step = trainer.train_config.max_iters, trainer.progress.step
    if limit and step >= limit:
        raise TrainingError(
            f"{path}: the run is at step {step}, its train_config.max_iters is {limit} (saved in "
            f"its config.json): nothing to do. To go on, raise it, e.g. --resume --max-iters "
            f"{max(2 * limit, step + 1)}"
        )


# ---------------------------------------------------------------------------- which checkpoint
def checkpoint_to_resume(config: Config, resume: bool | str | Path) -> Path | None:
    """The checkpoint ``resume`` names: none (False), the run folder's newest (True) or a path."""
    if resume is False or resume is None:
        return None
    if resume is not True:
        return Path(resume)
    output = Path(config.train_config.output_directory)
    found = checkpoints_in(output)
    if not found:
        raise TrainingError(f"{output}: no {CHECKPOINT_PREFIX}*.pt checkpoint to resume from")
    return found[-1]


def nvidia_checkpoint_path(path: str) -> tuple[Path | None, Path | None]:
    """NVIDIA's ``checkpoint_path``: resume from our training files, warm-start from others."""
    try:
        has_training = "training" in read_checkpoint(path).extra
    except CheckpointError:
        has_training = False
    return (Path(path), None) if has_training else (None, Path(path))


# ---------------------------------------------------------------------------- rolling back
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


# ---------------------------------------------------------------------------- RNG states
def gather_rng_states(distributed: Distributed) -> list[dict[str, Any]]:
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
    return all_gather(state, distributed)


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
