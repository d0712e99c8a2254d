"""The service fuzzed from its own OpenAPI schema (schemathesis), with bodies that reach synthesis.

Schemathesis generates each operation's cases from ``/openapi.json`` (positive and negative
modes); half of the body-taking cases get a real body instead: a mel (``.npy``, ``.pt``, JSON or
a form upload) for ``/v1/synthesize``, an audio file (wav, flac, form upload) for the audio
endpoints, so that the cases reach the model and not only the rejection paths. Checks: no 5xx,
status codes and content types as documented, JSON bodies as documented, every response within
:data:`MAX_RESPONSE_S`.

    python tests/serve_fuzz.py --examples 200        # against a fresh server on loopback
    python tests/serve_fuzz.py --websocket --examples 500 --seed 1  # GET /v1/stream: stream_fuzz.py
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable

MAX_RESPONSE_S = 30.0
HOP, RATE, BANDS = 256, 22050, 80


# ---------------------------------------------------------------------------- real bodies
def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _pt(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    torch.save(torch.from_numpy(array), buffer)
    return buffer.getvalue()


@st.composite
def mel_bodies(draw: st.DrawFn) -> tuple[str, object]:
    """(media type, body) of a real mel: 80 bands, 1 to 40 frames, Tacotron 2's range."""
    frames = draw(st.integers(1, 40))
    seed = draw(st.integers(0, 2**16))
    mel = (np.random.default_rng(seed).standard_normal((BANDS, frames)) - 5).astype(np.float32)
    kind = draw(st.sampled_from(["npy", "pt", "json", "form"]))
    if kind == "json":
        return "application/json", {"mel": mel.round(3).tolist()}
    data = _npy(mel) if kind in ("npy", "form") else _pt(mel)
    if kind == "form":
        return "multipart/form-data", {"file": data}
    return "application/octet-stream", data


@st.composite
def audio_bodies(draw: st.DrawFn) -> tuple[str, object]:
    """(media type, body) of a real audio file: wav or flac, any rate, mono or stereo."""
    rate = draw(st.sampled_from([8000, 16000, 22050, 44100]))
    seconds = draw(st.floats(0.02, 0.5))
    channels = draw(st.sampled_from([1, 2]))
    time_axis = np.arange(int(rate * seconds)) / rate
    wave = 0.3 * np.sin(2 * np.pi * draw(st.floats(80, 2000)) * time_axis)
    data = np.stack([wave] * channels, 1) if channels == 2 else wave
    buffer = io.BytesIO()
    fmt = draw(st.sampled_from(["WAV", "FLAC"]))
    soundfile.write(buffer, data, rate, format=fmt, subtype="PCM_16")
    if draw(st.booleans()):
        return "multipart/form-data", {"file": buffer.getvalue()}
    return "application/octet-stream", buffer.getvalue()


@st.composite
def realistic(draw: st.DrawFn, case):  # noqa: ANN001, ANN201 - a schemathesis Case
    """``case`` as generated, or with a real body and sensible options (half the time each)."""
    if case.body is None or not draw(st.booleans()):
        return case
    bodies = mel_bodies() if case.path == "/v1/synthesize" else audio_bodies()
    case.media_type, case.body = draw(bodies)
    if draw(st.booleans()):
        case.query = {"sigma": draw(st.floats(0, 1)), "seed": draw(st.integers(0, 99)),
                      "stream": draw(st.booleans())}  # fmt: skip
    return case


def describe(case) -> str:  # noqa: ANN001
    """A short description of a case: media type, body size, query."""
    body = case.body
    size = len(body) if isinstance(body, bytes | str) else len(str(body))
    return f"[{case.media_type} body ~{size} B, query {case.query}]"


# ---------------------------------------------------------------------------- the run
@dataclass
class Report:
    """What the schema fuzz did: per operation, cases sent, statuses seen, failures."""

    cases: dict[str, int] = field(default_factory=dict)
    statuses: dict[str, dict[int, int]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    slowest_s: float = 0.0

    def summary(self) -> str:
        lines = [f"{len(self.cases)} operations, {sum(self.cases.values())} cases, "
                 f"{len(self.failures)} failures, slowest response {self.slowest_s:.2f} s"]  # fmt: skip
        for label, count in self.cases.items():
            seen = ", ".join(f"{code}: {n}" for code, n in sorted(self.statuses[label].items()))
            lines.append(f"  {label}: {count} cases ({seen})")
        return "\n".join(lines + [f"  FAILURE {failure}" for failure in self.failures[:20]])


def fuzz_schema(url: str, examples: int, headers: dict[str, str] | None = None) -> Report:
    """Every operation of ``url``'s schema, ``examples`` cases per generation mode."""
    import schemathesis
    from schemathesis import GenerationMode
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [schemathesis.checks.not_a_server_error, status_code_conformance,
              content_type_conformance, response_schema_conformance]  # fmt: skip
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", headers=headers or {})
    report = Report()
    for result in schema.get_all_operations():
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        report.cases[label], report.statuses[label] = 0, {}
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(generation_mode=mode).flatmap(realistic)
            _run_cases(strategy, examples, url, headers, checks, report, label)
    return report


def _run_cases(strategy, examples, url, headers, checks, report, label) -> None:  # noqa: ANN001
    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate])  # fmt: skip
    @given(case=strategy)
    def one(case) -> None:  # noqa: ANN001
        started = time.perf_counter()
        try:
            response = case.call(base_url=url, headers=headers, timeout=MAX_RESPONSE_S + 5)
        except Exception as error:  # noqa: BLE001 - a timeout or a dropped connection: a failure
            report.failures.append(f"{label} {describe(case)}: {type(error).__name__}")
            return
        elapsed = time.perf_counter() - started
        report.cases[label] += 1
        codes = report.statuses[label]
        codes[response.status_code] = codes.get(response.status_code, 0) + 1
        report.slowest_s = max(report.slowest_s, elapsed)
        problems = []
        if elapsed > MAX_RESPONSE_S:
            problems.append(f"took {elapsed:.1f} s")
        try:
            case.validate_response(response, checks=checks, headers=headers)
        except BaseException as error:  # schemathesis raises a (base) exception group
            if isinstance(error, KeyboardInterrupt | SystemExit):
                raise
            problems.append(" ".join(str(error).split())[:300])
        if problems:
            report.failures.append(
                f"{label} {describe(case)} -> {response.status_code}: {'; '.join(problems)}"
            )

    with contextlib.suppress(Unsatisfiable):  # no negative case (no parameters, no body)
        one()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="fuzz waveglow serve from its OpenAPI schema (or its WebSocket stream)"
    )
    parser.add_argument("--examples", type=int, default=100, help="per operation and mode")
    parser.add_argument(
        "--websocket", action="store_true", help="fuzz GET /v1/stream instead: --examples cases"
    )
    parser.add_argument("--seed", type=int, default=None, help="--websocket: Hypothesis's seed")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    if args.websocket:
        return _fuzz_websocket(args.examples, args.seed)
    from serve_server import Server, write_tiny_checkpoint

    with tempfile.TemporaryDirectory() as folder:
        checkpoint = write_tiny_checkpoint(Path(folder) / "tiny.pt")
        options = ("--max-seconds", "5", "--max-body-mb", "1", "--chunk-frames", "16")
        with Server(checkpoint, *options) as server:
            started = time.perf_counter()
            report = fuzz_schema(server.url, args.examples)
            print(report.summary())
            print(f"{time.perf_counter() - started:.0f} s")
    return 1 if report.failures else 0


def _fuzz_websocket(examples: int, seed: int | None) -> int:
    """The stream fuzz (``stream_fuzz.py``) against a fresh server; its summary, the CPU time of
    both sides and the machine, and the server's output checked once it has stopped."""
    import resource

    from serve_server import Server, write_tiny_checkpoint
    from stream_fuzz import SERVER_OPTIONS, fuzz_stream, log_alarms

    with tempfile.TemporaryDirectory() as folder:
        checkpoint = write_tiny_checkpoint(Path(folder) / "tiny.pt")
        started, client_cpu = time.perf_counter(), time.process_time()
        server = Server(checkpoint, *SERVER_OPTIONS)
        try:
            report = fuzz_stream(server, examples, seed)
        finally:
            output = server.stop()
    report.failures += [f"service output: {line}" for line in log_alarms(output.splitlines())]
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # the server, stopped and waited for
    service_cpu = children.ru_utime + children.ru_stime
    print(report.summary())
    print(
        f"{time.perf_counter() - started:.0f} s wall; CPU: service {service_cpu:.0f} s, "
        f"client {time.process_time() - client_cpu:.0f} s; {_cpu_model()}"
    )
    return 1 if report.failures else 0


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
