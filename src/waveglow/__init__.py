"""waveglow: a fast, faithful PyTorch implementation of the WaveGlow flow-based vocoder."""

from .audio import MelSpectrogram, load_audio, load_mel, save_mel, save_wav
from .checkpoint import CheckpointError, load, save
from .config import Config, DataConfig, TrainConfig, WaveGlowConfig, WNConfig, load_config
from .denoiser import Denoiser
from .loss import WaveGlowLoss, nll_loss
from .model import WaveGlow
from .streaming import Stream

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "Config",
    "DataConfig",
    "Denoiser",
    "MelSpectrogram",
    "Stream",
    "TrainConfig",
    "WNConfig",
    "WaveGlow",
    "WaveGlowConfig",
    "WaveGlowLoss",
    "__version__",
    "load",
    "load_audio",
    "load_config",
    "load_mel",
    "nll_loss",
    "save",
    "save_mel",
    "save_wav",
]
