"""A fuzz campaign over every reader: each harness of ``tests/fuzz/harnesses.py`` in turn, in a
bounded child process (``tests/fuzz/runner.py``), then a table of executions, CPU time and findings.

    python bench/fuzz.py --minutes 30                     # 30 minutes in all, shared evenly
    python bench/fuzz.py --minutes 5 --harness audio --harness nemo
    python bench/fuzz.py --minutes 30 --keep-corpus out/fuzz-corpus --markdown out/fuzz.md

Coverage-guided with atheris where it imports (else the worker's own mutator; ``--engine``).
Findings land in ``--artifacts`` (default ``out/fuzz/<harness>/``): reproduce one with
``python tests/fuzz/worker.py replay HARNESS FILE``; once fixed, copy it to
``tests/fuzz/corpus/<harness>/`` (CI replays it) and add a regression test to
``tests/fuzz/test_fuzz_regressions.py``. Run it niced on a shared machine and name the machine.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fuzz"))

import harnesses  # noqa: E402
import runner  # noqa: E402


def machine() -> str:
    """The CPU model and core count (from /proc/cpuinfo where there is one)."""
    model = platform.processor() or platform.machine()
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        model = next(
            line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")
        )
        cores = sum(line.startswith("processor") for line in lines)
    except (OSError, StopIteration):
        cores = 0
    return f"{model}, {cores} CPUs, Python {platform.python_version()}"


def campaign(args: argparse.Namespace) -> list[runner.Result]:
    names = args.harness or [h.name for h in harnesses.HARNESSES]
    seconds = args.minutes * 60 / len(names)
    results = []
    for number, name in enumerate(names):
        print(f"[{number + 1}/{len(names)}] {name}: {seconds:.0f} s", flush=True)
        result = fuzz_for(name, seconds, args)
        print(f"    {result.executions} executions, {result.cpu_s:.0f} CPU s, "
              f"{len(result.crashes)} findings, exit {result.code}", flush=True)  # fmt: skip
        results.append(result)
    return results


def fuzz_for(name: str, seconds: float, args: argparse.Namespace) -> runner.Result:
    """Fuzz ``name`` for ``seconds`` of wall time in all: a run stopped by a finding is started
    again (another seed) for the time left; the results are summed."""
    artifacts = args.artifacts / name
    keep = args.keep_corpus / name if args.keep_corpus else None
    total = runner.Result(name, 0, 0, 0.0, 0.0)
    deadline = time.monotonic() + seconds
    attempt = 0
    while (left := deadline - time.monotonic()) > 5:
        result = runner.fuzz(name, left, artifacts, args.engine, args.seed + attempt, keep)
        total.executions += result.executions
        total.cpu_s += result.cpu_s
        total.wall_s += result.wall_s
        total.code = result.code if result.code not in (0, None) else total.code
        total.crashes = result.crashes  # every artifact in the folder so far
        if result.code not in (0, None):
            print(result.output[-2500:], flush=True)
        attempt += 1
    return total


def table(results: list[runner.Result], engine: str) -> str:
    rows = [
        "| harness | executions | CPU s | exec/s | findings | files |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in results:
        rate = r.executions / r.cpu_s if r.cpu_s else 0.0
        files = ", ".join(p.name for p in r.crashes) or "-"
        rows.append(
            f"| {r.harness} | {r.executions} | {r.cpu_s:.0f} | {rate:.0f} | {len(r.crashes)} | {files} |"
        )
    total_exec = sum(r.executions for r in results)
    total_cpu = sum(r.cpu_s for r in results)
    rows.append(
        f"| **all** | {total_exec} | {total_cpu:.0f} | | {sum(len(r.crashes) for r in results)} | |"
    )
    return f"Machine: {machine()}; engine: {engine}\n\n" + "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="in all (default: 30)")
    parser.add_argument("--harness", action="append", help="only these (repeatable)")
    parser.add_argument("--engine", choices=("atheris", "mutator"), default=None)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--artifacts", type=Path, default=ROOT / "out" / "fuzz")
    parser.add_argument("--keep-corpus", type=Path, default=None)
    parser.add_argument("--markdown", type=Path, default=None, help="write the table here too")
    args = parser.parse_args(argv)
    for name in args.harness or []:
        harnesses.harness(name)  # a KeyError listing the names
    results = campaign(args)
    text = table(results, args.engine or "default (atheris where it imports)")
    print(text)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text)
    return 1 if any(r.crashes for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
