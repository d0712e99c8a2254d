"""A bounded load on ``waveglow serve`` over loopback, next to the library's own synthesis speed.

For each model, a real ``waveglow serve`` subprocess on 127.0.0.1 (a free port) gets, for each
level of concurrency (``--clients``, default 1, 4, 16), that many clients each sending a fixed
number of requests (``--requests``) one after the other: the same random log-mel of
``--seconds``, a different seed per request, half of them streamed (``stream=true``) and half
whole, alternating. Every response is checked (200, a wav of the right length); anything else
is an error. A level stops issuing requests at ``--timeout`` seconds (what was not sent is
reported as not done).

Per level: throughput (requests/s and audio kHz: samples delivered per wall second / 1000), p50
and p99 latency (request to last byte), time to the first audio byte (past the 44-byte header)
of streamed and of whole requests (p50), the mean batch of the server's worker and the worker's
own kHz (samples per second of worker time, from /metrics), the peak RSS of the server process
during the level (its VmHWM, reset before the level), errors. Per model, in the same run and
with the server idle: the library's kHz for the same mel, chunked as the service does
(``infer_chunks(chunk_frames)``) and whole (``infer``); the table's "vs library" is the
service's audio kHz over the library's chunked kHz.

Models: ``demo`` (the bundled model) and ``official-256`` (NVIDIA's 256-channel config with
random weights -- small random ``end`` layers so that the couplings transform -- written to a
temporary checkpoint; speed does not depend on the weights' values), or ``--checkpoint``.

    PYTHONPATH=$PWD/src python bench/serve_load.py                  # both models, 1/4/16 clients
    PYTHONPATH=$PWD/src python bench/serve_load.py --quick          # under a minute: a smoke run
    PYTHONPATH=$PWD/src python bench/serve_load.py --models demo --clients 1,8 --json out.json

The clients are threads of this process, so they share the machine with the server: on a small
machine that costs the server a little CPU (a request is ~60 KB of mel and a wav back).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

HOST = "127.0.0.1"  # loopback only: this bench never listens on or calls another address
MODELS = ("demo", "official-256")
WAV_HEADER = 44


@dataclass
class Result:
    """One request as the client saw it."""

    streamed: bool
    ok: bool
    latency_s: float = 0.0
    first_audio_s: float = 0.0
    error: str = ""


@dataclass
class Level:
    """One level of concurrency against one model."""

    model: str
    clients: int
    requests: int
    done: int
    errors: int
    wall_s: float
    requests_per_s: float
    audio_khz: float
    vs_library: float
    latency_p50_s: float
    latency_p99_s: float
    first_audio_streamed_p50_s: float
    first_audio_whole_p50_s: float
    mean_batch: float
    worker_khz: float
    server_peak_rss_mib: float
    error_messages: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------- the model
def checkpoint_for(model: str, directory: Path) -> str:
    """A checkpoint the server can load: ``demo``, or the 256-channel config's random weights."""
    if model == "demo":
        return "demo"
    if model != "official-256":
        return model  # a path given with --checkpoint
    from waveglow import WaveGlow, WaveGlowConfig, save

    torch.manual_seed(0)
    network = WaveGlow(WaveGlowConfig()).remove_weight_norm()
    with torch.no_grad():
        for wn in network.WN:
            wn.end.weight.normal_(0, 0.02)
            wn.end.bias.normal_(0, 0.02)
    return str(save(network, directory / "official-256-random.safetensors"))


def make_mel(frames: int, channels: int = 80) -> np.ndarray:
    """A reproducible log-mel-like input (values around -5, as Tacotron 2 mels of speech)."""
    generator = np.random.default_rng(0)
    return (generator.standard_normal((channels, frames)) - 5).astype(np.float32)


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def library_khz(checkpoint: str, mel: np.ndarray, args: argparse.Namespace) -> dict[str, float]:
    """The library's kHz for ``mel`` in this process: chunked as the service does, and whole."""
    import waveglow

    model = waveglow.load(checkpoint, device=args.device)
    tensor = torch.from_numpy(mel).unsqueeze(0).to(args.device)
    samples = mel.shape[1] * model.hop_length

    def chunked() -> None:
        for _ in model.infer_chunks(tensor, args.chunk_frames, precision=args.precision):
            pass

    def whole() -> None:
        model.infer(tensor, precision=args.precision)

    speeds = {}
    with torch.inference_mode():
        for name, run in (("chunked", chunked), ("whole", whole)):
            run()  # warm-up: the GEMM weight cache, allocator
            best = min(_timed(run, args.device) for _ in range(args.repeat))
            speeds[name] = samples / best / 1000
    return speeds


def _timed(run, device: str) -> float:  # noqa: ANN001
    started = time.perf_counter()
    run()
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


# ---------------------------------------------------------------------------- the server
class ServerProcess:
    """``waveglow serve`` in a subprocess on a free loopback port; its output goes to a file."""

    def __init__(self, checkpoint: str, args: argparse.Namespace, log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://{HOST}:{self.port}"
        command = [sys.executable, "-m", "waveglow", "serve", "-c", checkpoint, "--host", HOST]
        command += ["--port", str(self.port), "--precision", args.precision]
        command += ["--device", args.device, "--max-batch", str(args.max_batch)]
        command += ["--chunk-frames", str(args.chunk_frames), "--threads", str(args.threads)]
        command += ["--queue", str(max(64, 2 * max(args.clients)))]
        self.log = log
        with log.open("w") as output:
            self.process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        self._wait_ready(args.startup_timeout)

    def _wait_ready(self, timeout: float) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited:\n{self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the server did not answer /healthz in {timeout:g} s")

    def reset_peak_rss(self) -> None:
        """Reset the process's VmHWM to its current RSS (Linux; ignored elsewhere)."""
        with contextlib.suppress(OSError):
            Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")

    def peak_rss_mib(self) -> float:
        """VmHWM of the server process in MiB (NaN where /proc is not there)."""
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return float("nan")
        match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
        return int(match.group(1)) / 1024 if match else float("nan")

    def metrics(self) -> dict[str, float]:
        """The worker's counters from /metrics: batches, rows, samples, worker seconds."""
        import httpx

        text = httpx.get(f"{self.url}/metrics", timeout=30).text
        wanted = {
            "waveglow_batch_size_count": "batches",
            "waveglow_batch_size_sum": "rows",
            "waveglow_synthesized_samples_total": "samples",
            "waveglow_synthesis_seconds_total": "seconds",
        }
        values = dict.fromkeys(wanted.values(), 0.0)
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if name in wanted:
                values[wanted[name]] = float(value)
        return values

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


# ---------------------------------------------------------------------------- the load
def one_request(client, body: bytes, seed: int, streamed: bool, expected: int) -> Result:  # noqa: ANN001
    """POST the mel; times to the first audio byte and to the last; checks the wav's length."""
    params = {"seed": seed, "stream": "true" if streamed else "false"}
    started = time.perf_counter()
    first_audio = None
    size = 0
    try:
        with client.stream("POST", "/v1/synthesize", content=body, params=params) as response:
            if response.status_code != 200:
                response.read()
                message = response.text.strip()[:200]
                return Result(streamed, False, error=f"{response.status_code}: {message}")
            for part in response.iter_raw():
                size += len(part)
                if first_audio is None and size > WAV_HEADER:
                    first_audio = time.perf_counter() - started
    except Exception as error:  # noqa: BLE001 - every failure is counted, none ends the run
        return Result(streamed, False, error=f"{type(error).__name__}: {error}")
    latency = time.perf_counter() - started
    if size != expected:
        return Result(streamed, False, latency, error=f"{size} bytes instead of {expected}")
    return Result(streamed, True, latency, first_audio or latency)


def run_level(
    server: ServerProcess, body: bytes, expected: int, clients: int, args: argparse.Namespace
) -> tuple[list[Result], float, int]:
    """``clients`` threads, each sending ``args.requests`` requests in turn until the deadline."""
    import httpx

    results: list[Result] = []
    lock = threading.Lock()
    deadline = time.monotonic() + args.timeout

    def client_loop(index: int) -> None:
        with httpx.Client(base_url=server.url, timeout=args.timeout) as client:
            for number in range(args.requests):
                if time.monotonic() > deadline:
                    return
                seed = index * args.requests + number
                result = one_request(client, body, seed, (index + number) % 2 == 0, expected)
                with lock:
                    results.append(result)

    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, time.perf_counter() - started, clients * args.requests


def summarise(
    model: str,
    clients: int,
    outcome: tuple[list[Result], float, int],
    counters: tuple[dict[str, float], dict[str, float]],
    samples: int,
    library: dict[str, float],
    peak_rss: float,
) -> Level:
    results, wall, asked = outcome
    before, after = counters
    good = [result for result in results if result.ok]
    latencies = [result.latency_s for result in good]
    streamed = [result.first_audio_s for result in good if result.streamed]
    whole = [result.first_audio_s for result in good if not result.streamed]
    khz = len(good) * samples / wall / 1000
    batches = after["batches"] - before["batches"]
    worker_seconds = after["seconds"] - before["seconds"]
    return Level(
        model=model,
        clients=clients,
        requests=asked,
        done=len(results),
        errors=len(results) - len(good),
        wall_s=wall,
        requests_per_s=len(good) / wall,
        audio_khz=khz,
        vs_library=khz / library["chunked"],
        latency_p50_s=_percentile(latencies, 50),
        latency_p99_s=_percentile(latencies, 99),
        first_audio_streamed_p50_s=_percentile(streamed, 50),
        first_audio_whole_p50_s=_percentile(whole, 50),
        mean_batch=(after["rows"] - before["rows"]) / batches if batches else float("nan"),
        worker_khz=(after["samples"] - before["samples"]) / worker_seconds / 1000
        if worker_seconds
        else float("nan"),
        server_peak_rss_mib=peak_rss,
        error_messages=sorted({result.error for result in results if not result.ok})[:5],
    )


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def say(args: argparse.Namespace, message: str) -> None:
    """Progress on stderr, with the seconds since the start."""
    elapsed = time.perf_counter() - args.started
    print(f"[{elapsed:6.1f} s] {message}", file=sys.stderr, flush=True)


def bench_model(model: str, args: argparse.Namespace, directory: Path) -> dict:
    """Every level of ``args.clients`` against one model, and the library's speed."""
    checkpoint = checkpoint_for(model, directory)
    frames = max(1, round(args.seconds * 22050 / 256))
    mel = make_mel(frames)
    body = npy_bytes(mel)
    say(args, f"{model}: measuring the library")
    library = library_khz(checkpoint, mel, args)
    say(args, f"{model}: starting the server")
    server = ServerProcess(checkpoint, args, directory / f"{Path(model).name}-server.log")
    say(args, f"{model}: the server is up")
    levels = []
    try:
        import httpx

        info = httpx.get(f"{server.url}/v1/info", timeout=30).json()
        samples = frames * info["hop_length"]
        expected = WAV_HEADER + 2 * samples
        with httpx.Client(base_url=server.url, timeout=600) as client:
            warm = one_request(client, body, 0, False, expected)
        if not warm.ok:
            raise RuntimeError(f"the warm-up request failed: {warm.error}")
        idle_rss = server.peak_rss_mib()
        for clients in args.clients:
            before = server.metrics()
            server.reset_peak_rss()
            outcome = run_level(server, body, expected, clients, args)
            counters = (before, server.metrics())
            level = summarise(
                model, clients, outcome, counters, samples, library, server.peak_rss_mib()
            )
            levels.append(level)
            say(args, f"{model}: {clients} clients done in {level.wall_s:.1f} s")
    finally:
        code = server.stop()
    return {
        "model": model,
        "checkpoint": checkpoint if model != "official-256" else "random weights (temporary)",
        "architecture": info["architecture"],
        "audio_seconds": samples / info["sampling_rate"],
        "library_khz": library,
        "server_rss_after_warmup_mib": idle_rss,
        "server_exit_code": code,
        "levels": [asdict(level) for level in levels],
    }


# ---------------------------------------------------------------------------- report
COLUMNS = (
    ("model", "model", "{}"),
    ("clients", "clients", "{}"),
    ("done", "requests", "{}"),
    ("errors", "errors", "{}"),
    ("requests_per_s", "req/s", "{:.2f}"),
    ("audio_khz", "audio kHz", "{:.1f}"),
    ("vs_library", "vs library", "{:.2f}x"),
    ("latency_p50_s", "p50 s", "{:.2f}"),
    ("latency_p99_s", "p99 s", "{:.2f}"),
    ("first_audio_streamed_p50_s", "1st audio, stream", "{:.2f}"),
    ("first_audio_whole_p50_s", "1st audio, whole", "{:.2f}"),
    ("mean_batch", "mean batch", "{:.1f}"),
    ("worker_khz", "worker kHz", "{:.1f}"),
    ("server_peak_rss_mib", "server peak MiB", "{:.0f}"),
)


def markdown(report: dict) -> str:
    lines = ["| " + " | ".join(title for _, title, _ in COLUMNS) + " |"]
    lines.append("|" + "---|" * len(COLUMNS))
    for model in report["models"]:
        for level in model["levels"]:
            cells = [form.format(level[key]) for key, _, form in COLUMNS]
            lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for model in report["models"]:
        library = model["library_khz"]
        lines.append(
            f"- {model['model']} ({model['architecture']}; {model['checkpoint']}): "
            f"{model['audio_seconds']:.2f} s per request; library {library['chunked']:.1f} kHz "
            f"chunked ({report['settings']['chunk_frames']} frames, as served), "
            f"{library['whole']:.1f} kHz whole; server RSS after warm-up "
            f"{model['server_rss_after_warmup_mib']:.0f} MiB"
        )
    return "\n".join(lines)


def machine() -> dict:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


# ---------------------------------------------------------------------------- command line
QUICK = {"clients": "1,4", "requests": 2, "seconds": 1.0, "repeat": 1}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models", help=f"comma-separated, from {','.join(MODELS)} (default: both; --quick: demo)"
    )
    parser.add_argument("--checkpoint", help="load this checkpoint instead of --models")
    parser.add_argument("--clients", default="1,4,16", help="concurrency levels (default 1,4,16)")
    parser.add_argument("--requests", type=int, default=2, help="requests per client (default 2)")
    parser.add_argument("--seconds", type=float, default=2.0, help="audio per request (default 2)")
    parser.add_argument("--chunk-frames", type=int, default=128, help="the server's (default 128)")
    parser.add_argument("--max-batch", type=int, default=8, help="the server's (default 8)")
    parser.add_argument("--threads", type=int, default=0, help="server worker threads (0: torch's)")
    parser.add_argument("--precision", default="auto", help="server and library (default auto)")
    parser.add_argument("--device", default="cpu", help="server and library (default cpu)")
    parser.add_argument(
        "--repeat", type=int, default=2, help="library timings, best of (default 2)"
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per level at most")
    parser.add_argument("--startup-timeout", type=float, default=120.0, help=argparse.SUPPRESS)
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: demo, 1 and 4 clients, 2 requests of 1 s"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.quick:
        for name, value in QUICK.items():
            setattr(args, name, value)
        args.models = args.models or "demo"
    args.clients = [int(n) for n in str(args.clients).split(",") if n.strip()]
    if not args.clients or min(args.clients) < 1 or args.requests < 1 or args.seconds <= 0:
        parser.error("--clients, --requests and --seconds must be positive")
    args.models = (
        [args.checkpoint] if args.checkpoint else (args.models or ",".join(MODELS)).split(",")
    )
    unknown = [model for model in args.models if model not in MODELS and not args.checkpoint]
    if unknown:
        parser.error(f"unknown model {unknown[0]!r}: choose from {', '.join(MODELS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.started = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)  # the library measured with the server's threads
    settings = {key: value for key, value in vars(args).items() if key not in ("json", "started")}
    settings["json"] = str(args.json) if args.json else None
    report = {"machine": machine(), "settings": settings, "models": []}
    with tempfile.TemporaryDirectory(prefix="serve-load-") as directory:
        for model in args.models:
            say(args, f"{model}: preparing")
            report["models"].append(bench_model(model, args, Path(directory)))
    print(markdown(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    levels = [level for model in report["models"] for level in model["levels"]]
    failed = sum(level["errors"] + level["requests"] - level["done"] for level in levels)
    if failed:
        print(f"{failed} requests failed or were not sent", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
