"""WaveGlow: the flow between audio and Gaussian noise, conditioned on a mel spectrogram.

Shape legend (used in the trailing comments of every reshape):
    B    batch
    M    mel bins (n_mel_channels)
    F    mel frames
    T    audio samples (T = F * hop at inference)
    G    group size (n_group): audio is folded into G channels of T_G = T / G steps
    C_k  audio channels that flow k transforms (G minus the early outputs emitted before it)
    S    grouped steps per mel frame (hop / G)

The forward pass maps audio to z (for the likelihood); :meth:`WaveGlow.inverse` is the single
implementation of the inverse flow, and :meth:`WaveGlow.decode` (condition, inverse, audio as
(B, T)) the single synthesis step, used by :meth:`WaveGlow.infer`, :meth:`WaveGlow.infer_chunks`
and the export.

Chunked synthesis: one output step depends on the latent and the mel within a fixed receptive
field: every WN reaches ``sum_i (k - 1) / 2 * dilation_base^i`` steps of T_G to each side and the
inverse flow stacks ``n_flows`` of them; the upsampler adds ``(filter_length - 1) // hop`` frames
to the left, frame-rate conditioning one frame to the right (:attr:`WaveGlow.conditioning_reach`).
A chunk of output frames [a, b) is therefore synthesized from the window [a - context,
b + context) (clipped to the mel) and cut back to [a, b): away from the window's artificial edges
every value is computed from exactly the same inputs as in a whole-utterance synthesis, so the
chunks join into the same audio up to float rounding.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from .audio import MelSpectrogram, is_real
from .backends import evaluation, resolve_precision
from .conditioning import interpolate_frames, transposed_conv
from .config import Config, DataConfig, WaveGlowConfig, WNConfig
from .fast import GemmCondition
from .modules import WN, Invertible1x1Conv, WNEvaluation, remove_weight_norm
from .noise import block_noise, draw_seed, gaussian
from .sizes import (  # noqa: F401 - re-exported: waveglow.model's names since the start
    context_frames,
    multiply_adds_per_sample,
    postfilter_reach,
    receptive_field_steps,
)

DEFAULT_CHUNK_FRAMES = 1024  # ~12 s at hop 256: the context (~1.1 s each side) costs ~18 %


class ChunkWindow(NamedTuple):
    """Output frames [start, end) are cut from the synthesis of frames [window_start,
    window_end), conditioned on the mel frames [mel_start, mel_end)."""

    start: int
    end: int
    window_start: int
    window_end: int
    mel_start: int
    mel_end: int


class WaveGlow(nn.Module):
    """NVIDIA's WaveGlow (``glow.py``, fused layout), same maths and state-dict names; with
    ``config.swap_odd_couplings``, the maths of NVIDIA's older ``glow_old.py``."""

    def __init__(
        self,
        config: WaveGlowConfig | None = None,
        data_config: DataConfig | None = None,
    ) -> None:
        super().__init__()
        config = config or WaveGlowConfig()
        data_config = data_config or DataConfig()
        Config(waveglow_config=config, data_config=data_config)  # validates the pair
        self.config = config
        self.data_config = data_config
        mel_bins = config.n_mel_channels
        if config.has_upsampler:
            self.upsample = nn.ConvTranspose1d(
                mel_bins, mel_bins, data_config.filter_length, stride=data_config.hop_length
            )
        self.WN = nn.ModuleList(
            WN(config.channels_at(k) // 2, config.conditioning_channels, config.WN_config)
            for k in range(config.n_flows)
        )
        self.convinv = nn.ModuleList(
            Invertible1x1Conv(config.channels_at(k)) for k in range(config.n_flows)
        )
        if config.postfilter_config is not None:
            self.postfilter = WN(1, mel_bins, config.postfilter_config)

    @staticmethod
    def parameter_count(
        config: WaveGlowConfig,
        data_config: DataConfig,
        weight_norm: bool = True,
        limit: int | None = None,
    ) -> int:
        """The values a WaveGlow of ``config`` holds, from the config alone (nothing is built).

        Follows :meth:`__init__` module by module. With ``limit``, the count stops as soon as it
        exceeds ``limit`` (a file may declare any number of flows) and returns what it has so far.
        """
        mel_bins = config.n_mel_channels
        total = 0
        if config.has_upsampler:
            total += mel_bins * mel_bins * data_config.filter_length + mel_bins  # upsample
        for k in range(config.n_flows):
            if limit is not None and total > limit:
                break
            channels = config.channels_at(k)
            total += WN.parameter_count(
                channels // 2, config.conditioning_channels, config.WN_config, weight_norm
            )
            total += Invertible1x1Conv.parameter_count(channels)
        if config.postfilter_config is not None:
            total += WN.parameter_count(1, mel_bins, config.postfilter_config, weight_norm)
        return total

    @property
    def hop_length(self) -> int:
        return self.data_config.hop_length

    @property
    def n_group(self) -> int:
        return self.config.n_group

    def full_config(self) -> Config:
        return Config(waveglow_config=self.config, data_config=self.data_config)

    def mel_transform(self) -> MelSpectrogram:
        """The Tacotron 2 mel this model is conditioned on: its data_config, n_mel_channels bins
        (a new module, on the CPU)."""
        return MelSpectrogram(self.data_config, self.config.n_mel_channels)

    # ------------------------------------------------------------------ conditioning
    @property
    def conditioning_reach(self) -> tuple[int, int]:
        """Mel frames (before, after) a frame's own that its conditioning reads.

        The upsampler's taps reach ``(filter_length - 1) // hop`` frames back; linear interpolation
        reads the next frame; nearest-frame conditioning reads up to the next frame; so does the
        post-filter's (linear, to the samples).
        """
        after = 1 if self.config.postfilter_config is not None else 0  # its interpolation
        if self.config.has_upsampler:
            return (self.data_config.filter_length - 1) // self.hop_length, after
        return 0, 1

    def condition(
        self, mel: torch.Tensor, length: int, lengths: Sequence[int] | None = None
    ) -> torch.Tensor:
        """The mel at the grouped steps: (B, M*G, length/G) upsampled, or (B, M, length/G) at
        frame rate. ``lengths`` (frames per item of a padded batch) keeps each item's
        interpolation inside its own frames, as when it is alone."""
        frames = mel.size(2)
        covered = (
            (frames - 1) * self.hop_length + self.data_config.filter_length
            if self.config.has_upsampler
            else frames * self.hop_length
        )
        if covered < length:
            raise ValueError(
                f"the mel's {frames} frames cover {covered} samples, "
                f"fewer than the {length} asked for"
            )
        if self.config.has_upsampler:
            return self._upsample_groups(mel, length)
        return self._interpolate_frames(mel, length, lengths)

    def _upsample_groups(self, mel: torch.Tensor, length: int) -> torch.Tensor:
        """NVIDIA's conditioning: ConvTranspose1d to the samples, folded into groups."""
        batch, mel_bins, _ = mel.shape
        group = self.n_group
        upsampled = self._transposed_conv(mel)[:, :, :length]  # (B, M, T)
        grouped = upsampled.reshape(batch, mel_bins, length // group, group)  # (B, M, T_G, G)
        return grouped.transpose(2, 3).reshape(
            batch, mel_bins * group, length // group
        )  # (B, M*G, T_G)

    def _transposed_conv(self, mel: torch.Tensor) -> torch.Tensor:
        """``self.upsample(mel)``, rounded the same for any number of frames
        (:func:`waveglow.conditioning.transposed_conv`)."""
        return transposed_conv(self.upsample, mel, self.hop_length, self.data_config.filter_length)

    def _interpolate_frames(
        self,
        mel: torch.Tensor,
        length: int,
        lengths: Sequence[int] | None,
        group: int | None = None,
        nearest: bool | None = None,
    ) -> torch.Tensor:
        """The mel (B, M, F) interpolated to steps of ``group`` samples (default n_group; 1 for
        the post-filter), by the config's ``mel_upsampling`` unless ``nearest`` says
        (:func:`waveglow.conditioning.interpolate_frames`)."""
        group = self.n_group if group is None else group
        if nearest is None:
            nearest = self.config.mel_upsampling == "nearest"
        return interpolate_frames(mel, length, self.hop_length, group, nearest, lengths)

    # ------------------------------------------------------------------ forward flow
    def forward(
        self,
        mel: torch.Tensor,
        audio: torch.Tensor,
        precision: str | None = None,
        backend: str | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Audio to latent: returns ``z`` (B, G, T/G) and ``log_det`` (B,).

        ``log_det`` is the sum of every coupling's log-scales and every 1x1 convolution's
        log-determinant, i.e. log |det dz/daudio| per batch item. ``backend`` and ``precision``
        choose the WN evaluation (:mod:`waveglow.backends`; both differentiable); without a
        backend, a precision means ``gemm`` and none ``conv`` in fp32.
        """
        self._check_mel(mel)
        batch, length = audio.shape
        group = self.n_group
        if length % group:
            raise ValueError(f"audio length {length} is not a multiple of n_group={group}")
        backend, precision = evaluation(backend, precision)
        with self._reduced_convolutions(backend, precision, audio.device):
            mel_groups = self._wn_condition(self.condition(mel, length), backend, precision)
            return self._forward_flow(mel_groups, audio)

    def _forward_flow(
        self, mel_groups: torch.Tensor, audio: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        batch, length = audio.shape
        group = self.n_group
        audio = audio.reshape(batch, length // group, group).transpose(1, 2)  # (B, G, T_G)
        early: list[torch.Tensor] = []
        log_det = audio.new_zeros(batch, dtype=torch.promote_types(audio.dtype, torch.float32))
        for k in range(self.config.n_flows):
            if self.config.emits_early(k):
                early.append(audio[:, : self.config.n_early_size])  # (B, n_early, T_G)
                audio = audio[:, self.config.n_early_size :]  # (B, C_k, T_G)
            audio, log_det_w = self.convinv[k](audio)
            audio_a, audio_b = self._halves(k, audio)  # (B, C_k/2, T_G) each
            # under autocast the WN runs in low precision; the coupling and log_det stay in fp32
            shift, log_scale = self.WN[k](audio_a, mel_groups).to(audio.dtype).chunk(2, dim=1)
            audio_b = torch.exp(log_scale) * audio_b + shift
            audio = self._join(k, audio_a, audio_b)  # (B, C_k, T_G)
            log_det = log_det + log_det_w + log_scale.flatten(1).sum(1).to(log_det.dtype)
        return torch.cat([*early, audio], dim=1), log_det  # (B, G, T_G)

    # ------------------------------------------------------------------ inverse flow
    def inverse(
        self,
        mel_groups: torch.Tensor,
        z: torch.Tensor,
        precision: str | None = None,
        valid: torch.Tensor | None = None,
        backend: str | None = None,
    ) -> torch.Tensor:
        """The inverse flow: latent ``z`` (B, G, T_G) and grouped mel (B, M*G, T_G) to (B, G, T_G).

        ``backend`` and ``precision`` choose the WN evaluation as in :meth:`forward`; the
        couplings and the 1x1 inverses are always computed in the dtype of ``z`` (float32 or
        float64). ``valid``
        (B, T_G) bool marks the steps each item of a padded batch owns: every item's output on
        its own steps is then what it would be alone (only the WNs' dilated convolutions see past
        a step, and they read zeros beyond an item's end).
        """
        config = self.config
        backend, precision = evaluation(backend, precision)
        mel_groups = self._wn_condition(mel_groups, backend, precision)
        reduced = self._reduced_convolutions(backend, precision, z.device)
        early_end = config.n_group - config.channels_at(config.n_flows - 1)
        audio = z[:, early_end:]  # (B, C_last, T_G)
        for k in reversed(range(config.n_flows)):
            audio_a, audio_b = self._halves(k, audio)  # (B, C_k/2, T_G) each
            with reduced:
                shift, log_scale = self.WN[k](audio_a, mel_groups, valid).chunk(2, dim=1)
            audio_b = (audio_b - shift) * torch.exp(-log_scale)
            audio = self.convinv[k].inverse(self._join(k, audio_a, audio_b))  # (B, C_k, T_G)
            if config.emits_early(k):
                start = early_end - config.n_early_size
                audio = torch.cat([z[:, start:early_end], audio], dim=1)  # (B, C_k + n_early, T_G)
                early_end = start
        return audio

    def infer(
        self,
        mel: torch.Tensor,
        sigma: float = 0.6,
        z: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        precision: str | None = "fp32",
        lengths: Sequence[int] | None = None,
        backend: str | None = None,
    ) -> torch.Tensor:
        """Mel (B, M, F) to audio (B, F * hop).

        Without ``z``, the latent is drawn from N(0, sigma^2) on the mel's device and dtype (pass a
        ``generator`` for reproducible noise). An explicit ``z`` (B, G, F * hop / G), in the layout
        :meth:`forward` returns, is used as is and ``sigma`` is ignored. ``backend`` and
        ``precision`` as for :meth:`forward` (default: the matrix products in fp32).
        ``lengths``: each item's own number of frames in a padded batch; item b's first
        ``lengths[b] * hop`` samples are then exactly its own synthesis (the rest is padding).
        ``mel`` (and ``z``) may be any real tensor, numpy array or nested list of numbers: it is
        converted to the model's dtype and device. Runs without autograd.
        """
        mel = self._check_mel(self._as_input(mel, "mel"))
        sigma = _check_sigma(sigma)
        batch, _, frames = mel.shape
        length = frames * self.hop_length
        shape = (batch, self.n_group, length // self.n_group)
        valid = None
        if lengths is not None:
            if len(lengths) != batch:
                raise ValueError(f"{len(lengths)} lengths for a batch of {batch} mels")
            valid = self.valid_steps(lengths, frames, mel.device)
        if z is None:
            z = gaussian(shape, sigma, generator, mel.dtype, mel.device)
        elif tuple((z := self._as_input(z, "z")).shape) != shape:
            raise ValueError(
                f"z has shape {tuple(z.shape)}; a mel of {frames} frames needs {shape}"
            )
        return self.decode(mel, z, precision, 0, valid, lengths, backend)  # (B, T)

    def decode(
        self,
        mel: torch.Tensor,
        z: torch.Tensor,
        precision: str | None = "fp32",
        mel_offset: int = 0,
        valid: torch.Tensor | None = None,
        lengths: Sequence[int] | None = None,
        backend: str | None = None,
        differentiable: bool = False,
    ) -> torch.Tensor:
        """The synthesis step: the latent ``z`` (B, G, T_G) to audio (B, T_G * G), without autograd
        unless ``differentiable`` (training through the synthesis: the spectral loss).

        ``mel`` (B, M, F) conditions it; its first ``mel_offset`` frames come before ``z``'s first
        step (the context a chunk's upsampler reads). ``precision``, ``valid`` and ``backend`` as
        for :meth:`inverse`, ``lengths`` as for :meth:`condition`.
        """
        batch, steps_per_frame = z.size(0), self.hop_length // self.n_group
        skipped = mel_offset * steps_per_frame
        length = (skipped + z.size(2)) * self.n_group
        with contextlib.nullcontext() if differentiable else torch.no_grad():
            mel_groups = self.condition(mel, length, lengths)[:, :, skipped:]  # (B, M*G|M, T_G)
            audio = self.inverse(mel_groups, z.to(mel.dtype), precision, valid, backend)
            audio = audio.transpose(1, 2).reshape(batch, -1)  # (B, T)
            if self.config.postfilter_config is None:
                return audio
            conditioning = self.postfilter_condition(mel, audio.size(1), mel_offset, lengths)
            return self.post_filter(audio, conditioning, (precision, backend), valid)

    def postfilter_condition(
        self,
        mel: torch.Tensor,
        length: int,
        mel_offset: int = 0,
        lengths: Sequence[int] | None = None,
    ) -> torch.Tensor:
        """The post-filter's conditioning (B, M, length): the mel (B, M, F) linearly interpolated
        to the samples, its first ``mel_offset`` frames before the first sample; ``lengths`` as
        for :meth:`condition`."""
        skipped = mel_offset * self.hop_length
        return self._interpolate_frames(mel, skipped + length, lengths, group=1, nearest=False)[
            :, :, skipped:
        ]  # (B, M, T)

    def post_filter(
        self,
        audio: torch.Tensor,
        conditioning: torch.Tensor,
        choice: tuple[str | None, str | None] = ("fp32", None),
        valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The post-filter (``postfilter_config``) on the flow's audio (B, T): a WN over the
        samples, conditioned on :meth:`postfilter_condition` (B, M, T), gives ``shift`` and
        ``log_scale``; returns ``audio * exp(log_scale) + shift`` (B, T). ``choice``: the
        (precision, backend) of the WN evaluation; ``valid`` (B, T_G) as for :meth:`inverse`
        (the WN reads zeros past each item's end)."""
        backend, precision = evaluation(choice[1], choice[0])
        conditioning = self._wn_condition(conditioning, backend, precision)
        if valid is not None:
            valid = valid.repeat_interleave(self.n_group, dim=1)  # (B, T)
        with self._reduced_convolutions(backend, precision, audio.device):
            output = self.postfilter(audio.unsqueeze(1), conditioning, valid)  # (B, 2, T)
        shift, log_scale = output.to(audio.dtype).chunk(2, dim=1)  # (B, 1, T) each
        return (audio.unsqueeze(1) * torch.exp(log_scale) + shift).squeeze(1)  # (B, T)

    def infer_chunks(
        self,
        mel: torch.Tensor,
        chunk_frames: int | None = None,
        sigma: float = 0.6,
        z: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        precision: str | None = "fp32",
        backend: str | None = None,
    ) -> Iterator[torch.Tensor]:
        """Yield the audio of ``mel`` chunk by chunk (B, chunk_frames * hop), in bounded memory;
        joined, the chunks equal :meth:`infer` with the same ``z`` (see the module doc).
        Without ``z`` the noise is drawn per fixed block of frames, independent of the chunk size.
        """
        mel = self._check_mel(self._as_input(mel, "mel"))
        sigma = _check_sigma(sigma)
        z = None if z is None else self._as_input(z, "z")
        chunk_frames = DEFAULT_CHUNK_FRAMES if chunk_frames is None else chunk_frames
        return self._chunks(mel, chunk_frames, sigma, z, generator, (precision, backend))

    def _chunks(
        self,
        mel: torch.Tensor,
        chunk_frames: int,
        sigma: float,
        z: torch.Tensor | None,
        generator: torch.Generator | None,
        choice: tuple[str | None, str | None],
    ) -> Iterator[torch.Tensor]:
        if chunk_frames < 1:
            raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
        batch, _, frames = mel.shape
        hop, steps_per_frame = self.hop_length, self.hop_length // self.n_group
        shape = (batch, self.n_group, frames * steps_per_frame)
        if z is not None and tuple(z.shape) != shape:
            raise ValueError(
                f"z has shape {tuple(z.shape)}; a mel of {frames} frames needs {shape}"
            )
        seed = draw_seed(generator) if z is None else 0
        for window in self.chunk_windows(frames, chunk_frames):
            start, end, window_start, window_end, mel_start, mel_end = window
            if z is None:
                z_window = block_noise(
                    seed, (batch, self.n_group), window_start, window_end, hop, sigma, mel.dtype
                ).to(mel.device)
            else:
                z_window = z[:, :, window_start * steps_per_frame : window_end * steps_per_frame]
            precision, backend = choice
            window_mel = mel[:, :, mel_start:mel_end]
            audio = self.decode(
                window_mel, z_window, precision, window_start - mel_start, backend=backend
            )  # (B, window samples)
            yield audio[:, (start - window_start) * hop : (end - window_start) * hop]

    def chunk_windows(
        self, frames: int, chunk_frames: int = DEFAULT_CHUNK_FRAMES
    ) -> list[ChunkWindow]:
        """The chunks :meth:`infer_chunks` synthesizes a mel of ``frames`` frames in, in order: the
        output frames of each are cut from a window widened by the context (see the module doc),
        conditioned on the mel frames that the window's conditioning reads
        (:attr:`conditioning_reach`)."""
        context = context_frames(self.config, self.data_config)
        left_frames, right_frames = self.conditioning_reach
        windows = []
        for start in range(0, frames, chunk_frames):
            end = min(frames, start + chunk_frames)
            window_start, window_end = max(0, start - context), min(frames, end + context)
            mel_start = max(0, window_start - left_frames)
            mel_end = min(frames, window_end + right_frames)
            windows.append(ChunkWindow(start, end, window_start, window_end, mel_start, mel_end))
        return windows

    # ------------------------------------------------------------------ helpers
    def valid_steps(
        self, lengths: Sequence[int], frames: int, device: torch.device | str = "cpu"
    ) -> torch.Tensor:
        """(B, T_G) bool: True on the steps of each item's first ``lengths[b]`` frames."""
        if any(not 0 < n <= frames for n in lengths):
            raise ValueError(f"lengths {list(lengths)} must lie in 1..{frames} (the mel's frames)")
        steps_per_frame = self.hop_length // self.n_group
        ends = torch.tensor([n * steps_per_frame for n in lengths], device=device)
        return torch.arange(frames * steps_per_frame, device=device) < ends.unsqueeze(1)

    def _halves(self, flow: int, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Flow ``flow``'s (conditioning, transformed) halves of ``audio`` (B, C_k, T_G).

        The WN sees the first half and the second is transformed, except on the odd flows of a
        ``swap_odd_couplings`` config (NVIDIA's glow_old.py), where the roles are swapped.
        """
        first, second = audio.chunk(2, dim=1)  # (B, C_k/2, T_G) each
        return (second, first) if self.config.swaps_halves(flow) else (first, second)

    def _join(
        self, flow: int, conditioning: torch.Tensor, transformed: torch.Tensor
    ) -> torch.Tensor:
        """The inverse of :meth:`_halves`: the halves back in their channel order (B, C_k, T_G)."""
        if self.config.swaps_halves(flow):
            return torch.cat([transformed, conditioning], dim=1)
        return torch.cat([conditioning, transformed], dim=1)

    @staticmethod
    def _wn_condition(
        mel_groups: torch.Tensor | WNEvaluation, backend: str, precision: str
    ) -> torch.Tensor | WNEvaluation:
        """What the WNs receive for ``backend``: the mel itself (conv) or a GemmCondition."""
        if backend == "conv" or not isinstance(mel_groups, torch.Tensor):
            return mel_groups
        return GemmCondition.prepare(mel_groups, precision)

    @staticmethod
    def _reduced_convolutions(
        backend: str, precision: str, device: torch.device
    ) -> contextlib.AbstractContextManager:
        """The conv backend in a reduced precision runs under ``torch.autocast`` (the 1x1
        convolutions opt out); every other evaluation needs no context."""
        if backend != "conv":
            return contextlib.nullcontext()
        dtype = resolve_precision(precision, device)
        if dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=dtype)

    def with_postfilter(self, postfilter_config: WNConfig) -> WaveGlow:
        """A copy of this model with a new post-filter of ``postfilter_config`` behind the same
        flow; its end layer is zero, so it synthesizes exactly what this model does until it
        is trained (a spectral run warm-started from a model without one)."""
        config = dataclasses.replace(self.config, postfilter_config=postfilter_config)
        model = WaveGlow(config, self.data_config).to(next(self.parameters()).device)
        if not self.has_weight_norm:
            model.remove_weight_norm()
        flow = {k: v for k, v in self.state_dict().items() if not k.startswith("postfilter.")}
        missing, unexpected = model.load_state_dict(flow, strict=False)
        if unexpected or any(not name.startswith("postfilter.") for name in missing):
            raise ValueError(f"the flows differ: missing {missing}, unexpected {unexpected}")
        return model.train(self.training)

    def remove_weight_norm(self) -> WaveGlow:
        """Fold every weight-normalised convolution into a plain one (for inference)."""
        remove_weight_norm(self)
        return self

    @property
    def has_weight_norm(self) -> bool:
        return any(name.endswith("weight_g") for name, _ in self.named_parameters())

    def _as_input(self, value: object, name: str) -> torch.Tensor:
        """``value`` as a finite tensor of the model's dtype, on its device."""
        parameter = next(self.parameters())
        if isinstance(value, list | tuple | np.ndarray):
            array = _real_array(value, name)
            value = torch.from_numpy(array)
        if not isinstance(value, torch.Tensor):
            hint = " (to read a mel file, use waveglow.load_mel)" if isinstance(value, str) else ""
            raise ValueError(
                f"{name} must be a tensor, a numpy array or a nested list of numbers, "
                f"got {type(value).__name__}{hint}"
            )
        if not is_real(value):
            raise ValueError(f"{name} must hold real numbers, got {value.dtype}")
        value = value.to(parameter.device, parameter.dtype)
        if not bool(torch.isfinite(value).all()):
            raise ValueError(f"{name} contains NaN or infinite values")
        return value

    def _check_mel(self, mel: torch.Tensor) -> torch.Tensor:
        bins = self.config.n_mel_channels
        if mel.dim() != 3 or mel.size(1) != bins:
            raise ValueError(
                f"mel must have shape (batch, {bins}, frames), got {tuple(mel.shape)}"
                + (" (add a batch dimension: mel.unsqueeze(0))" if mel.dim() == 2 else "")
            )
        if mel.size(2) == 0:
            raise ValueError("mel has no frames")
        return mel


def _real_array(value: object, name: str) -> np.ndarray:
    """A list or array of real numbers as a numpy array; a ValueError in our words otherwise."""
    try:
        array = np.asarray(value)
    except ValueError:
        raise ValueError(f"{name}: a nested list of unequal lengths is not an array") from None
    if array.dtype.kind not in "iuf":
        raise ValueError(f"{name} must hold real numbers, got an array of {array.dtype}")
    return np.ascontiguousarray(array)


def _check_sigma(sigma: object) -> float:
    try:
        value = float(sigma)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"sigma must be a number, got {sigma!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"sigma must be a finite number >= 0, got {sigma!r}")
    return value
