"""The context a case runs in (a tree's sources, the shared inputs, the case's folder) and the
helpers several classes of case share."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .inputs import Inputs
from .processes import Run, child_limits, run_child
from .verdicts import Verdict, broken, fail, ok, quoted, results


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
