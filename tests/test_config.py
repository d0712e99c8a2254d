"""NVIDIA's config.json loads as is; bad configs fail with the key named."""

from __future__ import annotations

import json
import re

import pytest
import torch

from conftest import NVIDIA_CONFIG
from waveglow import Config, WaveGlow, load_config
from waveglow.backends import cpu_has_bf16_matmul
from waveglow.config import ConfigError, apply_overrides, model_overrides


def test_nvidia_config_loads_as_is(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(NVIDIA_CONFIG))
    config = load_config(path)
    assert config.train_config.fp16_run is True
    assert config.data_config.training_files == "train_files.txt"
    assert config.waveglow_config.WN_config.n_channels == 256
    assert Config.from_dict(config.to_dict()) == config
    assert config.to_dict()["waveglow_config"] == NVIDIA_CONFIG["waveglow_config"]


def test_defaults_are_the_published_model():
    config = Config()
    assert config.to_dict()["waveglow_config"] == NVIDIA_CONFIG["waveglow_config"]
    expected_data = {k: v for k, v in NVIDIA_CONFIG["data_config"].items() if k != "training_files"}
    assert {k: config.to_dict()["data_config"][k] for k in expected_data} == expected_data


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("waveglow_config", "n_flwos", 12, "n_flwos"),
        ("waveglow_config", "n_group", 7, "n_group"),
        ("data_config", "hop_length", 250, "multiple of"),
        ("data_config", "mel_fmax", 20000.0, "mel_fmax"),
        ("data_config", "win_length", 2048, "win_length"),
    ],
)
def test_bad_values_name_the_key(tmp_path, section, key, value, message):
    data = json.loads(json.dumps(NVIDIA_CONFIG))
    data[section][key] = value
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=message) as error:
        load_config(path)
    assert str(path) in str(error.value)


def test_unreadable_config_names_the_file(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(path)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.json")


def test_model_derives_upsampler_from_data_config():
    config = Config.from_dict(
        {
            "data_config": {"filter_length": 512, "hop_length": 128, "win_length": 512},
            "waveglow_config": {"n_flows": 2, "WN_config": {"n_layers": 1, "n_channels": 4}},
        }
    )
    model = WaveGlow(config.waveglow_config, config.data_config)
    assert model.upsample.kernel_size == (512,) and model.upsample.stride == (128,)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.batch_size=abc", "train_config.batch_size must be int, got 'abc'"),
        ("train.batch_size=true", "train_config.batch_size must be int, got True"),
        ("train.fp16_run=1", "train_config.fp16_run must be bool, got 1"),
        ("train.precision=16", "train_config.precision must be str, got 16"),
        ("data.mel_fmax=high", "data_config.mel_fmax must be float or null, got 'high'"),
        ("waveglow.WN.n_channels=2.5", "WN_config.n_channels must be int, got 2.5"),
    ],
)
def test_values_of_the_wrong_type_are_named(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        apply_overrides(Config(), [override])


def test_an_int_is_a_float():
    assert apply_overrides(Config(), ["train.learning_rate=1"]).train_config.learning_rate == 1


def test_auto_precision_follows_the_hardware():
    config = apply_overrides(Config(), ["train.precision=auto", "train.fp16_run=true"])
    resolved = config.train_config.resolve_auto(torch.device("cpu"))
    assert resolved.amp_precision == ("bf16" if cpu_has_bf16_matmul() else "fp32")
    fixed = apply_overrides(Config(), ["train.precision=bf16"]).train_config
    assert fixed.resolve_auto(torch.device("cpu")) == fixed


@pytest.mark.parametrize(
    ("precision", "expected"), [("fp32", "conv"), ("bf16", "gemm"), ("fp16", "gemm")]
)
def test_auto_wn_implementation_follows_the_precision(precision, expected):
    config = apply_overrides(
        Config(), [f"train.precision={precision}", "train.wn_implementation=auto"]
    )
    resolved = config.train_config.resolve_auto(torch.device("cpu"))
    assert (resolved.precision, resolved.wn_implementation) == (precision, expected)
    chosen = apply_overrides(config, ["train.wn_implementation=conv"]).train_config
    assert chosen.resolve_auto(torch.device("cpu")).wn_implementation == "conv"


def test_overrides_parse_values_and_reject_unknown_keys():
    config = apply_overrides(
        Config(),
        [
            "train_config.batch_size=3",
            "train.precision=bf16",
            "waveglow_config.WN_config.n_channels=64",
            "data.mel_fmax=null",
            "train.output_directory=runs/x",
        ],
    )
    assert config.train_config.batch_size == 3
    assert config.train_config.precision == "bf16"
    assert config.waveglow_config.WN_config.n_channels == 64
    assert config.data_config.mel_fmax is None
    assert config.train_config.output_directory == "runs/x"
    with pytest.raises(ConfigError, match="unknown key"):
        apply_overrides(Config(), ["train.batch_sise=3"])
    with pytest.raises(ConfigError, match="section.key=value"):
        apply_overrides(Config(), ["train.batch_size"])
    with pytest.raises(ConfigError, match="precision"):
        apply_overrides(Config(), ["train.precision=fp8"])


def test_model_overrides_are_the_architecture_settings():
    overrides = ["waveglow.WN.n_channels=16", "train.batch_size=2", "waveglow_config.n_flows=4"]
    assert model_overrides(overrides) == ["waveglow.WN.n_channels", "waveglow_config.n_flows"]
