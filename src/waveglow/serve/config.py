"""The settings of one service instance (what ``waveglow serve`` parses into)."""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_CHUNK_FRAMES = 128  # ~1.5 s at hop 256: the time to the first streamed audio


@dataclass(frozen=True)
class ServeConfig:
    """Everything :func:`waveglow.serve.create_app` needs.

    ``chunk_frames``: the synthesis unit (mel frames); every request, streamed or not, is
    synthesized in these chunks (:meth:`waveglow.model.WaveGlow.chunk_windows`), so a streamed response
    is the non-streamed one byte for byte. ``threads=1`` makes a batched request bit-exact with
    the same request alone (see :mod:`waveglow.serve.engine`). ``batch_delay_s`` slows every batch down (tests only).
    ``api_key``: every endpoint but ``/healthz`` needs it (see :mod:`waveglow.serve.auth`; None: open).
    ``cors_origins``: the origins whose pages may call the service from a browser (none: CORS off).
    """

    checkpoint: str
    host: str = "127.0.0.1"
    port: int = 8000
    precision: str = "auto"
    device: str = "cpu"
    max_batch: int = 8
    max_seconds: float = 60.0
    queue: int = 64
    max_body_bytes: int = 32 * 1024 * 1024
    chunk_frames: int = DEFAULT_CHUNK_FRAMES
    threads: int = 0  # torch intra-op threads of the worker (0: torch's default)
    batch_wait_s: float = 0.005
    batch_delay_s: float = 0.0
    log_level: str = "info"
    stream_min_frames: int = 16  # GET /v1/stream: the fewest frames synthesized at once
    api_key: str | None = field(default=None, repr=False)
    cors_origins: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("max_batch", "queue", "max_body_bytes", "chunk_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.max_seconds > 0:
            raise ValueError(f"max_seconds must be > 0, got {self.max_seconds}")
        if self.threads < 0:
            raise ValueError(f"threads must be >= 0, got {self.threads}")
        if self.batch_wait_s < 0 or self.batch_delay_s < 0:
            raise ValueError("batch_wait_s and batch_delay_s must be >= 0")
        if self.api_key is not None:
            from .auth import check_key

            check_key(self.api_key, "api_key")
