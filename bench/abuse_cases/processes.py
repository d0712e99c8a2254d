"""Bounded child processes: a wall-clock timeout, an address-space cap, a session killed at
the end; what each left behind (:class:`Run`)."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

TRACEBACK = "Traceback (most recent call last)"
LOW_MEMORY_MB = 1500.0  # a refused input costs no more than the program itself (torch: ~400 MB)


@dataclass
class Run:
    """One child process: exit status (negative: killed by that signal), output, resources."""

    code: int | None
    stdout: str
    stderr: str
    hung: bool
    peak_mb: float
    seconds: float

    @property
    def traceback(self) -> bool:
        return TRACEBACK in self.stderr

    def error_line(self) -> str:
        """The exception line of a traceback, else the first line saying error, else the first."""
        lines = [line.strip() for line in self.stderr.splitlines() if line.strip()]
        if self.traceback:
            return lines[-1] if lines else ""
        for line in lines:
            if "error" in line.lower():
                return line
        return lines[0] if lines else ""


def run_child(
    argv: Sequence[str],
    env: dict[str, str],
    cwd: Path,
    timeout: float,
    mem_gb: float,
    umask: int | None = None,
    reader_gone: bool = False,
) -> Run:
    """Run ``argv`` in its own session under RLIMIT_AS = ``mem_gb``; kill the whole session at
    ``timeout`` (a hang). ``reader_gone``: stdout is a pipe whose reader closed before the first
    write (what ``| head -1`` does to the lines after the first)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        stdout: int | object = out
        if reader_gone:
            read_end, stdout = os.pipe()
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=err,
            env=env,
            cwd=cwd,
            preexec_fn=child_limits(int(mem_gb * 2**30), umask),
        )
        if reader_gone:
            os.close(stdout)  # type: ignore[arg-type]
            os.close(read_end)
        code, hung, peak_mb, seconds = wait_bounded(process, timeout)
        out.seek(0)
        err.seek(0)
        return Run(code, text_of(out.read()), text_of(err.read()), hung, peak_mb, seconds)


def text_of(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def child_limits(mem_bytes: int, umask: int | None) -> Callable[[], None]:
    def apply() -> None:
        os.setsid()
        resource.setrlimit(resource.RLIMIT_AS, (mem_bytes, mem_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if umask is not None:
            os.umask(umask)

    return apply


def wait_bounded(
    process: subprocess.Popen, timeout: float
) -> tuple[int | None, bool, float, float]:
    """(exit status, hung, peak RSS in MB, seconds); the child's session is killed at the end
    either way (no worker outlives its case)."""
    started = time.monotonic()
    hung = False
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() - started > timeout:
            hung = True
            kill_session(process.pid)
            pid, status, usage = os.wait4(process.pid, 0)
            break
        time.sleep(0.05)
    seconds = time.monotonic() - started
    kill_session(process.pid)
    process.returncode = os.waitstatus_to_exitcode(status)
    code = None if hung else process.returncode
    return code, hung, usage.ru_maxrss / 1024, seconds


def kill_session(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
