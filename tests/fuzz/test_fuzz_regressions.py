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
