"""``GET /v1/stream`` fuzzed with generated sessions against the real ``waveglow serve``
(``stream_fuzz.py``, ``stream_sessions.py``; a longer campaign:
``python tests/serve_fuzz.py --websocket --examples 500 --seed 1``), and its oracle and property
on sessions and replies written out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("websockets.sync.client")

from serve_server import Server, write_tiny_checkpoint  # noqa: E402
from stream_fuzz import SERVER_OPTIONS, Observed, check, fuzz_stream, log_alarms  # noqa: E402
from stream_sessions import (  # noqa: E402
    END,
    HOP,
    LIMIT_FRAMES,
    Binary,
    Expected,
    Pause,
    Session,
    Text,
    expect,
)

EXAMPLES = 20  # generated cases (one to three sessions each), after the 16 written out:
# ~25 s with the server's start on 2 busy cores


@pytest.mark.slow
def test_generated_stream_sessions_hold_the_protocol(tmp_path: Path):
    checkpoint = write_tiny_checkpoint(tmp_path / "tiny.pt")
    server = Server(checkpoint, *SERVER_OPTIONS)
    try:
        report = fuzz_stream(server, EXAMPLES)
    finally:
        output = server.stop()
    assert not report.failures, report.summary()
    assert not log_alarms(output.splitlines()), output[-3000:]
    for outcome in ("done", "error", "abandoned", "open"):
        assert report.outcomes[outcome] > 0, f"no {outcome} session:\n{report.summary()}"
    for code in ("1000", "1007", "1009", "HTTP 403", "client reset", "client eof"):
        assert report.closes[code] > 0, f"no close {code}:\n{report.summary()}"


def _frames(count: int, **options: object) -> Binary:
    return Binary(count, **options)


@pytest.mark.parametrize(
    ("actions", "tail", "expected"),
    [
        ((), "end", Expected("done", frames=0)),
        ((Text(END), _frames(3)), "end", Expected("done", frames=0)),  # data after the end
        (
            (_frames(3), Text(' {"type": "end", "x": 1}'), Text(END)),
            "idle",
            Expected("done", frames=3),
        ),
        ((_frames(2), Pause(0.0), _frames(5)), "end", Expected("done", frames=7)),
        ((_frames(2),), "idle", Expected("open", frames=2)),
        ((_frames(2, extra=2),), "end", Expected("error", 1007)),
        ((_frames(0, extra=3),), "end", Expected("error", 1007)),
        ((_frames(2, fill="nan"),), "end", Expected("error", 1007)),
        ((_frames(2, fill="huge"),), "end", Expected("done", frames=2)),
        ((_frames(LIMIT_FRAMES), _frames(1)), "end", Expected("error", 1009)),
        ((Text("[" * 10_000),), "end", Expected("error", 1007)),
        ((Text('{"type": "END"}'),), "end", Expected("error", 1007)),
        ((_frames(2),), "reset", Expected("abandoned")),
    ],
)
def test_the_oracle_reads_sessions_as_the_protocol_says(actions, tail, expected):
    seen = expect(Session((("seed", "3"),), "key", actions, tail))
    assert (seen.outcome, seen.code, seen.frames) == (
        expected.outcome, expected.code, expected.frames,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("params", "auth", "outcome", "code"),
    [
        ((("sigma", "nan"),), "key", "error", 1007),
        ((("seed", str(2**63)),), "key", "error", 1007),
        ((("seed", " 7 "), ("sigma", "1e30")), "key", "done", 1000),
        ((), "none", "refused", 403),
        ((), "wrong", "refused", 403),
    ],
)
def test_the_oracle_reads_queries_and_keys(params, auth, outcome, code):
    expected = expect(Session(params, auth))
    assert (expected.outcome, expected.code) == (outcome, code)


START = json.dumps({"type": "start", "sample_rate": 22050, "seed": 3, "sigma": 0.6,
                    "lookahead": 1, "n_mel_channels": 80, "hop_length": 256})  # fmt: skip


@pytest.mark.parametrize(
    ("messages", "close", "fault"),
    [
        ([START, b"\0" * (2 * HOP), json.dumps({"type": "done", "samples": HOP})], 1000, None),
        ([START, json.dumps({"type": "done", "samples": HOP})], 1000, "bytes of PCM"),
        ([START, b"\0" * (2 * HOP), json.dumps({"type": "done", "samples": HOP})], 1011, "close"),
        ([START, b"\0" * (2 * HOP), json.dumps({"type": "done", "samples": HOP})], None, "close"),
        (
            [START, b"\0" * (2 * HOP - 1), b"\0", json.dumps({"type": "done", "samples": HOP})],
            1000,
            "odd",
        ),  # fmt: skip
        ([START, json.dumps({"type": "done", "samples": HOP}), b"\0" * (2 * HOP)], 1000, "match"),
        ([START, json.dumps({"type": "error", "message": "no"})], 1007, "match"),
        ([json.dumps({"type": "error", "message": "busy"})], 1013, None),  # a full service
    ],
)
def test_the_property_fails_wrong_replies(messages, close, fault):
    """The check can fail: one frame's worth of PCM, done and close 1000 is the only right
    answer here."""
    expected = Expected("done", frames=1, seed=3)
    problems = check(expected, Observed(messages, close))
    assert (fault is None) == (not problems), problems
    assert fault is None or fault in "; ".join(problems)


@pytest.mark.parametrize(
    ("messages", "close", "right"),
    [
        ([START, b"\0" * (2 * HOP), json.dumps({"type": "done", "samples": HOP})], 1000, True),
        ([START, b"\0" * (2 * HOP)], 1009, True),  # the WebSocket protocol's own close
        ([START], None, True),  # ... overtaken by the reset of the connection
        ([START, b"\0" * (2 * HOP)], 1011, False),
        ([START, json.dumps({"type": "done", "samples": HOP})], 1009, False),
    ],
)
def test_a_message_over_the_limit_after_the_end_may_cut_the_stream(messages, close, right):
    session = Session((("seed", "3"),), "key", (Binary(1), Text(END), Binary(2**16 + 1)))
    expected = expect(session)
    assert (expected.outcome, expected.frames, expected.quiet) == ("done", 1, True)
    assert (not check(expected, Observed(messages, close))) == right
