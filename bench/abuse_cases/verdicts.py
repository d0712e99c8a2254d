"""Verdicts on a child's run: ok, FAIL or n/a, with the facts that back them (exit status,
traceback, hang, peak memory, the error line)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from .processes import LOW_MEMORY_MB, Run


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
