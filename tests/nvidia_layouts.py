"""Test helper: write a model of ours in NVIDIA's historical checkpoint layouts.

Old layouts are made by splitting our fused tensors (``cond_layer`` into per-layer ``cond_layers``,
``res_skip_layers`` into ``res_layers`` + ``skip_layers``). Official-style pickles use throwaway
``glow`` / ``glow_old`` modules whose classes are plain ``torch.nn`` modules with torch's legacy
weight-norm hook, the way NVIDIA's ``glow.py`` built them; the caller registers the module in
``sys.modules`` only while saving.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from conftest import TINY, TINY_DATA, four_flows
from waveglow import DataConfig, WaveGlow, WaveGlowConfig

SMALL = four_flows(n_layers=3)
SMALL_DATA = DataConfig()  # NVIDIA's 1024-tap upsampler with hop 256: the value state dicts imply


def make_source(
    config: WaveGlowConfig = SMALL, data_config: DataConfig = SMALL_DATA, seed: int = 0
) -> WaveGlow:
    """A model with weight norm whose couplings are active and whose ``weight_g`` differ from
    ``||weight_v||`` (so that reading v, or a stale weight, instead of g * v / ||v|| shows)."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = WaveGlow(config, data_config)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("weight_g"):
                parameter.mul_(0.5 + torch.rand(parameter.shape, generator=generator))
            elif name.endswith("end.weight") or name.endswith("end.bias"):
                parameter.normal_(0, 0.1, generator=generator)
    return model.eval()


def old_state_dict(
    model: WaveGlow, cond_layers: bool = False, res_skip_split: bool = False
) -> dict[str, torch.Tensor]:
    """``model``'s state dict renamed to an older NVIDIA layout by splitting the fused tensors."""
    channels, layers = model.config.WN_config.n_channels, model.config.WN_config.n_layers
    state: dict[str, torch.Tensor] = {}
    for name, tensor in model.state_dict().items():
        parts = name.split(".") + [""]
        tensor = tensor.clone()
        if cond_layers and parts[2] == "cond_layer":
            for layer, chunk in enumerate(tensor.chunk(layers)):
                state[f"WN.{parts[1]}.cond_layers.{layer}.{parts[3]}"] = chunk.clone()
        elif res_skip_split and parts[2] == "res_skip_layers":
            prefix, layer = f"WN.{parts[1]}", int(parts[3])
            if layer < layers - 1:
                state[f"{prefix}.res_layers.{layer}.{parts[4]}"] = tensor[:channels].clone()
                state[f"{prefix}.skip_layers.{layer}.{parts[4]}"] = tensor[channels:].clone()
            else:
                state[f"{prefix}.skip_layers.{layer}.{parts[4]}"] = tensor
        else:
            state[name] = tensor
    return state


# ---------------------------------------------------------------------------- official pickles
def glow_module(
    name: str = "glow", cond_layers: bool = False, res_skip_split: bool = False
) -> types.ModuleType:
    """A stand-in for NVIDIA's ``glow.py`` (or ``glow_old.py``) with the chosen WN layout."""
    module = types.ModuleType(name)

    def conv(*args: Any, **kwargs: Any) -> nn.Conv1d:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return nn.utils.weight_norm(nn.Conv1d(*args, **kwargs), name="weight")

    class WN(nn.Module):
        def __init__(self, n_in: int, n_mel: int, n_layers: int, n_channels: int, kernel: int):
            super().__init__()
            self.start = conv(n_in, n_channels, 1)
            self.end = nn.Conv1d(n_channels, 2 * n_in, 1)
            self.in_layers = nn.ModuleList(
                conv(n_channels, 2 * n_channels, kernel, dilation=2**i, padding=2**i)
                for i in range(n_layers)
            )
            if cond_layers:
                self.cond_layers = nn.ModuleList(
                    conv(n_mel, 2 * n_channels, 1) for _ in range(n_layers)
                )
            else:
                self.cond_layer = conv(n_mel, 2 * n_channels * n_layers, 1)
            if res_skip_split:
                self.res_layers = nn.ModuleList(
                    conv(n_channels, n_channels, 1) for _ in range(n_layers - 1)
                )
                self.skip_layers = nn.ModuleList(
                    conv(n_channels, n_channels, 1) for _ in range(n_layers)
                )
            else:
                self.res_skip_layers = nn.ModuleList(
                    conv(n_channels, 2 * n_channels if i < n_layers - 1 else n_channels, 1)
                    for i in range(n_layers)
                )

    class Invertible1x1Conv(nn.Module):
        def __init__(self, channels: int):
            super().__init__()
            self.conv = nn.Conv1d(channels, channels, 1, bias=False)

    class WaveGlow(nn.Module):
        def __init__(self, config: WaveGlowConfig, data_config: DataConfig):
            super().__init__()
            mel, wn = config.n_mel_channels, config.WN_config
            self.upsample = nn.ConvTranspose1d(
                mel, mel, data_config.filter_length, stride=data_config.hop_length
            )
            self.n_flows, self.n_group = config.n_flows, config.n_group
            self.WN = nn.ModuleList(
                WN(
                    config.channels_at(k) // 2,
                    mel * config.n_group,
                    wn.n_layers,
                    wn.n_channels,
                    wn.kernel_size,
                )
                for k in range(config.n_flows)
            )
            self.convinv = nn.ModuleList(
                Invertible1x1Conv(config.channels_at(k)) for k in range(config.n_flows)
            )

    for cls in (WN, Invertible1x1Conv, WaveGlow):
        cls.__module__, cls.__qualname__ = name, cls.__name__
        setattr(module, cls.__name__, cls)
    return module


def official_model(module: types.ModuleType, source: WaveGlow) -> nn.Module:
    """An instance of ``module.WaveGlow`` holding ``source``'s weights in that module's layout."""
    model = module.WaveGlow(source.config, source.data_config)
    has = set(model.state_dict())
    state = old_state_dict(
        source,
        cond_layers=any(".cond_layers." in name for name in has),
        res_skip_split=any(".res_layers." in name for name in has),
    )
    model.load_state_dict(state)  # strict: the names must be exactly the old layout's
    return model


def save_torch(payload: Any, path: Path, legacy: bool = False) -> Path:
    """``torch.save`` in the zip format or torch's pre-1.6 legacy format."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "couldn't retrieve source code" for the legacy format
        torch.save(payload, path, _use_new_zipfile_serialization=not legacy)
    return path


def assert_same_model(source: WaveGlow, loaded: WaveGlow, frames: int = 3) -> None:
    """Same z and log-determinant forward, same audio from the same z inverse."""
    generator = torch.Generator().manual_seed(1)
    mel = torch.randn(2, source.config.n_mel_channels, frames, generator=generator)
    audio = torch.randn(2, frames * source.hop_length, generator=generator) * 0.3
    with torch.no_grad():
        z, log_det = source(mel, audio)
        z_loaded, log_det_loaded = loaded(mel, audio)
        torch.testing.assert_close(z_loaded, z, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(log_det_loaded, log_det, rtol=1e-5, atol=1e-3)
        noise = torch.randn(z.shape, generator=generator) * 0.6
        torch.testing.assert_close(
            loaded.infer(mel, z=noise), source.infer(mel, z=noise), rtol=1e-4, atol=1e-5
        )


def glow_old_infer(model: WaveGlow, mel: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """NVIDIA's ``glow_old.py`` inverse read step by step, independently of
    :meth:`WaveGlow.inverse`: only ``model``'s mel grouping, WNs and 1x1 weights are used.

    For k from the last flow down: on even k the WN sees the first half and the second is
    un-transformed; on odd k the WN sees the second half and the first is un-transformed, staying
    first. Then the 1x1 inverse, then the early-output channels of z emitted before flow k (the
    latest ones) are put in front.
    """
    config = model.config
    batch, _, steps = z.shape
    mel_groups = model.condition(mel, steps * config.n_group)
    emitted = [k for k in range(1, config.n_flows) if k % config.n_early_every == 0]
    size = config.n_early_size
    early = z[:, : len(emitted) * size]
    x = z[:, len(emitted) * size :]
    with torch.no_grad():
        for k in reversed(range(config.n_flows)):
            half = x.size(1) // 2
            first, second = x[:, :half], x[:, half:]
            conditioning, other = (first, second) if k % 2 == 0 else (second, first)
            out = model.WN[k](conditioning, mel_groups)
            shift, log_s = out[:, :half], out[:, half:]
            other = (other - shift) / torch.exp(log_s)
            x = torch.cat([conditioning, other] if k % 2 == 0 else [other, conditioning], 1)
            weight = model.convinv[k].conv.weight[:, :, 0].double()
            x = torch.einsum("ij,bjt->bit", torch.linalg.inv(weight).to(x.dtype), x)
            if size and k in emitted:
                x = torch.cat([early[:, -size:], x], 1)
                early = early[:, :-size]
    return x.transpose(1, 2).reshape(batch, steps * config.n_group)


PICKLE_VARIANTS = {  # module name, per-layer cond_layers, split res/skip, layout suffix
    "fused": ("glow", False, False, ""),
    "cond-layers": ("glow", True, False, "+cond-layers"),
    "glow-split": ("glow", True, True, "+cond-layers+res-skip-split"),  # glow.py before 8a5d43f
    "glow-old": ("glow_old", True, True, "+cond-layers+res-skip-split"),
    "glow-old-converted": ("glow_old", True, False, "+cond-layers"),  # NVIDIA's convert_model.py
}


def write_official_pickle(
    monkeypatch: pytest.MonkeyPatch,
    path: Path,
    variant: str = "fused",
    legacy: bool = False,
    full_dict: bool = True,
) -> torch.nn.Module:
    """Save like NVIDIA's train.py with a throwaway ``glow`` module, then unregister it."""
    name, cond_layers, res_skip_split, _ = PICKLE_VARIANTS[variant]
    config = dataclasses.replace(TINY, swap_odd_couplings=name == "glow_old")  # glow_old's maths
    source = make_source(config, TINY_DATA)  # hop 16: only the pickled stride can tell
    module = glow_module(name, cond_layers, res_skip_split)
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, name, module)
        model = official_model(module, source)
        payload = model
        if full_dict:
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
            payload = {
                "model": model,
                "iteration": 580000,
                "optimizer": optimizer.state_dict(),
                "learning_rate": 1e-4,
            }
        save_torch(payload, path, legacy=legacy)
    assert name not in sys.modules  # our loader must not need NVIDIA's code
    return source
