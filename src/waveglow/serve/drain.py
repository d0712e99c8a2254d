"""SIGTERM/SIGINT with open WebSocket streams: finish them before uvicorn shuts down.

uvicorn's shutdown closes every open WebSocket at once (code 1012), whatever its graceful
timeout, so the streams must be finished before it starts. :class:`DrainingServer` does that: on
the first signal it closes the :class:`StreamGate` (new streams are refused with 1013, new HTTP
requests with 503) and lets the open streams run to their ``done`` (their clients send their
last frames and ``{"type": "end"}``); once none is open, or after ``patience_s``, uvicorn's own
shutdown runs (in-flight HTTP requests finished, the worker stopped; streams still open then
are closed with 1012). A second signal shuts down at once.
"""

from __future__ import annotations

import time
from types import FrameType

import uvicorn
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

PATIENCE_S = 60.0  # the longest wait for open streams after a signal


class StreamGate:
    """The open streams of one app, and whether new ones (and HTTP requests) are refused."""

    def __init__(self) -> None:
        self.open = 0
        self.closing = False
        self.deadline = float("inf")

    def close(self, patience_s: float) -> None:
        self.closing = True
        self.deadline = time.monotonic() + patience_s

    @property
    def drained(self) -> bool:
        return self.open == 0 or time.monotonic() > self.deadline


def install_gate(app: FastAPI) -> StreamGate:
    """A gate on ``app`` (``app.state.stream_gate``) and the middleware that answers HTTP
    requests with 503 while it is closing."""
    gate = StreamGate()
    app.state.stream_gate = gate

    @app.middleware("http")
    async def refuse_while_closing(request, call_next):  # noqa: ANN001, ANN202
        if gate.closing:
            return PlainTextResponse(
                "the service is shutting down\n", 503, headers={"Connection": "close"}
            )
        return await call_next(request)

    return gate


class DrainingServer(uvicorn.Server):
    """uvicorn's server, waiting for the gate's open streams before it shuts down."""

    def __init__(self, config: uvicorn.Config, gate: StreamGate, patience_s: float = PATIENCE_S):
        super().__init__(config)
        self.gate, self.patience_s = gate, patience_s

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        first = not self.gate.closing
        super().handle_exit(sig, frame)  # records the signal (re-raised after the shutdown)
        if first:
            self.gate.close(self.patience_s)
            self.should_exit = self.gate.drained

    async def on_tick(self, counter: int) -> bool:
        if self.gate.closing and self.gate.drained:
            self.should_exit = True
        return await super().on_tick(counter)
