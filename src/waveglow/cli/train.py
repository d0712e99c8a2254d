"""``waveglow train``: train a WaveGlow, single process or under torchrun
(:func:`waveglow.train.train`)."""

from __future__ import annotations

import argparse
import json
import os

from ..backends import PRECISIONS
from .common import describe, error, warning
from .options import Subparsers, add_count, add_shared, device, subparser

DESCRIPTION = """Train by maximum likelihood. CONFIG is NVIDIA's config.json (or ours); options and
--set override it. Data: LJ Speech, VCTK, LibriTTS, a folder of audio or a filelist. OUTDIR receives
config.json, the train/validation split, checkpoints (waveglow_<step>.pt, best.pt), log.jsonl,
samples/ and (with --tensorboard) logs/. SIGINT/SIGTERM save a checkpoint and stop; --resume then
continues exactly. Several processes: torchrun --nproc_per_node=N -m waveglow train ...
--spectral-loss W adds W times a multi-resolution STFT distance of the inverse flow's synthesis
(of the batch's own mels) to the true audio: not WaveGlow's single loss, off by default.
--set train_config.ema_decay=D keeps a moving average of the weights in every checkpoint
(waveglow convert --averaged makes a model file of it); --set train_config.torch_compile=true
compiles the step (1.34x the samples per CPU-second of a bf16 spectral step on a Zen 4 EPYC)."""
EXAMPLES = """examples:
  waveglow train --config config.json --data LJSpeech-1.1 -o runs/lj
  waveglow train -o runs/lj --resume
  waveglow train --config config.json --data VCTK-Corpus -o runs/vctk --precision bf16 \\
      --set train_config.batch_size=8 --set train_config.iters_per_validation=500
  waveglow train --config config.json --data lj -o runs/ft --init-from waveglow_256channels.pt
  torchrun --nproc_per_node=4 -m waveglow train --config config.json --data lj -o runs/lj
  waveglow train -o runs/ft --data lj --init-from ckpt.pt --spectral-loss 1.0 \\
      --set train_config.spectral_every=3"""


def add_train_parser(subparsers: Subparsers) -> None:
    parser = subparser(
        subparsers,
        "train",
        "train a WaveGlow (single process or torchrun)",
        DESCRIPTION,
        EXAMPLES,
        run,
    )
    parser.add_argument("--config", help="config.json (default: OUTDIR/config.json on --resume)")
    parser.add_argument("--data", metavar="PATH", help="dataset folder or filelist")
    parser.add_argument("--output-dir", "-o", metavar="OUTDIR", help="where the run is written")
    parser.add_argument(
        "--precision",
        choices=tuple(PRECISIONS),
        help="auto: bf16 where the hardware multiplies bf16 matrices, else fp32",
    )
    add_count(parser, "--batch-size", "per process")
    add_count(parser, "--max-iters", "stop after N steps")
    parser.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        metavar="CKPT",
        help="continue from CKPT, or from OUTDIR's newest checkpoint",
    )
    parser.add_argument(
        "--init-from", metavar="CKPT", help="warm-start from any checkpoint, fresh optimizer"
    )
    parser.add_argument("--tensorboard", action="store_true", help="log to OUTDIR/logs")
    parser.add_argument(
        "--spectral-loss",
        type=float,
        metavar="W",
        help="add W x the spectral distance of the synthesis to the likelihood "
        "(train_config.spectral_loss_weight; 0: maximum likelihood only, the default)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        dest="overrides",
        help="override a config value (repeatable), e.g. train_config.learning_rate=5e-5",
    )
    parser.add_argument("--device", help="cpu, cuda, cuda:1... (default: cuda when available)")
    add_shared(parser, "quiet")


def run(args: argparse.Namespace) -> int:
    from ..train import TrainingError, apply_overrides, model_overrides, starting_config, train

    config = starting_config(args.config, args.output_dir, args.resume)
    config = apply_overrides(config, overrides(args))
    if args.init_from:
        for key in model_overrides(args.overrides):
            warning(f"--set {key}: not used: --init-from {args.init_from} keeps that file's "
                    "architecture")  # fmt: skip
    try:
        result = train(
            config,
            resume=args.resume,
            init_from=args.init_from,
            device=device(args.device) if args.device else None,
            progress_bar=not args.quiet,
        )
    except TrainingError as failure:
        error(describe(failure))
        return 1
    if os.environ.get("RANK", "0") == "0":
        ending = f" (stopped by {result.stopped_by})" if result.stopped_by else ""
        print(
            f"trained to step {result.step}{ending}; validation loss {result.validation_loss:.4f}; "
            f"skipped steps {result.skipped_steps}; checkpoint {result.last_checkpoint}"
        )
    return 0


def overrides(args: argparse.Namespace) -> list[str]:
    """The flags as ``section.key=value`` overrides, applied before the explicit ``--set``s."""
    flags = {
        "data_config.training_files": args.data,
        "train_config.output_directory": args.output_dir,
        "train_config.precision": args.precision,
        "train_config.batch_size": args.batch_size,
        "train_config.max_iters": args.max_iters,
        "train_config.with_tensorboard": True if args.tensorboard else None,
        "train_config.spectral_loss_weight": args.spectral_loss,
    }
    return [
        f"{key}={json.dumps(value)}" for key, value in flags.items() if value is not None
    ] + list(args.overrides)
