"""hubconf.py as torch.hub loads it from a checkout (``source="local"``)."""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path

import pytest
import torch

import waveglow
from conftest import TINY_DATA, make_tiny, random_mel

REPO = Path(__file__).resolve().parents[1]


def hub_load(entry: str, **kwargs: object) -> torch.nn.Module:
    return torch.hub.load(str(REPO), entry, source="local", **kwargs)


def test_the_entry_points_are_documented_and_nothing_else_is_one():
    spec = importlib.util.spec_from_file_location("hubconf_under_test", REPO / "hubconf.py")
    hubconf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hubconf)
    entries = [name for name, value in vars(hubconf).items()
               if callable(value) and not name.startswith("_") and inspect.isfunction(value)
               and value.__module__ == hubconf.__name__]  # fmt: skip
    assert sorted(entries) == ["denoiser", "waveglow"]
    for entry in entries:
        assert "checkpoint" in inspect.getdoc(getattr(hubconf, entry))
    assert hubconf.dependencies[0] == "torch"
    with pytest.raises(RuntimeError, match="frobnicate"):
        hub_load("frobnicate")


def test_waveglow_is_the_bundled_demo_by_default_and_synthesizes():
    model = hub_load("waveglow")
    demo = waveglow.load("demo")
    assert isinstance(model, waveglow.WaveGlow) and not model.training
    ours, theirs = model.state_dict(), demo.state_dict()
    assert ours.keys() == theirs.keys()
    for name, tensor in theirs.items():
        torch.testing.assert_close(ours[name], tensor, rtol=0, atol=0, msg=name)
    frames, hop = 12, model.data_config.hop_length
    mel = torch.randn(1, model.config.n_mel_channels, frames, generator=torch.Generator().manual_seed(0)) - 5  # fmt: skip
    with torch.no_grad():
        audio = model.infer(mel, sigma=0.6)
    assert audio.shape == (1, frames * hop)
    assert torch.isfinite(audio).all() and audio.abs().max() > 0


def test_waveglow_reads_any_checkpoint_file(checkpoint):
    model = hub_load("waveglow", checkpoint=str(checkpoint))
    assert model.config == make_tiny().config and model.data_config == TINY_DATA
    mel = random_mel(5, 0).unsqueeze(0)  # (1, M, F)
    with torch.no_grad():
        torch.testing.assert_close(
            model.infer(mel, sigma=0.0), waveglow.load(checkpoint).infer(mel, sigma=0.0)
        )


def test_denoiser_removes_the_bias_of_the_model_it_is_given(checkpoint):
    model = hub_load("waveglow", checkpoint=str(checkpoint))
    denoiser = hub_load("denoiser", vocoder=model)
    assert isinstance(denoiser, waveglow.Denoiser)
    with torch.no_grad():
        bias = model.infer(torch.zeros(1, 8, 40), sigma=0.0)  # (1, 40 * hop): the hum itself
        cleaned = denoiser(bias, strength=1.0)
    assert cleaned.shape == bias.shape
    assert cleaned.pow(2).mean() < 0.5 * bias.pow(2).mean()


def test_denoiser_loads_the_demo_without_a_model():
    denoiser = hub_load("denoiser")
    audio = torch.randn(2, 4000, generator=torch.Generator().manual_seed(1)) * 0.1
    assert denoiser(audio, strength=0.1).shape == (2, 4000)
