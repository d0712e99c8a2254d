"""Every NVIDIA checkpoint layout loads to the same model; hostile and broken files are refused."""

from __future__ import annotations

import codecs
import dataclasses
import io
import os
import pickle
import sys
import tarfile
import warnings
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
import torch.nn.backends.thnn as thnn

from conftest import TINY, TINY_DATA
from nvidia_layouts import (
    PICKLE_VARIANTS,
    SMALL,
    assert_same_model,
    glow_module,
    glow_old_infer,
    make_source,
    official_model,
    old_state_dict,
    save_torch,
    write_official_pickle,
)
from waveglow import CheckpointError, load, save
from waveglow.checkpoint import LayoutWarning, build_model, convert, read_checkpoint


def read_and_check(
    path: Path,
    source: torch.nn.Module,
    layout: str,
    tmp_path: Path,
    glow_old: bool = False,
    option: bool | None = None,
) -> None:
    """Read, build (both weight-norm forms), convert and reload: always ``source``'s outputs.

    ``glow_old``: the file is expected to load with glow_old.py's swapped coupling halves on odd
    flows (``source`` must then have them too), checked against a step-by-step reading of
    glow_old.py's inverse, and to keep them when converted. ``option``: the ``glow_old`` argument
    passed to the reader and the converter.
    """
    assert source.config.swap_odd_couplings == glow_old
    checkpoint = read_checkpoint(path, option)
    assert checkpoint.layout == layout
    assert checkpoint.config.waveglow_config == source.config
    assert checkpoint.config.data_config.hop_length == source.hop_length
    loaded = build_model(checkpoint, source=str(path))
    assert_same_model(source, loaded)
    assert_same_model(source, build_model(checkpoint, weight_norm=True, source=str(path)))
    if glow_old:
        assert_glow_old_inverse(loaded)
    converted = tmp_path / "converted.pt"
    convert(path, converted, option)
    reread = read_checkpoint(converted)
    assert reread.layout == "waveglow"
    assert reread.config.waveglow_config.swap_odd_couplings == glow_old
    assert_same_model(source, load(converted))
    if glow_old:
        assert_glow_old_inverse(load(converted))
        safetensors = convert(path, tmp_path / "converted.safetensors", option).config
        assert read_checkpoint(tmp_path / "converted.safetensors").config == safetensors
        assert safetensors.waveglow_config.swap_odd_couplings


def assert_glow_old_inverse(model: torch.nn.Module, frames: int = 3) -> None:
    """``model`` synthesizes what NVIDIA's glow_old.py computes from the same weights."""
    generator = torch.Generator().manual_seed(2)
    mel = torch.randn(2, model.config.n_mel_channels, frames, generator=generator)
    steps = frames * model.hop_length // model.n_group
    z = torch.randn(2, model.n_group, steps, generator=generator) * 0.6
    torch.testing.assert_close(
        model.infer(mel, z=z), glow_old_infer(model, mel, z), rtol=1e-4, atol=1e-5
    )


# ---------------------------------------------------------------------------- official pickles
@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("variant", list(PICKLE_VARIANTS))
def test_official_pickle_loads_the_same_model(monkeypatch, tmp_path, variant, legacy):
    path = tmp_path / "waveglow.pt"
    source = write_official_pickle(monkeypatch, path, variant, legacy)
    layout = ("nvidia-pickle-legacy" if legacy else "nvidia-pickle") + PICKLE_VARIANTS[variant][3]
    glow_old = variant.startswith("glow-old")
    read_and_check(path, source, layout, tmp_path, glow_old=glow_old)
    extra = read_checkpoint(path).extra
    origin = PICKLE_VARIANTS[variant][0]
    assert extra == {"iteration": 580000, "learning_rate": 1e-4, "nvidia_module": origin}


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_published_pickle_holding_only_the_module(monkeypatch, tmp_path, legacy):
    path = tmp_path / "waveglow_256channels.pt"
    source = write_official_pickle(monkeypatch, path, "fused", legacy, full_dict=False)
    layout = "nvidia-pickle-legacy" if legacy else "nvidia-pickle"
    read_and_check(path, source, layout, tmp_path)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_stale_weight_attribute_is_ignored(monkeypatch, tmp_path, legacy):
    """The legacy hook's ``weight`` attribute was computed at construction, before the weights
    were loaded: the loader must use weight_g and weight_v (the shared check would catch it)."""
    path = tmp_path / "waveglow.pt"
    source = write_official_pickle(monkeypatch, path, "fused", legacy)
    loaded = build_model(read_checkpoint(path))
    folded = loaded.WN[0].start.weight
    assert torch.allclose(folded, source.WN[0].start.weight.detach(), atol=1e-6)


def test_torch04_backend_attribute_is_inert(monkeypatch, tmp_path):
    """torch 0.4 modules pickled ``_backend`` as a call of ``_get_thnn_function_backend()``."""
    calls = []

    def backend_factory():
        calls.append(True)

    backend_factory.__module__ = "torch.nn.backends.thnn"
    backend_factory.__qualname__ = backend_factory.__name__ = "_get_thnn_function_backend"

    class Backend:
        def __reduce__(self):
            return (backend_factory, ())

    path = tmp_path / "waveglow.pt"
    source = make_source(TINY, TINY_DATA)
    module = glow_module()
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "glow", module)
        patch.setattr(thnn, "_get_thnn_function_backend", backend_factory, raising=False)
        model = official_model(module, source)
        for child in model.modules():
            child._backend = Backend()
        save_torch({"model": model}, path, legacy=True)
    assert_same_model(source, load(path))
    assert calls == []  # the stand-in ran, not the pickled function


def test_cuda_tensors_are_mapped_to_the_cpu(monkeypatch, tmp_path):
    """A file whose storages say ``cuda:0`` (as NVIDIA's do) loads on a machine without CUDA."""
    path = tmp_path / "cuda.pt"
    source = make_source()
    with monkeypatch.context() as patch:
        patch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        save_torch({"state_dict": dict(source.state_dict())}, path)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(path, weights_only=True)  # what a loader without map_location meets
    checkpoint = read_checkpoint(path)
    assert all(tensor.device.type == "cpu" for tensor in checkpoint.state_dict.values())
    assert_same_model(source, build_model(checkpoint))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU to write CUDA tensors")
@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_real_cuda_pickle(monkeypatch, tmp_path, legacy):
    path = tmp_path / "waveglow.pt"
    source = make_source(TINY, TINY_DATA)
    module = glow_module()
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "glow", module)
        save_torch({"model": official_model(module, source).cuda()}, path, legacy=legacy)
    assert_same_model(source, load(path))


# ---------------------------------------------------------------------------- state dicts
def test_bare_state_dict_with_weight_norm(tmp_path):
    source = make_source()
    path = save_torch(source.state_dict(), tmp_path / "state.pt")
    read_and_check(path, source, "state-dict", tmp_path)


def test_bare_state_dict_without_weight_norm(tmp_path):
    source = make_source()
    folded = make_source().remove_weight_norm()
    path = save_torch(folded.state_dict(), tmp_path / "state.pt", legacy=True)
    assert not any(name.endswith("weight_g") for name in read_checkpoint(path).state_dict)
    read_and_check(path, source, "state-dict", tmp_path)


def test_per_layer_cond_layers(tmp_path):
    source = make_source()
    path = save_torch(old_state_dict(source, cond_layers=True), tmp_path / "cond.pt")
    read_and_check(path, source, "state-dict+cond-layers", tmp_path)


def test_split_res_and_skip_layers_in_a_bare_state_dict_read_as_glow_py(tmp_path):
    """The file cannot tell glow.py from glow_old.py: glow.py's reading, said in one warning."""
    source = make_source()
    state = old_state_dict(source, cond_layers=True, res_skip_split=True)
    assert "WN.0.res_layers.1.weight_v" in state and "WN.0.res_layers.2.weight_v" not in state
    path = save_torch(state, tmp_path / "old.pt")
    with pytest.warns(LayoutWarning, match=r"old\.pt: split res/skip.*glow\.py.*glow_old=True"):
        read_and_check(path, source, "state-dict+cond-layers+res-skip-split", tmp_path)


def test_split_res_and_skip_layers_read_as_glow_old_when_asked(tmp_path):
    source = make_source(dataclasses.replace(SMALL, swap_odd_couplings=True))  # glow_old's maths
    state = old_state_dict(source, cond_layers=True, res_skip_split=True)
    path = save_torch(state, tmp_path / "old.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("error", LayoutWarning)  # the user chose: nothing to warn about
        layout = "state-dict+cond-layers+res-skip-split"
        read_and_check(path, source, layout, tmp_path, glow_old=True, option=True)


def test_glow_py_pickle_with_split_layers_is_the_fused_file(monkeypatch, tmp_path):
    """NVIDIA's glow.py wrote split res/skip layers until November 2018 and never swapped the
    coupling halves: its pickle gives the same z, log-det and audio as the fused file."""
    split = tmp_path / "split.pt"
    fused = tmp_path / "fused.pt"
    source = write_official_pickle(monkeypatch, split, "glow-split")
    same = write_official_pickle(monkeypatch, fused, "fused").state_dict()
    assert all(torch.equal(same[name], tensor) for name, tensor in source.state_dict().items())
    assert not read_checkpoint(split).config.waveglow_config.swap_odd_couplings
    assert_same_model(load(fused), load(split))
    swapped = load(split, glow_old=True)  # the user's choice overrides the module
    with pytest.raises(AssertionError):
        assert_same_model(load(fused), swapped)


def test_convert_cli_glow_old_option(tmp_path, capsys):
    from waveglow.cli import main

    source = make_source(dataclasses.replace(SMALL, swap_odd_couplings=True))
    path = save_torch(old_state_dict(source, res_skip_split=True), tmp_path / "old.pt")
    assert main(["convert", "--glow-old", str(path), str(tmp_path / "ours.pt")]) == 0
    assert load(tmp_path / "ours.pt").config.swap_odd_couplings
    assert main(["convert", "--no-glow-old", str(path), str(tmp_path / "glow.pt")]) == 0
    assert not load(tmp_path / "glow.pt").config.swap_odd_couplings


def test_deeplearningexamples_dict(tmp_path):
    source = make_source()
    state = {f"module.{name}": t for name, t in old_state_dict(source, cond_layers=True).items()}
    config = {"n_mel_channels": 8, "n_flows": 4, "n_group": 4, "n_early_every": 2}
    config["WN_config"] = {"n_layers": 3, "n_channels": 8, "kernel_size": 3}
    payload = {
        "epoch": 1000,
        "config": config,
        "state_dict": state,
        "optimizer": {"state": {}, "param_groups": []},
        "random_rng_state": torch.get_rng_state(),
    }
    path = save_torch(payload, tmp_path / "nvidia_waveglowpyt_fp32.pt")
    read_and_check(path, source, "deeplearningexamples+cond-layers", tmp_path)
    assert read_checkpoint(path).extra == {"epoch": 1000}


def test_config_in_the_file_gives_the_hop_length(tmp_path):
    source = make_source(TINY, TINY_DATA)
    payload = {"state_dict": dict(source.state_dict()), "config": {"hop_length": 16}}
    path = save_torch(payload, tmp_path / "dle.pt")
    read_and_check(path, source, "deeplearningexamples", tmp_path)


@pytest.mark.parametrize(
    ("config", "complaint"),
    [
        ({"n_flows": 12}, r"n_flows=12 \(the weights say 4\)"),
        ({"WN_config": {"n_channels": 256}}, r"n_channels=256 \(the weights say 8\)"),
        ({"n_early_size": 4}, r"n_early_size=4 \(the weights say 2\)"),
        ({"data_config": {"filter_length": 800}}, r"filter_length=800 \(the upsampler has 1024"),
    ],
)
def test_config_that_contradicts_the_weights(tmp_path, config, complaint):
    source = make_source()
    payload = {"state_dict": dict(source.state_dict()), "config": config}
    path = save_torch(payload, tmp_path / "dle.pt")
    with pytest.raises(CheckpointError, match=r"dle\.pt: its config disagrees.*" + complaint):
        read_checkpoint(path)


def test_audio_settings_come_from_the_file_config(tmp_path):
    source = make_source()
    config = {"data_config": {"sampling_rate": 16000, "mel_fmax": None, "hop_length": 256}}
    payload = {"state_dict": dict(source.state_dict()), "config": config}
    data = read_checkpoint(save_torch(payload, tmp_path / "dle.pt")).config.data_config
    assert (data.sampling_rate, data.mel_fmax, data.filter_length) == (16000, None, 1024)


def nemo_state(source: torch.nn.Module) -> dict[str, torch.Tensor]:
    state = {
        "waveglow." + name.replace("WN.", "wavenet.", 1): tensor
        for name, tensor in source.state_dict().items()
    }
    state["audio_to_melspec_precessor.featurizer.window"] = torch.hann_window(1024)
    return state


def test_nemo_state_dict(tmp_path):
    source = make_source()
    path = save_torch(nemo_state(source), tmp_path / "model_weights.ckpt")
    read_and_check(path, source, "nemo", tmp_path)
    ignored = read_checkpoint(path).extra["ignored_keys"]
    assert ignored == ["audio_to_melspec_precessor.featurizer.window"]


def test_nemo_lightning_checkpoint(tmp_path):
    source = make_source()
    payload = {"state_dict": nemo_state(source), "pytorch-lightning_version": "1.9.0", "epoch": 7}
    path = save_torch(payload, tmp_path / "WaveGlow.ckpt")
    read_and_check(path, source, "nemo", tmp_path)


@pytest.mark.parametrize("mode", ["w", "w:gz"])
def test_nemo_archive(tmp_path, mode):
    source = make_source()
    weights = save_torch(nemo_state(source), tmp_path / "model_weights.ckpt")
    config = tmp_path / "model_config.yaml"
    config.write_text("n_mel_channels: 8\nn_flows: 4\n")
    path = tmp_path / "tts_waveglow.nemo"
    with tarfile.open(path, mode) as archive:
        archive.add(config, arcname="./model_config.yaml")
        archive.add(weights, arcname="./model_weights.ckpt")
    read_and_check(path, source, "nemo", tmp_path)


def test_tar_archive_without_weights(tmp_path):
    path = tmp_path / "other.nemo"
    with tarfile.open(path, "w") as archive:
        archive.add(__file__, arcname="readme.txt")
    with pytest.raises(CheckpointError, match=r"other\.nemo: .*without one model_weights\.ckpt"):
        read_checkpoint(path)


# ---------------------------------------------------------------------------- hostile files
class RunsACommand:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class EvaluatesCode:
    def __reduce__(self):
        return (eval, ("__import__('os').system('true')",))


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_pickle_that_runs_a_command_is_refused(tmp_path, legacy):
    marker = tmp_path / "pwned"
    path = save_torch({"model": RunsACommand(f"touch {marker}")}, tmp_path / "evil.pt", legacy)
    with pytest.raises(CheckpointError, match=r"evil\.pt: refused to load: it names \S*system"):
        read_checkpoint(path)
    with pytest.raises(CheckpointError, match="nothing was executed"):
        load(path)
    assert not marker.exists()


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_pickle_that_calls_eval_is_refused(tmp_path, legacy):
    path = save_torch({"config": EvaluatesCode()}, tmp_path / "evil.pt", legacy)
    with pytest.raises(CheckpointError, match="refused to load: it names builtins.eval,"):
        read_checkpoint(path)


def test_pickle_naming_an_unknown_module_class_is_refused(monkeypatch, tmp_path):
    module = glow_module()
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "glow", module)
        model = official_model(module, make_source(TINY, TINY_DATA))
        model.extra = torch.nn.Linear(2, 2)
        path = save_torch({"model": model}, tmp_path / "odd.pt", legacy=True)
    with pytest.raises(CheckpointError, match="names torch.nn.modules.linear.Linear"):
        read_checkpoint(path)


def write_legacy_file(
    path: Path, pickler: type[pickle.Pickler], state: object, keys: list[str]
) -> Path:
    """A hand-made pre-1.6 torch file: its header, ``state`` pickled by ``pickler`` (whose
    persistent ids name the storages) and the storage ``keys``, with no storage data at all."""
    payload = io.BytesIO()
    pickler(payload, protocol=2).dump(state)
    path.write_bytes(
        pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)  # torch's legacy magic number
        + pickle.dumps(1001, protocol=2)
        + pickle.dumps({"little_endian": True}, protocol=2)
        + payload.getvalue()
        + pickle.dumps(keys, protocol=2)
    )
    return path


def test_storage_larger_than_the_file_is_refused_before_allocating(tmp_path):
    """A hand-made legacy file whose one storage claims 4 TB."""

    class StorageMarker:
        pass

    class HugeTensor:
        def __reduce__(self):
            arguments = (StorageMarker(), 0, (10**12,), (1,), False, OrderedDict())
            return (torch._utils._rebuild_tensor_v2, arguments)

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, StorageMarker):
                return ("storage", torch.FloatStorage, "0", "cpu", 10**12, None)
            return None

    path = write_legacy_file(
        tmp_path / "huge.pt", Pickler, {"upsample.weight": HugeTensor()}, ["0"]
    )
    with pytest.raises(CheckpointError, match=r"huge\.pt: .*claims 4000000000000 bytes"):
        read_checkpoint(path)


class MakesATensor:
    """Pickles as a call making a tensor of ``numel`` values that the file does not hold: torch's
    own constructor, or through ``_rebuild_from_type_v2`` as torch writes tensors with state."""

    def __init__(self, numel: int, through_rebuild: bool) -> None:
        self.numel, self.through_rebuild = numel, through_rebuild

    def __reduce__(self):
        if self.through_rebuild:
            arguments = (torch.Tensor, torch.Tensor, (self.numel,), {})
            return (torch._tensor._rebuild_from_type_v2, arguments)
        return (torch.Tensor, (self.numel,))


@pytest.mark.parametrize("through_rebuild", [False, True], ids=["constructor", "rebuild"])
@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_a_pickle_cannot_make_tensors_the_file_does_not_hold(tmp_path, legacy, through_rebuild):
    """An allocating call passes for weights: without it, the config below is refused as bigger
    than the file; with it, a tiny file could declare (and build) a model of any size."""
    path = save(make_source(TINY, TINY_DATA), tmp_path / "model.pt")
    payload = torch.load(path, weights_only=True)
    payload["config"]["waveglow_config"]["WN_config"]["n_channels"] = 64
    payload["state_dict"]["padding"] = MakesATensor(10**6, through_rebuild)
    save_torch(payload, path, legacy)
    with pytest.raises(CheckpointError, match=r"model\.pt: .*torch\.Tensor"):
        read_checkpoint(path)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_a_tensor_with_python_attributes_still_loads(tmp_path, legacy):
    """torch pickles such a tensor through _rebuild_from_type_v2(_rebuild_tensor_v2, Tensor, ...)."""
    from waveglow.checkpoint.read import safe_torch_load

    tensor = torch.arange(6.0).reshape(2, 3)
    tensor.note = "attribute"
    path = save_torch({"a": tensor}, tmp_path / "attribute.pt", legacy)
    assert torch.equal(safe_torch_load(path)["a"], tensor)


class Encodes:
    def __init__(self, text: str) -> None:
        self.text = text

    def __reduce__(self):
        return (codecs.encode, (self.text, "latin1"))


def test_bytes_a_pickle_builds_are_bounded_by_the_file(tmp_path):
    """Protocol 2 writes bytes as _codecs.encode(str, 'latin1'): one memoised string encoded
    many times would make the file's size many times over (here 100x)."""
    text = "x" * 10**5
    bomb = save_torch({"copies": [Encodes(text) for _ in range(1000)]}, tmp_path / "bomb.pt")
    assert bomb.stat().st_size < 10**5 * 1000 / 100
    with pytest.raises(CheckpointError, match=r"bomb\.pt: .*more than the file holds"):
        read_checkpoint(bomb)
    path = save(make_source(TINY, TINY_DATA), tmp_path / "model.pt")
    payload = torch.load(path, weights_only=True)
    payload["notes"] = bytes(range(256)) * 4  # real bytes, each written once: read as they are
    with open(path, "wb") as handle:
        torch.save(payload, handle, pickle_protocol=2, _use_new_zipfile_serialization=False)
    assert read_checkpoint(path).extra["notes"] == bytes(range(256)) * 4


def test_a_pickle_may_encode_only_latin1_bytes(tmp_path):
    class Unicode:
        def __reduce__(self):
            return (codecs.encode, ("x" * 100, "unicode_escape"))

    path = save_torch({"config": Unicode()}, tmp_path / "odd.pt")
    with pytest.raises(CheckpointError, match=r"odd\.pt: .*latin1"):
        read_checkpoint(path)


# ---------------------------------------------------------------------------- broken files
@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_truncated_file(monkeypatch, tmp_path, legacy):
    path = tmp_path / "waveglow.pt"
    write_official_pickle(monkeypatch, path, legacy=legacy)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"waveglow\.pt: cannot be read.*truncated"):
        read_checkpoint(path)


def test_a_directory_is_no_checkpoint_file(tmp_path):
    (tmp_path / "model.pt").mkdir()
    with pytest.raises(CheckpointError, match=r"model\.pt: is a directory, not a file"):
        read_checkpoint(tmp_path / "model.pt")


def test_empty_missing_and_random_files(tmp_path):
    empty = tmp_path / "empty.pt"
    empty.touch()
    with pytest.raises(CheckpointError, match=r"empty\.pt: the file is empty"):
        read_checkpoint(empty)
    with pytest.raises(CheckpointError, match=r"absent\.pt: no such file"):
        read_checkpoint(tmp_path / "absent.pt")
    noise = tmp_path / "noise.pt"
    noise.write_bytes(torch.randint(0, 256, (4096,), dtype=torch.uint8).numpy().tobytes())
    with pytest.raises(CheckpointError, match=r"noise\.pt: "):
        read_checkpoint(noise)


def test_tacotron2_state_dict_is_named(tmp_path):
    state = {
        "embedding.weight": torch.zeros(148, 512),
        "encoder.convolutions.0.0.conv.weight": torch.zeros(512, 512, 5),
        "decoder.attention_rnn.weight_ih": torch.zeros(4096, 768),
        "postnet.convolutions.0.0.conv.weight": torch.zeros(512, 80, 5),
    }
    path = save_torch({"state_dict": state, "iteration": 1}, tmp_path / "tacotron2.pt")
    with pytest.raises(
        CheckpointError, match=r"tacotron2\.pt: has no WaveGlow weights.*Tacotron 2"
    ):
        read_checkpoint(path)


def test_a_dict_of_something_else(tmp_path):
    path = save_torch({"weights": [1, 2, 3]}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a WaveGlow checkpoint.*weights"):
        read_checkpoint(path)


def test_leftover_and_missing_keys_are_listed(tmp_path):
    state = dict(make_source().state_dict())
    state["WN.0.spare_layer.weight"] = torch.zeros(1)
    del state["WN.1.end.bias"]
    path = save_torch(state, tmp_path / "keys.pt")
    with pytest.raises(CheckpointError) as error:
        read_checkpoint(path)
    message = str(error.value)
    assert "keys.pt" in message
    assert "Missing: WN.1.end.bias" in message
    assert "Unexpected: WN.0.spare_layer.weight" in message


def test_half_a_weight_norm_pair_is_listed(tmp_path):
    state = dict(make_source().state_dict())
    del state["WN.2.start.weight_g"]
    path = save_torch(state, tmp_path / "pair.pt")
    with pytest.raises(CheckpointError, match="Unexpected: WN.2.start.weight_v"):
        read_checkpoint(path)


def test_uneven_per_layer_conditioning(tmp_path):
    state = old_state_dict(make_source(), cond_layers=True)
    del state["WN.1.cond_layers.1.bias"]
    path = save_torch(state, tmp_path / "uneven.pt")
    with pytest.raises(CheckpointError, match="WN.1.cond_layers: the layers hold different"):
        read_checkpoint(path)


def test_wrong_shape_is_named(tmp_path):
    state = dict(make_source().state_dict())
    state["WN.1.end.bias"] = torch.zeros(5)
    path = save_torch(state, tmp_path / "shape.pt")
    with pytest.raises(CheckpointError, match=r"shape\.pt: WN.1.end.bias has shape \(5,\)"):
        load(path)


def test_irregular_early_outputs(tmp_path):
    state = dict(make_source().state_dict())
    state["convinv.3.conv.weight"] = torch.eye(1).view(1, 1, 1)  # (C, C, 1)
    path = save_torch(state, tmp_path / "early.pt")
    with pytest.raises(CheckpointError, match=r"sizes \[4, 4, 2, 1\] follow no early-output"):
        read_checkpoint(path)


def test_shapes_of_no_valid_waveglow(tmp_path):
    state = dict(make_source().state_dict())
    for layer in range(3):
        state[f"WN.0.in_layers.{layer}.weight_v"] = torch.zeros(16, 8, 2)  # (2C, C, even kernel)
    path = save_torch(state, tmp_path / "even.pt")
    with pytest.raises(CheckpointError, match=r"even\.pt: its shapes .*kernel_size must be odd"):
        read_checkpoint(path)


def test_no_early_outputs_infers_a_config_that_emits_none(tmp_path):
    config = dataclasses.replace(TINY, n_early_size=0)
    source = make_source(config)
    path = save_torch(source.state_dict(), tmp_path / "flat.pt")
    inferred = read_checkpoint(path).config.waveglow_config
    assert [inferred.channels_at(k) for k in range(4)] == [4, 4, 4, 4]
    assert_same_model(source, load(path))


def deflated(path: Path) -> Path:
    """``path`` (a torch zip) rewritten with every entry deflate-compressed: a "zip bomb"."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        entries = [(info.filename, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return path


def test_zip_bomb_is_refused_from_its_directory(tmp_path, monkeypatch):
    path = tmp_path / "bomb.pt"
    torch.save({"upsample.weight": torch.zeros(4 * 2**20)}, path)
    deflated(path)
    assert path.stat().st_size < 2**20 // 8

    def no_expanding(*_args, **_kwargs):
        raise AssertionError("an entry was expanded")

    monkeypatch.setattr(torch, "frombuffer", no_expanding)
    with pytest.raises(CheckpointError, match=r"bomb\.pt: .*declares 16,7\d\d,\d\d\d bytes"):
        read_checkpoint(path)


def test_storages_together_may_not_claim_more_than_the_file(tmp_path):
    """Many storages, each smaller than the file, that together claim 1000 times its size."""

    class StorageMarker:
        def __init__(self, key):
            self.key = key

    class Tensor:
        def __init__(self, key):
            self.key = key

        def __reduce__(self):
            arguments = (StorageMarker(self.key), 0, (256,), (1,), False, OrderedDict())
            return (torch._utils._rebuild_tensor_v2, arguments)

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, StorageMarker):
                return ("storage", torch.FloatStorage, obj.key, "cpu", 256, None)
            return None

    keys = [str(k) for k in range(4000)]
    state = {f"t{key}": Tensor(key) for key in keys}
    path = write_legacy_file(tmp_path / "many.pt", Pickler, state, keys)
    assert path.stat().st_size > 1024  # each storage (1 KiB) fits in the file on its own
    with pytest.raises(CheckpointError, match=r"many\.pt: .*with the others, more than the file"):
        read_checkpoint(path)


def test_broadcast_tensors_cannot_fake_a_bigger_model(tmp_path):
    """Stride-0 tensors claim the shapes of a huge model on a few bytes of storage."""
    state = make_source(TINY, TINY_DATA).state_dict()
    state["upsample.weight"] = torch.zeros(1).expand(8, 8, 2**20)
    path = tmp_path / "broadcast.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"broadcast\.pt: its config declares a WaveGlow"):
        read_checkpoint(path)
