"""The synthesis worker: one thread owns the model and synthesizes the queued requests in batches.

Every request (a :class:`Job`) is cut into the chunks of :meth:`waveglow.model.WaveGlow.chunk_windows`
(``chunk_frames`` output frames, each synthesized with the context that makes it exact). One step
of the worker takes the next chunk of every active job (oldest first, up to ``max_batch`` rows)
and runs them through the inverse flow in one masked batch (:meth:`WaveGlow.inverse` with
``valid``): each row is what it would be alone -- bit for bit with one torch thread (``threads=1``);
with several, torch splits some reductions by shape, so a row batched with others can differ from
its solo synthesis by float rounding (a few of the 16-bit steps on a fraction of the samples).
A request alone gets the same steps streamed or not, hence the same bytes. The noise of a chunk is :func:`waveglow.noise.block_noise` for the job's seed, so a request
with seed S gets the same audio whether streamed or not, batched with others or alone, and the
same audio as ``infer_chunks`` / ``infer`` with ``z = block_noise(S, ...)`` up to float rounding.

A failing batch fails only its jobs (500); a cancelled job (its client went away) is dropped before
the next step and frees its queue slot. ``stop()`` lets the active jobs finish first.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..chunked import _pcm16
from ..denoiser import Denoiser
from ..model import WaveGlow
from ..noise import block_noise
from .config import ServeConfig
from .metrics import Metrics

Window = tuple[int, int, int, int, int, int]  # start, end, window and mel [start, end)
Sink = Callable[[object], None]  # receives PCM bytes, then None (done) or an Exception


class QueueFullError(Exception):
    """The service holds ``queue`` requests already."""


def queue_and_sink() -> tuple[asyncio.Queue, Callable[[object], None]]:
    """A queue of the running event loop and the sink through which the worker thread puts a
    job's outputs into it (dropped once the loop is gone: nobody listens)."""
    loop = asyncio.get_running_loop()
    outputs: asyncio.Queue = asyncio.Queue()

    def sink(item: object) -> None:
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(outputs.put_nowait, item)

    return outputs, sink


@dataclass(eq=False)
class Job:
    """One request: mel (M, F) on the CPU and how to synthesize it; results go to ``sink``."""

    mel: torch.Tensor
    seed: int
    sigma: float
    denoise: float
    stream: bool
    sink: Sink
    windows: list[Window] = field(default_factory=list)
    done: int = 0  # chunks synthesized
    parts: list[torch.Tensor] = field(default_factory=list)  # held back for the denoiser
    cancelled: bool = False
    window_mels: list[torch.Tensor] | None = None  # a stream's: each window's mel (M, frames)
    complete: bool = True  # False while a stream's frames are still coming

    def cancel(self) -> None:
        self.cancelled = True

    def window_mel(self, index: int) -> torch.Tensor:
        """The mel frames (M, frames) that window ``index`` is conditioned on."""
        if self.window_mels is not None:
            return self.window_mels[index]
        _, _, _, _, mel_start, mel_end = self.windows[index]
        return self.mel[:, mel_start:mel_end]


class Engine:
    """The worker thread and its queue; see the module docstring."""

    def __init__(self, model: WaveGlow, config: ServeConfig, metrics: Metrics) -> None:
        self.model = model
        self.config = config
        self.metrics = metrics
        self._condition = threading.Condition()
        self._pending: list[Job] = []
        self._active: list[Job] = []
        self._stopping = False
        self._denoiser: Denoiser | None = None
        self._thread = threading.Thread(target=self._run, name="waveglow-worker", daemon=True)

    # ------------------------------------------------------------------ control
    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Finish the jobs already taken, then end the thread."""
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def depth(self) -> int:
        """Requests queued or being synthesized."""
        with self._condition:
            return len(self._pending) + len(self._active)

    def submit(self, job: Job) -> None:
        """Queue ``job``; raises :class:`QueueFullError` when ``queue`` jobs are waiting already."""
        if job.window_mels is None:
            job.windows = self.model.chunk_windows(job.mel.size(1), self.config.chunk_frames)
        with self._condition:
            if self._stopping:
                raise QueueFullError("the service is shutting down")
            if len(self._pending) + len(self._active) >= self.config.queue:
                raise QueueFullError(f"the queue is full ({self.config.queue} requests)")
            self._pending.append(job)
            self.metrics.queue_depth.set(len(self._pending) + len(self._active))
            self._condition.notify_all()

    def extend(self, job: Job, windows: list[tuple[Window, torch.Tensor]], complete: bool) -> None:
        """Add a stream's newly ready ``windows`` (each with its mel); ``complete``: no more
        will follow (the job ends once they are synthesized)."""
        with self._condition:
            job.windows.extend(window for window, _ in windows)
            job.window_mels.extend(mel for _, mel in windows)
            job.complete = complete
            if complete and job.done == len(job.windows):  # nothing left to synthesize
                job.sink(None)
                self._retire(job)
            self._condition.notify_all()

    # ------------------------------------------------------------------ the worker
    def _run(self) -> None:
        if self.config.threads:
            torch.set_num_threads(self.config.threads)
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            if batch:
                self._step(batch)

    def _next_batch(self) -> list[tuple[Job, int]] | None:
        """The (job, chunk index) rows of the next step; None when stopped and idle."""
        with self._condition:
            while not self._pending and not self._ready():
                if self._stopping and not self._active:
                    return None
                self._condition.wait()
            if not self._active and len(self._pending) < self.config.max_batch:
                self._condition.wait(self.config.batch_wait_s)  # let concurrent requests join
            self._active.extend(self._pending)
            self._pending.clear()
            for job in [job for job in self._active if job.cancelled]:
                self._retire(job)
                self.metrics.errors.labels(kind="disconnected").inc()
            return self._plan()

    def cancel(self, job: Job) -> None:
        """Drop ``job`` (its client went away) before the next step."""
        with self._condition:
            job.cancel()
            self._condition.notify_all()

    def _ready(self) -> bool:
        """Whether an active job has a chunk to synthesize (a stream may wait for frames)."""
        return any(job.cancelled or job.done < len(job.windows) for job in self._active)

    def _plan(self) -> list[tuple[Job, int]]:
        """The next chunk of each active job, oldest first, up to ``max_batch`` rows.

        One chunk per job per step whether it is streamed or not, so a request's steps (and
        therefore its audio, bit for bit) do not depend on ``stream``.
        """
        rows = [(job, job.done) for job in self._active if job.done < len(job.windows)]
        return rows[: self.config.max_batch]

    def _step(self, rows: list[tuple[Job, int]]) -> None:
        started = time.perf_counter()
        jobs = list(dict.fromkeys(job for job, _ in rows))
        try:
            if self.config.batch_delay_s:
                time.sleep(self.config.batch_delay_s)
            audio = synthesize_rows(self.model, rows, self.config.precision)
            samples = sum(chunk.numel() for chunk in audio)
            for (job, _), chunk in zip(rows, audio, strict=True):
                self._deliver(job, chunk)
        except Exception as error:  # noqa: BLE001 - a failed batch must not end the worker
            message = f"synthesis failed: {type(error).__name__}: {' '.join(str(error).split())}"
            for job in jobs:
                job.sink(RuntimeError(message))
                with self._condition:
                    self._retire(job)
            self.metrics.errors.labels(kind="internal").inc(len(jobs))
            return
        self.metrics.observe_batch(len(rows), samples, time.perf_counter() - started)

    def _deliver(self, job: Job, chunk: torch.Tensor) -> None:
        """Hand one chunk (T,) to the job's sink (held back and denoised whole if asked); the
        end (None) follows the last chunk of a complete job, exactly once (see :meth:`extend`)."""
        if job.denoise > 0:  # HTTP requests only: their windows are all known
            job.parts.append(chunk)
            if job.done + 1 == len(job.windows):
                job.sink(_pcm16(self._denoise(torch.cat(job.parts), job.denoise)).tobytes())
        else:
            job.sink(_pcm16(chunk).tobytes())
        with self._condition:
            job.done += 1
            last = job.complete and job.done == len(job.windows)
            if last:
                job.sink(None)
                self._retire(job)

    def _denoise(self, audio: torch.Tensor, strength: float) -> torch.Tensor:
        if self._denoiser is None:
            self._denoiser = Denoiser(self.model)
        with torch.inference_mode():
            return self._denoiser(audio, strength=strength)

    def _retire(self, job: Job) -> None:
        """Drop ``job`` from the queue (the caller holds the lock); a stream may end while its
        job still waits for the worker."""
        if job in self._active:
            self._active.remove(job)
        elif job in self._pending:
            self._pending.remove(job)
        self.metrics.queue_depth.set(len(self._pending) + len(self._active))


def synthesize_rows(
    model: WaveGlow, rows: list[tuple[Job, int]], precision: str | None
) -> list[torch.Tensor]:
    """The audio (chunk samples,) of each (job, chunk index) row, in one masked batch.

    Each row is conditioned alone (as :meth:`waveglow.model.WaveGlow.infer_chunks` does), then the rows
    are padded to the longest window and run through the inverse flow together, each told its own
    length, and each cut back to its chunk.
    """
    hop, group = model.hop_length, model.n_group
    steps_per_frame = hop // group
    parameter = next(model.parameters())
    conditions, noises, lengths = [], [], []
    with torch.inference_mode():
        for job, index in rows:
            _, _, window_start, window_end, mel_start, mel_end = job.windows[index]
            mel = job.window_mel(index).unsqueeze(0).to(parameter.device, parameter.dtype)
            grouped = model.condition(mel, (window_end - mel_start) * hop)  # (1, M*G or M, steps)
            conditions.append(grouped[0, :, (window_start - mel_start) * steps_per_frame :])
            noise = block_noise(job.seed, (1, group), window_start, window_end, hop, job.sigma)
            noises.append(noise[0])  # (G, steps)
            lengths.append(window_end - window_start)
        frames = max(lengths)
        mel_groups = _padded(conditions, frames * steps_per_frame).to(parameter.dtype)
        z = _padded(noises, frames * steps_per_frame).to(parameter.device, parameter.dtype)
        valid = model.valid_steps(lengths, frames, parameter.device)
        audio = model.inverse(mel_groups, z, precision, valid)  # (B, G, steps)
        audio = audio.transpose(1, 2).reshape(len(rows), -1)  # (B, T)
        if model.config.postfilter_config is not None:
            audio = _post_filtered(model, rows, audio, valid, precision)
    chunks = []
    for row, (job, index) in enumerate(rows):
        start, end, window_start, _, _, _ = job.windows[index]
        first = (start - window_start) * hop
        chunks.append(audio[row, first : first + (end - start) * hop].float().cpu())
    return chunks  # (chunk samples,) each


def _post_filtered(
    model: WaveGlow,
    rows: list[tuple[Job, int]],
    audio: torch.Tensor,
    valid: torch.Tensor,
    precision: str | None,
) -> torch.Tensor:
    """The model's post-filter on the padded batch ``audio`` (B, T), each row conditioned on
    its own window of the mel, as :meth:`waveglow.model.WaveGlow.decode` does alone."""
    parameter = next(model.parameters())
    conditions = []
    for job, index in rows:
        _, _, window_start, window_end, mel_start, mel_end = job.windows[index]
        mel = job.mel[:, mel_start:mel_end].unsqueeze(0).to(parameter.device, parameter.dtype)
        length = (window_end - window_start) * model.hop_length
        condition = model.postfilter_condition(mel, length, window_start - mel_start)
        conditions.append(condition[0])  # (M, samples)
    conditioning = _padded(conditions, audio.size(1)).to(parameter.dtype)  # (B, M, T)
    return model.post_filter(audio, conditioning, (precision, None), valid)


def _padded(tensors: list[torch.Tensor], steps: int) -> torch.Tensor:
    """(B, C, steps): each (C, T_i) zero-padded on the right."""
    batch = tensors[0].new_zeros(len(tensors), tensors[0].size(0), steps)
    for row, tensor in enumerate(tensors):
        batch[row, :, : tensor.size(1)] = tensor
    return batch
