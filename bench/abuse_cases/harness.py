"""The harness of the abuse cases: bounded child processes, verdicts, the context a case runs in."""

from __future__ import annotations

import contextlib
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .inputs import Inputs

TRACEBACK = "Traceback (most recent call last)"
LOW_MEMORY_MB = 1500.0  # a refused input costs no more than the program itself (torch: ~400 MB)


# ---------------------------------------------------------------------------- child processes
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


# ---------------------------------------------------------------------------- verdicts
@dataclass
class Verdict:
    status: str  # "ok", "FAIL" or "n/a"
    note: str
    run: Run | None = None
    show_memory: bool = False

    def cell(self) -> str:
        parts = []
        if self.run is not None:
            run = self.run
            parts.append(
                f"HANG (killed at {run.seconds:.0f} s)" if run.hung else f"exit {run.code}"
            )
            if run.traceback:
                parts.append("traceback")
            if self.show_memory or run.peak_mb > LOW_MEMORY_MB:
                parts.append(f"peak {run.peak_mb:,.0f} MB")
        facts = ", ".join(parts)
        text = f"**{self.status}** {facts}" + (f": {self.note}" if self.note else "")
        return text.replace("|", "\\|").replace("\n", " ")


def ok(note: str, run: Run | None = None, **kwargs: bool) -> Verdict:
    return Verdict("ok", note, run, **kwargs)


def fail(note: str, run: Run | None = None, **kwargs: bool) -> Verdict:
    return Verdict("FAIL", note, run, **kwargs)


def not_applicable(note: str, run: Run | None = None) -> Verdict:
    return Verdict("n/a", note, run)


def quoted(line: str, limit: int = 150) -> str:
    line = " ".join(line.split())
    return "`" + (line if len(line) <= limit else line[: limit - 1] + "…").replace("`", "'") + "`"


def broken(run: Run) -> Verdict | None:
    """FAIL for a hang or a traceback, n/a for an option this tree does not have, else None."""
    if run.hung:
        return fail("hung", run)
    if run.traceback:
        return fail(quoted(run.error_line()), run)
    if run.code == 2 and re.search(r"unrecognized arguments|invalid choice", run.stderr):
        return not_applicable("option unknown to this tree", run)
    return None


def expect_error(
    run: Run,
    contains: Sequence[str] = (),
    absent: Sequence[str] = (),
    code: int = 1,
    max_mb: float | None = None,
) -> Verdict:
    """ok: exit ``code`` with one error line holding each of ``contains`` (case-insensitive)
    and none of ``absent``, within ``max_mb`` of memory."""
    show = max_mb is not None
    if (verdict := broken(run)) is not None:
        verdict.show_memory = show
        return verdict
    line = run.error_line()
    if run.code != code:
        return fail(f"exit {run.code}, not {code}: {quoted(line)}", run, show_memory=show)
    text = run.stderr.lower()
    missing = [word for word in contains if word.lower() not in text]
    if missing:
        return fail(f"no {missing[0]!r} in {quoted(line)}", run, show_memory=show)
    present = [word for word in absent if word.lower() in text]
    if present:
        return fail(f"says {present[0]!r}: {quoted(line)}", run, show_memory=show)
    if max_mb is not None and run.peak_mb > max_mb:
        return fail(f"peak memory over {max_mb:,.0f} MB: {quoted(line)}", run, show_memory=show)
    return ok(quoted(line), run, show_memory=show)


def results(run: Run) -> dict[str, str]:
    """``RESULT key=value`` lines an API snippet printed."""
    found = {}
    for line in run.stdout.splitlines():
        if line.startswith("RESULT "):
            key, _, value = line[len("RESULT ") :].partition("=")
            found[key] = value
    return found


def api_refuses(ctx: Context, code: str, words: Sequence[str] = ()) -> Verdict:
    run = ctx.api(f"model = waveglow.load({str(ctx.inputs.tiny)!r})\n{code}")
    if (verdict := broken(run)) is not None:
        return verdict
    found = results(run)
    if "refused" in found:
        missing = [word for word in words if word.lower() not in found["refused"].lower()]
        if missing:
            return fail(f"refused without {missing[0]!r}: {quoted(found['refused'])}", run)
        return ok("ValueError " + quoted(found["refused"]), run)
    return fail(", ".join(f"{key} {value}" for key, value in found.items()) or "no result", run)


NAN_REPORT = (
    "print('RESULT returned=audio', 'finite' if torch.isfinite(audio).all() else 'with NaN')"
)


# ---------------------------------------------------------------------------- context
@dataclass
class Context:
    """What a case runs in: a tree's sources, the shared inputs and the case's own folder."""

    src: Path
    inputs: Inputs
    folder: Path
    timeout: float
    mem_gb: float

    @property
    def checkout(self) -> Path:
        return self.src.parent

    def env(self) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(self.src), "PYTHONDONTWRITEBYTECODE": "1"}

    def cli(self, *args: object, timeout: float | None = None, **options: object) -> Run:
        argv = [sys.executable, "-m", "waveglow", *map(str, args)]
        return self._run(argv, timeout, **options)

    def api(self, code: str, timeout: float | None = None, **options: object) -> Run:
        """Run ``code`` after ``import waveglow, torch, numpy as np``; our ValueErrors are caught
        and printed as ``RESULT refused=<message>``, anything else is a traceback."""
        prelude = "import sys, torch, numpy as np, waveglow\ntry:\n"
        body = "".join(f"    {line}\n" for line in code.strip().splitlines())
        ending = "except ValueError as error:\n    print('RESULT refused=' + ' '.join(str(error).split()))\n"
        return self._run([sys.executable, "-c", prelude + body + ending], timeout, **options)

    def _run(self, argv: list[str], timeout: float | None, **options: object) -> Run:
        return run_child(
            argv,
            self.env(),
            self.folder,
            timeout or self.timeout,
            float(options.pop("mem_gb", self.mem_gb)),  # type: ignore[arg-type]
            **options,  # type: ignore[arg-type]
        )

    def start(self, *args: object) -> subprocess.Popen:
        """The CLI started in its own session, for the signal cases."""
        return subprocess.Popen(
            [sys.executable, "-m", "waveglow", *map(str, args)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=self.env(),
            cwd=self.folder,
            preexec_fn=child_limits(int(self.mem_gb * 2**30), None),
        )

    def train(self, output: Path, *args: object, timeout: float = 180) -> Run:
        """Train the tiny model on the shared corpus (two steps unless ``args`` say otherwise)."""
        return self.cli(
            "train", "--config", self.inputs.train_config, "--data", self.inputs.corpus,
            "-o", output, "-q", *args, timeout=timeout,
        )  # fmt: skip


def temporaries(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.glob(".*tmp*")) if folder.is_dir() else []


def wav_peak(path: Path) -> float | None:
    import numpy as np
    import soundfile

    if not path.is_file():
        return None
    data, _ = soundfile.read(str(path), dtype="float32")
    return float(np.abs(data).max()) if data.size else 0.0


@dataclass(frozen=True)
class Case:
    group: str
    name: str
    input: str
    command: str
    check: Callable[[Context], Verdict]
