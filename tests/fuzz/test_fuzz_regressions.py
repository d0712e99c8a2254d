"""One test per crash the fuzzers found: its file is in ``tests/fuzz/corpus/<harness>/crash-*``
(CI replays it too); each test reads it in this process and checks the one-line error it must give.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harnesses  # noqa: E402

CORPUS = Path(__file__).resolve().parent / "corpus"


def crash(harness: str, name: str) -> bytes:
    return (CORPUS / harness / name).read_bytes()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path


def outcome(harness: str, data: bytes, folder: Path) -> str:
    target = harnesses.harness(harness)
    harnesses.warm_up(target, [data], folder)
    with harnesses.address_space_cap():  # as in the fuzzer: a big allocation fails
        return harnesses.check(target, data, folder)


def test_npy_header_length_of_2_gb_is_refused_before_reading_it(folder):
    """atheris, mel_npy: a version-57 header whose 4-byte length said ~2.7 GB made numpy allocate
    the header's bytes (MemoryError under the address-space cap)."""
    message = outcome("mel_npy", crash("mel_npy", "crash-npy-header-length-2gb.npy"), folder)
    assert "unsupported .npy format version 57.0" in message


def test_pickle_string_longer_than_the_file_is_refused_before_allocating(folder):
    """atheris, unpickler: a BINUNICODE of 2,745,410,317 bytes in a 10 KB legacy file made
    CPython's unpickler allocate the string before reading it (MemoryError under the cap)."""
    data = crash("unpickler", "crash-binunicode-length-2gb.pt")
    message = outcome("unpickler", data, folder)
    assert "expected 2745410317 bytes in a unicodestring4, but only 558 remain" in message


@pytest.mark.parametrize(
    ("pickle_bytes", "expected"),
    [
        (b"\x80\x02" + b"B" + (2**31).to_bytes(4, "little") + b"xx.", "in a bytes4"),  # BINBYTES
        (b"\x80\x04\x95" + (2**40).to_bytes(8, "little") + b"N.", "pickle frame of"),  # FRAME
        (b"\x80\x02N" + b"r" + (2**31).to_bytes(4, "little") + b".", "memo index 2147483648"),
    ],
    ids=["bytes-length", "frame-length", "memo-index"],
)
def test_pickle_lengths_and_memo_indices_are_bounded_by_the_file(folder, pickle_bytes, expected):
    """The same for every length-prefixed opcode and for a memo index (CPython sizes its memo
    by the index): refused by the pre-scan, whatever the opcode."""
    legacy_magic = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19."
    message = outcome("unpickler", legacy_magic + pickle_bytes, folder)
    assert expected in message and "nothing was executed" not in message


def test_an_lzma_header_asking_for_a_4_gb_dictionary_is_not_decompressed(folder):
    """atheris, unpickler: 13 bytes of an LZMA header (dictionary size 0xFFFFFFFF) made
    ``tarfile.is_tarfile`` allocate the decompressor's dictionary (MemoryError under the cap).
    .nemo archives are plain or gzipped tars: nothing else is decompressed."""
    data = crash("unpickler", "crash-lzma-dictionary-4gb.pt")
    message = outcome("unpickler", data, folder)
    assert "cannot be read as a checkpoint" in message and "MemoryError" not in message


def test_a_flac_claiming_4g_frames_is_read_in_bounded_memory(folder):
    """atheris, audio: a 100-byte FLAC whose STREAMINFO claims 4,294,903,965 frames made
    ``soundfile.read`` allocate 16 GiB up front (a raw MemoryError); now read block by block."""
    message = outcome("audio", crash("audio", "crash-flac-claims-4g-frames.flac"), folder)
    assert "not a readable audio file" in message


def test_long_audio_still_reads_whole_across_blocks(tmp_path):
    import numpy as np
    import soundfile

    from waveglow.audio import BLOCK_SAMPLES, load_audio

    wave = np.sin(np.arange(BLOCK_SAMPLES + 12345) / 7).astype(np.float32) * 0.5
    path = tmp_path / "long.flac"
    soundfile.write(path, np.stack([wave, wave], 1), 22050, subtype="PCM_16")
    audio, rate = load_audio(path)
    assert rate == 22050 and audio.shape == wave.shape
    assert np.abs(audio - wave).max() < 1e-4


def test_a_config_key_holding_a_newline_gives_a_one_line_error(folder):
    """atheris, config: "lea\\ning_rate" in train_config: an unprintable key is quoted."""
    data = (CORPUS / "config" / "crash-newline-in-unknown-key.json").read_bytes()
    message = outcome("config", data, folder)
    assert "unknown key(s) in train_config" in message
