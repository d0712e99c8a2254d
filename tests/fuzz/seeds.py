"""Write the seed corpora: small valid files of each kind, ``tests/fuzz/corpus/<harness>/seed-*``.

    python tests/fuzz/seeds.py            # rewrite the seeds (crash files are kept)

The seeds are committed; this script says how they were made. They use the test suite's tiny
models (``tests/conftest.py``, ``tests/nvidia_layouts.py``) so that each file is a few KiB.
"""

from __future__ import annotations

import io
import json
import sys
import tarfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

TESTS = Path(__file__).resolve().parents[1]
CORPUS = Path(__file__).resolve().parent / "corpus"


SEED_CONFIG = {  # the smallest WaveGlow with every part: 2 flows, WN 2 layers x 4 channels
    "n_mel_channels": 4, "n_flows": 2, "n_group": 4, "n_early_every": 4, "n_early_size": 2,
    "WN_config": {"n_layers": 2, "n_channels": 4, "kernel_size": 3},
}  # fmt: skip
SEED_DATA = {"filter_length": 16, "hop_length": 4, "win_length": 16, "mel_fmax": 8000.0}
BARE_DATA = {"filter_length": 256, "hop_length": 256, "win_length": 256}  # no file says hop 4


def _configs(swap: bool = False, data: dict = SEED_DATA):  # noqa: ANN202
    """(WaveGlowConfig, DataConfig) of the seeds."""
    from waveglow import DataConfig, WaveGlowConfig, WNConfig

    fields = {**SEED_CONFIG, "WN_config": WNConfig(**SEED_CONFIG["WN_config"])}
    return WaveGlowConfig(**fields, swap_odd_couplings=swap), DataConfig(**data)


def _tiny_model(seed: int = 0, data: dict = SEED_DATA):  # noqa: ANN202 - a WaveGlow
    sys.path.insert(0, str(TESTS))
    from conftest import make_model

    return make_model(*_configs(data=data), seed=seed)


def _torch_bytes(payload: object, legacy: bool = False) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save(payload, buffer, _use_new_zipfile_serialization=not legacy)
    return buffer.getvalue()


def _official_pickles(legacy: bool) -> dict[str, bytes]:
    """NVIDIA train.py's ``{'model': <glow.WaveGlow>, ...}`` and a bare ``glow_old`` module."""
    sys.path.insert(0, str(TESTS))
    from nvidia_layouts import PICKLE_VARIANTS, glow_module, make_source, official_model

    seeds = {}
    for variant, full_dict in (("fused", True), ("glow-old", False)):
        name, cond_layers, res_skip_split, _ = PICKLE_VARIANTS[variant]
        source = make_source(*_configs(swap=name == "glow_old"))
        module = glow_module(name, cond_layers, res_skip_split)
        with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            patch.setitem(sys.modules, name, module)
            model = official_model(module, source)
            payload = {"model": model, "iteration": 580000, "learning_rate": 1e-4}
            seeds[f"{variant}.pt"] = _torch_bytes(payload if full_dict else model, legacy)
    return seeds


def unpickler() -> dict[str, bytes]:
    from collections import OrderedDict

    state = _tiny_model().remove_weight_norm().state_dict()
    weight = torch.nn.Parameter(torch.arange(6.0).reshape(2, 3))
    things = OrderedDict(size=torch.Size([2, 3]), device=torch.device("cpu"), set={1, 2},
                         data=b"\x00\xff", view=weight[1:], parameter=weight, n=1.5)  # fmt: skip
    return {
        "legacy-state-dict.pt": _torch_bytes(dict(state), legacy=True),
        "legacy-containers.pt": _torch_bytes(things, legacy=True),
        "zip-containers.pt": _torch_bytes(things),
    }


def safetensors() -> dict[str, bytes]:
    from waveglow import save

    folder = Path(__import__("tempfile").mkdtemp())
    return {"tiny.safetensors": save(_tiny_model(), folder / "t.safetensors").read_bytes()}


def nvidia_zip() -> dict[str, bytes]:
    from waveglow import save

    folder = Path(__import__("tempfile").mkdtemp())
    ours = save(_tiny_model().remove_weight_norm(), folder / "ours.pt").read_bytes()
    return {**_official_pickles(legacy=False), "ours.pt": ours}


def nvidia_legacy() -> dict[str, bytes]:
    return _official_pickles(legacy=True)


def nemo() -> dict[str, bytes]:
    state = {f"waveglow.{k}".replace(".WN.", ".wavenet."): v
             for k, v in _tiny_model(data=BARE_DATA).state_dict().items()}  # fmt: skip
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in (("model_config.yaml", b"sigma: 1.0\n"),
                           ("model_weights.ckpt", _torch_bytes(state))):  # fmt: skip
            info = tarfile.TarInfo(f"./{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return {"tiny.nemo": buffer.getvalue()}


def dle_dict() -> dict[str, bytes]:
    model = _tiny_model().remove_weight_norm()
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    config = {key: value for key, value in SEED_CONFIG.items() if key != "WN_config"}
    config.update(SEED_DATA)
    bare = _tiny_model(data=BARE_DATA).state_dict()
    return {
        "dle.pt": _torch_bytes({"state_dict": state, "config": config, "epoch": 3}),
        "bare-state-dict.pt": _torch_bytes(dict(bare)),
        "lightning.pt": _torch_bytes({"state_dict": {f"waveglow.{k}": v for k, v in bare.items()}}),
    }


def _mel(frames: int = 6) -> np.ndarray:
    return (np.random.default_rng(0).standard_normal((80, frames)) - 5).astype(np.float32)


def mel_npy() -> dict[str, bytes]:
    seeds = {}
    for name, array in (("mel.npy", _mel()), ("batch.npy", _mel()[None]),
                        ("float64.npy", _mel().astype(np.float64))):  # fmt: skip
        buffer = io.BytesIO()
        np.save(buffer, array)
        seeds[name] = buffer.getvalue()
    return seeds


def mel_pt() -> dict[str, bytes]:
    mel = torch.from_numpy(_mel())
    return {"mel.pt": _torch_bytes(mel), "half.pt": _torch_bytes(mel.half()[None]),
            "legacy.pt": _torch_bytes(mel, legacy=True)}  # fmt: skip


def audio() -> dict[str, bytes]:
    time = np.arange(2205) / 22050
    wave = (0.3 * np.sin(2 * np.pi * 220 * time)).astype(np.float32)
    seeds = {}
    for name, fmt, subtype, data in (
        ("pcm16.wav", "WAV", "PCM_16", wave),
        ("float.wav", "WAV", "FLOAT", wave),
        ("stereo.wav", "WAV", "PCM_24", np.stack([wave, -wave], 1)),
        ("tone.flac", "FLAC", "PCM_16", wave),
        ("tone.aiff", "AIFF", "PCM_16", wave),
        ("tone.ogg", "OGG", "VORBIS", wave),
    ):
        buffer = io.BytesIO()
        soundfile.write(buffer, data, 22050, format=fmt, subtype=subtype)
        seeds[name] = buffer.getvalue()
    return seeds


def config() -> dict[str, bytes]:
    sys.path.insert(0, str(TESTS))
    from conftest import NVIDIA_CONFIG
    from waveglow import Config

    ours = Config().to_dict()
    return {"nvidia.json": json.dumps(NVIDIA_CONFIG, indent=1).encode(),
            "ours.json": json.dumps(ours).encode()}  # fmt: skip


def filelist() -> dict[str, bytes]:
    return {
        "tacotron2.txt": b"wavs/LJ001-0001.wav|Printing, in the only sense.\n# comment\n\n"
        b"/abs/LJ001-0002.wav|in being comparatively modern.|spk1\n",
        "metadata.csv": b"LJ001-0001|Printing|Printing\nLJ001-0002|in being|in being\n",
    }


BUILDERS: dict[str, Callable[[], dict[str, bytes]]] = {
    "unpickler": unpickler, "safetensors": safetensors, "nvidia_zip": nvidia_zip,
    "nvidia_legacy": nvidia_legacy, "nemo": nemo, "dle_dict": dle_dict, "mel_npy": mel_npy,
    "mel_pt": mel_pt, "audio": audio, "config": config, "filelist": filelist,
}  # fmt: skip


def write_seeds(corpus: Path = CORPUS) -> dict[str, int]:
    """Rewrite every ``seed-*`` file; returns the bytes written per harness."""
    written = {}
    for name, build in BUILDERS.items():
        folder = corpus / name
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("seed-*"):
            old.unlink()
        seeds = build()
        for file_name, data in seeds.items():
            (folder / f"seed-{file_name}").write_bytes(data)
        written[name] = sum(map(len, seeds.values()))
    return written


if __name__ == "__main__":
    for name, size in write_seeds().items():
        print(f"{name}: {size} bytes")
