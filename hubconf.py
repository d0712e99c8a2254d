"""torch.hub entry points: ``torch.hub.load(REPO_OR_PATH, "waveglow")`` and ``"denoiser"``.

    import torch
    model = torch.hub.load("path/to/waveglow", "waveglow", source="local")  # the bundled demo
    model = torch.hub.load("path/to/waveglow", "waveglow", source="local",
                           checkpoint="waveglow_256channels_universal_v5.pt")
    denoiser = torch.hub.load("path/to/waveglow", "denoiser", source="local", vocoder=model)
    audio = denoiser(model.infer(mel, sigma=0.6), strength=0.1)

A checkout that is not installed works too: its ``src`` folder is put first on ``sys.path`` (unless
``waveglow`` was imported already, in which case that copy is used).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

dependencies = ["torch", "numpy", "librosa", "soundfile", "soxr", "safetensors"]

_SRC = Path(__file__).resolve().parent / "src"
if (_SRC / "waveglow" / "__init__.py").is_file() and str(_SRC) not in sys.path:
    sys.path.insert(0, str(_SRC))


def waveglow(checkpoint: str = "demo", device: str = "cpu", **kwargs: Any) -> Any:
    """A WaveGlow vocoder in eval mode, ready for ``model.infer(mel, sigma=0.6)``.

    ``checkpoint``: ``"demo"`` (the small model bundled with the package, see its model card) or
    any file :func:`waveglow.load` reads: our ``.pt``/``.safetensors``, NVIDIA's published
    ``waveglow_256channels_*.pt`` or its training checkpoints, NeMo ``.nemo`` files.
    ``device``: ``"cpu"``, ``"cuda"``, ``"cuda:1"``... Other keywords (``weight_norm``,
    ``glow_old``) go to :func:`waveglow.load`. Returns a :class:`waveglow.WaveGlow`; a mel
    ``(B, n_mel_channels, F)`` becomes audio ``(B, F * hop_length)`` at its sampling rate.
    """
    from waveglow import load

    return load(checkpoint, device=device, **kwargs)


def denoiser(
    checkpoint: str = "demo", device: str = "cpu", vocoder: Any = None, **kwargs: Any
) -> Any:
    """NVIDIA's bias denoiser for a WaveGlow: ``denoiser(audio, strength=0.1)``.

    ``vocoder``: the WaveGlow whose bias hum to remove (for example the one the ``"waveglow"``
    entry point returned; not ``model``, which is torch.hub.load's own argument); without it,
    ``checkpoint``, ``device`` and ``kwargs`` load one as that entry point does. Returns a
    :class:`waveglow.Denoiser` on the model's device; audio ``(T,)`` or ``(B, T)`` comes back in
    the same shape.
    """
    from waveglow import Denoiser

    if vocoder is None:
        vocoder = waveglow(checkpoint, device=device, **kwargs)
    return Denoiser(vocoder)
