"""Training speed: samples/s of our training step against a straightforward fp32 loop, same run.

    flock /tmp/waveglow-timing.lock .venv/bin/python bench/train_speed.py [--quick] [--bf16 yes]

For a small model (12 flows, WN 4 x 64) and NVIDIA's 256-channel one it times, on the same
pre-made batches, in interleaved rounds (the best round counts):
  plain fp32 loop  model(mel, audio) -> nll_loss -> backward -> Adam.step, nothing else (baseline)
  ours ... conv    :func:`waveglow.train.train_step` (guards, grad norm) with the convolution WN,
                   in fp32 and under torch.autocast(bfloat16)
  ours ... GEMM    the same step with the matrix-product WN (waveglow.fast), fp32 / bf16 products
bf16 variants run where the CPU multiplies bf16 matrices in hardware (AMX, AVX512-BF16) or with
``--bf16 yes``. Speed targets are ratios to the baseline of the same run (target: bf16 GEMM
>= 2.5x).

``--layouts`` instead compares the model layouts (config options of the same flow) by training
samples per CPU-second (process time, all threads) of our fp32 conv step (and, where the CPU
multiplies bf16 in hardware, of the bf16 GEMM step that ``precision auto`` trains with), against
the demo configuration's fp32 step in the same run, with each one's multiply-adds per sample."""

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
from waveglow.backends import cpu_has_bf16_matmul
from waveglow.data import Batch
from waveglow.loss import nll_loss
from waveglow.train import StopRequest, Trainer, setup, setup_distributed, train_step

MODELS = {  # name: (config, batch size, segment length) sized for a few seconds per step on 2 cores
    "small (12 flows, WN 4x64)": (
        WaveGlowConfig(WN_config=WNConfig(n_layers=4, n_channels=64)),
        4,
        16000,
    ),
    "256-channel (12 flows, WN 8x256)": (WaveGlowConfig(), 1, 8000),
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


def bench_model(
    name: str, waveglow_config: WaveGlowConfig, batch_size: int, segment_length: int, args
) -> dict:  # noqa: ANN001 - args: the parsed command line
    data_config = DataConfig(segment_length=segment_length)
    with tempfile.TemporaryDirectory() as scratch:
        corpus = make_corpus(Path(scratch), data_config.sampling_rate, batch_size + 2)
        train_config = TrainConfig(
            output_directory=str(Path(scratch) / "run"),
            batch_size=batch_size,
            validation_size=1,
            num_workers=0,
        )
        data_config = dataclasses.replace(data_config, training_files=str(corpus))
        config = Config(waveglow_config, data_config, train_config)
        batches = make_batches(config, batch_size, args.warmup + args.steps)
        torch.manual_seed(0)
        model = WaveGlow(waveglow_config, data_config)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
        steps: dict[str, Callable[[Batch], None]] = {
            "plain fp32 loop": lambda b: plain_step(model, optimizer, b)
        }
        trainers = []
        stop = StopRequest()
        for label, precision, implementation in variants(args.bf16):
            trainers.append(our_trainer(config, precision, implementation))
            steps[label] = lambda b, t=trainers[-1]: train_step(t, [b], stop)
        results = dict.fromkeys(steps, 0.0)
        for _ in range(args.rounds):  # interleaved rounds, best of each: fair under noise
            for label, step in steps.items():
                results[label] = max(results[label], samples_per_second(step, batches, args.warmup))
        for trainer in trainers:
            trainer.logger.close()
    baseline = results["plain fp32 loop"]
    print(
        f"\n{name}: batch {batch_size} x {segment_length} samples, {torch.get_num_threads()} threads"
    )
    for label, value in results.items():
        print(f"  {label:26s} {value:8.3f} segments/s  {value / baseline:5.2f}x", flush=True)
    return {"model": name, "batch_size": batch_size, "segment_length": segment_length, **results}


LAYOUTS = {  # name: waveglow_config, trained on 4 x 16384-sample segments
    "demo (n_group 8, upsampler)": WaveGlowConfig(WN_config=WNConfig(n_layers=4, n_channels=64)),
    "frame8 (n_group 8, linear)": WaveGlowConfig(
        WN_config=WNConfig(n_layers=4, n_channels=64), mel_upsampling="linear"
    ),
    "frame16 (n_group 16, linear)": WaveGlowConfig(
        n_group=16, WN_config=WNConfig(n_layers=4, n_channels=64), mel_upsampling="linear"
    ),
    "squeeze128 (SqueezeWave-128S-like)": WaveGlowConfig(
        n_group=128,
        n_early_size=16,
        WN_config=WNConfig(n_layers=8, n_channels=128, dilation_base=1, depthwise_separable=True),
        mel_upsampling="linear",
    ),
}


def bench_layouts(args) -> list[dict]:  # noqa: ANN001 - args: the parsed command line
    """Training samples per CPU-second of each layout, interleaved rounds, best round counts."""
    from waveglow.model import multiply_adds_per_sample

    batch_size, segment_length = 4, 16384
    steps, stop, trainers = {}, StopRequest(), []
    with tempfile.TemporaryDirectory() as scratch:
        for index, (name, waveglow_config) in enumerate(LAYOUTS.items()):
            data_config = DataConfig(segment_length=segment_length)
            folder = Path(scratch) / f"corpus{index}"
            folder.mkdir()
            corpus = make_corpus(folder, data_config.sampling_rate, batch_size + 2)
            config = Config(
                waveglow_config,
                dataclasses.replace(data_config, training_files=str(corpus)),
                TrainConfig(
                    output_directory=str(Path(scratch) / f"run{index}"),
                    batch_size=batch_size,
                    validation_size=1,
                    num_workers=0,
                ),
            )
            batches = make_batches(config, batch_size, args.warmup + args.steps)
            for label, precision, implementation in layout_variants(args.bf16):
                trainers.append(our_trainer(config, precision, implementation))
                step = lambda b, t=trainers[-1]: train_step(t, [b], stop)  # noqa: E731
                steps[f"{name}, {label}"] = (step, batches, config)
        results = dict.fromkeys(steps, 0.0)
        for _ in range(args.rounds):
            for name, (step, batches, _) in steps.items():
                rate = samples_per_cpu_second(step, batches, args.warmup)
                results[name] = max(results[name], rate)
        for trainer in trainers:
            trainer.logger.close()
    baseline = next(iter(results.values()))
    print(f"\nlayouts: batch {batch_size} x {segment_length}, {torch.get_num_threads()} threads")
    rows = []
    for name, rate in results.items():
        config = steps[name][2]
        madds = multiply_adds_per_sample(config.waveglow_config, config.data_config)
        print(
            f"  {name:46s} {madds / 1e3:7.1f} k MAC/sample {rate:9.0f} samples/CPU-s "
            f"{rate / baseline:5.2f}x",
            flush=True,
        )
        rows.append({"layout": name, "madds_per_sample": madds, "samples_per_cpu_second": rate})
    return rows


def samples_per_cpu_second(
    step: Callable[[Batch], None], batches: list[Batch], warmup: int
) -> float:
    for batch in batches[:warmup]:
        step(batch)
    started = time.process_time()
    for batch in batches[warmup:]:
        step(batch)
    seconds = time.process_time() - started
    return sum(b.audio.numel() for b in batches[warmup:]) / seconds


def layout_variants(bf16: str) -> list[tuple[str, str, str]]:
    """(label, precision, wn_implementation) per layout: fp32 convolutions, and the bf16 GEMM WN
    that ``auto`` trains with where the CPU multiplies bf16 in hardware (or ``--bf16 yes``)."""
    chosen = [("fp32 conv", "fp32", "conv")]
    if bf16 == "yes" or (bf16 == "auto" and cpu_has_bf16_matmul()):
        chosen.append(("bf16 GEMM", "bf16", "gemm"))
    return chosen


def variants(bf16: str) -> list[tuple[str, str, str]]:
    """(label, precision, wn_implementation) of our steps; bf16 only where it can pay off."""
    chosen = [("ours fp32 conv WN", "fp32", "conv"), ("ours fp32 GEMM WN", "fp32", "gemm")]
    if bf16 == "yes" or (bf16 == "auto" and cpu_has_bf16_matmul()):
        chosen += [
            ("ours bf16 conv autocast", "bf16", "conv"),
            ("ours bf16 GEMM WN", "bf16", "gemm"),
        ]
    else:
        print("(no bf16 variants: this CPU has no bf16 matrix hardware; --bf16 yes forces them)")
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (best counts)")
    parser.add_argument("--bf16", choices=("auto", "yes", "no"), default="auto")
    parser.add_argument("--quick", action="store_true", help="the small model, short segments")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--layouts", action="store_true", help="compare the model layouts")
    args = parser.parse_args()
    if args.layouts:
        rows = bench_layouts(args)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=2))
        return
    models = MODELS
    if args.quick:
        config, batch_size, _ = MODELS["small (12 flows, WN 4x64)"]
        models = {"small (12 flows, WN 4x64), quick": (config, batch_size, 4000)}
    results = [bench_model(name, *sizes, args) for name, sizes in models.items()]
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
