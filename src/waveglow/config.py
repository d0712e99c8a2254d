"""Configuration as frozen dataclasses whose field names are exactly those of NVIDIA's ``config.json``.

An NVIDIA ``config.json`` (sections ``train_config``, ``data_config``, ``dist_config``,
``waveglow_config``) loads as is with :func:`load_config`; unknown keys are an error that names them,
so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch

from .backends import AUTO, BACKENDS, PRECISIONS, precision_name, resolve_backend, resolve_precision

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration that cannot describe a WaveGlow (bad value or unknown key)."""


MEL_UPSAMPLINGS = ("transposed_conv", "linear", "nearest")


@dataclass(frozen=True)
class WNConfig:
    """The WaveNet-like network that computes each coupling layer's shift and log-scale."""

    n_layers: int = 8
    n_channels: int = 256
    kernel_size: int = 3
    # ---- ours (NVIDIA's config.json never has them; the defaults are glow.py's WN)
    dilation_base: int = 2  # layer i dilates by dilation_base**i; 1: undilated (SqueezeWave)
    # SqueezeWave's in_layers: a depthwise k-tap convolution (C -> C) then a pointwise one
    # (C -> 2C), k*C + 2*C*C multiply-adds a step where glow.py's dense taps take 2*k*C*C
    depthwise_separable: bool = False

    def __post_init__(self) -> None:
        _require(self.n_layers >= 1, "WN_config.n_layers must be >= 1")
        _require(
            isinstance(self.dilation_base, int) and self.dilation_base >= 1,
            "WN_config.dilation_base must be an integer >= 1",
        )
        _require(
            isinstance(self.depthwise_separable, bool),
            "WN_config.depthwise_separable must be true or false",
        )
        _require(self.n_channels >= 1, "WN_config.n_channels must be >= 1")
        _require(
            self.kernel_size >= 1 and self.kernel_size % 2 == 1,
            "WN_config.kernel_size must be odd (the WN keeps the time length)",
        )


@dataclass(frozen=True)
class WaveGlowConfig:
    """The flow: NVIDIA's ``waveglow_config`` section."""

    n_mel_channels: int = 80
    n_flows: int = 12
    n_group: int = 8
    n_early_every: int = 4
    n_early_size: int = 2
    WN_config: WNConfig = field(default_factory=WNConfig)
    # ---- ours (NVIDIA's config.json never has it: the default is glow.py's behaviour)
    # NVIDIA's oldest code, glow_old.py, swapped the coupling halves on odd flows: flow k with
    # k % 2 == 1 conditions its WN on the second half of the channels and transforms the first.
    # Set for checkpoints of that code (the converter does it); no weights can express it.
    swap_odd_couplings: bool = False
    # How the mel reaches the WNs. "transposed_conv": NVIDIA's learned ConvTranspose1d upsampler to
    # the sample rate, folded into M*G conditioning channels. "linear" / "nearest": no upsampler;
    # the M mel bins are interpolated from the frames to the grouped steps (frame f is centred on
    # sample f*hop, as the Tacotron 2 STFT centres it), so each WN's cond_layer takes M channels.
    mel_upsampling: str = "transposed_conv"
    # An optional post-filter (WG-WaveNet's): a WN at the sample rate, conditioned on the mel
    # interpolated to the samples, that maps the flow's audio to audio * exp(log_scale) + shift.
    # It is outside the flow (the likelihood never sees it) and is trained by the spectral loss;
    # its end layer starts at zero, so a post-filter added to trained weights starts as identity.
    postfilter_config: WNConfig | None = None

    def __post_init__(self) -> None:
        for name in ("WN_config", "postfilter_config"):
            value = getattr(self, name)
            if isinstance(value, Mapping):
                object.__setattr__(self, name, _from_mapping(WNConfig, value, name))
        _require(self.n_mel_channels >= 1, "n_mel_channels must be >= 1")
        _require(self.n_flows >= 1, "n_flows must be >= 1")
        _require(self.n_group >= 2 and self.n_group % 2 == 0, "n_group must be even and >= 2")
        _require(self.n_early_every >= 1, "n_early_every must be >= 1")
        _require(self.n_early_size >= 0, "n_early_size must be >= 0")
        _require(
            isinstance(self.swap_odd_couplings, bool),
            f"swap_odd_couplings must be true or false, got {self.swap_odd_couplings!r}",
        )
        _require(
            self.mel_upsampling in MEL_UPSAMPLINGS,
            f"mel_upsampling must be one of {', '.join(MEL_UPSAMPLINGS)}, "
            f"got {self.mel_upsampling!r}",
        )
        # the channels only shrink at early outputs, so the last flow's count decides (no loop:
        # a file may declare any n_flows)
        last = self.channels_at(self.n_flows - 1)
        _require(
            last >= 2 and (self.n_early_size % 2 == 0 or last == self.n_group),
            f"flow {self.n_flows - 1} would see {last} channels: n_group, n_early_size and "
            "n_early_every must leave an even number >= 2 channels at every flow",
        )

    @property
    def has_upsampler(self) -> bool:
        """True for NVIDIA's layout: a learned ConvTranspose1d brings the mel to the sample rate."""
        return self.mel_upsampling == "transposed_conv"

    @property
    def conditioning_channels(self) -> int:
        """Input channels of every WN's cond_layer: M*G with the upsampler, M at frame rate."""
        return self.n_mel_channels * (self.n_group if self.has_upsampler else 1)

    def emits_early(self, flow: int) -> bool:
        """True when the forward pass emits ``n_early_size`` channels just before flow ``flow``."""
        return flow > 0 and flow % self.n_early_every == 0 and self.n_early_size > 0

    def swaps_halves(self, flow: int) -> bool:
        """True when flow ``flow`` conditions on the second half and transforms the first."""
        return self.swap_odd_couplings and flow % 2 == 1

    def channels_at(self, flow: int) -> int:
        """Number of audio channels that flow ``flow`` transforms."""
        return self.n_group - self.n_early_size * (flow // self.n_early_every)


@dataclass(frozen=True)
class DataConfig:
    """Audio and mel parameters: NVIDIA's ``data_config`` section (the Tacotron 2 mel)."""

    sampling_rate: int = 22050
    filter_length: int = 1024
    hop_length: int = 256
    win_length: int = 1024
    mel_fmin: float = 0.0
    mel_fmax: float | None = 8000.0
    segment_length: int = 16000
    training_files: str | None = None

    def __post_init__(self) -> None:
        _require(self.sampling_rate > 0, "data_config.sampling_rate must be > 0")
        _require(self.hop_length >= 1, "data_config.hop_length must be >= 1")
        _require(
            self.filter_length >= self.hop_length,
            "data_config.filter_length must be >= hop_length",
        )
        _require(
            1 <= self.win_length <= self.filter_length,
            "data_config.win_length must be between 1 and filter_length",
        )
        nyquist = self.sampling_rate / 2
        _require(0 <= self.mel_fmin < nyquist, "data_config.mel_fmin must be in [0, sr/2)")
        if self.mel_fmax is not None:
            _require(
                self.mel_fmin < self.mel_fmax <= nyquist,
                "data_config.mel_fmax must be in (mel_fmin, sr/2]",
            )


@dataclass(frozen=True)
class TrainConfig:
    """NVIDIA's ``train_config`` section, and our own training settings after it."""

    fp16_run: bool = False
    output_directory: str = "checkpoints"
    epochs: int = 100000
    learning_rate: float = 1e-4
    sigma: float = 1.0
    iters_per_checkpoint: int = 2000
    batch_size: int = 12
    seed: int = 1234
    checkpoint_path: str = ""
    with_tensorboard: bool = False
    # ---- ours (defaults keep NVIDIA's behaviour); fp16_run=true means precision "fp16"
    precision: str = "fp32"
    wn_implementation: str = "gemm"
    max_iters: int = 0
    grad_clip_thresh: float = 0.0
    grad_accumulation: int = 1
    max_bad_steps: int = 20
    keep_checkpoints: int = 3
    iters_per_validation: int = 1000
    iters_per_log: int = 10
    validation_size: float = 10
    validation_files: str = ""
    n_synthesis_samples: int = 2
    data_root: str = ""
    num_workers: int = 2
    min_duration: float = 0.0
    skip_silent: bool = False
    cache_directory: str = ""
    lr_decay_every: int = 0  # multiply the learning rate by lr_decay every N steps; 0: constant
    lr_decay: float = 0.5
    # ---- ours, off by default: a spectral term besides WaveGlow's single loss (maximum
    # likelihood). Each ``spectral_every``-th step synthesizes the batch's own mels through the
    # inverse flow (z ~ N(0, spectral_sigma^2), with autograd) and adds ``spectral_loss_weight``
    # times the multi-resolution STFT distance to the true audio (see waveglow.loss.SpectralLoss)
    spectral_loss_weight: float = 0.0
    spectral_sigma: float = 0.6
    spectral_every: int = 1
    spectral_fft_sizes: tuple[int, ...] = (256, 512, 1024, 2048)
    spectral_mel_weight: float = 0.0  # log-mel magnitude terms, added at every resolution
    # ---- ours, off by default: an exponential moving average of the weights, updated after each
    # step (average = ema_decay * average + (1 - ema_decay) * weights) and saved in every training
    # checkpoint beside the weights (see waveglow.train.average); 0: none, as in NVIDIA's training
    ema_decay: float = 0.0
    # ---- ours, off by default: torch.compile (inductor) of the training step's two heavy calls,
    # the flow's forward and, with the spectral term, the synthesis; validation stays eager
    torch_compile: bool = False

    def __post_init__(self) -> None:
        _require(
            self.precision in PRECISIONS,
            f"train_config.precision must be {_one_of(PRECISIONS)}, got {self.precision!r}",
        )
        _require(
            self.wn_implementation in (*BACKENDS, AUTO),
            f"train_config.wn_implementation must be {_one_of((*BACKENDS, AUTO))}, "
            f"got {self.wn_implementation!r}",
        )
        _require(self.batch_size >= 1, "train_config.batch_size must be >= 1")
        _require(self.learning_rate > 0, "train_config.learning_rate must be > 0")
        _require(self.lr_decay_every >= 0, "train_config.lr_decay_every must be >= 0")
        _require(0 < self.lr_decay <= 1, "train_config.lr_decay must be in (0, 1]")
        _require(self.sigma > 0, "train_config.sigma must be > 0")
        _require(self.iters_per_checkpoint >= 1, "train_config.iters_per_checkpoint must be >= 1")
        _require(self.iters_per_validation >= 1, "train_config.iters_per_validation must be >= 1")
        _require(self.iters_per_log >= 1, "train_config.iters_per_log must be >= 1")
        _require(self.grad_accumulation >= 1, "train_config.grad_accumulation must be >= 1")
        _require(self.max_bad_steps >= 1, "train_config.max_bad_steps must be >= 1")
        _require(self.keep_checkpoints >= 1, "train_config.keep_checkpoints must be >= 1")
        _require(self.grad_clip_thresh >= 0, "train_config.grad_clip_thresh must be >= 0")
        _require(self.validation_size >= 0, "train_config.validation_size must be >= 0")
        _require(self.num_workers >= 0, "train_config.num_workers must be >= 0")
        _require(self.spectral_loss_weight >= 0, "train_config.spectral_loss_weight must be >= 0")
        _require(self.spectral_sigma > 0, "train_config.spectral_sigma must be > 0")
        _require(self.spectral_every >= 1, "train_config.spectral_every must be >= 1")
        _require(
            len(self.spectral_fft_sizes) >= 1
            and all(size >= 16 and size % 4 == 0 for size in self.spectral_fft_sizes),
            "train_config.spectral_fft_sizes must be a list of FFT sizes, each a multiple of 4 "
            f"and >= 16, got {list(self.spectral_fft_sizes)}",
        )
        _require(self.spectral_mel_weight >= 0, "train_config.spectral_mel_weight must be >= 0")
        _require(
            0 <= self.ema_decay < 1,
            f"train_config.ema_decay must be in [0, 1) (0: no average), got {self.ema_decay}",
        )

    @property
    def spectral(self) -> bool:
        """True when the run adds the spectral term to the likelihood."""
        return self.spectral_loss_weight > 0

    @property
    def amp_precision(self) -> str:
        """The precision to train in: ``fp16_run`` (NVIDIA's switch) means fp16."""
        return "fp16" if self.fp16_run and self.precision == "fp32" else self.precision

    def resolve_auto(self, device: torch.device | str) -> TrainConfig:
        """``precision="auto"`` made concrete for ``device`` (see :mod:`waveglow.backends`), then
        ``wn_implementation="auto"``: the matrix-product WN where the products run in bf16/fp16,
        the convolutions in fp32 (the faster fp32 path on AVX2 CPUs)."""
        resolved = self
        if resolved.precision == AUTO:
            name = precision_name(resolve_precision(AUTO, device))
            resolved = dataclasses.replace(resolved, precision=name, fp16_run=False)
        if resolved.wn_implementation == AUTO:
            dtype = resolve_precision(resolved.amp_precision, device)
            backend = resolve_backend(AUTO, dtype)
            resolved = dataclasses.replace(resolved, wn_implementation=backend)
        return resolved


@dataclass(frozen=True)
class DistConfig:
    """NVIDIA's ``dist_config`` section, accepted for compatibility (torchrun sets the real values)."""

    dist_backend: str = "nccl"
    dist_url: str = "tcp://localhost:54321"


@dataclass(frozen=True)
class Config:
    """A whole NVIDIA-style configuration file."""

    waveglow_config: WaveGlowConfig = field(default_factory=WaveGlowConfig)
    data_config: DataConfig = field(default_factory=DataConfig)
    train_config: TrainConfig = field(default_factory=TrainConfig)
    dist_config: DistConfig = field(default_factory=DistConfig)

    def __post_init__(self) -> None:
        hop, group = self.data_config.hop_length, self.waveglow_config.n_group
        _require(
            hop % group == 0,
            f"data_config.hop_length ({hop}) must be a multiple of waveglow_config.n_group ({group}) "
            "so that every mel frame gives whole groups of samples",
        )
        train, segment = self.train_config, self.data_config.segment_length
        _require(
            not train.spectral or segment > max(train.spectral_fft_sizes) // 2,
            f"data_config.segment_length ({segment}) must exceed half the largest of "
            f"train_config.spectral_fft_sizes ({max(train.spectral_fft_sizes)})",
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Config:
        return _from_mapping(cls, data, "config")

    def to_dict(self) -> dict[str, Any]:
        """The config as NVIDIA's sections; our layout options (``swap_odd_couplings``,
        ``mel_upsampling``, ``postfilter_config``, the WN's ``dilation_base`` and
        ``depthwise_separable``) only when not NVIDIA's, so that the ``waveglow_config`` of any other model stays exactly NVIDIA's
        (its code takes no more)."""
        data = dataclasses.asdict(self)
        if not self.waveglow_config.swap_odd_couplings:
            del data["waveglow_config"]["swap_odd_couplings"]
        if self.waveglow_config.has_upsampler:
            del data["waveglow_config"]["mel_upsampling"]
        if self.waveglow_config.postfilter_config is None:
            del data["waveglow_config"]["postfilter_config"]
        wn = data["waveglow_config"]["WN_config"]
        for name, nvidia in (("dilation_base", 2), ("depthwise_separable", False)):
            if wn[name] == nvidia:
                del wn[name]
        return data

    def replace(self, **sections: Any) -> Config:
        return dataclasses.replace(self, **sections)


def load_config(path: str | Path) -> Config:
    """Read an NVIDIA-style ``config.json`` (or ours, which has the same shape)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: not valid JSON ({error})") from None
    try:
        return Config.from_dict(data)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


# ---------------------------------------------------------------------------- overrides
def apply_overrides(config: Config, overrides: Sequence[str]) -> Config:
    """Apply ``section.key=value`` overrides (``train.x`` is short for ``train_config.x``).

    Values are parsed as JSON where possible (numbers, true/false, null), else kept as strings;
    nested keys work (``waveglow_config.WN_config.n_channels=256``). Unknown keys are an error.
    """
    data = dataclasses.asdict(config)  # every field, ours included, can be set
    for override in overrides:
        key, separator, text = override.partition("=")
        if not separator or not key.strip():
            raise ConfigError(f"override {override!r} is not of the form section.key=value")
        *sections, name = [part.strip() for part in key.split(".")]
        target = data
        for section in sections:
            section = _SECTION_ALIASES.get(section, section)
            if not isinstance(target.get(section), dict):
                raise ConfigError(f"override {override!r}: unknown section {section!r}")
            target = target[section]
        if name not in target:
            raise ConfigError(f"override {override!r}: unknown key {name!r}")
        target[name] = _parse_value(text.strip())
    return Config.from_dict(data)


def model_overrides(overrides: Sequence[str]) -> list[str]:
    """The keys of the ``section.key=value`` overrides that set the model's architecture
    (``waveglow_config``, ``WN_config``): a warm start takes those from its file instead."""
    keys = []
    for override in overrides:
        key = override.partition("=")[0].strip()
        sections = [_SECTION_ALIASES.get(part.strip(), part.strip()) for part in key.split(".")]
        if sections[0] == "waveglow_config" or (
            sections[:1] == ["data_config"] and sections[-1] == "filter_length"
        ):
            keys.append(key)
    return keys


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


_SECTION_ALIASES = {
    "train": "train_config",
    "data": "data_config",
    "waveglow": "waveglow_config",
    "dist": "dist_config",
    "WN": "WN_config",
}


def _from_mapping(cls: type[T], data: Any, where: str) -> T:
    if isinstance(data, cls):
        return data
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a JSON object, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        names = ", ".join(key if key.isprintable() else repr(key) for key in unknown)
        raise ConfigError(f"unknown key(s) in {where}: {names}")
    values = {}
    hints = typing.get_type_hints(cls)
    for name, value in data.items():
        nested = _SECTION_TYPES.get(name)
        if nested and value is None and name in _OPTIONAL_SECTIONS:
            values[name] = None
        elif nested:
            values[name] = _from_mapping(nested, value, name)
        else:
            values[name] = _check_type(value, hints[name], f"{where}.{name}")
    try:
        return cls(**values)
    except TypeError as error:
        raise ConfigError(f"{where}: {error}") from None


def _check_type(value: Any, annotation: Any, where: str) -> Any:
    """``value`` if it has the field's annotated type (bool is no int here; an int is accepted
    for a float); a :class:`ConfigError` like "train_config.batch_size must be int, got 'abc'"."""
    allowed = typing.get_args(annotation) if typing.get_origin(annotation) in _UNIONS else ()
    allowed = allowed or (annotation,)
    if typing.get_origin(annotation) is tuple:
        return _check_tuple(value, typing.get_args(annotation)[0], where)
    for kind in allowed:
        if kind is type(None) and value is None:
            return value
        if kind is bool and isinstance(value, bool):
            return value
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
            return value
        if kind is str and isinstance(value, str):
            return value
    names = " or ".join("null" if kind is type(None) else kind.__name__ for kind in allowed)
    raise ConfigError(f"{where} must be {names}, got {value!r}")


_UNIONS = (typing.Union, types.UnionType)


def _check_tuple(value: Any, item: Any, where: str) -> tuple:
    """A JSON list (or tuple) of values of type ``item`` as a tuple."""
    if not isinstance(value, list | tuple):
        raise ConfigError(f"{where} must be a list of {item.__name__}, got {value!r}")
    return tuple(
        _check_type(element, item, f"{where}[{index}]") for index, element in enumerate(value)
    )


def _one_of(names: typing.Iterable[str]) -> str:
    *first, last = names
    return f"{', '.join(first)} or {last}"


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


_SECTION_TYPES: dict[str, type] = {
    "waveglow_config": WaveGlowConfig,
    "data_config": DataConfig,
    "train_config": TrainConfig,
    "dist_config": DistConfig,
    "WN_config": WNConfig,
    "postfilter_config": WNConfig,
}
_OPTIONAL_SECTIONS = ("postfilter_config",)
