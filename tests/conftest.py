"""Shared fixtures: a tiny WaveGlow that keeps the whole suite fast on 2 CPU cores."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from corpus import make_folder_corpus
from waveglow import DataConfig, WaveGlow, WaveGlowConfig, WNConfig, save

# NVIDIA/waveglow's published config.json, key for key.
NVIDIA_CONFIG = {
    "train_config": {
        "fp16_run": True,
        "output_directory": "checkpoints",
        "epochs": 100000,
        "learning_rate": 1e-4,
        "sigma": 1.0,
        "iters_per_checkpoint": 2000,
        "batch_size": 12,
        "seed": 1234,
        "checkpoint_path": "",
        "with_tensorboard": False,
    },
    "data_config": {
        "training_files": "train_files.txt",
        "segment_length": 16000,
        "sampling_rate": 22050,
        "filter_length": 1024,
        "hop_length": 256,
        "win_length": 1024,
        "mel_fmin": 0.0,
        "mel_fmax": 8000.0,
    },
    "dist_config": {"dist_backend": "nccl", "dist_url": "tcp://localhost:54321"},
    "waveglow_config": {
        "n_mel_channels": 80,
        "n_flows": 12,
        "n_group": 8,
        "n_early_every": 4,
        "n_early_size": 2,
        "WN_config": {"n_layers": 8, "n_channels": 256, "kernel_size": 3},
    },
}


def four_flows(
    n_mel_channels: int = 8, n_group: int = 4, n_layers: int = 2, n_channels: int = 8
) -> WaveGlowConfig:
    """A small test architecture: 4 flows, 2 channels out early every 2 flows, WN kernel 3."""
    return WaveGlowConfig(
        n_mel_channels=n_mel_channels,
        n_flows=4,
        n_group=n_group,
        n_early_every=2,
        n_early_size=2,
        WN_config=WNConfig(n_layers=n_layers, n_channels=n_channels, kernel_size=3),
    )


TINY = four_flows()
TINY_DATA = DataConfig(filter_length=64, hop_length=16, win_length=64, mel_fmax=8000.0)


def make_model(
    config: WaveGlowConfig = TINY,
    data_config: DataConfig = TINY_DATA,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    end_std: float | None = 0.1,
) -> WaveGlow:
    """A WaveGlow built after ``torch.manual_seed(seed)``. With ``end_std``, its zero-initialised
    ``end`` layers get random weights of that standard deviation, so that every coupling (and
    the post-filter, if any) really transforms (a freshly initialised flow is only the 1x1
    convolutions)."""
    torch.manual_seed(seed)
    model = WaveGlow(config, data_config).to(dtype)
    if end_std is not None:
        with torch.no_grad():
            post_filters = [model.postfilter] if config.postfilter_config is not None else []
            for wn in [*model.WN, *post_filters]:
                wn.end.weight.normal_(0, end_std)
                wn.end.bias.normal_(0, end_std)
    return model


def make_tiny(
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    active: bool = True,
    config: WaveGlowConfig = TINY,
) -> WaveGlow:
    """A tiny WaveGlow (``config``, :data:`TINY_DATA`); ``active``: its couplings transform."""
    return make_model(config, TINY_DATA, seed, dtype, end_std=0.1 if active else None)


def random_mel(frames: int, seed: int, bins: int = TINY.n_mel_channels) -> torch.Tensor:
    """A random mel (M, F) in the range of Tacotron 2 log-mels."""
    return torch.randn(bins, frames, generator=torch.Generator().manual_seed(seed)) * 2 - 5


def librosa_stft(audio: np.ndarray, config: DataConfig = TINY_DATA) -> np.ndarray:
    """librosa's STFT (n_fft/2+1, frames) with ``config``'s geometry, Hann window, centred with
    reflect padding: the independent reference for waveglow's STFT."""
    import librosa

    return librosa.stft(
        y=audio,
        n_fft=config.filter_length,
        hop_length=config.hop_length,
        win_length=config.win_length,
        window="hann",
        center=True,
        pad_mode="reflect",
    )


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A folder of 12 tiny clips for training runs, shared by a test module."""
    return make_folder_corpus(tmp_path_factory.mktemp("corpus"), count=12)


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    """The tiny model saved in our format."""
    return save(make_tiny(), tmp_path / "tiny.pt")


@pytest.fixture
def tiny_model() -> WaveGlow:
    return make_tiny()


@pytest.fixture(autouse=True)
def _few_threads():
    torch.set_num_threads(1)
    yield


def load_recipe(name: str) -> ModuleType:
    """``recipes/<name>.py`` imported from its path (the recipes are scripts, not a package)."""
    path = Path(__file__).resolve().parents[1] / "recipes" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module
