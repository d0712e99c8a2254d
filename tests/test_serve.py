"""``waveglow serve`` over real HTTP: the server runs in a subprocess on a free loopback port."""

from __future__ import annotations

import io
import json
import math
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

import waveglow  # noqa: E402
from serve_server import HOP, RATE, Server, write_tiny_checkpoint  # noqa: E402
from waveglow.chunked import _pcm16  # noqa: E402
from waveglow.noise import block_noise  # noqa: E402

CHUNK = 16  # frames: a 1 s request is 6 chunks
MAX_SECONDS = 5


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("serve") / "tiny.pt")


@pytest.fixture(scope="module")
def server(checkpoint: Path):
    options = ["--chunk-frames", str(CHUNK), "--max-seconds", str(MAX_SECONDS)]
    options += ["--max-body-mb", "1", "--threads", "1", "--max-batch", "8"]
    with Server(checkpoint, *options) as running:
        yield running


@pytest.fixture(scope="module")
def slow_server(checkpoint: Path):
    """One request at a time, each chunk 0.2 s: for queue-full and disconnect."""
    options = ["--chunk-frames", str(CHUNK), "--queue", "1", "--debug-batch-delay", "0.2"]
    with Server(checkpoint, *options) as running:
        yield running


def mel(frames: int, seed: int = 0) -> np.ndarray:
    generator = np.random.default_rng(seed)
    return (generator.standard_normal((80, frames)) - 5).astype(np.float32)


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def pcm(wav: bytes) -> np.ndarray:
    """The samples of one of the service's wavs, checking its 44-byte header."""
    assert wav[:4] == b"RIFF" and wav[8:16] == b"WAVEfmt "
    channels, rate = struct.unpack("<HI", wav[22:28])
    bits = struct.unpack("<H", wav[34:36])[0]
    assert (channels, rate, bits) == (1, RATE, 16)
    assert struct.unpack("<I", wav[40:44])[0] == len(wav) - 44
    return np.frombuffer(wav[44:], dtype=np.int16)


def synth(server: Server, array: np.ndarray, **params: object) -> bytes:
    response = server.client.post("/v1/synthesize", content=npy(array), params=params)
    assert response.status_code == 200, response.text
    return response.content


def metric(server: Server, name: str) -> float:
    text = server.client.get("/metrics").text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


# ---------------------------------------------------------------------------- endpoints
def test_health_info_page_openapi_and_metrics(server: Server):
    health = server.client.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    info = server.client.get("/v1/info").json()
    assert info["sampling_rate"] == RATE and info["name"] == "tiny.pt" and info["verdict"] is None
    page = server.client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="audio-waveglow"' in page.text and "http" not in page.text.split("<script>")[1]
    schema = server.client.get("/openapi.json").json()
    paths = schema["paths"]
    assert {
        "/v1/synthesize",
        "/v1/copy-synthesis",
        "/v1/griffin-lim",
        "/healthz",
        "/metrics",
    } <= set(paths)
    synthesize = paths["/v1/synthesize"]["post"]
    assert set(synthesize["requestBody"]["content"]) == {
        "application/octet-stream", "multipart/form-data", "application/json"
    }  # fmt: skip
    assert {p["name"] for p in synthesize["parameters"]} == {"sigma", "seed", "denoise", "stream"}
    assert "audio/wav" in synthesize["responses"]["200"]["content"]
    assert {"400", "413", "503"} <= set(synthesize["responses"])
    text = server.client.get("/metrics").text
    for name in ("waveglow_requests_total", "waveglow_errors_total", "waveglow_queue_depth",
                 "waveglow_batch_size_bucket", "waveglow_synthesis_khz",
                 "waveglow_request_latency_seconds_bucket"):  # fmt: skip
        assert name in text


def test_the_four_ways_of_sending_a_mel_give_the_same_wav(server: Server):
    array = mel(40)
    body = npy(array)
    as_npy = synth(server, array, seed=3)
    buffer = io.BytesIO()
    torch.save(torch.from_numpy(array), buffer)
    as_pt = server.client.post("/v1/synthesize?seed=3", content=buffer.getvalue())
    as_form = server.client.post(
        "/v1/synthesize", files={"file": ("m.npy", body)}, data={"seed": "3"}
    )
    as_json = server.client.post("/v1/synthesize", json={"mel": array.tolist(), "seed": 3})
    assert as_pt.content == as_form.content == as_json.content == as_npy
    assert as_npy and pcm(as_npy).size == 40 * HOP
    audio, rate = soundfile.read(io.BytesIO(as_npy), dtype="int16")
    assert rate == RATE and np.array_equal(audio, pcm(as_npy))
    assert as_json.headers["x-seed"] == "3"
    assert synth(server, array, seed=4) != as_npy


def test_the_service_synthesises_what_the_library_does(server: Server, checkpoint: Path):
    """Same seed: the chunked synthesis with block noise, and the whole utterance, to rounding."""
    array = mel(70, seed=1)
    served = pcm(synth(server, array, seed=11, sigma=0.5)).astype(np.int32)
    model = waveglow.load(checkpoint)
    tensor = torch.from_numpy(array).unsqueeze(0)
    z = block_noise(11, (1, model.n_group), 0, 70, HOP, sigma=0.5)
    chunks = torch.cat(list(model.infer_chunks(tensor, CHUNK, z=z)), dim=1)[0]
    whole = model.infer(tensor, z=z)[0]
    for reference in (chunks, whole):
        assert np.abs(_pcm16(reference).astype(np.int32) - served).max() <= 1


def test_streaming_sends_chunks_equal_to_the_whole_wav(server: Server):
    array = mel(100, seed=2)
    for denoise in (0.0, 0.1):
        whole = synth(server, array, seed=5, denoise=denoise)
        params = {"seed": 5, "stream": "true", "denoise": denoise}
        with server.client.stream("POST", "/v1/synthesize", content=npy(array), params=params) as r:
            assert r.status_code == 200 and r.headers["transfer-encoding"] == "chunked"
            parts = [part for part in r.iter_raw() if part]
        assert b"".join(parts) == whole
        if denoise == 0:
            assert len(parts) >= 3  # the header and the chunks as they were synthesized
    assert synth(server, array, seed=5, denoise=0.1) != synth(server, array, seed=5)


def test_concurrent_requests_of_different_lengths_equal_each_alone(server: Server):
    lengths = [5, 17, 33, 48, 64, 90, 23, 40]
    mels = [mel(frames, seed=10 + i) for i, frames in enumerate(lengths)]
    alone = [synth(server, array, seed=i) for i, array in enumerate(mels)]
    batches_before = metric(server, "waveglow_batch_size_count")
    rows_before = metric(server, "waveglow_batch_size_sum")
    with ThreadPoolExecutor(len(mels)) as pool:
        together = list(pool.map(lambda i: synth(server, mels[i], seed=i), range(len(mels))))
    batches = metric(server, "waveglow_batch_size_count") - batches_before
    rows = metric(server, "waveglow_batch_size_sum") - rows_before
    assert rows == sum(math.ceil(n / CHUNK) for n in lengths)
    assert rows / batches > 1.5, "the concurrent requests were not batched"
    for frames, a, b in zip(lengths, alone, together, strict=True):
        assert pcm(a).size == frames * HOP and a == b


def test_copy_synthesis_reads_any_rate_and_channels(server: Server):
    t = np.arange(44100) / 44100
    stereo = np.stack([np.sin(2 * np.pi * 220 * t), np.sin(2 * np.pi * 330 * t)], 1) * 0.3
    buffer = io.BytesIO()
    soundfile.write(buffer, stereo.astype(np.float32), 44100, format="FLAC")
    upload = buffer.getvalue()
    response = server.client.post("/v1/copy-synthesis?seed=2", content=upload)
    assert response.status_code == 200, response.text
    frames = 1 + RATE // HOP  # the Tacotron 2 mel of 1 s at 22050 Hz (centred STFT)
    assert pcm(response.content).size == frames * HOP
    form = server.client.post(
        "/v1/copy-synthesis", files={"file": ("a.flac", upload)}, data={"seed": 2}
    )
    assert form.content == response.content
    griffin = server.client.post("/v1/griffin-lim", files={"file": ("a.flac", upload)})
    assert griffin.status_code == 200 and pcm(griffin.content).size == frames * HOP
    assert np.abs(pcm(griffin.content)).max() > 100


# ---------------------------------------------------------------------------- bad input
WAV = io.BytesIO()
soundfile.write(WAV, np.zeros(4000, dtype=np.float32), RATE, format="WAV")
BAD_REQUESTS = {
    "wrong channels": ("/v1/synthesize", {"content": npy(mel(10)[:79])}, "(80, frames)"),
    "NaN": ("/v1/synthesize", {"content": npy(np.where(mel(10) > -5, np.nan, mel(10)))}, "NaN"),
    "Inf": ("/v1/synthesize", {"content": npy(np.full((80, 10), np.inf, np.float32))}, "infinite"),
    "JSON NaN": ("/v1/synthesize", {"content": b'{"mel": [[NaN]]}', "headers": {"content-type": "application/json"}}, "(80, frames)"),
    "zero frames": ("/v1/synthesize", {"content": npy(np.zeros((80, 0), np.float32))}, "no frames"),
    "corrupt npy": ("/v1/synthesize", {"content": npy(mel(10))[:100]}, "not a readable mel"),
    "not a mel": ("/v1/synthesize", {"content": b"hello"}, "not a readable mel"),
    "empty body": ("/v1/synthesize", {"content": b""}, "no body"),
    "bad JSON": ("/v1/synthesize", {"content": b"{", "headers": {"content-type": "application/json"}}, "not valid JSON"),
    "JSON without mel": ("/v1/synthesize", {"json": {"sigma": 1}}, '"mel" field'),
    "ragged JSON": ("/v1/synthesize", {"json": {"mel": [[1, 2], [3]]}}, "equally long"),
    "negative sigma": ("/v1/synthesize", {"content": npy(mel(10)), "params": {"sigma": -1}}, "sigma"),
    "bad seed": ("/v1/synthesize", {"json": {"mel": mel(10).tolist(), "seed": "x"}}, "seed"),
    "bad stream": ("/v1/synthesize", {"json": {"mel": mel(10).tolist(), "stream": "maybe"}}, "stream"),
    "form without file": ("/v1/synthesize", {"data": {"seed": "1"}, "files": {"other": ("x", b"1")}}, '"file"'),
    "corrupt audio": ("/v1/copy-synthesis", {"content": WAV.getvalue()[:30]}, "not a readable audio"),
    "text as audio": ("/v1/copy-synthesis", {"content": b"just some text"}, "not a readable audio"),
    "too short audio": ("/v1/copy-synthesis", {"content": WAV.getvalue()[:44 + 200]}, "too short"),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD_REQUESTS)
def test_bad_input_gets_400_with_one_line(server: Server, case: str):
    path, request, expected = BAD_REQUESTS[case]
    response = server.client.post(path, **request)
    assert response.status_code == 400, response.text
    assert response.text.count("\n") == 1 and expected in response.text, response.text


def test_too_long_or_too_big_gets_413_and_the_service_goes_on(server: Server):
    frames = int(MAX_SECONDS * RATE / HOP) + 1
    response = server.client.post("/v1/synthesize", content=npy(mel(frames)))
    assert response.status_code == 413 and "limit of 5 s" in response.text
    too_big = server.client.post("/v1/copy-synthesis", content=b"\0" * (1024 * 1024 + 1))
    assert too_big.status_code == 413 and "byte limit" in too_big.text
    before = metric(server, 'waveglow_errors_total{kind="too_large"}')
    assert before >= 2
    assert pcm(synth(server, mel(10))).size == 10 * HOP


# ---------------------------------------------------------------------------- load and lifecycle
def test_a_full_queue_gets_503_with_retry_after(slow_server: Server):
    params = {"stream": "true", "seed": 1}
    with slow_server.client.stream(
        "POST", "/v1/synthesize", content=npy(mel(160)), params=params
    ) as r:
        assert r.status_code == 200
        chunks = r.iter_raw()  # one iterator: a dropped one closes the response
        header = next(chunks)  # the request holds the only slot
        refused = slow_server.client.post("/v1/synthesize", content=npy(mel(10)))
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert "queue is full" in refused.text
        assert pcm(header + b"".join(chunks)).size == 160 * HOP
    assert slow_server.client.post("/v1/synthesize", content=npy(mel(10))).status_code == 200


def test_a_client_that_leaves_mid_stream_frees_its_slot(slow_server: Server):
    before = metric(slow_server, 'waveglow_errors_total{kind="disconnected"}')
    client = httpx.Client(base_url=slow_server.url, timeout=30)
    with client.stream("POST", "/v1/synthesize", content=npy(mel(400)), params={"stream": 1}) as r:
        chunks = r.iter_raw()
        next(chunks), next(chunks)  # the header and the first chunk
    client.close()  # 400 frames = 25 chunks = 5 s; the slot must come back long before that
    started = time.monotonic()
    while (
        status := slow_server.client.post("/v1/synthesize", content=npy(mel(10))).status_code
    ) == 503:
        time.sleep(0.1)
    assert status == 200 and time.monotonic() - started < 3
    assert metric(slow_server, 'waveglow_errors_total{kind="disconnected"}') == before + 1
    assert slow_server.client.get("/healthz").json()["queue_depth"] == 0


def test_sigterm_finishes_the_requests_in_flight_and_refuses_new_ones(checkpoint: Path):
    server = Server(checkpoint, "--chunk-frames", str(CHUNK), "--debug-batch-delay", "0.2")
    result: dict[str, httpx.Response] = {}
    request = threading.Thread(
        target=lambda: result.update(
            done=server.client.post("/v1/synthesize", content=npy(mel(160)))
        ),
    )
    request.start()  # 10 chunks: about 2 s
    deadline = time.monotonic() + 10
    while httpx.get(f"{server.url}/healthz").json()["queue_depth"] == 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    server.terminate()
    time.sleep(0.5)
    with pytest.raises(httpx.TransportError):
        httpx.post(f"{server.url}/v1/synthesize", content=npy(mel(10)), timeout=5)
    request.join(30)
    assert result["done"].status_code == 200 and pcm(result["done"].content).size == 160 * HOP
    assert server.process.wait(30) == 0
    output = server.stop()
    assert "Traceback" not in output, output


def test_the_bundled_model_has_its_verdict():
    from waveglow.serve.app import model_verdict

    verdict = model_verdict("demo")
    assert verdict is not None and "intelligible" in verdict and "\n" not in verdict
    assert verdict.endswith(".") and not verdict.endswith(" 0.")  # a whole sentence
    assert json.dumps(verdict)
