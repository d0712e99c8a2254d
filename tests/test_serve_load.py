"""``bench/serve_load.py`` end to end on a tiny checkpoint: it runs, counts and reports."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from serve_server import SRC, write_tiny_checkpoint  # noqa: E402

BENCH = Path(__file__).resolve().parents[1] / "bench" / "serve_load.py"


@pytest.mark.slow
def test_the_serve_load_bench_reports_every_level(tmp_path: Path):
    checkpoint = write_tiny_checkpoint(tmp_path / "tiny.pt")
    report_path = tmp_path / "load.json"
    command = [sys.executable, str(BENCH), "--checkpoint", str(checkpoint), "--clients", "1,3"]
    command += ["--requests", "2", "--seconds", "0.5", "--chunk-frames", "16", "--repeat", "1"]
    command += ["--precision", "fp32", "--json", str(report_path)]
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    table = done.stdout.splitlines()
    assert table[0].startswith("| model | clients |") and len(table) >= 4

    report = json.loads(report_path.read_text())
    (model,) = report["models"]
    assert model["server_exit_code"] == 0
    assert model["library_khz"]["chunked"] > 0 and model["library_khz"]["whole"] > 0
    levels = model["levels"]
    assert [level["clients"] for level in levels] == [1, 3]
    for level in levels:
        assert level["requests"] == level["done"] == 2 * level["clients"]
        assert level["errors"] == 0 and not level["error_messages"]
        seconds = model["audio_seconds"] * level["done"]
        assert math.isclose(level["audio_khz"], seconds * 22.05 / level["wall_s"], rel_tol=1e-6)
        assert 0 < level["first_audio_streamed_p50_s"] <= level["latency_p99_s"]
        assert 0 < level["latency_p50_s"] <= level["latency_p99_s"]
        assert level["mean_batch"] >= 1 and level["worker_khz"] > 0
        assert level["server_peak_rss_mib"] > 50
    assert levels[1]["first_audio_whole_p50_s"] > 0  # 3 clients x 2: whole requests too
