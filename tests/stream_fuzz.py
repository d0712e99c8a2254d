"""``GET /v1/stream`` fuzzed with generated sessions (Hypothesis) against a real ``waveglow serve``.

The sessions and what the protocol says of them are in ``stream_sessions.py``. Every session the
client does not abandon is checked (:func:`check`): start, PCM messages of even lengths,
``done`` with ``samples`` = (whole frames before the end) x hop and close 1000; or (start and PCM,
then) one error message and the expected close code (1007, 1009; 1013 whenever the service is
full; a key refused with HTTP 403 before the handshake, the close 1008 of the middleware) --
never 1011 or no close frame (but over uvicorn's 16 MiB message limit, whose 1009 a TCP reset
can overtake), never more than :data:`SESSION_S` (nothing after the close can
be seen: the client stops reading at the close frame). After every case the service
must be healthy (:func:`health_problems`): ``/healthz``, a small stream to its ``done``, the
queue back to empty, no traceback in its output.

    python tests/serve_fuzz.py --websocket --examples 500 --seed 1   # a campaign
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import struct
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import seed as hypothesis_seed

from stream_sessions import (
    ABANDONS,
    BANDS,
    END,
    EXPLICIT_CASES,
    HOP,
    MAX_SECONDS,
    RATE,
    Binary,
    Expected,
    Pause,
    Session,
    Text,
    cases,
    expect,
)

SESSION_S = 30.0  # the longest a session may take
IDLE_S = 0.5  # how long a client without an end waits to see that nothing ends the stream
KEY = "stream-fuzz-key-0123456789"
SERVER_OPTIONS = (
    "--max-seconds", str(MAX_SECONDS), "--chunk-frames", "16", "--stream-min-frames", "4",
    "--threads", "1", "--queue", "8", "--api-key", KEY,
)  # fmt: skip
# the client library logs its own races with its reading thread when a connection drops;
# what the client sees is checked through its API
QUIET = logging.getLogger("stream_fuzz.client")
QUIET.disabled = True
ALARMS = re.compile(r"Traceback|Exception in ASGI|never retrieved|^ERROR", re.MULTILINE)


# ---------------------------------------------------------------------------- one session
@dataclass
class Observed:
    """What a client saw: the messages in order, the code of the server's close frame (None:
    no close frame), the HTTP status of a refused handshake, an unexpected problem."""

    messages: list[str | bytes] = field(default_factory=list)
    close: int | None = None
    refused: int | None = None
    problem: str = ""
    sent: int = 0
    seconds: float = 0.0


def _headers(auth: str) -> dict[str, str]:
    return {"key": {"X-API-Key": KEY}, "wrong": {"X-API-Key": "wrong" + KEY}}.get(auth, {})


def run_session(port: int, session: Session) -> Observed:
    """Play ``session`` against the service on ``port`` and record what came back."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    observed, started = Observed(), time.monotonic()
    url = f"ws://127.0.0.1:{port}/v1/stream{session.query}"
    try:
        with connect(url, additional_headers=_headers(session.auth), proxy=None,
                     open_timeout=SESSION_S, close_timeout=5, max_size=None,
                     logger=QUIET) as connection:  # fmt: skip
            _converse(connection, session, observed, started + SESSION_S)
    except InvalidStatus as error:
        observed.refused = error.response.status_code
    except Exception as error:  # noqa: BLE001 - a failed handshake or close: recorded
        observed.problem = f"connection: {type(error).__name__}: {error}"
    observed.seconds = time.monotonic() - started
    return observed


def _converse(connection, session: Session, observed: Observed, deadline: float) -> None:  # noqa: ANN001
    try:
        _play(connection, session, observed)
        if session.tail not in ABANDONS:
            _collect(connection, session, observed, deadline)
    except Exception as error:  # noqa: BLE001 - recorded (checked unless abandoned)
        observed.problem = f"client: {type(error).__name__}: {error}"
    finally:  # a dropped connection: without a close frame
        if session.tail in ("eof", "reset"):
            connection.close_socket()


def _play(connection, session: Session, observed: Observed) -> None:  # noqa: ANN001
    """Send the actions (until the service closes), then do the tail."""
    from websockets.exceptions import ConnectionClosed

    try:
        for action in session.actions:
            if isinstance(action, Pause):
                time.sleep(action.seconds)
                continue
            connection.send(action.text if isinstance(action, Text) else action.payload())
            observed.sent += 1
        if session.tail == "end":
            connection.send(END)
            observed.sent += 1
    except ConnectionClosed:
        return  # the service closed (an error): what it sent is read next
    with contextlib.suppress(OSError):  # the service may have closed the connection already
        if session.tail == "close":
            connection.close(session.close_code)
        elif session.tail == "eof":  # TCP FIN, no close frame
            connection.socket.shutdown(socket.SHUT_WR)
        elif session.tail == "reset":  # TCP RST (at close_socket), no close frame
            linger = struct.pack("ii", 1, 0)
            connection.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)


def _collect(connection, session: Session, observed: Observed, deadline: float) -> None:  # noqa: ANN001
    """Read until the service closes (or, without an end, for :data:`IDLE_S`)."""
    from websockets.exceptions import ConnectionClosed

    idle_until = time.monotonic() + IDLE_S if session.tail == "idle" else deadline
    while True:
        try:
            message = connection.recv(
                timeout=max(0.0, min(deadline, idle_until) - time.monotonic())
            )
        except ConnectionClosed as closed:
            observed.close = closed.rcvd.code if closed.rcvd is not None else None
            return
        except TimeoutError:
            if session.tail == "idle" and time.monotonic() < deadline:
                return  # nothing ended the stream, as it should be
            observed.problem = f"no close within {SESSION_S:.0f} s"
            return
        observed.messages.append(message)


# ---------------------------------------------------------------------------- the property
def _token(message: str | bytes) -> tuple[str, object]:
    """("pcm", bytes) or (the JSON message's type, the message)."""
    if isinstance(message, bytes):
        return "pcm", message
    try:
        parsed = json.loads(message)
    except ValueError:
        return "garbage", message
    return (parsed.get("type", "untyped") if isinstance(parsed, dict) else "untyped"), parsed


def check(expected: Expected, observed: Observed, busy_ok: bool = True) -> list[str]:
    """What is wrong with ``observed`` for a session of ``expected`` (nothing: [])."""
    if expected.outcome == "abandoned":
        return []
    if expected.outcome == "refused":
        ok = observed.refused == expected.code and not observed.messages
        return [] if ok else [f"expected HTTP {expected.code}, got {_seen(observed)}"]
    problems = [observed.problem] if observed.problem else []
    if observed.seconds > SESSION_S:
        problems.append(f"took {observed.seconds:.1f} s")
    tokens = [_token(message) for message in observed.messages]
    kinds = "".join(KIND_LETTERS.get(kind, "?") for kind, _ in tokens)
    if busy_ok and kinds == "e" and observed.close == 1013:
        return problems  # the service was full: refused before the start, as documented
    problems += _check_sequence(expected, kinds, tokens, observed.close)
    if tokens and tokens[0][0] == "start":
        problems += _check_start(expected, tokens[0][1])
    return problems


KIND_LETTERS = {"start": "s", "pcm": "p", "done": "d", "error": "e"}
GRAMMAR = {"done": "sp*d", "open": "sp*", "error": "sp*e", "error before start": "e"}


def _check_sequence(expected: Expected, kinds: str, tokens: list, close: int | None) -> list[str]:
    outcome = expected.outcome
    grammar = GRAMMAR["error before start" if not expected.started else outcome]
    code = {"done": 1000, "open": None}.get(outcome, expected.code)
    # over its message limit the WebSocket protocol closes (1009) with no message of the service;
    # uvicorn drops the TCP connection while the client still sends: the reset may beat the close
    if expected.quiet and close in (1009, None) and re.fullmatch("sp*", kinds):
        grammar, code = "sp*", close
    problems = []
    if not re.fullmatch(grammar, kinds):
        problems.append(f"messages {kinds!r} do not match {grammar!r}")
    if close != code:
        problems.append(f"close {close}, expected {code}")
    pcm = [body for kind, body in tokens if kind == "pcm"]
    if any(len(body) % 2 for body in pcm):
        problems.append("a PCM message of an odd length")
    for kind, body in tokens:
        if kind == "done" and body != {"type": "done", "samples": expected.frames * HOP}:
            problems.append(f"{body}, expected {expected.frames} frames x {HOP} samples")
        if kind == "done" and sum(map(len, pcm)) != 2 * expected.frames * HOP:
            problems.append(f"{sum(map(len, pcm))} bytes of PCM for {expected.frames} frames")
        if kind == "error" and not (isinstance(body.get("message"), str) and body["message"]):
            problems.append(f"an error without a message: {body}")
    return problems


def _check_start(expected: Expected, start: dict) -> list[str]:
    wanted = {"type": "start", "sample_rate": RATE, "sigma": expected.sigma,
              "n_mel_channels": BANDS, "hop_length": HOP}  # fmt: skip
    problems = [f"start {name}={start.get(name)!r}, expected {value!r}"
                for name, value in wanted.items() if start.get(name) != value]  # fmt: skip
    if expected.seed is not None and start.get("seed") != expected.seed:
        problems.append(f"start seed {start.get('seed')!r}, expected {expected.seed}")
    if not isinstance(start.get("seed"), int) or not isinstance(start.get("lookahead"), int):
        problems.append(f"start without an integer seed and lookahead: {start}")
    return problems


def _seen(observed: Observed) -> str:
    kinds = [_token(message)[0] for message in observed.messages]
    return (
        f"refused {observed.refused}, messages {kinds}, close {observed.close} {observed.problem}"
    )


# ---------------------------------------------------------------------------- the service's health
PROBE = Session((("seed", "1"),), "key", (Binary(5, seed=1),), "end")


def health_problems(server) -> list[str]:  # noqa: ANN001 - a serve_server.Server
    """Whether the service still serves: alive, /healthz 200, a small stream to its done, the
    queue empty again within 10 s (no request left behind)."""
    if server.process.poll() is not None:
        return [f"the service exited with {server.process.returncode}"]
    problems = []
    status = server.client.get("/healthz").status_code
    if status != 200:
        problems.append(f"/healthz answered {status}")
    probe = check(expect(PROBE), run_session(server.port, PROBE), busy_ok=False)
    problems += [f"the probe stream: {problem}" for problem in probe]
    deadline = time.monotonic() + 10
    while (depth := _queue_depth(server)) != 0:
        if time.monotonic() > deadline:
            problems.append(f"the queue holds {depth} requests with no client left")
            break
        time.sleep(0.05)
    return problems


def _queue_depth(server) -> float:  # noqa: ANN001
    text = server.client.get("/metrics", headers=_headers("key")).text
    line = next(line for line in text.splitlines() if line.startswith("waveglow_queue_depth "))
    return float(line.split()[-1])


def log_alarms(lines: list[str]) -> list[str]:
    """The lines of the service's output that tell of an error (access log lines aside)."""
    return [line.rstrip() for line in lines if not line.startswith("INFO:") and ALARMS.search(line)]


# ---------------------------------------------------------------------------- the run
@dataclass
class StreamReport:
    """What the stream fuzz did: cases, sessions, actions, messages, outcomes, close codes."""

    cases: int = 0
    sessions: int = 0
    actions: int = 0
    sent: int = 0
    received: int = 0
    pcm: int = 0
    outcomes: Counter = field(default_factory=Counter)
    closes: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    slowest_s: float = 0.0

    def add(self, session: Session, expected: Expected, observed: Observed) -> None:
        self.sessions += 1
        self.actions += len(session.actions) + 1  # and the tail
        self.sent += observed.sent
        self.received += len(observed.messages)
        self.pcm += sum(isinstance(message, bytes) for message in observed.messages)
        self.outcomes[expected.outcome] += 1
        self.closes[_close_label(session, observed)] += 1
        self.slowest_s = max(self.slowest_s, observed.seconds)
        problems = check(expected, observed)
        if problems:
            self.failures.append(
                f"{session.describe()} ({expected.outcome}): {'; '.join(problems)}"
            )

    def summary(self) -> str:
        closes = ", ".join(f"{label}: {count}" for label, count in sorted(self.closes.items()))
        outcomes = ", ".join(f"{label}: {count}" for label, count in sorted(self.outcomes.items()))
        lines = [
            f"{self.cases} cases, {self.sessions} sessions, {self.actions} actions, "
            f"{self.sent} messages sent, {self.received} received ({self.pcm} of PCM), "
            f"{len(self.failures)} failures, "
            f"slowest session {self.slowest_s:.2f} s",
            f"  expected outcomes: {outcomes}",
            f"  closes seen: {closes}",
        ]
        return "\n".join(lines + [f"  FAILURE {failure}" for failure in self.failures[:20]])


def _close_label(session: Session, observed: Observed) -> str:
    if observed.refused is not None:
        return f"HTTP {observed.refused}"
    if session.tail in ABANDONS:
        return f"client {session.tail}"
    if observed.close is None:
        return "client close (idle)" if session.tail == "idle" else "no close frame"
    return str(observed.close)


def run_case(server, sessions: list[Session], report: StreamReport) -> None:  # noqa: ANN001
    """Play ``sessions`` at once, check each, then the service's health and output."""
    mark = len(server.lines)
    with ThreadPoolExecutor(len(sessions)) as pool:
        observed = list(pool.map(lambda session: run_session(server.port, session), sessions))
    for session, seen in zip(sessions, observed, strict=True):
        report.add(session, expect(session), seen)
    report.cases += 1
    problems = health_problems(server) + log_alarms(server.lines[mark:])
    if problems:
        described = " + ".join(session.describe() for session in sessions)
        report.failures.append(f"after {described}: {'; '.join(problems)}")


def fuzz_stream(server, examples: int, seed: int | None = None) -> StreamReport:  # noqa: ANN001
    """The written-out cases, then ``examples`` generated ones against ``server`` (started with
    :data:`SERVER_OPTIONS`); derandomized unless a ``seed`` is given."""
    report = StreamReport()

    @settings(max_examples=examples, deadline=None, database=None, derandomize=seed is None,
              suppress_health_check=list(HealthCheck),
              phases=[Phase.explicit, Phase.generate])  # fmt: skip
    @given(cases())
    def one(sessions: list[Session]) -> None:
        run_case(server, sessions, report)

    for case in EXPLICIT_CASES:
        one = example(case)(one)

    (one if seed is None else hypothesis_seed(seed)(one))()
    if server.process.poll() is not None:
        report.failures.append(f"the service exited with {server.process.returncode}")
    return report
