"""Training by maximum likelihood, as NVIDIA's ``train.py`` does, with what it lacked.

:func:`train` is the library entry point; ``waveglow train`` calls it. A run lives in
``train_config.output_directory``::

    config.json                the merged configuration
    train_files.txt            the deterministic train / validation split (filelists)
    validation_files.txt
    waveglow_{step:08d}.pt     training checkpoints (the last ``keep_checkpoints``)
    best.pt                    the checkpoint with the lowest validation loss
    log.jsonl                  one JSON object per event, for machines
    samples/                   audio synthesized from validation mels
    logs/                      TensorBoard events (``with_tensorboard``)

The package, by role: :mod:`.loop` (the training loop and validation), :mod:`.setup` (building a
run), :mod:`.state` (the trainer, its progress and checkpoints, RNG states), :mod:`.log` (tqdm,
``log.jsonl``, TensorBoard) and :mod:`.distributed` (``torchrun`` processes).
"""

from ..config import apply_overrides, model_overrides
from .distributed import Distributed, ranks_agree, setup_distributed
from .log import RunLogger, StepOutcome
from .loop import (
    StopRequest,
    TrainResult,
    after_step,
    evaluate,
    finish,
    report_problems,
    run_loop,
    train,
    train_step,
    worker_message,
)
from .setup import setup, starting_config, warm_start
from .state import (
    BEST_CHECKPOINT,
    CHECKPOINT_PREFIX,
    Progress,
    Trainer,
    TrainingError,
    checkpoints_in,
    learning_rate_at,
    restore,
    roll_back,
    save_checkpoint,
)

__all__ = [
    "BEST_CHECKPOINT",
    "CHECKPOINT_PREFIX",
    "Distributed",
    "Progress",
    "RunLogger",
    "StepOutcome",
    "StopRequest",
    "TrainResult",
    "Trainer",
    "TrainingError",
    "after_step",
    "apply_overrides",
    "checkpoints_in",
    "evaluate",
    "finish",
    "learning_rate_at",
    "model_overrides",
    "ranks_agree",
    "report_problems",
    "restore",
    "roll_back",
    "run_loop",
    "save_checkpoint",
    "setup",
    "setup_distributed",
    "starting_config",
    "train",
    "train_step",
    "warm_start",
    "worker_message",
]
