"""Soak ``waveglow serve``: mixed traffic for minutes, with the server's memory and descriptors
sampled as it goes.

    python bench/serve_soak.py --minutes 10 --clients 8 --out out/serve-soak

A real server on loopback (the tiny model of ``tests/serve_server.py`` unless ``--checkpoint``),
``--clients`` threads each sending, at random: whole and streamed mels, audio uploads, bad inputs,
streamed requests dropped after the first chunk, Griffin-Lim, and bursts of ``2 x --queue``
requests at once (past the queue: 503 with Retry-After is the service's answer). Every
``--sample-s`` seconds the server's resident memory (VmRSS) and open descriptors are read from
``/proc``. The report: requests by kind and status, the 5xx that are not a full queue (must be 0),
the least-squares slopes of RSS and descriptors after ``--warmup-minutes``, and the latency
percentiles of whole requests over time. Run it niced on a shared machine and name the machine.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import soundfile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

KINDS = ("whole", "stream", "audio", "bad", "disconnect", "burst", "griffin-lim")
WEIGHTS = (30, 20, 15, 15, 10, 3, 2)


@dataclass
class Log:
    """Everything the soak saw; threads append under ``lock``."""

    started: float = field(default_factory=time.monotonic)
    requests: list[tuple[float, str, int, float]] = field(default_factory=list)
    samples: list[tuple[float, int, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, status: int, seconds: float) -> None:
        with self.lock:
            self.requests.append((time.monotonic() - self.started, kind, status, seconds))


# ---------------------------------------------------------------------------- bodies
def npy_mel(frames: int, generator: random.Random) -> bytes:
    mel = np.random.default_rng(generator.randrange(2**31)).standard_normal((80, frames)) - 5
    buffer = io.BytesIO()
    np.save(buffer, mel.astype(np.float32))
    return buffer.getvalue()


def wav(seconds: float) -> bytes:
    samples = np.arange(int(22050 * seconds)) / 22050
    buffer = io.BytesIO()
    soundfile.write(buffer, 0.3 * np.sin(2 * np.pi * 220 * samples), 22050, format="WAV")
    return buffer.getvalue()


BAD_BODIES = (b"", b"\x93NUMPY\x01\x00garbage", b"PK\x03\x04broken zip", b"not a mel at all",
              b"\x80\x02}q\x00.")  # fmt: skip


# ---------------------------------------------------------------------------- traffic
def one_request(
    client: httpx.Client, kind: str, generator: random.Random, log: Log, queue: int
) -> None:
    started = time.perf_counter()
    try:
        status = _send(client, kind, generator, log, queue)
    except httpx.HTTPError:
        status = -1  # the connection failed: counted apart, never hidden
    if status is not None:
        log.add(kind, status, time.perf_counter() - started)


def _send(
    client: httpx.Client, kind: str, generator: random.Random, log: Log, queue: int
) -> int | None:
    frames = generator.randint(20, 200)
    params = {"seed": generator.randrange(1000)}
    if kind == "whole":
        return client.post(
            "/v1/synthesize", content=npy_mel(frames, generator), params=params
        ).status_code
    if kind in ("stream", "disconnect"):
        params["stream"] = "true"
        with client.stream(
            "POST", "/v1/synthesize", content=npy_mel(frames, generator), params=params
        ) as response:
            for _ in response.iter_bytes():
                if kind == "disconnect":
                    break  # leaves mid-stream: the job must be cancelled, nothing must leak
            return response.status_code
    if kind == "audio":
        files = {"file": ("a.wav", wav(generator.uniform(0.1, 1.0)), "audio/wav")}
        return client.post("/v1/copy-synthesis", files=files, params=params).status_code
    if kind == "griffin-lim":
        return client.post("/v1/griffin-lim", content=wav(0.3)).status_code
    if kind == "bad":
        return client.post("/v1/synthesize", content=generator.choice(BAD_BODIES)).status_code
    _burst(client, generator, log, queue)
    return None


def _burst(client: httpx.Client, generator: random.Random, log: Log, queue: int) -> None:
    """``2 x queue`` short requests at once, from their own connections."""
    bodies = [npy_mel(20, generator) for _ in range(2 * queue)]

    def send(body: bytes) -> None:
        started = time.perf_counter()
        try:
            with httpx.Client(base_url=str(client.base_url), timeout=120) as own:
                status = own.post("/v1/synthesize", content=body).status_code
        except httpx.HTTPError:
            status = -1
        log.add("burst", status, time.perf_counter() - started)

    with ThreadPoolExecutor(len(bodies)) as pool:
        list(pool.map(send, bodies))


def client_loop(url: str, seed: int, deadline: float, log: Log, queue: int, limit: int) -> None:
    generator = random.Random(seed)
    with httpx.Client(base_url=url, timeout=120) as client:
        for _ in range(limit):
            if time.monotonic() > deadline:
                return
            kind = generator.choices(KINDS, WEIGHTS)[0]
            one_request(client, kind, generator, log, queue)


def sampler(pid: int, deadline: float, every: float, log: Log) -> None:
    while time.monotonic() < deadline:
        try:
            rss = _vm_rss(pid)
            fds = len(list(Path(f"/proc/{pid}/fd").iterdir()))
        except OSError:
            return
        with log.lock:
            log.samples.append((time.monotonic() - log.started, rss, fds))
        time.sleep(every)


def _vm_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


# ---------------------------------------------------------------------------- report
def slope_per_minute(points: list[tuple[float, float]]) -> float:
    """The least-squares slope of (seconds, value) points, per minute."""
    if len(points) < 2:
        return 0.0
    x, y = np.array([p[0] for p in points]), np.array([p[1] for p in points], dtype=float)
    return float(np.polyfit(x, y, 1)[0] * 60)


def report(log: Log, warmup_s: float, window_s: float) -> dict:
    statuses: dict[str, dict[str, int]] = {}
    for _, kind, status, _ in log.requests:
        by_kind = statuses.setdefault(kind, {})
        by_kind[str(status)] = by_kind.get(str(status), 0) + 1
    errors = [r for r in log.requests if r[2] >= 500 and r[2] != 503]  # 503: queue full, by design
    late = [s for s in log.samples if s[0] >= warmup_s]
    whole = [
        (t, seconds)
        for t, kind, status, seconds in log.requests
        if kind == "whole" and status == 200
    ]
    windows = []
    for start in np.arange(0, max((t for t, _ in whole), default=0) + 1e-9, window_s):
        chunk = [s for t, s in whole if start <= t < start + window_s]
        if chunk:
            p50, p95, p99 = np.percentile(chunk, [50, 95, 99])
            windows.append({"from_min": round(start / 60, 1), "n": len(chunk), "p50_s": round(p50, 3),
                            "p95_s": round(p95, 3), "p99_s": round(p99, 3)})  # fmt: skip
    return {
        "requests": len(log.requests),
        "statuses": statuses,
        "server_errors_not_queue_full": len(errors),
        "queue_full_503_outside_bursts": sum(1 for r in log.requests if r[2] == 503 and r[1] != "burst"),
        "queue_full_503": sum(1 for r in log.requests if r[2] == 503),
        "connection_failures": sum(1 for r in log.requests if r[2] == -1),
        "rss_mib_first_last_after_warmup": [round(late[0][1] / 2**20, 1), round(late[-1][1] / 2**20, 1)] if late else [],
        "rss_slope_mib_per_min": round(slope_per_minute([(t, r / 2**20) for t, r, _ in late]), 3),
        "fd_first_last_after_warmup": [late[0][2], late[-1][2]] if late else [],
        "fd_slope_per_min": round(slope_per_minute([(t, f) for t, _, f in late]), 3),
        "samples": len(log.samples),
        "latency_whole_by_window": windows,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=8, help="4 to 16 (default 8)")
    parser.add_argument("--queue", type=int, default=8)
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: a tiny model")
    parser.add_argument("--sample-s", type=float, default=5.0)
    parser.add_argument("--warmup-minutes", type=float, default=2.0)
    parser.add_argument("--window-minutes", type=float, default=2.0)
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "serve-soak")
    args = parser.parse_args(argv)
    from fuzz import machine
    from serve_server import Server, write_tiny_checkpoint

    folder = Path(tempfile.mkdtemp(prefix="serve-soak-"))
    checkpoint = args.checkpoint or write_tiny_checkpoint(folder / "tiny.pt")
    options = ("--queue", str(args.queue), "--max-batch", "4", "--chunk-frames", "32",
               "--max-seconds", "10", "--threads", "1")  # fmt: skip
    log = Log()
    with Server(checkpoint, *options) as server:
        deadline = time.monotonic() + args.minutes * 60
        threads = [
            threading.Thread(
                target=sampler, args=(server.process.pid, deadline, args.sample_s, log)
            )
        ]
        threads += [threading.Thread(target=client_loop, args=(server.url, seed, deadline, log, args.queue, 100_000))
                    for seed in range(args.clients)]  # fmt: skip
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        alive = server.client.get("/healthz").status_code
    result = {"machine": machine(), "minutes": args.minutes, "clients": args.clients, "queue": args.queue,
              "healthz_after": alive, **report(log, args.warmup_minutes * 60, args.window_minutes * 60)}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(result, indent=1))
    (args.out / "samples.json").write_text(json.dumps(log.samples))
    print(json.dumps(result, indent=1))
    return 0 if result["server_errors_not_queue_full"] == 0 and alive == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
