"""Training speed with the spectral term: samples per CPU-second of the frame16 step, against the
maximum-likelihood step and this CPU's matrix-product limit, same run.

    flock /tmp/waveglow-timing.lock .venv/bin/python bench/spectral_speed.py [--compile] [--bf16 yes]

Variants (the race's layout, frame16, batch 4 x 16384, our ``train_step`` with its guards):
  ML                  maximum likelihood only (what the control arm trains)
  ML + spectral       the spectral term on every step (weight 1.0)
  ML + spectral + mel the same with the log-mel terms (the long run's loss, recipes/spectral_mel)
  ML + spectral + PF  the same with the race's post-filter (4 x 32 channels, dilation 3)
  ... compiled        ``torch.compile`` (inductor, C++ on the CPU) of the step's forward and
                      synthesis; compile time reported apart, excluded from the rate
  ... bf16 GEMM       where the CPU multiplies bf16 in hardware (or ``--bf16 yes``)
Each row gives samples per CPU-second (process time, all threads), the ratio to the ML row, and
the share of the matrix-product limit it reaches: a likelihood step does about 3 passes of the
model's multiply-adds (forward, backward), a spectral step 3 more (the synthesis and its
backward), against the GFLOP/s of a WN-sized matrix product per thread. Interleaved rounds, the
best counts. Nothing else may run meanwhile (hence the lock)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from synth_speed import gemm_gflops
from train_speed import make_batches, make_corpus, samples_per_cpu_second

from waveglow import Config, DataConfig, TrainConfig, WaveGlowConfig, WNConfig
from waveglow.backends import cpu_has_bf16_matmul
from waveglow.data import Batch
from waveglow.model import multiply_adds_per_sample
from waveglow.train import StopRequest, Trainer, setup, setup_distributed, train_step

FRAME16 = WaveGlowConfig(
    n_group=16, WN_config=WNConfig(n_layers=4, n_channels=64), mel_upsampling="linear"
)
POSTFILTER = WNConfig(n_layers=4, n_channels=32, kernel_size=3, dilation_base=3)
BATCH, SEGMENT = 4, 16384


def variants(compile_step: bool, bf16: str) -> list[tuple[str, dict, str, str, bool]]:
    """(label, train_config/waveglow changes, precision, wn_implementation, compiled)."""
    spectral = {"spectral_loss_weight": 1.0}
    with_mel = {**spectral, "spectral_mel_weight": 1.0}  # the long run's loss (spectral_mel)
    postfilter = {**spectral, "postfilter": True}
    chosen = [
        ("ML, fp32 conv", {}, "fp32", "conv", False),
        ("ML + spectral, fp32 conv", spectral, "fp32", "conv", False),
        ("ML + spectral + mel, fp32 conv", with_mel, "fp32", "conv", False),
        ("ML + spectral + PF, fp32 conv", postfilter, "fp32", "conv", False),
        ("ML + spectral, fp32 GEMM", spectral, "fp32", "gemm", False),
    ]
    if compile_step:
        chosen += [
            ("ML, fp32 conv, compiled", {}, "fp32", "conv", True),
            ("ML + spectral, fp32 conv, compiled", spectral, "fp32", "conv", True),
            ("ML + spectral + mel, fp32 conv, compiled", with_mel, "fp32", "conv", True),
        ]
    if bf16 == "yes" or (bf16 == "auto" and cpu_has_bf16_matmul()):
        chosen += [
            ("ML, bf16 GEMM", {}, "bf16", "gemm", False),
            ("ML + spectral, bf16 GEMM", spectral, "bf16", "gemm", False),
            ("ML + spectral + mel, bf16 GEMM", with_mel, "bf16", "gemm", False),
        ]
        if compile_step:
            chosen.append(
                ("ML + spectral + mel, bf16 GEMM, compiled", with_mel, "bf16", "gemm", True)
            )
    return chosen


def make_trainer(scratch: Path, changes: dict, precision: str, implementation: str) -> Trainer:
    changes = dict(changes)
    waveglow_config = FRAME16
    if changes.pop("postfilter", False):
        waveglow_config = dataclasses.replace(FRAME16, postfilter_config=POSTFILTER)
    corpus = scratch / "corpus"
    if not corpus.is_dir():
        corpus.mkdir()
        make_corpus(corpus, 22050, BATCH + 2)
    run = scratch / f"run{len(list(scratch.iterdir()))}"
    config = Config(
        waveglow_config,
        DataConfig(segment_length=SEGMENT, training_files=str(corpus)),
        TrainConfig(
            output_directory=str(run),
            batch_size=BATCH,
            validation_size=1,
            num_workers=0,
            precision=precision,
            wn_implementation=implementation,
            **changes,
        ),
    )
    return setup(config, setup_distributed("cpu"), progress_bar=False)


def compile_trainer(trainer: Trainer) -> None:
    """The step's two heavy calls compiled (inductor): the forward flow and the synthesis."""
    model = trainer.model
    model.forward = torch.compile(model.forward, dynamic=False)
    model.decode = torch.compile(model.decode, dynamic=False)


def passes(spectral: bool) -> int:
    """Multiply-add passes a step makes: forward + backward (x3), and as many for the synthesis."""
    return 6 if spectral else 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (best counts)")
    parser.add_argument("--compile", action="store_true", help="add torch.compile variants")
    parser.add_argument("--bf16", choices=("auto", "yes", "no"), default="auto")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--only", default="", help="run just the variants whose label contains this text"
    )
    args = parser.parse_args()
    threads = torch.get_num_threads()
    limit = gemm_gflops(torch.float32, "cpu") / threads  # GFLOP/s per CPU-second
    print(f"torch {torch.__version__}, {threads} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}; fp32 GEMM {limit:.1f} GFLOP/s per thread")  # fmt: skip
    stop = StopRequest()
    steps: dict[str, tuple[Callable[[Batch], None], dict]] = {}
    compile_seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as scratch:
        trainers = []
        chosen = [v for v in variants(args.compile, args.bf16) if args.only in v[0]]
        for label, changes, precision, implementation, compiled in chosen:
            trainer = make_trainer(Path(scratch), changes, precision, implementation)
            trainers.append(trainer)
            batches = make_batches(trainer.config, BATCH, args.warmup + args.steps)
            step = lambda b, t=trainer: train_step(t, [b], stop)  # noqa: E731
            if compiled:
                compile_trainer(trainer)
                started = time.process_time()
                step(batches[0])  # the compilation, outside the timed steps
                compile_seconds[label] = time.process_time() - started
            steps[label] = (step, {"batches": batches, "trainer": trainer})
        results = dict.fromkeys(steps, 0.0)
        for _ in range(args.rounds):
            for label, (step, extra) in steps.items():
                rate = samples_per_cpu_second(step, extra["batches"], args.warmup)
                results[label] = max(results[label], rate)
        rows = report(results, steps, compile_seconds, limit)
        for trainer in trainers:
            trainer.logger.close()
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


def report(results: dict, steps: dict, compile_seconds: dict, limit: float) -> list[dict]:
    baseline = next(iter(results.values()))
    print(f"\nframe16, batch {BATCH} x {SEGMENT}; samples per CPU-second (best of the rounds)")
    rows = []
    for label, rate in results.items():
        trainer = steps[label][1]["trainer"]
        config = trainer.config
        madds = multiply_adds_per_sample(config.waveglow_config, config.data_config)
        gflops = rate * 2 * madds * passes(config.train_config.spectral) / 1e9
        compiled = (
            f"  (compiled in {compile_seconds[label]:.0f} CPU-s)"
            if label in compile_seconds
            else ""
        )
        print(f"  {label:38s} {rate:9.0f}  {rate / baseline:5.2f}x  {gflops:6.1f} GFLOP/CPU-s "
              f"= {100 * gflops / limit:4.1f} % of the GEMM limit{compiled}")  # fmt: skip
        rows.append({"variant": label, "samples_per_cpu_second": rate, "gflops": gflops})
    return rows


if __name__ == "__main__":
    main()
