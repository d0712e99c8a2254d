"""Kill -9 at random moments and resume: the run ends bit-identical to the uninterrupted one
(``bench/train_soak.py``; the long version kills 20 times or more)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "train_soak.py"


def _soak_module():
    spec = importlib.util.spec_from_file_location("train_soak", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_checkpoint_comparison_can_fail():
    import torch

    differences = _soak_module().differences
    same = {"state_dict": {"w": torch.ones(2)}, "step": 3}
    assert differences(same, {"state_dict": {"w": torch.ones(2)}, "step": 3}) == []
    changed = {"state_dict": {"w": torch.tensor([1.0, 1.0 + 2**-20])}, "step": 3}
    assert differences(same, changed) == [".state_dict.w"]
    assert differences(same, {**same, "step": 4}) == [".step"]


@pytest.mark.slow
def test_killed_and_resumed_run_ends_bit_identical(tmp_path):
    soak = _soak_module()
    assert soak.main(["--kills", "2", "--steps", "16", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["kills"] == 2 and report["bit_identical"] and not report["differences"]
    # every global RNG continues as in the uninterrupted run
    assert report["saved_rng_state_differences"] == [], report
