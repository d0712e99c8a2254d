"""``GET /v1/stream``: a WebSocket that vocodes mel frames as they arrive (incremental input).

Protocol (query ``sigma``, ``seed``; the seed is drawn when absent):

* client -> server: binary messages, each a whole number of mel frames as float32
  little-endian, frame-major ((n, M) row-major: each frame's M values together); then the text
  message ``{"type": "end"}``;
* server -> client: ``{"type": "start", "sample_rate", "seed", "sigma", "lookahead",
  "n_mel_channels", "hop_length"}``, binary messages of 16-bit little-endian mono PCM as soon as
  it is final, then ``{"type": "done", "samples": N}`` and a normal close (1000).

The windows of :class:`waveglow.streaming.StreamPlan` (exact: ``lookahead`` R) go to the same
worker as the HTTP requests and are batched with them, so the PCM is that of
``POST /v1/synthesize`` for the whole mel with the same seed and sigma (bit for bit with
``--threads 1``). A malformed message gets ``{"type": "error", "message"}`` and close 1007, a
stream over ``--max-seconds`` 1009, a full or stopping service 1013, a failed synthesis 1011;
other requests are not disturbed. After SIGTERM the open streams run to their ``done``
(:mod:`.drain`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator

import numpy as np
import torch
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from ..noise import draw_seed
from ..sizes import context_frames
from ..streaming import StreamPlan, right_context
from .drain import install_gate
from .engine import Job, QueueFullError, queue_and_sink
from .inputs import InputError, parse_options

ENDPOINT = "/v1/stream"
INVALID_DATA, TOO_BIG, INTERNAL, TRY_AGAIN = 1007, 1009, 1011, 1013


class StreamError(Exception):
    """A stream the service ends: ``code`` is the WebSocket close code."""

    def __init__(self, message: str, code: int = INVALID_DATA) -> None:
        super().__init__(" ".join(message.split()))
        self.code = code


def add_stream_route(app: FastAPI, service: object) -> None:
    """Register ``GET /v1/stream`` on ``app`` for ``service`` (a :class:`~.app.Service`)."""

    gate = install_gate(app)

    @app.websocket(ENDPOINT)
    async def stream(websocket: WebSocket) -> None:
        await websocket.accept()
        if gate.closing:  # SIGTERM: the open streams finish, no new one starts
            error = StreamError("the service is shutting down; retry later", TRY_AGAIN)
            await _fail(websocket, service, error, "shutting_down")
            return
        gate.open += 1
        try:
            await run_stream(service, websocket)
        finally:
            gate.open -= 1


def frames_from_message(data: bytes, bins: int) -> torch.Tensor:
    """A binary message as mel frames (M, n); :class:`StreamError` when it is not whole frames
    of finite float32."""
    frame_bytes = 4 * bins
    if len(data) % frame_bytes:
        raise StreamError(
            f"a binary message must hold whole frames of {bins} float32 values "
            f"({frame_bytes} bytes each), got {len(data)} bytes"
        )
    frames = np.frombuffer(data, dtype="<f4").reshape(-1, bins)  # (n, M)
    if not np.isfinite(frames).all():
        raise StreamError("the mel frames contain NaN or infinite values")
    return torch.from_numpy(frames.T.astype(np.float32))  # (M, n)


def is_end(text: str) -> bool:
    """Whether a text message is ``{"type": "end"}``; :class:`StreamError` for anything else."""
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nesting too deep for json
        message = None
    if not isinstance(message, dict) or message.get("type") != "end":
        raise StreamError(
            f'the only text message a client sends is {{"type": "end"}}, got {text[:80]!r}'
        )
    return True


async def run_stream(service, websocket: WebSocket) -> None:  # noqa: ANN001
    """One stream from ``start`` to ``done`` (or an error and its close code)."""
    started = time.perf_counter()
    model, config, metrics = service.model, service.config, service.metrics
    try:
        options = parse_options(dict(websocket.query_params))
    except InputError as error:
        await _fail(websocket, service, StreamError(str(error)), "bad_input")
        return
    seed = draw_seed() if options.seed is None else options.seed
    outputs, sink = queue_and_sink()

    bins = model.config.n_mel_channels
    job = Job(torch.zeros(bins, 0), seed, options.sigma, 0.0, True, sink, window_mels=[])
    job.complete = False
    plan = StreamPlan(
        bins, context_frames(model.config, model.data_config), model.conditioning_reach,
        right_context(model), min(config.stream_min_frames, config.chunk_frames),
        config.chunk_frames,
    )  # fmt: skip
    try:
        service.engine.submit(job)
    except QueueFullError as error:
        await _fail(
            websocket, service, StreamError(f"{error}; retry later", TRY_AGAIN), "queue_full"
        )
        return
    await websocket.send_json(
        {"type": "start", "sample_rate": service.rate, "seed": seed, "sigma": options.sigma,
         "lookahead": plan.lookahead, "n_mel_channels": bins, "hop_length": model.hop_length}
    )  # fmt: skip
    sender = asyncio.create_task(_send_audio(service, websocket, outputs, started))
    sender.add_done_callback(_retrieved)  # the stream may end without awaiting it
    try:
        await _receive_frames(service, websocket, job, plan)
        await sender
    except WebSocketDisconnect:
        service.engine.cancel(job)
        metrics.errors.labels(kind="disconnected").inc()
        sender.cancel()
    except StreamError as error:
        service.engine.cancel(job)
        sender.cancel()
        kind = "too_large" if error.code == TOO_BIG else "bad_input"
        await _fail(websocket, service, error, "internal" if error.code == INTERNAL else kind)


async def _receive_frames(service, websocket: WebSocket, job: Job, plan: StreamPlan) -> None:  # noqa: ANN001
    """Take frames until ``{"type": "end"}``, handing the ready windows to the worker."""
    model, config = service.model, service.config
    limit = int(config.max_seconds * service.rate / model.hop_length)  # frames
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        if message.get("bytes") is not None:
            frames = frames_from_message(message["bytes"], plan.bins)
            if plan.received + frames.size(1) > limit:
                raise StreamError(
                    f"the stream is over this service's limit of {config.max_seconds:g} s "
                    f"({limit} frames)",
                    TOO_BIG,
                )
            service.engine.extend(job, plan.add(frames), False)
        elif is_end(message.get("text") or ""):
            service.engine.extend(job, plan.finish(), True)
            return


async def _send_audio(
    service, websocket: WebSocket, outputs: asyncio.Queue, started: float
) -> None:  # noqa: ANN001
    """Send the PCM as the worker delivers it, then ``done`` and close."""
    samples, first = 0, True
    while True:
        item = await outputs.get()
        if item is None:
            break
        if isinstance(item, Exception):
            raise StreamError(str(item), INTERNAL)
        if first:
            service.metrics.first_audio.labels(endpoint=ENDPOINT, stream="true").observe(
                time.perf_counter() - started
            )
            first = False
        samples += len(item) // 2
        with _refused_as_disconnect():
            await websocket.send_bytes(item)
    with _refused_as_disconnect():
        await websocket.send_json({"type": "done", "samples": samples})
        await websocket.close(1000)
    service.metrics.latency.labels(endpoint=ENDPOINT).observe(time.perf_counter() - started)
    service.metrics.streams.labels(outcome="done").inc()


@contextlib.contextmanager
def _refused_as_disconnect() -> Iterator[None]:
    """A send refused with a RuntimeError as the client's disconnect: uvicorn's WebSocket protocol
    closes a connection by itself (a message over its size limit: 1009) and refuses the sends
    that follow until its disconnect reaches the stream."""
    try:
        yield
    except RuntimeError as error:
        raise WebSocketDisconnect(1006) from error


def _retrieved(task: asyncio.Task) -> None:
    """Mark the exception of a finished sender seen: a stream ended by the client's disconnect
    or a malformed message does not await its sender, and asyncio would log that exception."""
    if not task.cancelled():
        task.exception()


async def _fail(websocket: WebSocket, service, error: StreamError, kind: str) -> None:  # noqa: ANN001
    """Send the error message and close with its code (quietly if the client is gone)."""
    service.metrics.errors.labels(kind=kind).inc()
    service.metrics.streams.labels(outcome=kind).inc()
    with contextlib.suppress(Exception):  # the client may be gone already
        await websocket.send_json({"type": "error", "message": str(error)})
        await websocket.close(error.code)
