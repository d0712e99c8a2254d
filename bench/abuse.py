"""Issue 12's abuse cases: hostile and broken inputs, each run in a bounded child process.

Each case builds its input in a temporary folder, runs the command line (``python -m waveglow``)
or an API snippet in a child process with a wall-clock timeout and an address-space cap (nothing
can take the machine down), records the exit code, whether stderr holds a Python traceback,
whether it hung, the child's peak RSS and its first error line, and judges the outcome against
what issue 12 asks for ("ok" / "FAIL"; "n/a" where the tree cannot express the case). Run it on
several source trees for a before/after table:

    python bench/abuse.py                                   # this tree's src
    python bench/abuse.py --tree before=/tmp/old/src --tree after=src --markdown table.md
    python bench/abuse.py -k zip -k nan                     # only cases whose name has these

The inputs are built once with this tree's code. Cases needing root (mknod, mount -t tmpfs) are
"n/a" without it. A tree's checkout (``src/..``) is where its docs are read from.

This file is the runner; the cases live in ``bench/abuse_cases/``, one module per class of the
issue (resources, garbage, paths, hangs, rough, handled), on a shared harness.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path

from abuse_cases import ALL_CASES, Case, Context, Inputs, Verdict, build_inputs

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------- running
def run_tree(
    label: str,
    src: Path,
    inputs: Inputs,
    work: Path,
    cases: Sequence[Case],
    args: argparse.Namespace,
) -> dict[str, Verdict]:
    verdicts = {}
    for case in cases:
        folder = work / label / case.name
        folder.mkdir(parents=True)
        context = Context(src.resolve(), inputs, folder, args.timeout, args.mem_gb)
        started = time.monotonic()
        try:
            verdict = case.check(context)
        except Exception as error:  # noqa: BLE001 - a case that cannot run is reported, not fatal
            verdict = Verdict("n/a", f"the case could not run: {type(error).__name__}: {error}")
        verdict.note = verdict.note.replace(f"{folder}/", "").replace(str(work), "$T")
        print(f"[{label}] {case.name}: {verdict.status} ({time.monotonic() - started:.0f} s) "
              f"{verdict.cell()}", file=sys.stderr, flush=True)  # fmt: skip
        verdicts[case.name] = verdict
    return verdicts


def counts(verdicts: dict[str, Verdict]) -> dict[str, int]:
    runs = [verdict.run for verdict in verdicts.values() if verdict.run is not None]
    return {
        "tracebacks": sum(run.traceback for run in runs),
        "hangs": sum(run.hung for run in runs),
        "ok": sum(verdict.status == "ok" for verdict in verdicts.values()),
        "FAIL": sum(verdict.status == "FAIL" for verdict in verdicts.values()),
        "n/a": sum(verdict.status == "n/a" for verdict in verdicts.values()),
    }


def markdown(cases: Sequence[Case], trees: dict[str, dict[str, Verdict]]) -> str:
    labels = list(trees)
    lines = ["| tree | " + " | ".join(counts(next(iter(trees.values()))).keys()) + " |"]
    lines.append("|---" * (1 + len(counts({}))) + "|")
    for label, verdicts in trees.items():
        lines.append(f"| {label} | " + " | ".join(map(str, counts(verdicts).values())) + " |")
    group = None
    for number, case in enumerate(cases, 1):
        if case.group != group:
            group = case.group
            lines += ["", f"### {group}", ""]
            lines.append("| # | case | input | command | " + " | ".join(labels) + " |")
            lines.append("|---" * (4 + len(labels)) + "|")
        cells = [trees[label][case.name].cell() for label in labels]
        command = case.command.replace("|", "\\|") if "\\|" not in case.command else case.command
        lines.append(
            f"| {number} | {case.name} | {case.input} | `{command}` | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines) + "\n"


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--tree", action="append", metavar="LABEL=SRC", default=[],
        help="a source tree to run (repeatable; default: this tree's src as HEAD)",
    )  # fmt: skip
    parser.add_argument(
        "-k", action="append", default=[], metavar="WORD", help="cases whose name has WORD"
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds per command (default: 60)"
    )
    parser.add_argument(
        "--mem-gb", type=float, default=4.0, help="address space per command (default: 4)"
    )
    parser.add_argument("--markdown", type=Path, help="write the table there too")
    parser.add_argument("--json", type=Path, help="write every run's raw record there")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    cases = [case for case in ALL_CASES if not args.k or any(word in case.name for word in args.k)]
    if args.list:
        for case in cases:
            print(f"{case.name:28} {case.group}: {case.input}")
        return 0
    trees = dict(_tree(text) for text in args.tree) or {"HEAD": ROOT / "src"}
    work = Path(tempfile.mkdtemp(prefix="waveglow-abuse-"))
    try:
        inputs = build_inputs(work / "inputs")
        verdicts = {
            label: run_tree(label, src, inputs, work, cases, args) for label, src in trees.items()
        }
    finally:
        if not args.keep:
            _remove(work)
        else:
            print(f"kept {work}", file=sys.stderr)
    table = markdown(cases, verdicts)
    print(table)
    if args.markdown:
        args.markdown.write_text(table)
    if args.json:
        records = {
            label: {name: asdict(verdict) for name, verdict in found.items()}
            for label, found in verdicts.items()
        }
        args.json.write_text(json.dumps(records, indent=1))
    return 0


def _tree(text: str) -> tuple[str, Path]:
    label, _, src = text.partition("=")
    if not src or not (Path(src) / "waveglow" / "__init__.py").is_file():
        raise SystemExit(f"--tree {text}: expected LABEL=SRC, SRC holding waveglow/")
    return label, Path(src)


def _remove(work: Path) -> None:
    for mount in _mounts_under(work):
        subprocess.run(["umount", mount], capture_output=True)
    shutil.rmtree(work, ignore_errors=True)


def _mounts_under(folder: Path) -> Iterator[str]:
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return
    for line in lines:
        point = line.split()[1]
        if point.startswith(str(folder)):
            yield point


if __name__ == "__main__":
    sys.exit(main())
