"""Incremental synthesis: mel frames in as an acoustic model emits them, final audio out.

A :class:`Stream` (``waveglow.Stream(model, sigma, seed)``) takes any number of mel frames at a time
(:meth:`Stream.push`) and returns the audio that no later frame can change; :meth:`Stream.finish`
returns the rest. It is built on the chunked synthesis of :mod:`waveglow.model`: output frames
[a, b) are cut from the synthesis (:meth:`WaveGlow.decode`) of the window [a - context,
b + context), conditioned on the frames its conditioning reads, with the position-tied noise of
:func:`waveglow.noise.block_noise`. A frame is therefore final once
``R = context + conditioning reach after`` later frames have arrived (:func:`right_context`), and
for any split of an utterance the joined output is ``infer`` of the whole mel with
``z = block_noise(seed, ...)`` (bit for bit with one torch thread).

Memory is bounded by the context: the stream keeps only the mel frames a later window can read
(``context + reach before`` frames behind the first frame not yet synthesized, and the frames
not yet final). ``lookahead`` < R makes frames final sooner, at the price of synthesizing them
without all of their right context (the window ends at the last frame received): lower latency,
approximate audio (``bench/stream_latency.py`` measures the error).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import BinaryIO, TextIO

import numpy as np
import torch

from .chunked import _pcm16
from .config import Config
from .model import DEFAULT_CHUNK_FRAMES, ChunkWindow, WaveGlow
from .noise import block_noise, draw_seed
from .sizes import context_frames


def right_context(model: WaveGlow) -> int:
    """R: the mel frames after a frame that must have arrived before its audio is final (the
    flow's context and the conditioning's reach after a frame)."""
    return context_frames(model.config, model.data_config) + model.conditioning_reach[1]


def right_context_frames(config: Config) -> int:
    """R of a model of ``config`` (:func:`right_context`), from the config alone."""
    wave = config.waveglow_config
    after = 1 if wave.postfilter_config is not None or not wave.has_upsampler else 0
    return context_frames(wave, config.data_config) + after


@dataclass
class StreamPlan:
    """The bookkeeping of a stream, without the synthesis: which windows are ready as frames
    arrive, each with the mel frames it is conditioned on. (The service's worker synthesizes a
    WebSocket stream's windows with those of the HTTP requests.)

    ``context`` and ``reach`` (before, after) as in :meth:`WaveGlow.chunk_windows`;
    ``lookahead``: frames that must follow a frame before it is synthesized; ``min_frames``:
    the fewest frames synthesized at once before the end; ``max_frames``: the most.
    """

    bins: int
    context: int
    reach: tuple[int, int]
    lookahead: int
    min_frames: int = 1
    max_frames: int = DEFAULT_CHUNK_FRAMES
    received: int = 0
    emitted: int = 0  # frames whose window is planned
    finished: bool = False
    _mel: torch.Tensor | None = field(default=None, repr=False)  # (M, kept frames)
    _offset: int = 0  # the absolute index of the first kept frame

    def __post_init__(self) -> None:
        if self.min_frames < 1 or self.max_frames < self.min_frames:
            raise ValueError(
                f"need 1 <= min_frames <= max_frames, got {self.min_frames}, {self.max_frames}"
            )
        if self.lookahead < 0:
            raise ValueError(f"lookahead must be >= 0 frames, got {self.lookahead}")

    @property
    def kept_frames(self) -> int:
        """Mel frames held now (bounded by the context, not by the stream's length)."""
        return 0 if self._mel is None else self._mel.size(1)

    def add(self, frames: torch.Tensor) -> list[tuple[ChunkWindow, torch.Tensor]]:
        """Take mel frames (M, n), n >= 0; return the windows now ready with their mel."""
        if self.finished:
            raise RuntimeError("the stream is finished: start a new one for the next utterance")
        if frames.dim() != 2 or frames.size(0) != self.bins:
            raise ValueError(
                f"mel frames must have shape ({self.bins}, n), got {tuple(frames.shape)}"
                + (
                    " (transpose frame-major frames: frames.T)"
                    if frames.size(-1) == self.bins
                    else ""
                )
            )
        if frames.size(1):
            kept = frames if self._mel is None else torch.cat([self._mel, frames], dim=1)
            self._mel = kept  # (M, kept frames)
            self.received += frames.size(1)
        return self._plan(self.received - self.lookahead)

    def finish(self) -> list[tuple[ChunkWindow, torch.Tensor]]:
        """The windows of every frame not yet planned; no frames may follow."""
        if self.finished:
            raise RuntimeError("the stream is finished already")
        self.finished = True
        return self._plan(self.received)

    def _plan(self, ready: int) -> list[tuple[ChunkWindow, torch.Tensor]]:
        planned = []
        while ready - self.emitted >= (1 if self.finished else self.min_frames):
            start, end = self.emitted, min(ready, self.emitted + self.max_frames)
            window_start = max(0, start - self.context)
            window_end = min(self.received, end + self.context)
            mel_start = max(0, window_start - self.reach[0])
            mel_end = min(self.received, window_end + self.reach[1])
            window = ChunkWindow(start, end, window_start, window_end, mel_start, mel_end)
            assert self._mel is not None and mel_start >= self._offset  # kept by _trim
            mel = self._mel[:, mel_start - self._offset : mel_end - self._offset]  # (M, frames)
            planned.append((window, mel.clone()))
            self.emitted = end
            self._trim()
        return planned

    def _trim(self) -> None:
        """Drop the frames no later window reads."""
        keep_from = max(0, self.emitted - self.context - self.reach[0])
        if self._mel is not None and keep_from > self._offset:
            self._mel = self._mel[:, keep_from - self._offset :].clone()  # (M, kept frames)
            self._offset = keep_from


class Stream:
    """A streaming vocoder over ``model``: see the module doc. ``seed`` (drawn when None) ties the
    noise to positions, as for :meth:`WaveGlow.infer_chunks`; ``lookahead`` (default R, exact)
    as in the module doc; ``min_frames``: frames synthesized at once at the least before the end
    (more frames per synthesis cost less context per frame, and delay the audio)."""

    def __init__(
        self,
        model: WaveGlow,
        sigma: float = 0.6,
        seed: int | None = None,
        lookahead: int | None = None,
        min_frames: int = 1,
        precision: str | None = "fp32",
        backend: str | None = None,
    ) -> None:
        self.model = model
        self.sigma = float(sigma)
        if not self.sigma >= 0:
            raise ValueError(f"sigma must be a finite number >= 0, got {sigma!r}")
        self.seed = draw_seed() if seed is None else int(seed)
        self.exact_lookahead = right_context(model)
        self.lookahead = self.exact_lookahead if lookahead is None else int(lookahead)
        if not 0 <= self.lookahead <= self.exact_lookahead:
            raise ValueError(
                f"lookahead must lie in 0..{self.exact_lookahead} frames (R, exact), "
                f"got {lookahead}"
            )
        self.precision, self.backend = precision, backend
        self.plan = StreamPlan(
            model.config.n_mel_channels,
            context_frames(model.config, model.data_config),
            model.conditioning_reach,
            self.lookahead,
            min_frames,
        )

    @property
    def exact(self) -> bool:
        """Whether the output is exactly whole-utterance synthesis (lookahead R)."""
        return self.lookahead == self.exact_lookahead

    def push(self, frames: torch.Tensor) -> torch.Tensor:
        """Take mel frames (M, n), any n >= 0; return the audio (T,) now final (maybe empty)."""
        frames = self.model._as_input(frames, "mel frames")
        return self._synthesize(self.plan.add(frames))

    def finish(self) -> torch.Tensor:
        """The rest of the audio (T,); the stream takes no more frames."""
        return self._synthesize(self.plan.finish())

    def _synthesize(self, windows: list[tuple[ChunkWindow, torch.Tensor]]) -> torch.Tensor:
        parameter = next(self.model.parameters())
        parts = [parameter.new_zeros(0)]
        hop, group = self.model.hop_length, self.model.n_group
        for (start, end, window_start, window_end, mel_start, _), mel in windows:
            z = block_noise(
                self.seed, (1, group), window_start, window_end, hop, self.sigma, mel.dtype
            ).to(mel.device)  # (1, G, window steps)
            audio = self.model.decode(
                mel.unsqueeze(0), z, self.precision, window_start - mel_start, backend=self.backend
            )  # (1, window samples)
            parts.append(audio[0, (start - window_start) * hop : (end - window_start) * hop])
        return torch.cat(parts)  # (T,)


def stream_pipe(
    model: WaveGlow,
    source: BinaryIO,
    sink: BinaryIO,
    log: TextIO | None = None,
    sigma: float = 0.6,
    seed: int | None = None,
    **options: object,
) -> int:
    """Raw float32 little-endian frame-major mel frames (n, M) from ``source``, in pieces of any
    size, to raw 16-bit little-endian mono PCM on ``sink``, flushed as it becomes final; one line
    on ``log`` names the seed, the rate and the lookahead. ``options`` as for :class:`Stream`.
    Returns the number of samples written."""
    stream = Stream(model, sigma, seed, **options)  # type: ignore[arg-type]
    bins = model.config.n_mel_channels
    if log is not None:
        print(
            f"waveglow stream: seed {stream.seed}, {model.data_config.sampling_rate} Hz, "
            f"lookahead {stream.lookahead} frames (exact: {stream.exact_lookahead})",
            file=log,
            flush=True,
        )
    pending, written = b"", 0
    while True:
        data = source.read1(1 << 16) if hasattr(source, "read1") else source.read(1 << 16)
        whole = (len(pending) + len(data)) // (4 * bins) * 4 * bins
        frames, pending = (pending + data)[:whole], (pending + data)[whole:]
        mel = np.frombuffer(frames, dtype="<f4").reshape(-1, bins)  # (n, M)
        audio = stream.push(torch.from_numpy(mel.T.copy())) if len(mel) else stream.finish()
        sink.write(_pcm16(audio).astype("<i2").tobytes())
        sink.flush()
        written += audio.numel()
        if not data:
            break
    if pending:
        raise ValueError(
            f"stdin ended inside a frame ({len(pending)} bytes left over): send whole frames of "
            f"{bins} float32 values"
        )
    return written
