"""CI's bounded fuzzing: the whole corpus replayed, then a short run of each harness.

Each run is a child process with an address-space cap and a wall-clock limit (``runner``). The
short runs last ``$WAVEGLOW_FUZZ_SECONDS`` each (default 5; 0 skips them); ``bench/fuzz.py
--minutes N`` is the real campaign.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harnesses  # noqa: E402
import runner  # noqa: E402

NAMES = [h.name for h in harnesses.HARNESSES]
FUZZ_SECONDS = float(os.environ.get("WAVEGLOW_FUZZ_SECONDS", "5"))


def test_every_harness_has_a_seed_corpus():
    for name in NAMES:
        assert any(p.name.startswith("seed-") for p in runner.corpus_files(name)), name


def test_the_whole_corpus_replays_without_a_finding():
    result = runner.replay("all", files=[], timeout=600)
    assert result.code == 0 and not result.findings, result.output[-4000:]
    expected = sum(len(runner.corpus_files(name)) for name in NAMES)
    assert result.executions == expected, result.output[-2000:]


def test_replay_reports_a_foreign_exception(tmp_path, monkeypatch):
    """The property can fail: a reader raising something of its own is a finding."""
    target = harnesses.Harness("broken", ".bin", _raises_key_error, lambda: (ValueError,))
    with pytest.raises(KeyError):
        harnesses.check(target, b"x", tmp_path)
    quiet = harnesses.Harness("quiet", ".bin", _raises_multiline, lambda: (ValueError,))
    with pytest.raises(harnesses.Finding, match="multi-line"):
        harnesses.check(quiet, b"x", tmp_path)


def test_memory_beyond_the_bound_is_a_finding(tmp_path):
    target = harnesses.Harness("hungry", ".bin", _allocates, lambda: (ValueError,), expansion=1)
    with pytest.raises(harnesses.Finding, match="MiB for a 1-byte input"):
        harnesses.check(target, b"x", tmp_path)


@pytest.mark.skipif(FUZZ_SECONDS <= 0, reason="WAVEGLOW_FUZZ_SECONDS=0")
@pytest.mark.parametrize("name", NAMES)
def test_short_fuzz_run_finds_nothing(name, tmp_path):
    result = runner.fuzz(name, FUZZ_SECONDS, tmp_path / "artifacts")
    detail = f"{name}: {result.output[-4000:]}"
    assert not result.hung, detail
    assert not result.crashes, detail
    assert result.code == 0, detail
    assert result.executions > 0, detail


def _raises_key_error(path: Path) -> object:
    raise KeyError(str(path))


def _raises_multiline(path: Path) -> object:
    raise ValueError(f"{path}: first\nsecond")


def _allocates(path: Path) -> object:
    block = bytearray(160 * 2**20)  # touched: resident
    return len(block)


def test_the_fallback_mutator_runs_where_atheris_is_missing(tmp_path):
    result = runner.fuzz("config", 3, tmp_path / "artifacts", engine="mutator")
    assert result.code == 0 and not result.crashes, result.output[-3000:]
    assert result.executions > 10, result.output[-2000:]
