"""The real ``waveglow serve`` in a subprocess on a free loopback port, for the serve tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from conftest import four_flows, make_model
from waveglow import DataConfig, save

SRC = Path(__file__).resolve().parents[1] / "src"
# Tiny flows, but the real mel (80 bands, hop 256, 22050 Hz) so uploads behave as in production.
SERVE_TINY = four_flows(n_mel_channels=80, n_group=8, n_channels=16)
HOP = 256
RATE = 22050


def write_tiny_checkpoint(path: Path, seed: int = 0) -> Path:
    """A tiny random WaveGlow whose couplings all transform."""
    return save(make_model(SERVE_TINY, DataConfig(), seed).remove_weight_norm(), path)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """``with Server(checkpoint, "--max-batch", "4") as server: server.client.get(...)``."""

    def __init__(self, checkpoint: Path, *options: str, startup_s: float = 90.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "waveglow", "serve", "-c", str(checkpoint)]
        command += ["--host", "127.0.0.1", "--port", str(self.port), "--precision", "fp32"]
        env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        env["OMP_NUM_THREADS"] = "1"
        self.process = subprocess.Popen(
            [*command, *options],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        # Drain the output as it comes: a full pipe would block the server's event loop on its
        # next access-log line (hundreds of requests fill 64 KiB), and it would stop answering.
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()
        self.client = httpx.Client(base_url=self.url, timeout=60.0)
        self._wait_ready(startup_s)

    def _drain(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    def _wait_ready(self, startup_s: float) -> None:
        deadline = time.monotonic() + startup_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.reader.join(5)
                raise RuntimeError(f"the server exited:\n{''.join(self.lines)}")
            try:
                if self.client.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("the server did not answer /healthz in time")

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    def stop(self) -> str:
        """Stop the server (SIGTERM, then SIGKILL); returns its output."""
        self.client.close()
        if self.process.poll() is None:
            self.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.reader.join(10)
        return "".join(self.lines)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
