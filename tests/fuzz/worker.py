"""The fuzz child process: replays files through a harness, or fuzzes it for a while.

    python tests/fuzz/worker.py replay HARNESS FILE...
    python tests/fuzz/worker.py fuzz HARNESS --seconds S --corpus DIR --artifacts DIR [--engine E]

Run it through :mod:`runner` (an address-space limit, a wall-clock limit, its CPU time measured).
It warms up on the harness's seeds, then caps its own address space at what it holds plus
:data:`ADDRESS_SLACK`, so that no input can make it reserve gigabytes. ``--engine atheris``
(coverage-guided, libFuzzer; the default where atheris imports) or ``mutator`` (random mutations
of the corpus, no coverage). Findings are written to ``--artifacts`` as ``crash-<sha1>``; the last
stdout line is a JSON summary.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import resource
import sys
import tempfile
import time
import traceback
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy  # noqa: E402, F401 - imported before the instrumented code, never instrumented
import soundfile  # noqa: E402, F401
import torch  # noqa: E402

torch.set_num_threads(1)
HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
ADDRESS_SLACK = 2 * 2**30
MAX_LEN = 64 * 1024


def _import_harnesses(engine: str):  # noqa: ANN202 - the module
    sys.path.insert(0, str(HERE))
    if engine != "atheris":
        import harnesses

        return harnesses
    import atheris

    with atheris.instrument_imports(include=["waveglow", "harnesses"]):
        import harnesses

        import waveglow.checkpoint  # noqa: F401 - instrumented now, not at first use
        import waveglow.data  # noqa: F401
    return harnesses


def default_engine() -> str:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return "mutator"
    return "atheris"


def _cap_address_space() -> None:
    with open("/proc/self/status") as handle:
        size = next(int(line.split()[1]) * 1024 for line in handle if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (size + ADDRESS_SLACK, resource.RLIM_INFINITY))


def _seeds(name: str) -> list[bytes]:
    return [path.read_bytes() for path in sorted((CORPUS / name).glob("*")) if path.is_file()]


# ---------------------------------------------------------------------------- replay
def replay(name: str, files: list[Path]) -> int:
    """Every file through the harness (``all``: every harness's corpus); one JSON line per file;
    the exit code counts the findings."""
    harnesses = _import_harnesses("mutator")
    names = [h.name for h in harnesses.HARNESSES] if name == "all" else [name]
    findings, executions = 0, 0
    with tempfile.TemporaryDirectory() as folder:
        for each in names:
            harnesses.warm_up(harnesses.harness(each), _seeds(each), Path(folder))
        _cap_address_space()
        for each in names:
            target = harnesses.harness(each)
            listed = files if name != "all" else sorted((CORPUS / each).glob("*"))
            for path in listed:
                problem = _outcome(harnesses, target, path.read_bytes(), Path(folder))
                print(json.dumps({"harness": each, "file": str(path), "finding": problem}))
                findings += problem is not None
                executions += 1
    print(f"stat::number_of_executed_units: {executions}", flush=True)
    return min(findings, 100)


def _outcome(harnesses, target, data: bytes, folder: Path) -> str | None:  # noqa: ANN001
    """None, or what went wrong (the exception's type, message and last frames)."""
    try:
        harnesses.check(target, data, folder)
    except (Exception, harnesses.Hang) as error:  # noqa: BLE001 - every failure is reported
        frames = traceback.format_exception(error)[-3:]
        return f"{type(error).__name__}: {error} | {''.join(frames).strip()[-600:]}"
    return None


# ---------------------------------------------------------------------------- fuzz
def fuzz(name: str, seconds: float, corpus: Path, artifacts: Path, engine: str, seed: int) -> int:
    harnesses = _import_harnesses(engine)
    target = harnesses.harness(name)
    folder = Path(tempfile.mkdtemp(prefix=f"fuzz-{name}-"))
    harnesses.warm_up(target, _seeds(name), folder)
    for data in _seeds(name):
        harnesses.check(target, data, folder)  # the seeds pass
    _cap_address_space()

    def one_input(data: bytes) -> None:
        harnesses.check(target, data, folder)

    if engine == "atheris":
        return _atheris(one_input, seconds, corpus, artifacts, seed)
    return _mutate(one_input, seconds, corpus, artifacts, seed)


def _atheris(one_input, seconds: float, corpus: Path, artifacts: Path, seed: int) -> int:  # noqa: ANN001
    import atheris

    artifacts.mkdir(parents=True, exist_ok=True)
    arguments = [sys.argv[0], str(corpus), f"-max_total_time={max(1, int(seconds))}",
                 f"-max_len={MAX_LEN}", "-timeout=30", "-rss_limit_mb=4096",
                 f"-artifact_prefix={artifacts}/", "-print_final_stats=1", f"-seed={seed}"]  # fmt: skip
    atheris.Setup(arguments, one_input)
    atheris.Fuzz()  # exits the process at max_total_time, or at the first crash
    return 0


def _mutate(one_input, seconds: float, corpus: Path, artifacts: Path, seed: int) -> int:  # noqa: ANN001
    """Random mutations of the corpus (no coverage feedback): the engine where atheris is missing."""
    generator = random.Random(seed)
    pool = [path.read_bytes() for path in sorted(corpus.glob("*")) if path.is_file()] or [b""]
    deadline, executions, crashes = time.monotonic() + seconds, 0, 0
    while time.monotonic() < deadline:
        data = mutate(generator, generator.choice(pool), generator.choice(pool))
        executions += 1
        try:
            one_input(data)
        except Exception as error:  # noqa: BLE001 - a finding: kept, and the run goes on
            crashes += 1
            _save_crash(artifacts, data, error)
    print(f"stat::number_of_executed_units: {executions}", file=sys.stderr, flush=True)
    return 1 if crashes else 0


def _save_crash(artifacts: Path, data: bytes, error: BaseException) -> None:
    artifacts.mkdir(parents=True, exist_ok=True)
    path = artifacts / f"crash-{hashlib.sha1(data).hexdigest()}"
    path.write_bytes(data)
    print(f"==finding {path}: {type(error).__name__}: {error}", file=sys.stderr, flush=True)


INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 2**63 - 1, 2**64 - 1)


def mutate(generator: random.Random, data: bytes, other: bytes) -> bytes:
    """One to four random edits: bit flips, interesting integers, cuts, copies, splices."""
    buffer = bytearray(data)
    for _ in range(generator.randint(1, 4)):
        kind = generator.randrange(6)
        where = generator.randrange(len(buffer) + 1)
        if kind == 0 and buffer:
            buffer[where % len(buffer)] ^= 1 << generator.randrange(8)
        elif kind == 1:
            width = generator.choice((1, 2, 4, 8))
            value = generator.choice(INTERESTING) & (2 ** (8 * width) - 1)
            buffer[where : where + width] = value.to_bytes(
                width, generator.choice(("little", "big"))
            )
        elif kind == 2:
            del buffer[where : where + generator.randint(1, 64)]
        elif kind == 3:
            start = generator.randrange(len(buffer) + 1)
            buffer[where:where] = buffer[start : start + generator.randint(1, 64)]
        elif kind == 4:
            cut = generator.randrange(len(other) + 1)
            buffer = buffer[:where] + bytearray(other[cut:])
        else:
            buffer[where:where] = bytes(
                generator.randrange(256) for _ in range(generator.randint(1, 8))
            )
    return bytes(buffer[:MAX_LEN])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("replay", "fuzz"))
    parser.add_argument("harness")
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--corpus", type=Path)
    parser.add_argument("--artifacts", type=Path)
    parser.add_argument("--engine", choices=("atheris", "mutator"), default=default_engine())
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.mode == "replay":
        return replay(args.harness, args.files)
    with contextlib.suppress(KeyboardInterrupt):
        return fuzz(args.harness, args.seconds, args.corpus, args.artifacts, args.engine, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
