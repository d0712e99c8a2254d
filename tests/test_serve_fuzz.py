"""``waveglow serve`` fuzzed from its own OpenAPI schema, and slow clients that must not block
others (a real server on loopback, see ``serve_server.py``)."""

from __future__ import annotations

import io
import socket
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("schemathesis")

from serve_fuzz import fuzz_schema, mel_bodies  # noqa: E402
from serve_server import Server, write_tiny_checkpoint  # noqa: E402

EXAMPLES = 8  # per operation and generation mode: ~100 requests, ~20 s
SLOW_CLIENTS = 200


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    checkpoint = write_tiny_checkpoint(tmp_path_factory.mktemp("fuzz") / "tiny.pt")
    options = ("--max-seconds", "5", "--max-body-mb", "1", "--chunk-frames", "16", "--threads", "1")
    with Server(checkpoint, *options) as running:
        yield running


def test_every_operation_of_the_schema_holds_under_generated_requests(server):
    report = fuzz_schema(server.url, EXAMPLES)
    assert not report.failures, report.summary()
    assert len(report.cases) == 7, report.summary()  # 3 POST operations, 4 GET
    for label in ("POST /v1/synthesize", "POST /v1/copy-synthesis", "POST /v1/griffin-lim"):
        statuses = report.statuses[label]
        assert statuses.get(200, 0) > 0, f"no generated case reached synthesis:\n{report.summary()}"
        assert statuses.get(400, 0) > 0, f"no case was refused:\n{report.summary()}"


def test_real_mel_bodies_are_what_the_service_reads():
    """The strategy can fail: its bodies are the model's 80 bands."""
    from hypothesis import given, settings

    seen = []

    @settings(max_examples=10, database=None)
    @given(mel_bodies())
    def collect(body):
        seen.append(body[0])

    collect()
    assert {"application/json", "application/octet-stream", "multipart/form-data"} & set(seen)


def _trickle(port: int) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", port), timeout=5)
    connection.sendall(b"POST /v1/synthesize HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n")
    return connection


def test_many_slow_clients_do_not_stop_others_from_being_served(server):
    """Half-open connections trickling bytes (headers never finished, bodies never sent) hold
    no worker: a normal request is served meanwhile, as fast as alone."""
    alone = _timed_request(server)
    slow = [_trickle(server.port) for _ in range(SLOW_CLIENTS)]
    try:
        for _ in range(3):
            for connection in slow:
                connection.sendall(b"X-Slow: 1\r\n")
            time.sleep(0.2)
        crowded = _timed_request(server)
    finally:
        for connection in slow:
            connection.close()
    assert crowded < max(5.0, 10 * alone), (alone, crowded)


def _timed_request(server: Server) -> float:
    buffer = io.BytesIO()
    np.save(buffer, np.full((80, 20), -5.0, dtype=np.float32))
    started = time.perf_counter()
    response = server.client.post("/v1/synthesize", content=buffer.getvalue(), params={"seed": 1})
    assert response.status_code == 200, response.text
    return time.perf_counter() - started


def test_unknown_paths_and_methods_answer_in_one_line_of_text(server):
    for method, path, status in (("GET", "/nope", 404), ("DELETE", "/v1/synthesize", 405)):
        response = server.client.request(method, path)
        assert response.status_code == status
        assert response.headers["content-type"].startswith("text/plain"), response.text
        assert response.text.count("\n") == 1


def test_a_malformed_form_upload_is_a_one_line_400(server):
    response = server.client.post(
        "/v1/griffin-lim",
        content=b"--b\r\nNone--b--\r\n",
        headers={"content-type": "multipart/form-data; boundary=b"},
    )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/plain"), response.text
