"""How fast synthesis runs on this machine with a given model: what ``waveglow bench`` prints.

:func:`benchmark` synthesizes a random mel of the requested length (fixed latent, chunked as
:meth:`WaveGlow.infer_chunks` streams it, so memory stays bounded) in each precision, after a short
warm-up, and keeps the best of a few wall times. :func:`machine_info` describes the machine.

Reduced precisions without matrix hardware (bf16 on CPUs without AVX512-BF16 or AMX, fp16 on any
CPU) are emulated by torch, one to two orders of magnitude slower than fp32: they are measured once
on at most ``emulated_seconds`` of audio so that asking for them cannot hang for minutes. On a GPU
without bf16 support, bf16 is reported as unavailable.
"""

from __future__ import annotations

import math
import resource
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace

import torch

from .backends import PRECISIONS, cpu_has_bf16_matmul, precision_name, resolve_precision
from .model import DEFAULT_CHUNK_FRAMES, WaveGlow
from .noise import gaussian

WARMUP_SECONDS = 0.5
EMULATED_SECONDS = 0.1
SIGMA = 0.6


# ---------------------------------------------------------------------------- results
@dataclass(frozen=True)
class MachineInfo:
    """What the speed depends on besides the model."""

    torch_version: str
    device: str
    threads: int
    cpu_capability: str
    bf16_matmul: bool
    gpu_name: str | None = None

    def line(self) -> str:
        gpu = f", GPU {self.gpu_name}" if self.gpu_name else ""
        bf16 = "yes" if self.bf16_matmul else "no (emulated, slow)"
        return (
            f"torch {self.torch_version}, device {self.device}{gpu}, {self.threads} CPU threads, "
            f"CPU capability {self.cpu_capability}, bf16 matrix hardware: {bf16}"
        )


@dataclass(frozen=True)
class BenchResult:
    """One precision's best timed synthesis."""

    precision: str  # as asked, with what it resolved to: "fp32", "auto=fp32"
    samples: int
    sampling_rate: int
    wall_seconds: float
    peak_rss_mib: float  # of the whole process so far
    peak_gpu_mib: float | None = None
    same_as: str | None = None  # the precision whose measurement this reuses (same dtype)

    @property
    def audio_seconds(self) -> float:
        return self.samples / self.sampling_rate

    @property
    def khz(self) -> float:
        """Output samples per wall second, in thousands."""
        return self.samples / self.wall_seconds / 1000

    @property
    def real_time(self) -> float:
        """Audio seconds per wall second (> 1: faster than real time)."""
        return self.audio_seconds / self.wall_seconds

    def line(self) -> str:
        gpu = f", peak GPU {self.peak_gpu_mib:.0f} MiB" if self.peak_gpu_mib is not None else ""
        same = f" (same dtype as {self.same_as}, not run again)" if self.same_as else ""
        return (
            f"{self.precision:>10}: {self.khz:8.2f} kHz, {self.real_time:7.2f} x real time "
            f"({self.audio_seconds:.2f} s of audio in {self.wall_seconds:.3f} s; "
            f"peak RSS {self.peak_rss_mib:.0f} MiB{gpu}){same}"
        )


@dataclass(frozen=True)
class Unavailable:
    """A precision that cannot run here, and why."""

    precision: str
    reason: str

    def line(self) -> str:
        return f"{self.precision:>10}: unavailable: {self.reason}"


Outcome = BenchResult | Unavailable


# ---------------------------------------------------------------------------- machine
def machine_info(device: torch.device | str = "cpu", threads: int | None = None) -> MachineInfo:
    """This machine as :func:`benchmark` with ``threads`` on ``device`` will run."""
    device = torch.device(device)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return MachineInfo(
        torch_version=torch.__version__,
        device=str(device),
        threads=threads or torch.get_num_threads(),
        cpu_capability=torch.backends.cpu.get_cpu_capability(),
        bf16_matmul=cpu_has_bf16_matmul() if device.type == "cpu" else _cuda_bf16(),
        gpu_name=gpu,
    )


def has_matmul_hardware(dtype: torch.dtype, device: torch.device | str) -> bool:
    """Whether ``device`` multiplies ``dtype`` matrices in hardware rather than emulating them."""
    if dtype in (torch.float32, torch.float64):
        return True
    if torch.device(device).type == "cuda":
        return dtype == torch.float16 or _cuda_bf16()
    return dtype == torch.bfloat16 and cpu_has_bf16_matmul()


def is_emulated(precision: str, device: torch.device | str) -> bool:
    """Whether ``precision`` resolves on the CPU ``device`` to a dtype torch only emulates there
    (on a GPU a dtype is either supported or unavailable)."""
    if torch.device(device).type != "cpu":
        return False
    return not has_matmul_hardware(resolve_precision(precision, device), device)


def label(precision: str, device: torch.device | str) -> str:
    """``precision`` as shown in the results: ``auto`` with what it resolves to on ``device``."""
    if precision != "auto":
        return precision
    return f"auto={precision_name(resolve_precision(precision, device))}"


def _cuda_bf16() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)


# ---------------------------------------------------------------------------- benchmark
@dataclass(frozen=True)
class _Plan:
    """How each precision is measured."""

    seconds: float
    chunk_frames: int
    repeat: int
    emulated_seconds: float


def benchmark(
    model: WaveGlow,
    seconds: float = 10.0,
    precisions: Sequence[str] = ("fp32",),
    threads: int | None = None,
    chunk_seconds: float | None = None,
    repeat: int = 2,
    emulated_seconds: float = EMULATED_SECONDS,
    on_result: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Time synthesis of ``seconds`` of audio by ``model`` (on its device) in each precision.

    Each precision is warmed up on a short input, then the best of ``repeat`` wall times is kept
    (one run, on at most ``emulated_seconds``, where the precision is emulated: see the module
    doc). A precision resolving to a dtype already measured reuses that measurement. ``threads``
    sets torch's CPU threads for the duration. ``chunk_seconds`` (default: the chunk size
    ``waveglow synthesize`` streams with) bounds the memory. ``on_result`` receives each outcome as
    soon as it is known.
    """
    _check_arguments(seconds, precisions, repeat, chunk_seconds, emulated_seconds)
    hop, rate = model.hop_length, model.data_config.sampling_rate
    chunk_frames = (
        DEFAULT_CHUNK_FRAMES if chunk_seconds is None else max(1, round(chunk_seconds * rate / hop))
    )
    plan = _Plan(seconds, chunk_frames, repeat, emulated_seconds)
    outcomes: list[Outcome] = []
    measured: dict[torch.dtype, BenchResult] = {}
    with _threads(threads):
        for precision in precisions:
            outcome = _measure_or_reuse(model, precision, plan, measured)
            outcomes.append(outcome)
            if on_result is not None:
                on_result(outcome)
    return outcomes


def _measure_or_reuse(
    model: WaveGlow, precision: str, plan: _Plan, measured: dict[torch.dtype, BenchResult]
) -> Outcome:
    device = next(model.parameters()).device
    dtype, shown = resolve_precision(precision, device), label(precision, device)
    if dtype in measured:
        earlier = measured[dtype]
        return replace(earlier, precision=shown, same_as=earlier.precision)
    if device.type == "cuda" and dtype == torch.bfloat16 and not _cuda_bf16():
        return Unavailable(shown, f"{torch.cuda.get_device_name(device)} has no bf16 support")
    if is_emulated(precision, device):
        plan = replace(plan, seconds=min(plan.seconds, plan.emulated_seconds), repeat=1)
    try:
        result = _measure(model, precision, shown, device, plan)
    except RuntimeError as error:  # an op without a kernel for this dtype, out of memory...
        return Unavailable(shown, " ".join(str(error).split())[:200])
    measured[dtype] = result
    return result


def _measure(
    model: WaveGlow, precision: str, shown: str, device: torch.device, plan: _Plan
) -> BenchResult:
    warm_mel, warm_z = random_inputs(model, min(plan.seconds / 4, WARMUP_SECONDS), device)
    _synthesize(model, warm_mel, warm_z, plan.chunk_frames, precision)
    mel, z = random_inputs(model, plan.seconds, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    best, samples = math.inf, 0
    for _ in range(plan.repeat):
        _synchronize(device)
        start = time.perf_counter()
        samples = _synthesize(model, mel, z, plan.chunk_frames, precision)
        _synchronize(device)
        best = min(best, time.perf_counter() - start)
    gpu = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    rate = model.data_config.sampling_rate
    return BenchResult(shown, samples, rate, best, peak_rss_mib(), gpu)


def random_inputs(
    model: WaveGlow, seconds: float, device: torch.device | str, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """A log-mel-like random mel (1, M, F) of about ``seconds`` (at least one frame) and a fixed
    latent z (1, G, F * hop / G) drawn with sigma 0.6, both reproducible from ``seed``."""
    hop, group = model.hop_length, model.n_group
    frames = max(1, round(seconds * model.data_config.sampling_rate / hop))
    generator = torch.Generator().manual_seed(seed)
    mel = torch.randn(1, model.config.n_mel_channels, frames, generator=generator) - 5.0
    z = gaussian((1, group, frames * hop // group), SIGMA, generator)
    return mel.to(device), z.to(device)


def peak_rss_mib() -> float:
    """The peak resident memory of this process so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def _synthesize(
    model: WaveGlow, mel: torch.Tensor, z: torch.Tensor, chunk_frames: int, precision: str
) -> int:
    """Synthesize, dropping the chunks as they come (as a streaming consumer would); the samples."""
    chunks = model.infer_chunks(mel, chunk_frames, z=z, precision=precision)
    return sum(chunk.size(1) for chunk in chunks)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextmanager
def _threads(threads: int | None) -> Iterator[None]:
    """torch's CPU thread count set to ``threads`` (if given) for the block, then restored."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _check_arguments(
    seconds: float,
    precisions: Sequence[str],
    repeat: int,
    chunk_seconds: float | None,
    emulated_seconds: float,
) -> None:
    for name, value in [("seconds", seconds), ("emulated_seconds", emulated_seconds)]:
        if not value > 0 or math.isinf(value):
            raise ValueError(f"{name} must be a positive number, got {value}")
    if chunk_seconds is not None and not chunk_seconds > 0:
        raise ValueError(f"chunk_seconds must be positive, got {chunk_seconds}")
    if repeat < 1:
        raise ValueError(f"repeat must be >= 1, got {repeat}")
    unknown = [precision for precision in precisions if precision not in PRECISIONS]
    if unknown or not precisions:
        raise ValueError(
            f"precisions must be some of {', '.join(PRECISIONS)}; got {', '.join(precisions)!r}"
        )
