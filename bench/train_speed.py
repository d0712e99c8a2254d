"""Training speed: samples/s of our training step against a straightforward fp32 loop, same run.

    flock /tmp/waveglow-timing.lock .venv/bin/python bench/train_speed.py [--quick]

For each model (a small one: 12 flows, WN 4 x 64; NVIDIA's 256-channel one) it times, on the same
pre-made batches:
  plain fp32    model(mel, audio) -> nll_loss -> backward -> Adam.step, nothing else (the baseline)
  ours ... conv :func:`waveglow.train.train_step` (guards, grad norm) with the convolution WN, in
                fp32 and under torch.autocast(bfloat16)
  ours ... GEMM the same step with the matrix-product WN (waveglow.fast), fp32 and bf16 products
Speed targets are ratios to the baseline of the same run (target: >= 2.5x for bf16 GEMM).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile
import torch

from waveglow import Config, DataConfig, TrainConfig, WaveGlow, WaveGlowConfig, WNConfig
from waveglow.data import Batch
from waveglow.loss import nll_loss
from waveglow.train import StopRequest, Trainer, setup, setup_distributed, train_step

MODELS = {
    "small (12 flows, WN 4x64)": WaveGlowConfig(WN_config=WNConfig(n_layers=4, n_channels=64)),
    "256-channel (12 flows, WN 8x256)": WaveGlowConfig(),
}


def make_batches(config: Config, batch_size: int, count: int) -> list[Batch]:
    """Random-phase tones and their real mels: what the data loader would hand over."""
    from waveglow.audio import MelSpectrogram

    mel = MelSpectrogram(config.data_config, config.waveglow_config.n_mel_channels)
    generator = torch.Generator().manual_seed(0)
    length = config.data_config.segment_length
    batches = []
    for _ in range(count):
        time_axis = torch.arange(length) / config.data_config.sampling_rate
        f0 = 100 + 200 * torch.rand(batch_size, 1, generator=generator)
        audio = 0.3 * torch.sin(2 * torch.pi * f0 * time_axis)  # (B, L)
        audio = audio + 0.01 * torch.randn(audio.shape, generator=generator)
        batches.append(Batch(mel(audio), audio, (), ()))
    return batches


def plain_step(model: WaveGlow, optimizer: torch.optim.Optimizer, batch: Batch) -> None:
    optimizer.zero_grad(set_to_none=True)
    z, log_det = model(batch.mel, batch.audio)
    nll_loss(z, log_det, 1.0).backward()
    optimizer.step()


def samples_per_second(step: Callable[[Batch], None], batches: list[Batch], warmup: int) -> float:
    for batch in batches[:warmup]:
        step(batch)
    started = time.perf_counter()
    for batch in batches[warmup:]:
        step(batch)
    seconds = time.perf_counter() - started
    return sum(len(b.audio) for b in batches[warmup:]) / seconds


def our_trainer(config: Config, precision: str, implementation: str) -> Trainer:
    train_config = dataclasses.replace(
        config.train_config, precision=precision, wn_implementation=implementation
    )
    return setup(config.replace(train_config=train_config), setup_distributed("cpu"), False)


def make_corpus(directory: Path, rate: int, count: int) -> Path:
    for index in range(count):
        tone = 0.3 * np.sin(2 * np.pi * (120 + 30 * index) * np.arange(rate) / rate)
        soundfile.write(str(directory / f"{index}.wav"), tone.astype(np.float32), rate)
    return directory


def bench_model(name: str, waveglow_config: WaveGlowConfig, args: argparse.Namespace) -> dict:
    data_config = DataConfig(segment_length=args.segment_length)
    with tempfile.TemporaryDirectory() as scratch:
        corpus = make_corpus(Path(scratch), data_config.sampling_rate, args.batch_size + 2)
        train_config = TrainConfig(
            output_directory=str(Path(scratch) / "run"),
            batch_size=args.batch_size,
            validation_size=1,
            num_workers=0,
        )
        data_config = dataclasses.replace(data_config, training_files=str(corpus))
        config = Config(waveglow_config, data_config, train_config)
        batches = make_batches(config, args.batch_size, args.warmup + args.steps)
        torch.manual_seed(0)
        model = WaveGlow(waveglow_config, data_config)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
        results = {
            "plain fp32": samples_per_second(
                lambda b: plain_step(model, optimizer, b), batches, args.warmup
            )
        }
        variants = [
            ("ours fp32 conv WN", "fp32", "conv"),
            ("ours bf16 conv autocast", "bf16", "conv"),
            ("ours fp32 GEMM WN", "fp32", "gemm"),
            ("ours bf16 GEMM WN", "bf16", "gemm"),
        ]
        for label, precision, implementation in variants:
            trainer = our_trainer(config, precision, implementation)
            with StopRequest() as stop:
                results[label] = samples_per_second(
                    lambda b, t=trainer, s=stop: train_step(t, [b], s), batches, args.warmup
                )
            trainer.logger.close()
    baseline = results["plain fp32"]
    print(
        f"\n{name}: batch {args.batch_size} x {args.segment_length} samples, "
        f"{torch.get_num_threads()} threads"
    )
    for label, value in results.items():
        print(f"  {label:24s} {value:8.2f} samples/s  {value / baseline:5.2f}x")
    return {"model": name, "samples_per_second": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--segment-length", type=int, default=16000)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="short segments, small model only")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    models = MODELS
    if args.quick:
        args.segment_length, args.steps, args.warmup = 4000, 3, 1
        models = dict(list(MODELS.items())[:1])
    results = [bench_model(name, config, args) for name, config in models.items()]
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
