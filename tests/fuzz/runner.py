"""Runs :mod:`worker` in a bounded child process (its own session, killed at a wall-clock limit;
the worker caps its own address space) and reads back executions, CPU time and findings.

Used by the CI tests (``tests/fuzz/test_fuzz_corpus.py``) and the campaign (``bench/fuzz.py``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORKER = HERE / "worker.py"
CORPUS = HERE / "corpus"
SRC = HERE.parents[1] / "src"
STARTUP_S = 60.0  # importing torch on a loaded 2-core machine, and the warm-up on the seeds


@dataclass
class Result:
    """One worker run."""

    harness: str
    code: int | None
    executions: int
    cpu_s: float
    wall_s: float
    crashes: list[Path] = field(default_factory=list)
    findings: list[dict] = field(default_factory=list)
    output: str = ""

    @property
    def hung(self) -> bool:
        return self.code is None


def corpus_files(name: str, corpus: Path = CORPUS) -> list[Path]:
    return sorted(path for path in (corpus / name).glob("*") if path.is_file())


def replay(name: str, files: list[Path] | None = None, timeout: float = 300.0) -> Result:
    """Every file of ``name``'s corpus (or ``files``) through the harness in one child."""
    files = corpus_files(name) if files is None else files
    result = _run([str(WORKER), "replay", name, *map(str, files)], name, timeout)
    for line in result.output.splitlines():
        if line.startswith("{"):
            with contextlib.suppress(json.JSONDecodeError):
                entry = json.loads(line)
                if entry.get("finding"):
                    result.findings.append(entry)
    return result


def fuzz(
    name: str,
    seconds: float,
    artifacts: Path,
    engine: str | None = None,
    seed: int = 1,
    keep_corpus: Path | None = None,
) -> Result:
    """Fuzz ``name`` for ``seconds`` from a copy of its corpus; crash files go to ``artifacts``.
    ``seed`` fixes the fuzzer's choices (libFuzzer's 0 would mean "random"), so that a short
    run repeats itself wherever the machine is about as fast.

    ``keep_corpus``: where the inputs the fuzzer found interesting are left (else discarded).
    """
    working = keep_corpus or Path(tempfile.mkdtemp(prefix=f"fuzz-corpus-{name}-"))
    working.mkdir(parents=True, exist_ok=True)
    for path in corpus_files(name):
        shutil.copy(path, working / path.name)
    argv = [str(WORKER), "fuzz", name, "--seconds", str(seconds), "--corpus", str(working)]
    argv += ["--artifacts", str(artifacts), "--seed", str(seed)]
    if engine:
        argv += ["--engine", engine]
    try:
        result = _run(argv, name, seconds + STARTUP_S + 60)
    finally:
        if keep_corpus is None:
            shutil.rmtree(working, ignore_errors=True)
    result.crashes = sorted(
        p for p in artifacts.glob("*") if re.match(r"(crash|timeout|oom|leak)-", p.name)
    )
    return result


def _run(argv: list[str], name: str, timeout: float) -> Result:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env.update(OMP_NUM_THREADS="1", MALLOC_ARENA_MAX="2")  # read at start: one thread, two arenas
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(
            [sys.executable, *argv], stdin=subprocess.DEVNULL, stdout=output,
            stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip
        code, cpu_s, wall_s = _wait(process, timeout)
        output.seek(0)
        text = output.read().decode("utf-8", errors="replace")
    found = re.findall(r"stat::number_of_executed_units:\s*(\d+)", text)
    executions = int(found[-1]) if found else 0
    return Result(name, code, executions, cpu_s, wall_s, output=text)


def _wait(process: subprocess.Popen, timeout: float) -> tuple[int | None, float, float]:
    """(exit status or None when killed at ``timeout``, CPU seconds, wall seconds)."""
    started = time.monotonic()
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() - started > timeout:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            pid, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
            return None, usage.ru_utime + usage.ru_stime, time.monotonic() - started
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    return process.returncode, cpu, time.monotonic() - started
