"""Small audio corpora the training tests make themselves: harmonic tones with vibrato."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import soundfile

from waveglow import Config, DataConfig, TrainConfig
from waveglow.config import WaveGlowConfig

SAMPLING_RATE = 22050


def harmonic_clip(seed: int, seconds: float = 0.4, rate: int = SAMPLING_RATE) -> np.ndarray:
    """A voiced-speech-like tone: f0 with vibrato, decaying harmonics, an envelope, a little noise."""
    generator = np.random.default_rng(seed)
    time = np.arange(int(seconds * rate)) / rate
    f0 = generator.uniform(110, 260) * (1 + 0.03 * np.sin(2 * np.pi * 5 * time))
    phase = 2 * np.pi * np.cumsum(f0) / rate
    audio = sum(np.sin(k * phase) / k**1.3 for k in range(1, 7))
    envelope = np.clip(np.sin(np.pi * time / time[-1]), 0, 1) ** 0.5
    audio = 0.3 * audio * envelope / np.max(np.abs(audio))
    return (audio + 1e-3 * generator.standard_normal(len(time))).astype(np.float32)


def write_clip(path: Path, seed: int, seconds: float = 0.4, rate: int = SAMPLING_RATE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), harmonic_clip(seed, seconds, rate), rate, subtype="PCM_16")
    return path


def make_folder_corpus(root: Path, count: int = 12, seconds: float = 0.4) -> Path:
    for index in range(count):
        write_clip(root / f"clip_{index:03d}.wav", seed=index, seconds=seconds)
    return root


def tiny_config(
    waveglow: WaveGlowConfig, data: DataConfig, corpus: Path, output: Path, **train: object
) -> Config:
    """A config for a tiny model on ``corpus``; ``train`` overrides train_config fields."""
    defaults = {
        "output_directory": str(output),
        "batch_size": 4,
        "learning_rate": 1e-3,
        "max_iters": 20,
        "iters_per_checkpoint": 10,
        "iters_per_validation": 10,
        "iters_per_log": 1,
        "validation_size": 2,
        "num_workers": 0,
        "seed": 7,
    }
    data = dataclasses.replace(data, segment_length=1024, training_files=str(corpus))
    return Config(
        waveglow_config=waveglow,
        data_config=data,
        train_config=TrainConfig(**{**defaults, **train}),
    )


def run_log(output: Path, event: str) -> list[dict]:
    """The entries of ``event`` in a training run's ``log.jsonl``."""
    lines = (output / "log.jsonl").read_text().splitlines()
    return [entry for entry in map(json.loads, lines) if entry["event"] == event]
