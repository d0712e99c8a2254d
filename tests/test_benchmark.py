"""waveglow.benchmark on the tiny model with very short inputs (no timing thresholds)."""

from __future__ import annotations

import pytest
import torch

import waveglow.benchmark as bench
from conftest import TINY_DATA
from waveglow.benchmark import BenchResult, Unavailable, benchmark, machine_info

RATE, HOP = TINY_DATA.sampling_rate, TINY_DATA.hop_length


def frames_of(seconds: float) -> int:
    return max(1, round(seconds * RATE / HOP))


@pytest.fixture
def no_bf16_hardware(monkeypatch):
    monkeypatch.setattr(bench, "cpu_has_bf16_matmul", lambda: False)
    monkeypatch.setattr("waveglow.backends.cpu_has_bf16_matmul", lambda: False)


def test_result_figures_are_consistent(tiny_model):
    (result,) = benchmark(tiny_model, seconds=0.1, precisions=("fp32",), repeat=2)
    assert isinstance(result, BenchResult)
    assert result.precision == "fp32" and result.same_as is None
    assert result.samples == frames_of(0.1) * HOP
    assert result.audio_seconds == pytest.approx(result.samples / RATE)
    assert result.wall_seconds > 0
    assert result.khz == pytest.approx(result.samples / result.wall_seconds / 1000)
    assert result.real_time == pytest.approx(result.audio_seconds / result.wall_seconds)
    assert result.real_time == pytest.approx(result.khz * 1000 / RATE)
    assert result.peak_rss_mib > 1 and result.peak_gpu_mib is None


def test_line_shows_precision_speed_and_memory(tiny_model):
    (result,) = benchmark(tiny_model, seconds=0.05, repeat=1)
    line = result.line()
    assert "\n" not in line and line.strip().startswith("fp32:")
    assert f"{result.khz:.2f} kHz" in line and f"{result.real_time:.2f} x real time" in line
    assert "peak RSS" in line


def test_auto_is_labelled_and_reuses_the_same_dtype(tiny_model, no_bf16_hardware):
    seen: list = []
    results = benchmark(
        tiny_model, seconds=0.05, precisions=("fp32", "auto"), repeat=1, on_result=seen.append
    )
    assert seen == results
    fp32, auto = results
    assert auto.precision == "auto=fp32" and auto.same_as == "fp32"
    assert auto.wall_seconds == fp32.wall_seconds and auto.samples == fp32.samples
    assert "same dtype as fp32" in auto.line()


def test_emulated_precision_is_measured_once_on_a_short_input(tiny_model, no_bf16_hardware):
    calls = []
    original = tiny_model.infer_chunks

    def counting(*args, **kwargs):
        calls.append(kwargs["precision"])
        return original(*args, **kwargs)

    tiny_model.infer_chunks = counting
    (result,) = benchmark(
        tiny_model, seconds=0.5, precisions=("bf16",), repeat=3, emulated_seconds=0.05
    )
    assert result.precision == "bf16"
    assert result.samples == frames_of(0.05) * HOP
    assert calls == ["bf16", "bf16"]  # warm-up and one timed run, not three


def test_a_failing_precision_is_one_line_not_an_exception(tiny_model):
    def broken(*args, **kwargs):
        raise RuntimeError("no kernel\n  for this dtype")

    tiny_model.infer_chunks = broken
    (outcome,) = benchmark(tiny_model, seconds=0.05, precisions=("fp16",), repeat=1)
    assert isinstance(outcome, Unavailable)
    assert outcome.line() == "      fp16: unavailable: no kernel for this dtype"


def test_threads_are_restored(tiny_model):
    before = torch.get_num_threads()
    seen = []
    benchmark(
        tiny_model,
        seconds=0.05,
        repeat=1,
        threads=2,
        on_result=lambda _: seen.append(torch.get_num_threads()),
    )
    assert seen == [2] and torch.get_num_threads() == before


@pytest.mark.parametrize(
    "arguments",
    [
        {"seconds": 0},
        {"seconds": -1.0},
        {"seconds": float("nan")},
        {"repeat": 0},
        {"precisions": ("fp32", "fp8")},
        {"precisions": ()},
        {"chunk_seconds": 0},
    ],
)
def test_bad_arguments_raise_value_error(tiny_model, arguments):
    with pytest.raises(ValueError):
        benchmark(tiny_model, **{"seconds": 0.05, **arguments})


def test_chunked_synthesis_gives_the_same_number_of_samples(tiny_model):
    (whole,) = benchmark(tiny_model, seconds=0.1, repeat=1)
    (chunked,) = benchmark(tiny_model, seconds=0.1, repeat=1, chunk_seconds=0.02)
    assert chunked.samples == whole.samples == frames_of(0.1) * HOP


def test_machine_info_line(no_bf16_hardware):
    info = machine_info("cpu", threads=3)
    line = info.line()
    assert info.threads == 3 and not info.bf16_matmul and info.gpu_name is None
    assert torch.__version__ in line and torch.backends.cpu.get_cpu_capability() in line
    assert "3 CPU threads" in line and "bf16 matrix hardware: no" in line and "\n" not in line
