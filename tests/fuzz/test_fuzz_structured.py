"""Structured fuzzing with Hypothesis: valid-looking headers with hostile values.

Random bytes rarely get past a format's magic; these strategies build files whose structure is
right and whose numbers are not (shapes of 2^40, offsets past the end, negative sizes, strings
where numbers go) and check the same property as the coverage-guided harnesses
(``harnesses.check``), under an address-space cap. ``$WAVEGLOW_FUZZ_EXAMPLES`` (default 40)
examples per test.
"""

from __future__ import annotations

import json
import os
import struct
import sys
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harnesses  # noqa: E402

CORPUS = Path(__file__).resolve().parent / "corpus"
EXAMPLES = int(os.environ.get("WAVEGLOW_FUZZ_EXAMPLES", "40"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
HOSTILE_INTS = st.one_of(
    st.sampled_from([0, 1, -1, 2**31 - 1, 2**31, 2**32, 2**40, 2**63 - 1, 2**64]),
    st.integers(-(2**70), 2**70),
    st.integers(0, 64),
)
HOSTILE_VALUES = st.one_of(
    HOSTILE_INTS, st.floats(allow_nan=True), st.text(max_size=8), st.none(), st.booleans(),
    st.lists(st.integers(-3, 3), max_size=3), st.dictionaries(st.text(max_size=3), st.none(), max_size=2),
)  # fmt: skip


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("structured")
    for target in harnesses.HARNESSES:
        seeds = [p.read_bytes() for p in sorted((CORPUS / target.name).glob("seed-*"))]
        harnesses.warm_up(target, seeds, path)
    return path


def check(name: str, data: bytes, folder: Path) -> str:
    with harnesses.address_space_cap():
        return harnesses.check(harnesses.harness(name), data, folder)


# ---------------------------------------------------------------------------- .npy
def npy_file(version: int, descr: str, fortran: bool, shape: tuple, payload: bytes) -> bytes:
    header = repr({"descr": descr, "fortran_order": fortran, "shape": shape}).encode("latin1")
    header += b" " * (-(len(header) + 11) % 64) + b"\n"
    size = struct.pack("<H" if version == 1 else "<I", len(header))
    return b"\x93NUMPY" + bytes([version, 0]) + size + header + payload


@FUZZ
@given(
    version=st.sampled_from([1, 2, 3]),
    descr=st.sampled_from(["<f4", ">f4", "<f8", "<f2", "|b1", "<c8", "|O", "<U4", "|V4", "<i8"]),
    fortran=st.booleans(),
    shape=st.lists(HOSTILE_INTS, max_size=4).map(tuple),
    payload=st.binary(max_size=2048),
)
def test_npy_headers_with_hostile_shapes_and_types(folder, version, descr, fortran, shape, payload):
    message = check("mel_npy", npy_file(version, descr, fortran, shape, payload), folder)
    assert message == "ok" or "input.npy" in message


# ---------------------------------------------------------------------------- safetensors
def safetensors_file(
    entries: dict, metadata: dict | None, payload: bytes, length: int | None
) -> bytes:
    header = dict(entries)
    if metadata is not None:
        header["__metadata__"] = metadata
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text) if length is None else length % 2**64) + text + payload


TENSOR_ENTRY = st.fixed_dictionaries({
    "dtype": st.sampled_from(["F32", "F16", "BF16", "I64", "BOOL", "U8", "F64", "XX", ""]),
    "shape": st.lists(HOSTILE_INTS, max_size=3),
    "data_offsets": st.lists(HOSTILE_INTS, min_size=2, max_size=2),
})  # fmt: skip


@FUZZ
@given(
    entries=st.dictionaries(st.sampled_from(["upsample.weight", "WN.0.end.bias", "x"]), TENSOR_ENTRY, max_size=3),
    metadata=st.one_of(st.none(), st.dictionaries(st.sampled_from(["waveglow", "format"]), st.text(max_size=20), max_size=2)),
    payload=st.binary(max_size=512),
    length=st.one_of(st.none(), HOSTILE_INTS),
)  # fmt: skip
def test_safetensors_headers_with_hostile_offsets_shapes_and_lengths(
    folder, entries, metadata, payload, length
):
    message = check("safetensors", safetensors_file(entries, metadata, payload, length), folder)
    assert message == "ok" or "input.safetensors" in message


def _seed_safetensors() -> tuple[dict, bytes, dict]:
    data = (CORPUS / "safetensors" / "seed-tiny.safetensors").read_bytes()
    length = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + length])
    return header, data[8 + length :], json.loads(header.pop("__metadata__")["waveglow"])


SEED_HEADER, SEED_TENSORS, SEED_METADATA = _seed_safetensors()
CONFIG_KEYS = [
    ("waveglow_config", "n_flows"), ("waveglow_config", "n_group"), ("waveglow_config", "n_early_every"),
    ("waveglow_config", "n_early_size"), ("waveglow_config", "n_mel_channels"),
    ("data_config", "hop_length"), ("data_config", "filter_length"), ("data_config", "sampling_rate"),
    ("data_config", "mel_fmax"), ("data_config", "win_length"),
]  # fmt: skip


@FUZZ
@given(changes=st.lists(st.tuples(st.sampled_from(CONFIG_KEYS), HOSTILE_VALUES), min_size=1, max_size=3),
       version=st.one_of(st.just(1), HOSTILE_VALUES), weight_norm=HOSTILE_VALUES)  # fmt: skip
def test_our_metadata_with_hostile_config_values(folder, changes, version, weight_norm):
    metadata = json.loads(json.dumps(SEED_METADATA))
    for (section, key), value in changes:
        metadata["config"][section][key] = value
    metadata["format_version"], metadata["weight_norm"] = version, weight_norm
    text = json.dumps(metadata, allow_nan=True)
    data = safetensors_file(SEED_HEADER, {"waveglow": text}, SEED_TENSORS, None)
    message = check("safetensors", data, folder)
    assert message == "ok" or "input.safetensors" in message


# ---------------------------------------------------------------------------- config.json
@FUZZ
@given(changes=st.lists(st.tuples(st.sampled_from(CONFIG_KEYS + [("train_config", "batch_size"),
       ("train_config", "learning_rate"), ("train_config", "epochs")]), HOSTILE_VALUES), min_size=1, max_size=4))  # fmt: skip
def test_config_json_with_hostile_values(folder, changes):
    config = json.loads((CORPUS / "config" / "seed-nvidia.json").read_text())
    for (section, key), value in changes:
        config[section][key] = value
    message = check("config", json.dumps(config, allow_nan=True).encode(), folder)
    assert message == "ok" or "input.json" in message


# ---------------------------------------------------------------------------- wav
@FUZZ
@given(
    audio_format=st.sampled_from([1, 3, 0, 2, 0xFFFE, 0xFFFF]),
    channels=st.sampled_from([0, 1, 2, 255, 65535]),
    rate=st.sampled_from([0, 1, 8000, 22050, 2**31 - 1, 2**32 - 1]),
    bits=st.sampled_from([0, 1, 8, 16, 24, 32, 64, 65535]),
    declared=st.one_of(st.sampled_from([0, 2**31, 2**32 - 1]), st.integers(0, 4096)),
    payload=st.binary(max_size=1024),
)
def test_wav_headers_with_hostile_fields(
    folder, audio_format, channels, rate, bits, declared, payload
):
    block = max(1, channels * bits // 8) & 0xFFFF
    fmt = struct.pack(
        "<HHIIHH", audio_format, channels, rate, (rate * block) & 0xFFFFFFFF, block, bits
    )
    body = (
        b"WAVE"
        + b"fmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", declared)
        + payload
    )
    data = b"RIFF" + struct.pack("<I", len(body)) + body
    message = check("audio", data, folder)
    assert message == "ok" or "input.wav" in message
