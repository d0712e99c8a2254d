"""Our checkpoint format: round trips, plain ``weights_only`` reading, atomic writes, weight norm."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import waveglow
from conftest import TINY, TINY_DATA
from nvidia_layouts import assert_same_model, make_source
from waveglow import CheckpointError, WaveGlow, load, save
from waveglow.checkpoint import adapt_weight_norm, build_model, read_checkpoint


@pytest.fixture
def source() -> WaveGlow:
    return make_source(TINY, TINY_DATA)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
@pytest.mark.parametrize("weight_norm", [True, False], ids=["weight-norm", "folded"])
def test_round_trip(tmp_path, source, suffix, weight_norm):
    model = source if weight_norm else make_source(TINY, TINY_DATA).remove_weight_norm()
    path = save(model, tmp_path / f"model{suffix}")
    checkpoint = read_checkpoint(path)
    assert checkpoint.layout == "waveglow"
    assert checkpoint.config == model.full_config()
    assert set(checkpoint.state_dict) == set(model.state_dict())
    for name, tensor in model.state_dict().items():
        assert torch.equal(checkpoint.state_dict[name], tensor)
    assert_same_model(source, load(path))
    trainable = load(path, weight_norm=True)
    assert trainable.has_weight_norm
    assert_same_model(source, trainable)


@pytest.mark.parametrize("weight_norm", [True, False], ids=["weight-norm", "folded"])
def test_a_checkpoint_counts_its_parameters_and_knows_its_weight_norm(tmp_path, weight_norm):
    model = make_source(TINY, TINY_DATA)
    model = model if weight_norm else model.remove_weight_norm()
    checkpoint = read_checkpoint(save(model, tmp_path / "model.pt"))
    assert checkpoint.parameter_count == sum(p.numel() for p in model.parameters())
    assert checkpoint.has_weight_norm is weight_norm


def test_torch_file_reads_with_plain_weights_only_load(tmp_path, source):
    path = save(source, tmp_path / "model.pt", step=12, optimizer={"lr": 1e-4})
    payload = torch.load(path, weights_only=True)  # no allow-list needed
    assert payload["format"] == "waveglow" and payload["step"] == 12
    assert read_checkpoint(path).extra == {"step": 12, "optimizer": {"lr": 1e-4}}


def test_safetensors_refuses_training_state(tmp_path, source):
    with pytest.raises(ValueError, match="safetensors"):
        save(source, tmp_path / "model.safetensors", step=1)
    assert list(tmp_path.iterdir()) == []


def test_newer_format_version_is_refused(tmp_path, source):
    path = save(source, tmp_path / "model.pt")
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = 99
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=r"model\.pt: format version 99 is newer"):
        load(path)


def test_safetensors_without_our_metadata(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.zeros(2)}, str(path))
    with pytest.raises(CheckpointError, match=r"foreign\.safetensors: .*without WaveGlow metadata"):
        load(path)


def test_failed_write_keeps_the_previous_file(tmp_path, monkeypatch, source):
    path = save(source, tmp_path / "model.pt")
    before = path.read_bytes()

    def broken_save(payload, destination, *args, **kwargs):
        with open(destination, "wb") as handle:
            handle.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save(make_source(TINY, TINY_DATA, seed=3), path)
    assert path.read_bytes() == before
    assert [entry.name for entry in tmp_path.iterdir()] == ["model.pt"]  # no temporary left


def test_adapt_weight_norm_both_ways(source):
    folded = make_source(TINY, TINY_DATA).remove_weight_norm()
    with_norm = make_source(TINY, TINY_DATA, seed=5)  # other weights: the load must replace them
    state = adapt_weight_norm(source.state_dict(), folded.state_dict())
    assert set(state) == set(folded.state_dict())
    folded.load_state_dict(state)
    assert_same_model(source, folded)

    back = adapt_weight_norm(folded.state_dict(), with_norm.state_dict())
    assert set(back) == set(with_norm.state_dict())
    with_norm.load_state_dict(back)
    assert_same_model(source, with_norm)


def test_build_model_lists_key_mismatches(tmp_path, source):
    checkpoint = read_checkpoint(save(source, tmp_path / "model.pt"))
    del checkpoint.state_dict["WN.0.end.bias"]
    checkpoint.state_dict["WN.0.extra"] = torch.zeros(1)
    with pytest.raises(CheckpointError) as error:
        build_model(checkpoint, source="model.pt")
    assert "Missing: WN.0.end.bias" in str(error.value)
    assert "Unexpected: WN.0.extra" in str(error.value)


def test_bundled_demo_model_loads_and_synthesizes():
    model = waveglow.load("demo")
    config = model.config
    mel = torch.full((1, config.n_mel_channels, 4), -5.0)
    audio = model.infer(mel, sigma=0.6, generator=torch.Generator().manual_seed(0))
    assert audio.shape == (1, 4 * model.hop_length) and torch.isfinite(audio).all()


def test_bundled_name_prefers_an_existing_file(tmp_path, monkeypatch):
    from waveglow.checkpoint import resolve_bundled

    monkeypatch.chdir(tmp_path)
    assert resolve_bundled("demo").name == "demo.safetensors"
    (tmp_path / "demo").write_bytes(b"")
    assert resolve_bundled("demo") == Path("demo")
    with pytest.raises(CheckpointError, match="empty"):
        waveglow.load("demo")


@pytest.mark.parametrize(
    "section, key, value",
    [
        ("WN_config", "n_channels", 65536),
        ("WN_config", "n_layers", 2048),
        ("waveglow_config", "n_flows", 10**7),
        ("WN_config", "n_channels", 16),  # only twice as big: still refused before building
    ],
)
def test_a_config_bigger_than_the_weights_is_refused_before_building(
    tmp_path, monkeypatch, source, section, key, value
):
    path = save(source, tmp_path / "model.pt")
    payload = torch.load(path, weights_only=True)
    target = payload["config"]["waveglow_config"]
    (target["WN_config"] if section == "WN_config" else target)[key] = value
    if key == "n_flows":
        target["n_early_size"] = 0
    torch.save(payload, path)

    def no_building(*_args, **_kwargs):
        raise AssertionError("a model was built")

    monkeypatch.setattr(WaveGlow, "__init__", no_building)
    for reader in (read_checkpoint, load):
        with pytest.raises(CheckpointError, match=r"model\.pt: its config declares a WaveGlow"):
            reader(path)


def test_values_held_counts_each_storage_once_and_never_a_broadcast():
    from waveglow.checkpoint import values_held

    base = torch.zeros(10)
    state = {"a": base, "b": base[2:5], "c": torch.zeros(1).expand(10**9), "d": torch.ones(3)}
    assert values_held(state) == 10 + 1 + 3


def test_non_finite_weights_are_refused_naming_the_first(tmp_path, source):
    path = save(source, tmp_path / "model.pt")
    payload = torch.load(path, weights_only=True)
    names = list(payload["state_dict"])
    payload["state_dict"][names[3]][0] = float("nan")
    payload["state_dict"][names[7]][0] = float("inf")
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=rf"model\.pt: {names[3]} holds NaN or infinite"):
        load(path)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_one_clear_error(tmp_path, source):
    from waveglow.synthesize import synthesize_files

    path = save(source, tmp_path / "model.pt")
    with pytest.raises(ValueError, match="device 'cuda': CUDA is not available"):
        load(path, device="cuda")
    with pytest.raises(ValueError, match="device 'cuda:0': CUDA is not available"):
        synthesize_files(load(path), [], tmp_path, device="cuda:0")


@pytest.mark.parametrize(
    ("metadata", "message"),
    [("[1, 2]", "is a JSON list, not an object"), ("{not json", "is not JSON")],
)
def test_safetensors_metadata_that_is_no_json_object(tmp_path, source, metadata, message):
    from safetensors.torch import save_file

    path = tmp_path / "model.safetensors"
    state = {name: tensor.contiguous() for name, tensor in source.state_dict().items()}
    save_file(state, str(path), metadata={"waveglow": metadata})
    with pytest.raises(
        CheckpointError, match=rf"model\.safetensors: its WaveGlow metadata {message}"
    ):
        read_checkpoint(path)
