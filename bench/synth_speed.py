"""Synthesis speed of WaveGlow: our paths against a straightforward eager NVIDIA-style reference.

Prints one table row per (precision, backend, input length): audio seconds, wall seconds, kHz
(output samples per second / 1000), times real time, the peak RSS of the process that ran it (each
row runs in a fresh subprocess, so the peak belongs to that row), and the speed ratio to the
reference at the same length. Before the table: the machine's GEMM GFLOP/s (fp32, bf16) and the
arithmetic limit in kHz they imply; after it: bf16's waveform relative L2 error against fp32 for the
same z and the relative error of the log-mel.

``--backends`` picks the rows: ``reference`` and ``ours`` (the default), and for comparison on the
CPU ``onnxruntime`` (the ONNX export, WNs as convolutions), ``onnxruntime-gemm`` (the export of the
matrix-product formulation), ``compiled`` (our fp32 GEMM path under ``torch.compile``) and
``compiled-conv`` (our convolution path under ``torch.compile``). These run the whole utterance in
fp32; their setup (export and session, or compilation) is not timed but printed, and their audio's
relative L2 error against our fp32 output for the same z is printed after the table.

    PYTHONPATH=$PWD/src python bench/synth_speed.py                     # 1, 10, 60 s; fp32, bf16
    PYTHONPATH=$PWD/src python bench/synth_speed.py --quick             # 1 s only
    PYTHONPATH=$PWD/src python bench/synth_speed.py --seconds 10 --precisions auto --no-reference
    PYTHONPATH=$PWD/src python bench/synth_speed.py --memory 30,600     # peak RSS flat in length
    PYTHONPATH=$PWD/src python bench/synth_speed.py --device cuda --precisions fp16,bf16
    PYTHONPATH=$PWD/src python bench/synth_speed.py --seconds 10 --precisions fp32 \
        --backends reference,ours,onnxruntime,onnxruntime-gemm,compiled,compiled-conv

Random weights (official 256-channel config) unless ``--checkpoint``; the ``end`` layers get small
random weights so that the couplings really transform (a fresh WaveGlow's are zero).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

MACS_PER_SAMPLE_NOTE = "MACs per output sample, counted from the config"
BACKENDS = ("reference", "ours", "onnxruntime", "onnxruntime-gemm", "compiled", "compiled-conv")
# the whole-utterance fp32 comparison backends and the WN evaluation each one exports or compiles
FP32_PRECISION = {
    "onnxruntime": None,
    "onnxruntime-gemm": "fp32",
    "compiled": "fp32",
    "compiled-conv": None,
}
Runner = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


# ---------------------------------------------------------------------------- model and inputs
SMALL = {"n_flows": 12, "WN_config": {"n_layers": 4, "n_channels": 32}}


def build_model(checkpoint: str | None, device: str, small: bool = False):
    from waveglow import WaveGlow, WaveGlowConfig
    from waveglow.checkpoint import load

    if checkpoint:
        return load(checkpoint, device=device)
    torch.manual_seed(0)
    config = WaveGlowConfig(**SMALL) if small else WaveGlowConfig()
    model = WaveGlow(config).remove_weight_norm().eval()
    with torch.no_grad():
        for wn in model.WN:
            wn.end.weight.normal_(0, 0.02)
            wn.end.bias.normal_(0, 0.02)
    return model.to(device)


def make_inputs(model, seconds: float, device: str, seed: int = 1, with_z: bool = True):
    """A random log-mel-like input of ``seconds`` and a latent z (sigma 0.6), reproducible."""
    hop, group = model.hop_length, model.n_group
    frames = max(1, round(seconds * model.data_config.sampling_rate / hop))
    generator = torch.Generator().manual_seed(seed)
    mel = torch.randn(1, model.config.n_mel_channels, frames, generator=generator) - 5.0
    if not with_z:
        return mel.to(device), None
    z = torch.randn(1, group, frames * hop // group, generator=generator) * 0.6
    return mel.to(device), z.to(device)


def macs_per_sample(model) -> float:
    """Multiply-accumulates per output sample of the inverse flow (WNs dominate)."""
    config, wn = model.config, model.config.WN_config
    total = 0
    for k in range(config.n_flows):
        n_in = config.channels_at(k) // 2
        c, layers = wn.n_channels, wn.n_layers
        per_step = n_in * c + config.n_mel_channels * config.n_group * 2 * c * layers
        per_step += layers * wn.kernel_size * c * 2 * c
        per_step += (layers - 1) * c * 2 * c + c * c + c * 2 * n_in
        total += per_step
    return total / config.n_group


# ---------------------------------------------------------------------------- one measurement
def synthesize(model, backend: str, precision: str, mel, z, chunk_frames: int, stream=False):
    """The audio (1, T); with ``stream``, the chunks are dropped as they come (as a streaming
    consumer would) and the noise is drawn per block, so nothing grows with the length."""
    if stream:
        generator = torch.Generator().manual_seed(0)
        chunks = model.infer_chunks(mel, chunk_frames, generator=generator, precision=precision)
        return torch.empty(1, sum(chunk.size(1) for chunk in chunks))
    if backend == "reference":
        from reference import reference_infer

        return reference_infer(model, mel, z)
    chunks = model.infer_chunks(mel, chunk_frames, z=z, precision=precision)
    return torch.cat(list(chunks), dim=1)


# ---------------------------------------------------------------------------- other runtimes
def onnxruntime_runner(model, precision: str | None, threads: int, directory: str) -> Runner:
    """Export the synthesis graph (WNs as convolutions, or matmuls for "fp32") and open it in
    ONNX Runtime on the CPU with ``threads`` intra-op threads; returns ``(mel, z) -> audio``."""
    import onnxruntime

    from waveglow.export import export_onnx

    path = export_onnx(model, Path(directory) / "waveglow.onnx", precision=precision)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(mel: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        (audio,) = session.run(["audio"], {"mel": mel.numpy(), "z": z.numpy()})
        return torch.from_numpy(audio)  # (B, T)

    return run


def compiled_runner(model, precision: str | None) -> Runner:
    """Our whole-utterance synthesis under ``torch.compile`` (inductor, static shapes): it compiles
    on its first call, so warm it up with the very shapes that are timed."""

    def infer(mel: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return model.infer(mel, z=z, precision=precision)  # (B, T)

    return torch.compile(infer, dynamic=False)


def make_runner(model, spec: dict, chunk_frames: int, directory: str) -> Runner:
    """``(mel, z) -> audio`` for the row's backend (set up, not yet warmed up)."""
    backend = spec["backend"]
    if backend.startswith("onnxruntime"):
        return onnxruntime_runner(model, FP32_PRECISION[backend], spec["threads"], directory)
    if backend.startswith("compiled"):
        return compiled_runner(model, FP32_PRECISION[backend])

    def run(mel: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return synthesize(model, backend, spec["precision"], mel, z, chunk_frames)

    return run


def relative_error(audio: torch.Tensor, expected: torch.Tensor) -> float:
    return ((audio - expected).norm() / expected.norm()).item()


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def worker(spec: dict) -> dict:
    """Run one row in this (fresh) process; returns wall time and peak memory (and, for the
    comparison backends, the untimed setup seconds and, with ``check``, the error against ours)."""
    torch.set_num_threads(spec["threads"])
    device = spec["device"]
    model = build_model(spec["checkpoint"], device, spec["small"])
    chunk_frames = max(1, round(spec["chunk_seconds"] * 22050 / model.hop_length))
    mel, z = make_inputs(model, spec["seconds"], device, with_z=not spec.get("stream"))
    with tempfile.TemporaryDirectory() as directory:
        start = time.perf_counter()
        run = make_runner(model, spec, chunk_frames, directory)
        compiled = spec["backend"].startswith("compiled")
        warm_mel, warm_z = (mel, z) if compiled else make_inputs(model, 0.3, device)
        run(warm_mel, warm_z)  # for "compiled", the compilation (for the timed shapes)
        setup = time.perf_counter() - start
        best, audio = time_runs(run, mel, z, spec, chunk_frames, model)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = {"wall": best, "samples": audio.size(1), "peak_rss_mib": peak_kib / 1024}
    if spec["backend"] in FP32_PRECISION:
        result["setup_s"] = setup
    if spec.get("check"):
        result["error_vs_ours"] = relative_error(audio, model.infer(mel, z=z, precision="fp32"))
    if device.startswith("cuda"):
        result["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def time_runs(run: Runner, mel, z, spec: dict, chunk_frames: int, model):
    """(best wall seconds of ``spec["repeat"]`` runs, the audio of the last)."""
    best, device = float("inf"), spec["device"]
    for _ in range(spec["repeat"]):
        synchronize(device)
        start = time.perf_counter()
        if spec.get("stream"):
            audio = synthesize(model, "ours", spec["precision"], mel, z, chunk_frames, True)
        else:
            audio = run(mel, z)
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best, audio


def run_worker(spec: dict) -> dict:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(spec["threads"])
    completed = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if completed.returncode != 0:
        raise SystemExit(f"worker failed for {spec}:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------- machine limit
def gemm_gflops(dtype: torch.dtype, device: str, budget: float = 1.0) -> float:
    """GFLOP/s of a WN-sized matrix product (2048 x 1408 @ 1408 x 512)."""
    a = torch.randn(2048, 1408, device=device).to(dtype)
    b = torch.randn(1408, 512, device=device).to(dtype)
    torch.mm(a, b)
    synchronize(device)
    count, start = 0, time.perf_counter()
    while count == 0 or time.perf_counter() - start < budget:
        torch.mm(a, b)
        count += 1
    synchronize(device)
    return 2 * 2048 * 1408 * 512 * count / (time.perf_counter() - start) / 1e9


# ---------------------------------------------------------------------------- accuracy
def accuracy(model, precision: str, seconds: float, device: str) -> tuple[float, float, float]:
    """(waveform relative L2, log-mel relative L2, max |log-scale|) of ``precision`` vs fp32."""
    from waveglow import MelSpectrogram

    mel, z = make_inputs(model, seconds, device)
    full = model.infer(mel, z=z, precision="fp32")
    reduced = model.infer(mel, z=z, precision=precision)
    waveform = ((reduced - full).norm() / full.norm()).item()
    spectrogram = MelSpectrogram(model.data_config, model.config.n_mel_channels).to(device)
    full_mel, reduced_mel = spectrogram(full.clamp(-1, 1)), spectrogram(reduced.clamp(-1, 1))
    log_mel = ((reduced_mel - full_mel).norm() / full_mel.norm()).item()
    return waveform, log_mel, max_log_scale(model, mel, full)


def max_log_scale(model, mel, audio) -> float:
    """Largest |log-scale| of any coupling when the flow runs forward on ``audio``."""
    largest = 0.0

    def hook(module, inputs, output):
        nonlocal largest
        largest = max(largest, output.chunk(2, dim=1)[1].abs().max().item())

    handles = [wn.register_forward_hook(hook) for wn in model.WN]
    try:
        with torch.no_grad():
            model(mel, audio)
    finally:
        for handle in handles:
            handle.remove()
    return largest


# ---------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", default="1,10,60", help="input lengths, comma-separated")
    parser.add_argument("--precisions", default="fp32,bf16", help="fp32,bf16,fp16,auto")
    parser.add_argument("--no-reference", action="store_true", help="skip the NVIDIA-style rows")
    parser.add_argument(
        "--backends",
        default=None,
        help=f"rows to run, comma-separated, from {','.join(BACKENDS)} (default: reference,ours; "
        "ours with --no-reference); the others are fp32, whole-utterance, CPU only",
    )
    parser.add_argument("--quick", action="store_true", help="1 s only")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1, help="timed runs per row (best kept)")
    parser.add_argument("--chunk-seconds", type=float, default=12.0, help="chunked synthesis")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--checkpoint", default=None, help="a trained model instead of random")
    parser.add_argument("--accuracy-seconds", type=float, default=2.0)
    parser.add_argument(
        "--memory",
        default=None,
        help="only compare peak RSS of these lengths (e.g. 30,600), fp32 chunked synthesis",
    )
    parser.add_argument(
        "--small",
        action="store_true",
        help="a small random model (WN 4 x 32) instead of the official one: quick --memory checks",
    )
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def print_row(cells: list[str]) -> None:
    widths = [14, 9, 16, 8, 9, 8, 8, 10, 10]
    print("  ".join(cell.rjust(width) for cell, width in zip(cells, widths, strict=True)))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    torch.set_num_threads(args.threads)
    seconds = [1.0] if args.quick else [float(s) for s in args.seconds.split(",")]
    precisions = args.precisions.split(",")
    backends = parse_backends(args)
    base = {
        "threads": args.threads,
        "device": args.device,
        "checkpoint": args.checkpoint,
        "chunk_seconds": args.chunk_seconds,
        "repeat": args.repeat,
        "small": args.small,
    }
    model = build_model(args.checkpoint, args.device, args.small)
    from waveglow.backends import resolve_precision

    name = (
        Path(args.checkpoint).name
        if args.checkpoint
        else "small-32"
        if args.small
        else "official-256"
    )
    print(f"torch {torch.__version__}, device {args.device}, {args.threads} threads, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}")  # fmt: skip
    macs = macs_per_sample(model)
    print(f"model {name}: {macs / 1e6:.2f} M {MACS_PER_SAMPLE_NOTE}")
    for dtype in (torch.float32, torch.bfloat16):
        flops = gemm_gflops(dtype, args.device, budget=1.0 if dtype == torch.float32 else 0.2)
        print(f"GEMM {str(dtype)[6:]:>8}: {flops:8.1f} GFLOP/s -> limit "
              f"{flops * 1e9 / (2 * macs) / 1000:6.1f} kHz")  # fmt: skip
    if args.memory:
        for length in [float(s) for s in args.memory.split(",")]:
            spec = {**base, "backend": "ours", "precision": "auto", "seconds": length}
            result = run_worker({**spec, "stream": True})
            print(f"memory: {length:6.0f} s of audio (auto precision, chunks of "
                  f"{args.chunk_seconds} s): peak RSS {result['peak_rss_mib']:.0f} MiB, "
                  f"{result['samples'] / result['wall'] / 1000:.2f} kHz")  # fmt: skip
        return
    print()
    print_row(["config", "precision", "backend", "audio s", "wall s", "kHz", "x RT", "peak MiB",
               "vs ref"])  # fmt: skip
    comparisons: dict[str, list[dict]] = {}
    for length in seconds:
        reference_wall = None
        for precision, backend in table_rows(backends, precisions):
            spec = {**base, "backend": backend, "precision": precision, "seconds": length}
            check = backend in FP32_PRECISION and length == seconds[0]
            result = run_worker({**spec, "check": check})
            if backend in FP32_PRECISION:
                comparisons.setdefault(backend, []).append({**result, "seconds": length})
            audio_seconds = result["samples"] / 22050
            khz = result["samples"] / result["wall"] / 1000
            if backend == "reference":
                reference_wall = result["wall"]
            ratio = f"{reference_wall / result['wall']:.2f}x" if reference_wall else "-"
            shown = (
                precision
                if precision != "auto"
                else f"auto={_short(resolve_precision('auto', args.device))}"
            )  # noqa: E501
            print_row([name, shown, backend, f"{audio_seconds:.1f}", f"{result['wall']:.2f}",
                       f"{khz:.2f}", f"{khz / 22.05:.2f}", f"{result['peak_rss_mib']:.0f}",
                       ratio])  # fmt: skip
    print()
    for precision in precisions:
        if resolve_precision(precision, args.device) == torch.float32:
            continue
        waveform, log_mel, log_scale = accuracy(
            model, precision, args.accuracy_seconds, args.device
        )
        print(f"{precision} vs fp32 (same z, {args.accuracy_seconds:g} s): waveform relative L2 "
              f"{waveform:.2e}, log-mel relative L2 {log_mel:.2e} (max |log-scale| "
              f"{log_scale:.2f})")  # fmt: skip
    from reference import reference_infer

    mel, z = make_inputs(model, min(args.accuracy_seconds, 1.0), args.device)
    ours = model.infer(mel, z=z, precision="fp32")
    theirs = reference_infer(model, mel, z)
    print(
        f"ours fp32 vs reference: relative L2 {((ours - theirs).norm() / theirs.norm()).item():.1e}"
    )
    print_comparisons(comparisons)


def parse_backends(args: argparse.Namespace) -> list[str]:
    """The ``--backends`` list (default: reference and ours, or ours alone with --no-reference)."""
    if args.backends is None:
        return ["ours"] if args.no_reference else ["reference", "ours"]
    backends = [b for b in args.backends.split(",") if not (args.no_reference and b == "reference")]
    unknown = sorted(set(backends) - set(BACKENDS))
    if unknown:
        raise SystemExit(f"unknown backends {unknown}; choose from {', '.join(BACKENDS)}")
    if args.device != "cpu" and set(backends) & set(FP32_PRECISION):
        raise SystemExit(f"{', '.join(FP32_PRECISION)} run on the CPU only")
    return backends


def table_rows(backends: list[str], precisions: list[str]) -> list[tuple[str, str]]:
    """(precision, backend) per row: the reference first (the ratio column needs it), ours once
    per precision, every comparison backend in fp32."""
    rows = [("fp32", "reference")] if "reference" in backends else []
    for backend in backends:
        if backend == "ours":
            rows += [(precision, "ours") for precision in precisions]
        elif backend != "reference":
            rows.append(("fp32", backend))
    return rows


def print_comparisons(comparisons: dict[str, list[dict]]) -> None:
    """Per comparison backend: its untimed setup and its audio against our fp32 output."""
    for backend, results in comparisons.items():
        setup = "export + session" if backend.startswith("onnx") else "compile + first run"
        times = ", ".join(f"{r['setup_s']:.1f} s at {r['seconds']:g} s" for r in results)
        print(f"{backend} vs ours fp32 (same z, {results[0]['seconds']:g} s): relative L2 "
              f"{results[0]['error_vs_ours']:.1e}; {setup} (untimed): {times}")  # fmt: skip


def _short(dtype: torch.dtype) -> str:
    return {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


if __name__ == "__main__":
    main()
