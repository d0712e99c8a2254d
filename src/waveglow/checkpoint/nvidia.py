"""NVIDIA's checkpoint layouts, read without NVIDIA's code: :func:`read_nvidia` recognises (the
``layout`` it reports in brackets):

* NVIDIA/waveglow's training files ``{'model': <pickled glow.WaveGlow>, 'iteration', 'optimizer',
  'learning_rate'}`` or a bare pickled module, in torch's zip format (``nvidia-pickle``) or its
  pre-1.6 legacy format (``nvidia-pickle-legacy``), CUDA tensors included;
* DeepLearningExamples / NGC dicts ``{'state_dict': {'module.…'}, 'config', …}``
  (``deeplearningexamples``);
* NeMo state dicts, ``wavenet`` for ``WN``, maybe under ``waveglow.`` or in a Lightning
  ``{'state_dict': …}`` (``nemo``);
* a bare state dict of NVIDIA names saved with ``torch.save`` (``state-dict``).

Whatever the container, the weights may use any of NVIDIA's historical WaveNet layouts, which are
fused into the current names (``cond_layer``, ``res_skip_layers``); the layout then carries a
suffix:

* per-layer conditioning ``WN.k.cond_layers.i`` (before August 2019) ``+cond-layers``;
* split ``WN.k.res_layers.i`` / ``WN.k.skip_layers.i`` (``glow.py`` before its commit 8a5d43f of
  November 2018, and ``glow_old.py``) ``+res-skip-split``. NVIDIA's ``glow_old.py`` also swapped the
  coupling halves on odd flows, which no choice of weights can express: pickles of ``glow_old``
  classes get ``swap_odd_couplings=True`` in their inferred config, so they synthesize as NVIDIA's
  code did (and keep the flag when converted to our format); pickles of ``glow`` classes do not.
  A bare state dict cannot say which code wrote it: split layers are then read as ``glow.py``
  wrote them, with a :class:`LayoutWarning`, and ``glow_old=True`` chooses the other reading.

Weight norm may be present as ``weight_g``/``weight_v`` or folded into ``weight``.

A NeMo ``.nemo`` archive is read through its ``model_weights.ckpt``.

Torch files are unpickled by :mod:`waveglow.torchfile` (nothing in them runs).

The config is inferred from the tensor shapes; ``hop_length`` (not in any shape) comes from the
pickled upsampler's stride or the file's config, else NVIDIA's fixed 256.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from collections.abc import Mapping
from typing import Any

import torch

from ..audio import InputWarning
from ..config import Config, ConfigError, DataConfig, WaveGlowConfig, WNConfig
from ..torchfile import PickledGlowOld, PickledModule, PickledRecord
from .ours import Checkpoint, key_mismatch

DEFAULT_HOP_LENGTH = 256  # NVIDIA hard-codes the upsampler's stride


class LayoutWarning(InputWarning):
    """A file whose layout does not say how NVIDIA's code read it; the message names the file,
    the reading chosen and how to choose the other."""


class LayoutError(Exception):
    """A problem with the file's content; the reader prefixes the file name."""


# ---------------------------------------------------------------------------- payload kinds
def read_nvidia(
    payload: Any, legacy: bool, glow_old: bool | None = None, source: str = ""
) -> Checkpoint:
    """Detect the container, extract its tensors, normalise names, fuse, infer the config."""
    layout, state, hints, extra = _extract(payload, legacy)
    state, ignored, nemo = _normalise_names(state)
    if ignored:
        if any(name.startswith(("upsample.", "WN.", "wavenet.", "convinv.")) for name in ignored):
            raise LayoutError("holds WaveGlow weights outside its 'waveglow.' part")
        extra["ignored_keys"] = sorted(ignored)
    layout = "nemo" if nemo or _was_nemo(payload) else layout
    state, fusions = _fuse_old_layouts(state)
    config = _infer_config(state, hints)
    _check_keys(state, config)
    if _swaps_odd_couplings(
        extra.get("nvidia_module"), "res-skip-split" in fusions, glow_old, source
    ):
        flow = dataclasses.replace(config.waveglow_config, swap_odd_couplings=True)
        config = config.replace(waveglow_config=flow)
    return Checkpoint(config, state, layout="+".join([layout, *fusions]), extra=extra)


def _swaps_odd_couplings(
    module: str | None, split_res_skip: bool, glow_old: bool | None, source: str
) -> bool:
    """Whether NVIDIA's code that wrote the file swapped odd flows' coupling halves: only
    ``glow_old.py`` did. The user's ``glow_old`` decides, else the pickled module; a bare state
    dict is read as ``glow.py``, said in a warning where split layers make either possible."""
    if glow_old is not None:
        return glow_old
    if module is not None:
        return module == "glow_old"
    if split_res_skip:
        warnings.warn(
            f"{source}: split res/skip layers without a pickled module: read as NVIDIA's glow.py "
            "wrote them (before November 2018); if glow_old.py wrote the file, pass glow_old=True "
            "(waveglow convert --glow-old)",
            LayoutWarning,
            stacklevel=4,
        )
    return False


def _extract(
    payload: Any, legacy: bool
) -> tuple[str, dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """(layout, flat tensors with the file's names, config hints, extra scalars)."""
    pickle_layout = "nvidia-pickle-legacy" if legacy else "nvidia-pickle"
    if isinstance(payload, PickledModule):
        return pickle_layout, _module_state(payload), _module_hints(payload), _origin(payload)
    if not isinstance(payload, Mapping):
        raise LayoutError(f"not a WaveGlow checkpoint of any known layout (a {_kind(payload)})")
    extra = {
        key: payload[key]
        for key in ("iteration", "learning_rate", "epoch")
        if isinstance(payload.get(key), int | float)
    }
    model = payload.get("model")
    if isinstance(model, PickledModule):
        extra.update(_origin(model))
        return pickle_layout, _module_state(model), _module_hints(model), extra
    for key, layout in (("state_dict", "deeplearningexamples"), ("model", "state-dict")):
        if isinstance(payload.get(key), Mapping) and _is_state_dict(payload[key]):
            hints = _config_hints(payload.get("config"))
            return layout, _tensors(payload[key]), hints, extra
    if _is_state_dict(payload):
        return "state-dict", _tensors(payload), {}, {}
    keys = ", ".join(sorted(map(str, payload))[:8])
    raise LayoutError(f"not a WaveGlow checkpoint of any known layout (a dict with keys {keys})")


def _origin(record: PickledModule) -> dict[str, Any]:
    return {"nvidia_module": "glow_old" if isinstance(record, PickledGlowOld) else "glow"}


def _is_state_dict(mapping: Mapping) -> bool:
    return bool(mapping) and all(
        isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in mapping.items()
    )


def _tensors(mapping: Mapping) -> dict[str, torch.Tensor]:
    return {str(name): tensor for name, tensor in mapping.items()}


def _kind(value: Any) -> str:
    return "pickled object" if isinstance(value, PickledRecord) else type(value).__name__


def _was_nemo(payload: Any) -> bool:
    return isinstance(payload, Mapping) and (
        "hyper_parameters" in payload or "pytorch-lightning_version" in payload
    )


def _module_state(record: PickledModule, prefix: str = "") -> dict[str, torch.Tensor]:
    """Flatten a pickled module tree: only ``_parameters``/``_buffers`` count (not the stale
    ``weight`` attribute that the weight-norm hook leaves beside ``weight_g``/``weight_v``)."""
    fields = vars(record)
    skipped = fields.get("_non_persistent_buffers_set") or set()
    state: dict[str, torch.Tensor] = {}
    for group in ("_parameters", "_buffers"):
        for name, value in (fields.get(group) or {}).items():
            if value is None or (group == "_buffers" and name in skipped):
                continue
            if not isinstance(value, torch.Tensor):
                raise LayoutError(f"{prefix}{name} is a {_kind(value)}, not a tensor")
            state[prefix + str(name)] = value
    for name, child in (fields.get("_modules") or {}).items():
        if child is None:
            continue
        if not isinstance(child, PickledModule):
            raise LayoutError(f"{prefix}{name} is a {_kind(child)}, not a module")
        state.update(_module_state(child, f"{prefix}{name}."))
    return state


def _module_hints(record: PickledModule) -> dict[str, Any]:
    """The upsampler's stride is NVIDIA's hop length, kept as a pickled attribute."""
    upsample = (vars(record).get("_modules") or {}).get("upsample")
    stride = vars(upsample).get("stride") if isinstance(upsample, PickledModule) else None
    if isinstance(stride, tuple | list) and len(stride) == 1 and isinstance(stride[0], int):
        return {"hop_length": stride[0]}
    return {}


def _config_hints(config: Any) -> dict[str, Any]:
    """Values of a file's config (a dict, maybe with NVIDIA's sections, or a namespace)."""
    if isinstance(config, PickledRecord):
        config = vars(config)
    if not isinstance(config, Mapping):
        return {}
    hints = {key: value for key, value in config.items() if isinstance(key, str)}
    for section in ("data_config", "waveglow_config", "WN_config"):
        if isinstance(config.get(section), Mapping):
            hints.update(_config_hints(config[section]))
    return hints


# ---------------------------------------------------------------------------- names
_PREFIXES = ("module.", "_orig_mod.", "model.")


def _normalise_names(
    state: dict[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], list[str], bool]:
    """Strip wrapper prefixes, keep only the ``waveglow.`` part of a NeMo model, map ``wavenet``.

    Returns the renamed tensors, the names left out and whether NeMo's names were seen.
    """
    ignored: list[str] = []
    nemo = False
    for prefix in _PREFIXES:
        if all(name.startswith(prefix) for name in state):
            state = {name[len(prefix) :]: tensor for name, tensor in state.items()}
    if any(name.startswith("waveglow.") for name in state):
        nemo = True
        ignored = [name for name in state if not name.startswith("waveglow.")]
        state = {
            name[len("waveglow.") :]: tensor
            for name, tensor in state.items()
            if name.startswith("waveglow.")
        }
    nemo = nemo or any(name.startswith("wavenet.") for name in state)
    renamed = {re.sub(r"^wavenet\.", "WN.", name): tensor for name, tensor in state.items()}
    return renamed, ignored, nemo


_OLD_LAYER = re.compile(r"^WN\.(\d+)\.(cond_layers|res_layers|skip_layers)\.(\d+)\.(\w+)$")


def _fuse_old_layouts(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Fuse per-layer ``cond_layers`` and split ``res_layers``/``skip_layers`` into the current
    fused names."""
    old: dict[tuple[int, str], dict[int, dict[str, torch.Tensor]]] = {}
    fused = {}
    for name, tensor in state.items():
        match = _OLD_LAYER.match(name)
        if match is None:
            fused[name] = tensor
            continue
        flow, kind, layer, parameter = match.groups()
        old.setdefault((int(flow), kind), {}).setdefault(int(layer), {})[parameter] = tensor
    kinds = {kind for _, kind in old}
    for flow in sorted({flow for flow, _ in old}):
        cond = old.get((flow, "cond_layers"))
        if cond is not None:
            _add_fused(fused, f"WN.{flow}.cond_layer", _cat_layers(cond, f"WN.{flow}.cond_layers"))
        res, skip = old.get((flow, "res_layers"), {}), old.get((flow, "skip_layers"))
        if skip is None:
            if res:
                raise LayoutError(f"WN.{flow} has res_layers but no skip_layers")
            continue
        for layer, parameters in _res_skip_layers(res, skip, flow).items():
            _add_fused(fused, f"WN.{flow}.res_skip_layers.{layer}", parameters)
    fusions = ["cond-layers"] if "cond_layers" in kinds else []
    if kinds & {"res_layers", "skip_layers"}:
        fusions.append("res-skip-split")
    return fused, fusions


def _add_fused(state: dict[str, torch.Tensor], prefix: str, parameters: dict) -> None:
    for parameter, tensor in parameters.items():
        name = f"{prefix}.{parameter}"
        if name in state:
            raise LayoutError(f"{name} appears both fused and per layer")
        state[name] = tensor


def _layer_list(layers: dict[int, dict[str, torch.Tensor]], where: str) -> list[dict]:
    """The layers in order; their indices must be 0..n-1 and they must hold the same parameters."""
    if sorted(layers) != list(range(len(layers))):
        raise LayoutError(f"{where} has layer indices {sorted(layers)}, expected 0..n-1")
    ordered = [layers[index] for index in range(len(layers))]
    if any(set(layer) != set(ordered[0]) for layer in ordered):
        raise LayoutError(f"{where}: the layers hold different parameters")
    return ordered


def _cat_layers(layers: dict[int, dict[str, torch.Tensor]], where: str) -> dict[str, torch.Tensor]:
    """Concatenate along output channels (dim 0, also weight norm's dim: g and v stay exact)."""
    ordered = _layer_list(layers, where)
    try:
        return {name: torch.cat([layer[name] for layer in ordered]) for name in ordered[0]}
    except RuntimeError as error:
        raise LayoutError(f"{where}: layer shapes do not concatenate ({error})") from None


def _res_skip_layers(
    res: dict[int, dict[str, torch.Tensor]], skip: dict[int, dict[str, torch.Tensor]], flow: int
) -> dict[int, dict[str, torch.Tensor]]:
    """Layer i < L-1: cat(res_i, skip_i) (residual channels first); the last layer: skip only."""
    skips = _layer_list(skip, f"WN.{flow}.skip_layers")
    residuals = _layer_list(res, f"WN.{flow}.res_layers") if res else []
    if len(residuals) != len(skips) - 1:
        raise LayoutError(
            f"WN.{flow} has {len(residuals)} res_layers and {len(skips)} skip_layers; "
            "expected one residual layer fewer than skip layers"
        )
    fused = {}
    for layer, skip_layer in enumerate(skips):
        if layer == len(skips) - 1:
            fused[layer] = skip_layer
        else:
            where = f"WN.{flow}.res_layers.{layer} + skip_layers.{layer}"
            fused[layer] = _cat_layers({0: residuals[layer], 1: skip_layer}, where)
    return fused


# ---------------------------------------------------------------------------- config
def _weight(state: Mapping[str, torch.Tensor], prefix: str) -> torch.Tensor:
    """A convolution's weight (or weight norm's direction ``weight_v``: the same shape)."""
    for name in (f"{prefix}.weight", f"{prefix}.weight_v"):
        if name in state:
            return state[name]
    raise LayoutError(f"missing {prefix}.weight (or weight_g/weight_v)")


def _indices(state: Mapping[str, torch.Tensor], pattern: str) -> list[int]:
    found = {int(match.group(1)) for name in state if (match := re.match(pattern, name))}
    return sorted(found)


def _infer_config(state: Mapping[str, torch.Tensor], hints: Mapping[str, Any]) -> Config:
    """The config that the tensor shapes (and the file's own config, if any) describe."""
    _require_waveglow(state)
    try:
        return _config_from_shapes(state, hints)
    except (ConfigError, IndexError) as error:
        raise LayoutError(f"its shapes describe no valid WaveGlow ({error})") from None


def _config_from_shapes(state: Mapping[str, torch.Tensor], hints: Mapping[str, Any]) -> Config:
    upsample = _weight(state, "upsample")
    if upsample.dim() != 3 or upsample.shape[0] != upsample.shape[1]:
        raise LayoutError(f"upsample.weight has shape {tuple(upsample.shape)}, expected (M, M, K)")
    mel_bins, filter_length = upsample.shape[0], upsample.shape[2]
    flows = _indices(state, r"^WN\.(\d+)\.")
    if flows != list(range(len(flows))) or _indices(state, r"^convinv\.(\d+)\.") != flows:
        raise LayoutError("WN.k and convinv.k must be numbered 0..n_flows-1 alike")
    channels = [_weight(state, f"convinv.{k}.conv").shape[0] for k in flows]
    early_every, early_size = _early_outputs(channels)
    start = _weight(state, "WN.0.start")
    layers = _indices(state, r"^WN\.0\.in_layers\.(\d+)\.")
    if start.dim() != 3 or not layers:
        raise LayoutError("WN.0.start / WN.0.in_layers are missing or malformed")
    wn = WNConfig(
        n_layers=len(layers),
        n_channels=start.shape[0],
        kernel_size=_weight(state, "WN.0.in_layers.0").shape[-1],
    )
    flow = WaveGlowConfig(mel_bins, len(flows), channels[0], early_every, early_size, wn)
    if [flow.channels_at(k) for k in flows] != channels:
        raise LayoutError(f"the 1x1 convolutions' sizes {channels} follow no early-output pattern")
    _check_hints(flow, hints)
    data = _data_config(filter_length, hints)
    if data.hop_length % flow.n_group:
        raise LayoutError(
            f"hop_length {data.hop_length} is not a multiple of n_group {flow.n_group}"
        )
    return Config(waveglow_config=flow, data_config=data)


def _require_waveglow(state: Mapping[str, torch.Tensor]) -> None:
    if any(name.startswith(("upsample.", "WN.", "convinv.")) for name in state):
        return
    sample = ", ".join(sorted(state)[:6])
    tacotron = any(
        name.startswith(("embedding.", "encoder.", "decoder.", "postnet.")) for name in state
    )
    guess = "a Tacotron 2 checkpoint" if tacotron else "a checkpoint of another model"
    raise LayoutError(f"has no WaveGlow weights: it looks like {guess} (keys: {sample} ...)")


def _early_outputs(channels: list[int]) -> tuple[int, int]:
    """(n_early_every, n_early_size) from where the 1x1 convolutions shrink; none: (n_flows, 0)."""
    drops = [k for k in range(1, len(channels)) if channels[k] < channels[k - 1]]
    if not drops:
        return len(channels), 0
    return drops[0], channels[drops[0] - 1] - channels[drops[0]]


_ARCHITECTURE_HINTS = (
    "n_mel_channels",
    "n_flows",
    "n_group",
    "n_layers",
    "n_channels",
    "kernel_size",
)


def _check_hints(flow: WaveGlowConfig, hints: Mapping[str, Any]) -> None:
    """A config stored in the file must agree with the shapes."""
    inferred = {**vars(flow), **vars(flow.WN_config)}
    names = _ARCHITECTURE_HINTS + (("n_early_every", "n_early_size") if flow.n_early_size else ())
    wrong = [
        f"{name}={hints[name]!r} (the weights say {inferred[name]})"
        for name in names
        if isinstance(hints.get(name), int) and hints[name] != inferred[name]
    ]
    if wrong:
        raise LayoutError(f"its config disagrees with its weights: {', '.join(wrong)}")


def _data_config(filter_length: int, hints: Mapping[str, Any]) -> DataConfig:
    """The audio config: the upsampler's taps, the file's config where it has one, else defaults."""
    stated = hints.get("filter_length")
    if isinstance(stated, int) and stated != filter_length:
        raise LayoutError(
            f"its config disagrees with its weights: filter_length={stated} "
            f"(the upsampler has {filter_length} taps)"
        )
    fields = ("sampling_rate", "hop_length", "win_length", "mel_fmin", "mel_fmax")
    values = {name: hints[name] for name in fields if isinstance(hints.get(name), int | float)}
    if "mel_fmax" in hints and hints["mel_fmax"] is None:
        values["mel_fmax"] = None  # up to Nyquist
    values.setdefault("hop_length", DEFAULT_HOP_LENGTH)
    values.setdefault("win_length", filter_length)
    try:
        return DataConfig(filter_length=filter_length, **values)
    except (ConfigError, TypeError) as error:
        raise LayoutError(
            f"no valid audio config for an upsampler of {filter_length} taps with "
            f"hop_length={values['hop_length']} ({error})"
        ) from None


# ---------------------------------------------------------------------------- key check
def _expected_keys(config: Config) -> set[str]:
    """Fused-layout names, with ``weight`` standing for a (weight_g, weight_v) pair."""
    flow = config.waveglow_config
    keys = {"upsample.weight", "upsample.bias"}
    for k in range(flow.n_flows):
        convs = ["start", "end", "cond_layer"] + [
            f"{kind}.{i}"
            for kind in ("in_layers", "res_skip_layers")
            for i in range(flow.WN_config.n_layers)
        ]
        keys |= {f"WN.{k}.{conv}.{parameter}" for conv in convs for parameter in ("weight", "bias")}
        keys.add(f"convinv.{k}.conv.weight")
    return keys


def _check_keys(state: Mapping[str, torch.Tensor], config: Config) -> None:
    """Strict mapping: every expected weight present, nothing left over, weight norm in pairs."""
    expected = _expected_keys(config)
    canonical = {name: re.sub(r"\.weight_[gv]$", ".weight", name) for name in state}
    missing = expected - set(canonical.values())
    unexpected = {name for name, base in canonical.items() if base not in expected}
    unexpected |= {name for name in state if _broken_weight_norm(name, state)}
    if missing or unexpected:
        raise LayoutError(key_mismatch("", missing, unexpected).removeprefix(": "))


def _broken_weight_norm(name: str, state: Mapping[str, torch.Tensor]) -> bool:
    """``weight_g`` without ``weight_v`` (or the reverse), or a plain ``weight`` beside them."""
    base = re.sub(r"\.(weight|weight_g|weight_v)$", "", name)
    if base == name:
        return False
    pair = (f"{base}.weight_g" in state) + (f"{base}.weight_v" in state)
    return pair == 1 or (pair == 2 and f"{base}.weight" in state)
