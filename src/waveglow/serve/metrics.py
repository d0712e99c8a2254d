"""The service's Prometheus metrics, in a registry of its own (one per app)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
ERROR_KINDS = ("bad_input", "too_large", "queue_full", "disconnected", "internal")
SYNTHESIS_ENDPOINTS = ("/v1/synthesize", "/v1/copy-synthesis")


class Metrics:
    """Requests, errors by kind, queue depth, batch sizes, synthesis speed, latencies."""

    def __init__(self, max_batch: int, sampling_rate: int) -> None:
        self.registry = CollectorRegistry()
        self.sampling_rate = sampling_rate
        self.requests = Counter(
            "waveglow_requests", "HTTP requests by endpoint and status", ["endpoint", "status"],
            registry=self.registry,
        )  # fmt: skip
        self.errors = Counter(
            "waveglow_errors", "failed requests by kind", ["kind"], registry=self.registry
        )
        for kind in ERROR_KINDS:
            self.errors.labels(kind=kind)
        self.queue_depth = Gauge(
            "waveglow_queue_depth", "requests queued or being synthesized", registry=self.registry
        )
        self.batch_size = Histogram(
            "waveglow_batch_size", "chunks per synthesis step",
            buckets=tuple(range(1, max_batch + 1)), registry=self.registry,
        )  # fmt: skip
        self.samples = Counter(
            "waveglow_synthesized_samples", "audio samples synthesized", registry=self.registry
        )
        self.synthesis_seconds = Counter(
            "waveglow_synthesis_seconds", "worker time spent synthesizing", registry=self.registry
        )
        self.khz = Gauge(
            "waveglow_synthesis_khz",
            "samples synthesized per second of worker time, in thousands (all batches so far)",
            registry=self.registry,
        )
        self.latency = Histogram(
            "waveglow_request_latency_seconds", "time from request to the last audio byte",
            ["endpoint"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.first_audio = Histogram(
            "waveglow_time_to_first_audio_seconds", "time from request to the first audio byte",
            ["endpoint", "stream"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        for endpoint in SYNTHESIS_ENDPOINTS:  # every series is exported from the start
            self.latency.labels(endpoint=endpoint)
            for stream in ("true", "false"):
                self.first_audio.labels(endpoint=endpoint, stream=stream)
        self.latency.labels(endpoint="/v1/griffin-lim")
        self._samples = 0
        self._seconds = 0.0
        self.streams = Counter(
            "waveglow_streams", "WebSocket streams (GET /v1/stream) by outcome", ["outcome"],
            registry=self.registry,
        )  # fmt: skip
        for outcome in ("done", *ERROR_KINDS):
            self.streams.labels(outcome=outcome)
        self.first_audio.labels(endpoint="/v1/stream", stream="true")
        self.latency.labels(endpoint="/v1/stream")

    def observe_batch(self, rows: int, samples: int, seconds: float) -> None:
        """One synthesis step of ``rows`` chunks (called from the worker thread only)."""
        self.batch_size.observe(rows)
        self.samples.inc(samples)
        self.synthesis_seconds.inc(seconds)
        self._samples += samples
        self._seconds += seconds
        self.khz.set(self._samples / max(self._seconds, 1e-9) / 1000)

    def render(self) -> bytes:
        return generate_latest(self.registry)
