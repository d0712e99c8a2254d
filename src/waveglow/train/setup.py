"""Building a run as a :class:`~waveglow.train.state.Trainer`: the model (fresh, warm-started from
any checkpoint, or resumed), optimizer, data, loader and logger, and the run folder.
"""

from __future__ import annotations

import json
import random
import signal
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..audio import atomic_path, mel_transform
from ..checkpoint import Checkpoint, CheckpointError, build_model, read_checkpoint, safe_torch_load
from ..config import Config, load_config
from ..data import DataError, ResumableSampler, SegmentDataset, collate, prepare_split
from ..loss import spectral_loss
from ..model import WaveGlow
from .average import continue_average
from .distributed import Distributed, barrier, wrap
from .log import RunLogger
from .state import (
    BEST_CHECKPOINT,
    CHECKPOINT_PREFIX,
    Trainer,
    check_not_finished,
    checkpoint_to_resume,
    nvidia_checkpoint_path,
    restore,
)


def starting_config(
    config_file: str | Path | None,
    output_directory: str | Path | None,
    resume: bool | str | Path = False,
) -> Config:
    """The configuration a run starts from, before any override: ``config_file``; else, when
    resuming, the run folder's own ``config.json``; else the defaults."""
    if config_file:
        return load_config(config_file)
    saved = Path(output_directory) / "config.json" if output_directory else None
    if resume and saved is not None and saved.is_file():
        return load_config(saved)
    return Config()


def setup(
    config: Config,
    distributed: Distributed,
    resume: bool | str | Path = False,
    init_from: str | Path | None = None,
    progress_bar: bool = True,
) -> Trainer:
    """Build model, optimizer, data and logger; restore a checkpoint when resuming."""
    resume_path = checkpoint_to_resume(config, resume)
    if init_from is None and resume_path is None and config.train_config.checkpoint_path:
        resume_path, init_from = nvidia_checkpoint_path(config.train_config.checkpoint_path)
    config = config.replace(train_config=config.train_config.resolve_auto(distributed.device))
    _seed_generators(config.train_config.seed)
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
        network=wrap(model, distributed),
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
        spectral=spectral_loss(
            config.train_config, config.data_config, config.waveglow_config.n_mel_channels
        ).to(distributed.device),
        average=continue_average(model, config.train_config.ema_decay, None),
    )
    if config.train_config.torch_compile:
        trainer.compiled = compile_step(trainer)
    if resume_path is not None:
        restore(trainer, resume_path)
        check_not_finished(trainer, resume_path)
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
        ema_decay=config.train_config.ema_decay or None,
    )
    return trainer


def compile_step(trainer: Trainer) -> dict[str, Any]:
    """``torch.compile`` (inductor; on the CPU its C++ backend) of the network's forward and the
    model's synthesis, for the training step only: one graph each for the step's fixed shapes
    (compiled at the first step), while validation and samples, of other shapes, run eagerly."""
    return {
        "forward": torch.compile(trainer.network, dynamic=False),
        "decode": torch.compile(trainer.model.decode, dynamic=False),
    }


def _seed_generators(seed: int) -> None:
    """Seed torch's, Python's and NumPy's global generators. Nothing in training draws from the
    last two, but a checkpoint saves them: a resumed run's must continue the uninterrupted run's,
    not each process's own random start."""
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


def _build_model(
    config: Config, init_from: str | Path | None, device: torch.device
) -> tuple[WaveGlow, Config]:
    """A fresh model (from the seeded torch RNG), or one warm-started from ``init_from`` with that
    file's architecture."""
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
    barrier(distributed)
    train_list, validation_list = prepare_split(data_config.training_files, output, 0, 0)
    options = {
        "mel": mel_transform(config),
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
        # iter(loader) draws the workers' base seed from this generator (reseeded every epoch
        # by the loop), not from the global torch RNG that a checkpoint saves and a resume sets
        generator=torch.Generator(),
    )


def _ignore_signals(_worker: int) -> None:
    """Data workers leave SIGINT/SIGTERM to the main process, which saves and stops cleanly."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _write_json(path: Path, data: Any) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(data, indent=2) + "\n")


# ---------------------------------------------------------------------------- warm start
def warm_start(path: str | Path, config: Config) -> tuple[WaveGlow, Config]:
    """The weights of any file :func:`waveglow.load` reads, with weight norm, for fine-tuning.

    The architecture comes from the file; a bare state dict (no config inside) is read with the
    run's ``waveglow_config``. A run that asks for a post-filter the file lacks gets a new one
    (identity until trained) behind the file's flow. Returns the model and the config with the
    file's architecture.
    """
    checkpoint = _read_weights(Path(path), config)
    checkpoint = Checkpoint(
        config.replace(waveglow_config=checkpoint.config.waveglow_config),
        checkpoint.state_dict,
        checkpoint.layout,
    )
    model = build_model(checkpoint, weight_norm=True, source=str(path))
    postfilter = config.waveglow_config.postfilter_config
    if postfilter is not None and model.config.postfilter_config is None:
        model = model.with_postfilter(postfilter)
    return model.train(), checkpoint.config.replace(waveglow_config=model.config)


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
