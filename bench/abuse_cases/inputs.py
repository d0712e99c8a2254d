"""The inputs of the abuse cases: the shared model files and clips, and hostile files."""

from __future__ import annotations

import json
import math
import pickle
import sys
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Inputs:
    """The files every tree's cases read (never written by a case)."""

    folder: Path
    tiny: Path = field(init=False)  # a small working model (8 mels, hop 16)
    micro: Path = field(init=False)  # the smallest model file, base of the hostile configs
    mel: Path = field(init=False)  # (8, 100) mel for the tiny model
    long_mel: Path = field(init=False)  # (8, 100000): 73 s of audio, streamed chunk by chunk
    clip: Path = field(init=False)  # 1 s of harmonic tone, 16-bit
    corpus: Path = field(init=False)  # 12 clips of 0.4 s
    train_config: Path = field(init=False)  # the tiny model's training config (no data path)

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            if name != "folder":
                suffix = {"corpus": "", "train_config": ".json", "clip": ".wav", "long_mel": ".npy"}
                suffix = suffix.get(name, ".pt")
                setattr(self, name, self.folder / f"{name}{suffix}")


def build_inputs(folder: Path) -> Inputs:
    """The shared inputs, made with this tree's code."""
    sys.path.insert(0, str(ROOT / "src"))
    import numpy as np
    import soundfile
    import torch

    import waveglow
    from waveglow import DataConfig, WaveGlow, WaveGlowConfig, WNConfig

    inputs = Inputs(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    tiny_data = DataConfig(filter_length=64, hop_length=16, win_length=64, mel_fmax=8000.0)
    tiny = WaveGlow(
        WaveGlowConfig(8, 4, 4, 2, 2, WNConfig(n_layers=2, n_channels=8, kernel_size=3)),
        tiny_data,
    )
    with torch.no_grad():
        for wn in tiny.WN:
            wn.end.weight.normal_(0, 0.1)
            wn.end.bias.normal_(0, 0.1)
    waveglow.save(tiny.remove_weight_norm(), inputs.tiny)
    micro = WaveGlow(
        WaveGlowConfig(1, 1, 2, 1, 0, WNConfig(n_layers=1, n_channels=2, kernel_size=3)),
        DataConfig(filter_length=4, hop_length=2, win_length=4, mel_fmax=8000.0),
    )
    waveglow.save(micro.remove_weight_norm(), inputs.micro)
    soundfile.write(str(inputs.clip), tone(1.0), 22050, subtype="PCM_16")
    mel = waveglow.MelSpectrogram(tiny_data, 8)(torch.from_numpy(tone(0.1)))[:, :100]
    torch.save(mel.contiguous(), inputs.mel)
    np.save(inputs.long_mel, np.tile(mel.numpy(), (1, 1000)))
    inputs.corpus.mkdir()
    for index in range(12):
        path = inputs.corpus / f"clip_{index:02d}.wav"
        soundfile.write(str(path), tone(0.4, seed=index), 22050, subtype="PCM_16")
    config = waveglow.Config(waveglow_config=tiny.config, data_config=tiny_data).to_dict()
    config["data_config"]["segment_length"] = 1024
    config["train_config"].update(
        batch_size=4, learning_rate=1e-3, max_iters=2, iters_per_checkpoint=1,
        iters_per_validation=1, iters_per_log=1, validation_size=2, num_workers=0, seed=7,
        wn_implementation="conv", n_synthesis_samples=0,
    )  # fmt: skip
    inputs.train_config.write_text(json.dumps(config, indent=1))
    return inputs


def tone(seconds: float, seed: int = 0, rate: int = 22050):  # noqa: ANN201 - numpy array
    """A voiced-speech-like tone with a little noise, peak 0.3."""
    import numpy as np

    generator = np.random.default_rng(seed)
    time_axis = np.arange(int(seconds * rate)) / rate
    f0 = generator.uniform(110, 260) * (1 + 0.03 * np.sin(2 * np.pi * 5 * time_axis))
    phase = 2 * np.pi * np.cumsum(f0) / rate
    audio = sum(np.sin(k * phase) / k**1.3 for k in range(1, 7))
    audio = 0.3 * audio / np.max(np.abs(audio))
    return (audio + 1e-3 * generator.standard_normal(len(time_axis))).astype(np.float32)


def hostile_config(source: Path, target: Path, change: Callable[[dict], None]) -> Path:
    """``source`` (our .pt format) with its config changed by ``change``; the tensors as they are."""
    import torch

    payload = torch.load(source, weights_only=True)
    change(payload["config"]["waveglow_config"])
    torch.save(payload, target, _use_new_zipfile_serialization=False)  # the smaller, older format
    return target


class _StorageKey:
    def __init__(self, key: str, numel: int) -> None:
        self.key, self.numel = key, numel


class LazyTensor:
    """Pickles as a float tensor of ``shape`` over a storage that is never in memory."""

    def __init__(self, key: str, shape: tuple[int, ...]) -> None:
        self.storage = _StorageKey(key, math.prod(shape))
        self.shape = shape

    def __reduce__(self):  # noqa: ANN204 - pickle protocol
        import torch

        strides = tuple(math.prod(self.shape[k + 1 :]) for k in range(len(self.shape)))
        arguments = (self.storage, 0, self.shape, strides, False, OrderedDict())
        return (torch._utils._rebuild_tensor_v2, arguments)


class _TorchPickler(pickle.Pickler):
    def persistent_id(self, obj: object) -> object:
        if isinstance(obj, _StorageKey):
            import torch

            return ("storage", torch.FloatStorage, obj.key, "cpu", obj.numel)
        return None


def zip_bomb(path: Path, content: Callable[[], object], storages: dict[str, int]) -> Path:
    """A torch zip file whose storages (key -> bytes) are zeros, deflated (about 1000:1)."""
    name = path.stem
    with zipfile.ZipFile(path, "w", allowZip64=True) as archive:
        archive.writestr(f"{name}/data.pkl", _pickled(content()))
        archive.writestr(f"{name}/byteorder", "little")
        for key, size in storages.items():
            info = zipfile.ZipInfo(f"{name}/data/{key}")
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w", force_zip64=True) as entry:
                block = bytes(2**24)
                for start in range(0, size, len(block)):
                    entry.write(block[: min(len(block), size - start)])
        archive.writestr(f"{name}/version", "3\n")
    return path


def _pickled(obj: object) -> bytes:
    import io

    stream = io.BytesIO()
    _TorchPickler(stream, protocol=2).dump(obj)
    return stream.getvalue()


def safetensors_with_metadata(source: Path, target: Path, metadata: str) -> Path:
    """``source``'s tensors in a .safetensors file whose WaveGlow metadata is ``metadata``."""
    import torch
    from safetensors.torch import save_file

    payload = torch.load(source, weights_only=True)
    save_file(payload["state_dict"], str(target), metadata={"waveglow": metadata})
    return target


def write_npy(path: Path, shape: tuple[int, ...], value: float = -5.0) -> Path:
    import numpy as np

    np.save(path, np.full(shape, value, dtype=np.float32))
    return path
