"""``waveglow serve`` (a real subprocess, a real ``websockets`` client): SIGTERM lets open
streams finish and refuses new ones; ``POST /v1/synthesize`` converts foreign mels."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
websockets_sync = pytest.importorskip("websockets.sync.client")
from websockets.exceptions import ConnectionClosed  # noqa: E402

from serve_server import HOP, Server, write_tiny_checkpoint  # noqa: E402
from test_serve import mel, npy  # noqa: E402


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("drain") / "tiny.pt")


def test_sigterm_finishes_open_streams_and_refuses_new_ones(checkpoint: Path):
    server = Server(checkpoint, "--chunk-frames", "16", "--threads", "1")
    frames = np.ascontiguousarray(mel(60, seed=4).T, dtype="<f4")  # (F, M)
    expected = server.client.post("/v1/synthesize?seed=4", content=npy(mel(60, 4))).content[44:]
    url = f"ws://127.0.0.1:{server.port}/v1/stream?seed=4"
    with websockets_sync.connect(url) as stream:
        assert json.loads(stream.recv())["type"] == "start"
        stream.send(frames[:30].tobytes())
        pcm = [stream.recv(timeout=30)]  # audio is flowing
        server.terminate()
        time.sleep(0.5)
        with websockets_sync.connect(url) as late:  # a new stream is refused
            error = json.loads(late.recv())
            assert error["type"] == "error" and "shutting down" in error["message"]
            with pytest.raises(ConnectionClosed) as closed:
                late.recv()
            assert closed.value.rcvd.code == 1013
        assert httpx.post(f"{server.url}/v1/synthesize", content=npy(mel(5))).status_code == 503
        stream.send(frames[30:].tobytes())
        stream.send(json.dumps({"type": "end"}))
        while isinstance(message := stream.recv(timeout=30), bytes):
            pcm.append(message)
        assert json.loads(message) == {"type": "done", "samples": 60 * HOP}
        with pytest.raises(ConnectionClosed) as closed:
            stream.recv(timeout=30)
        assert closed.value.rcvd.code == 1000
    assert b"".join(pcm) == expected
    assert server.process.wait(30) == 0
    output = server.stop()
    assert "Traceback" not in output, output


def test_synthesize_converts_a_foreign_mel(checkpoint: Path):
    ours = mel(20, seed=2)  # (M, F) natural log
    foreign = (ours / math.log(10)).T.copy()  # (F, M) log10
    with Server(checkpoint, "--chunk-frames", "16", "--threads", "1") as server:
        expected = server.client.post("/v1/synthesize?seed=1", content=npy(ours))
        query = "?seed=1&transpose=true&mel_scale=log10"
        converted = server.client.post(f"/v1/synthesize{query}", content=npy(foreign))
        form = server.client.post(
            "/v1/synthesize?seed=1", files={"file": ("m.npy", npy(foreign))},
            data={"transpose": "1", "mel_scale": "log10"},
        )  # fmt: skip
        bad = server.client.post("/v1/synthesize?mel_scale=log2", content=npy(foreign))
    assert expected.status_code == converted.status_code == form.status_code == 200
    pcm = [np.frombuffer(r.content[44:], "<i2").astype(int) for r in (expected, converted, form)]
    assert np.abs(pcm[0] - pcm[1]).max() <= 1 and np.abs(pcm[0] - pcm[2]).max() <= 1
    assert bad.status_code == 400 and "mel scale" in bad.text
