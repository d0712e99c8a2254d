"""Reading every checkpoint layout: ours and NVIDIA's, without NVIDIA's code, never executing code.

:func:`read_checkpoint` recognises (the ``layout`` it reports in brackets):

* our self-describing format, torch or safetensors (``waveglow``);
* NVIDIA/waveglow's training files ``{'model': <pickled glow.WaveGlow>, 'iteration', 'optimizer',
  'learning_rate'}`` or a bare pickled module, in torch's zip format (``nvidia-pickle``) or its
  pre-1.6 legacy format (``nvidia-pickle-legacy``), CUDA tensors included;
* DeepLearningExamples / NGC dicts ``{'state_dict': {'module.…'}, 'config', …}``
  (``deeplearningexamples``);
* NeMo state dicts, ``wavenet`` for ``WN``, maybe under ``waveglow.`` or in a Lightning
  ``{'state_dict': …}`` (``nemo``);
* a bare state dict of NVIDIA names saved with ``torch.save`` (``state-dict``).

Whatever the container, the weights may use any of NVIDIA's historical WaveNet layouts, which are
fused into today's names; the layout then carries a suffix:

* per-layer conditioning ``WN.k.cond_layers.i`` (before August 2019) ``+cond-layers``;
* split ``WN.k.res_layers.i`` / ``WN.k.skip_layers.i`` (``glow.py`` before its commit 8a5d43f of
  November 2018, and ``glow_old.py``) ``+res-skip-split``. NVIDIA's ``glow_old.py`` also swapped the
  coupling halves on odd flows, which no choice of weights can express: pickles of ``glow_old``
  classes get ``swap_odd_couplings=True`` in their inferred config, so they synthesise as NVIDIA's
  code did (and keep the flag when converted to our format); pickles of ``glow`` classes do not.
  A bare state dict cannot say which code wrote it: split layers are then read as ``glow.py``
  wrote them, with a :class:`LayoutWarning`, and ``glow_old=True`` chooses the other reading.

Weight norm may be present as ``weight_g``/``weight_v`` or folded into ``weight``.

A NeMo ``.nemo`` archive is read through its ``model_weights.ckpt``.

Torch files (zip and legacy format) are read by our own restricted unpickler, never by
``torch.load``: the only globals allowed are the WaveGlow and torch module classes, which become the
inert :class:`PickledModule` (only its ``_parameters``, ``_buffers`` and ``_modules`` are used),
plus containers, dtypes and tensor/storage rebuilders. Anything else (``os.system``,
``builtins.eval``, ...) is refused before it can run. Storages are always made on the CPU, so files
of CUDA tensors load anywhere.

The config is inferred from the tensor shapes; ``hop_length`` (not in any shape) comes from the
pickled upsampler's stride or the file's config, else NVIDIA's fixed 256.
"""

from __future__ import annotations

import codecs
import dataclasses
import io
import pickle
import re
import tarfile
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import IO, Any

import torch

from .audio import InputWarning, input_problem
from .checkpoint import (
    SAFETENSORS_SUFFIX,
    Checkpoint,
    CheckpointError,
    _key_mismatch,
    build_model,
    check_size,
    is_ours,
    read_ours,
    save,
)
from .config import Config, ConfigError, DataConfig, WaveGlowConfig, WNConfig

BUNDLED_MODELS = MappingProxyType({"demo": "models/demo.safetensors"})
DEFAULT_HOP_LENGTH = 256  # NVIDIA hard-codes the upsampler's stride


class PickledModule:
    """Inert stand-in for a pickled ``torch.nn.Module``: only its attribute dict, no behaviour."""


class PickledGlowOld(PickledModule):
    """Stand-in for a module pickled from NVIDIA's ``glow_old.py``."""


class PickledRecord:
    """Inert stand-in for other harmless pickled objects (weight-norm hooks, argparse namespaces)."""


def _no_backend(*_: Any) -> None:
    """Stand-in for torch 0.4's ``_get_thnn_function_backend`` (a ``_backend`` attribute)."""
    return None


class LayoutWarning(InputWarning):
    """A file whose layout does not say how NVIDIA's code read it; the message names the file,
    the reading chosen and how to choose the other."""


class _LayoutError(Exception):
    """A problem with the file's content; :func:`read_checkpoint` prefixes the file name."""


class _Refused(pickle.UnpicklingError):
    """The pickle names a global outside the allow-list (``name``), or calls an allowed one as no
    checkpoint does (``what`` says how); nothing of it has run."""

    def __init__(self, name: str, what: str | None = None) -> None:
        super().__init__(what or name)
        self.name = name
        self.what = what


# ---------------------------------------------------------------------------- entry points
def read_checkpoint(path: str | Path, glow_old: bool | None = None) -> Checkpoint:
    """Read any supported file into a :class:`Checkpoint` (config + fused-layout state dict).

    ``path`` may also name a model shipped inside the package (``"demo"``), unless a file of that
    name exists. ``glow_old`` (NVIDIA files only): True reads the file as NVIDIA's ``glow_old.py``
    did (odd flows' coupling halves swapped), False as ``glow.py`` did; None decides from the
    pickled module, and reads a bare state dict as ``glow.py`` (with a :class:`LayoutWarning`
    where its split res/skip layers could have come from either).
    """
    path = resolve_bundled(path)
    if problem := input_problem(path):
        raise CheckpointError(f"{path}: {problem}")
    checkpoint = _read_any(path, glow_old)
    check_size(checkpoint, str(path))
    return checkpoint


def _read_any(path: Path, glow_old: bool | None) -> Checkpoint:
    if path.suffix == SAFETENSORS_SUFFIX:
        return read_ours(path, None)
    payload, legacy = _load_payload(path)
    if is_ours(payload):
        return read_ours(path, payload)
    try:
        return _read_nvidia(payload, legacy, glow_old, str(path))
    except _LayoutError as error:
        raise CheckpointError(f"{path}: {error}") from None


def resolve_bundled(path: str | Path) -> Path:
    """The file a bundled model name (see :data:`BUNDLED_MODELS`) stands for, else ``path``."""
    name = str(path)
    if name not in BUNDLED_MODELS or Path(name).exists():
        return Path(path)
    resource = Path(str(resources.files("waveglow") / BUNDLED_MODELS[name]))
    if not resource.is_file():
        raise CheckpointError(
            f"the bundled model {name!r} is missing from this installation ({resource}); "
            "reinstall waveglow"
        )
    return resource


def convert(
    source: str | Path, destination: str | Path, glow_old: bool | None = None
) -> Checkpoint:
    """Convert any supported checkpoint to our format; returns what was read (``glow_old``: as
    for :func:`read_checkpoint`)."""
    checkpoint = read_checkpoint(source, glow_old)
    model = build_model(checkpoint, weight_norm=False, source=str(source))
    save(model, destination)
    return checkpoint


def safe_torch_load(path: str | Path) -> Any:
    """Unpickle a torch file (zip or legacy format) on the CPU, allowing only WaveGlow globals."""
    return _load_payload(Path(path))[0]


# ---------------------------------------------------------------------------- unpickling
def _module_class_names(flow_module: str = "glow") -> tuple[str, ...]:
    """The module classes an NVIDIA pickle names (``glow_old``: only its own three)."""
    flow_classes = tuple(
        f"{flow_module}.{name}" for name in ("WaveGlow", "WN", "Invertible1x1Conv")
    )
    if flow_module != "glow":
        return flow_classes
    return (
        *flow_classes,
        "torch.nn.modules.conv.Conv1d",
        "torch.nn.modules.conv.ConvTranspose1d",
        "torch.nn.modules.container.ModuleList",
    )


def _stand_ins() -> dict[str, Any]:
    """Pickled global name -> the inert object it becomes."""
    stand_ins: dict[str, Any] = dict.fromkeys(_module_class_names(), PickledModule)
    stand_ins.update(dict.fromkeys(_module_class_names("glow_old"), PickledGlowOld))
    stand_ins["torch.nn.utils.weight_norm.WeightNorm"] = PickledRecord
    stand_ins["argparse.Namespace"] = PickledRecord
    stand_ins["torch.nn.backends.thnn._get_thnn_function_backend"] = _no_backend
    return stand_ins


def read_torch_file(path: str | Path) -> tuple[Any, bool]:
    """The unpickled content of a torch file (zip, legacy or ``.nemo``) and whether it uses
    torch's legacy (pre-1.6) format; raises the raw error of a bad file (see :func:`_load_payload`).

    Memory is bounded by the file: an archive may not declare much more data than it has
    (:data:`MAX_EXPANSION`), and the storages together not more than that data.
    """
    path = Path(path)
    with open(path, "rb") as handle:
        if zipfile.is_zipfile(handle):
            return _read_zip(handle), False
        if tarfile.is_tarfile(path):
            return _read_nemo_archive(path), False
        handle.seek(0)
        return _read_legacy(handle), True


def _load_payload(path: Path) -> tuple[Any, bool]:
    """:func:`read_torch_file`, every failure a :class:`CheckpointError` naming the file."""
    try:
        return read_torch_file(path)
    except _Refused as error:
        raise _refusal(path, error) from None
    except Exception as error:  # noqa: BLE001 - every other failure is the file's
        raise CheckpointError(
            f"{path}: cannot be read as a checkpoint, the file is truncated or corrupt "
            f"({type(error).__name__}: {_first_line(error)})"
        ) from None


def _refusal(path: Path, error: _Refused) -> CheckpointError:
    name = re.sub(r"^__builtin__\.", "builtins.", error.name)  # protocol 2 writes Python 2's name
    what = error.what or f"it names {name}, which a WaveGlow checkpoint never contains"
    return CheckpointError(f"{path}: refused to load: {what}; nothing was executed")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else "no details"


class _StorageKind:
    """What a pickled ``torch.FloatStorage`` (or ``torch.cuda.FloatStorage``, ...) becomes."""

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype


_STORAGE_DTYPES = (
    ("Float", torch.float32),
    ("Double", torch.float64),
    ("Half", torch.float16),
    ("BFloat16", torch.bfloat16),
    ("Long", torch.int64),
    ("Int", torch.int32),
    ("Short", torch.int16),
    ("Char", torch.int8),
    ("Byte", torch.uint8),
    ("Bool", torch.bool),
)


def _allowed_globals() -> dict[str, Any]:
    """Every global a checkpoint may name: the stand-ins, containers, tensor and storage types.

    Plain data (numbers, strings, lists, dicts, tuples) needs no global at all.
    """
    allowed: dict[str, Any] = {
        **_stand_ins(),
        "collections.OrderedDict": OrderedDict,
        "builtins.set": set,
        "__builtin__.set": set,  # protocol 2 writes Python 2's name
        "torch.Size": torch.Size,
        "torch.device": torch.device,
        "torch.nn.parameter.Parameter": torch.nn.Parameter,
        "torch._utils._rebuild_tensor": torch._utils._rebuild_tensor,
        "torch._utils._rebuild_tensor_v2": torch._utils._rebuild_tensor_v2,
        "torch._utils._rebuild_parameter": torch._utils._rebuild_parameter,
        "torch._utils._rebuild_parameter_with_state": torch._utils._rebuild_parameter_with_state,
        "torch._tensor._rebuild_from_type_v2": _rebuild_from_type,
        "torch.Tensor": _TensorType,
    }
    for name, dtype in _STORAGE_DTYPES:
        allowed[f"torch.{name}Storage"] = allowed[f"torch.cuda.{name}Storage"] = _StorageKind(dtype)
        allowed[str(dtype)] = dtype
    return allowed


class _TensorType:
    """What a pickled ``torch.Tensor`` (the class) becomes: a type for :func:`_rebuild_from_type`
    to recognise, never called. ``torch.Tensor(n)`` would allocate whatever size the pickle asks
    for: every tensor must be a view of the file's own storages."""

    def __new__(cls, *_args: Any, **_kwargs: Any) -> _TensorType:
        raise _Refused("torch.Tensor", _MAKES_A_TENSOR)


_MAKES_A_TENSOR = "it makes a tensor with torch.Tensor(...), not from the file's storages"
_TENSOR_REBUILDERS = (
    torch._utils._rebuild_tensor,
    torch._utils._rebuild_tensor_v2,
    torch._utils._rebuild_parameter,
    torch._utils._rebuild_parameter_with_state,
)


def _rebuild_from_type(func: Any, new_type: Any, args: tuple, state: Any) -> torch.Tensor:
    """``torch._tensor._rebuild_from_type_v2`` (how torch pickles a tensor with Python attributes)
    for plain tensors only: ``func`` must rebuild it from a storage of the file; the attributes
    (``state``) are not needed for weights and are dropped."""
    if func is _TensorType:
        raise _Refused("torch.Tensor", _MAKES_A_TENSOR)
    if new_type is not _TensorType or not any(func is known for known in _TENSOR_REBUILDERS):
        raise _Refused(
            "torch._tensor._rebuild_from_type_v2",
            f"it rebuilds a tensor with {func!r} as {new_type!r}, as torch never writes one",
        )
    return func(*args)


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only allow-listed globals (anything else raises :class:`_Refused` before it can
    be called); storages come from ``storages``; the legacy format's module source is ignored.

    What the pickle makes beyond its own opcodes is charged to ``storages``' budget (the file's
    size): the storages, and the bytes objects protocol 2 writes as ``_codecs.encode(str,
    'latin1')`` (one memoised string encoded many times would multiply the file).
    """

    def __init__(self, handle: IO[bytes], storages: _Storages) -> None:
        super().__init__(handle, encoding="utf-8")
        self.allowed = {**_allowed_globals(), "_codecs.encode": self._latin1_bytes}
        self.storages = storages

    def _latin1_bytes(self, text: Any, encoding: str = "utf-8") -> bytes:
        if not isinstance(text, str) or _codec_name(encoding) != "iso8859-1":
            raise _Refused(
                "_codecs.encode",
                f"it encodes {type(text).__name__} as {encoding!r}, where a checkpoint only "
                "writes bytes as latin1 text",
            )
        self.storages.claim(len(text), "bytes")
        return text.encode("latin1")

    def find_class(self, module: str, name: str) -> Any:
        full_name = f"{module}.{name}"
        if full_name not in self.allowed:
            raise _Refused(full_name)
        return self.allowed[full_name]

    def persistent_load(self, pid: Any) -> Any:
        if not isinstance(pid, tuple) or not pid:
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        kind = pid[0].decode("ascii") if isinstance(pid[0], bytes) else pid[0]
        if kind == "module" and len(pid) >= 2:
            return pid[1]  # legacy format: the class (already allow-listed), then its source
        if kind != "storage" or len(pid) not in (5, 6) or (len(pid) == 6 and pid[5] is not None):
            raise pickle.UnpicklingError(f"unsupported persistent id {kind!r}")
        storage_kind, key, numel = pid[1], str(pid[2]), int(pid[4])  # pid[3]: device, ignored
        if not isinstance(storage_kind, _StorageKind):
            raise pickle.UnpicklingError("a storage of unknown type")
        tensor = self.storages.get(storage_kind, key, numel)
        return torch.storage.TypedStorage(
            wrap_storage=tensor.untyped_storage(), dtype=tensor.dtype, _internal=True
        )


class _Storages:
    """Storages by key, made on first use (tensors may share one); ``fill`` reads their data.

    The storages, and whatever else the pickle makes (:meth:`claim`), together may not claim
    more bytes than the file has (``limit``), so hostile sizes cannot make us allocate memory.
    """

    def __init__(self, limit: int, fill: Callable[[torch.Tensor, str], None] | None = None) -> None:
        self.tensors: dict[str, torch.Tensor] = {}
        self.limit = limit
        self.claimed = 0
        self.fill = fill

    def claim(self, size: int, what: str) -> None:
        """Charge ``size`` bytes to the file's budget; past it, a ValueError naming ``what``."""
        if not 0 <= size <= self.limit - self.claimed:
            raise ValueError(
                f"{what} claims {size} bytes: with the others, more than the file holds"
            )
        self.claimed += size

    def get(self, kind: _StorageKind, key: str, numel: int) -> torch.Tensor:
        if key not in self.tensors:
            self.claim(numel * torch.empty((), dtype=kind.dtype).element_size(), f"storage {key}")
            tensor = torch.empty(numel, dtype=kind.dtype)
            if self.fill is not None:
                self.fill(tensor, key)
            self.tensors[key] = tensor
        return self.tensors[key]


def _codec_name(encoding: Any) -> str | None:
    try:
        return codecs.lookup(encoding).name
    except (LookupError, TypeError):
        return None


def _size(handle: IO[bytes]) -> int:
    position = handle.tell()
    size = handle.seek(0, io.SEEK_END)
    handle.seek(position)
    return size


def _copy_bytes(tensor: torch.Tensor, data: bytes | bytearray) -> None:
    if len(data) != tensor.numel() * tensor.element_size():
        raise ValueError("storage data is truncated or has the wrong size")
    if data:
        tensor.copy_(torch.frombuffer(bytearray(data), dtype=tensor.dtype))


def _read_zip(handle: IO[bytes]) -> Any:
    """torch's zip format: ``<name>/data.pkl`` plus one ``<name>/data/<key>`` record per storage."""
    with zipfile.ZipFile(handle) as archive:
        declared = sum(info.file_size for info in archive.infolist())
        check_expansion(declared, _size(handle))
        pickles = [name for name in archive.namelist() if name.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise ValueError("a zip archive that is not a torch checkpoint")
        root = pickles[0][: -len("data.pkl")]
        byteorder = root + "byteorder"
        if byteorder in archive.namelist() and archive.read(byteorder).strip() != b"little":
            raise ValueError("big-endian files are not supported")

        def fill(tensor: torch.Tensor, key: str) -> None:
            _copy_bytes(tensor, archive.read(f"{root}data/{key}"))

        with archive.open(pickles[0]) as data:
            return _RestrictedUnpickler(data, _Storages(declared, fill)).load()


MAX_EXPANSION = 4
"""How much more data than its own size an archive may declare. torch stores its zip entries
uncompressed, so a real checkpoint declares about its size; a "zip bomb" declares thousands of
times more."""


def check_expansion(declared: int, size: int) -> None:
    """Refuse an archive that declares more than :data:`MAX_EXPANSION` times its size in data."""
    if declared > MAX_EXPANSION * size:
        raise ValueError(
            f"the archive declares {declared:,} bytes of data in a file of {size:,} bytes "
            f"(more than {MAX_EXPANSION}x, torch never compresses): refused before expanding it"
        )


_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


def _read_legacy(handle: IO[bytes]) -> Any:
    """torch's pre-1.6 format: pickles of magic, protocol, system info, the object and the
    storage keys, then each storage's data (int64 element count + raw bytes) in key order."""
    if handle.read(4) == b"PK\x03\x04":
        raise ValueError("a zip archive without its directory")
    handle.seek(0)
    storages = _Storages(_size(handle))  # filled after the object pickle

    def next_pickle() -> Any:
        return _RestrictedUnpickler(handle, storages).load()

    if next_pickle() != _LEGACY_MAGIC:
        raise ValueError("not a torch file (bad magic number)")
    if next_pickle() != _LEGACY_PROTOCOL:
        raise ValueError("unsupported torch legacy protocol version")
    system = next_pickle()
    if isinstance(system, Mapping) and not system.get("little_endian", True):
        raise ValueError("big-endian files are not supported")
    payload = next_pickle()
    for key in next_pickle():
        tensor = storages.tensors[str(key)]
        header = handle.read(8)
        if len(header) != 8 or int.from_bytes(header, "little") != tensor.numel():
            raise ValueError("storage data is missing or has the wrong size")
        _copy_bytes(tensor, handle.read(tensor.numel() * tensor.element_size()))
    return payload


def _read_nemo_archive(path: Path) -> Any:
    """A ``.nemo`` file: a tar archive whose ``model_weights.ckpt`` is a torch state dict."""
    with tarfile.open(path, "r:*") as archive:
        members = [
            member
            for member in archive.getmembers()
            if member.isfile() and Path(member.name).name == "model_weights.ckpt"
        ]
        if len(members) != 1:
            raise ValueError("a tar archive without one model_weights.ckpt (not a .nemo file)")
        check_expansion(members[0].size, path.stat().st_size)
        weights = archive.extractfile(members[0])
        assert weights is not None  # a regular file
        data = io.BytesIO(weights.read())
    if zipfile.is_zipfile(data):
        return _read_zip(data)
    data.seek(0)
    return _read_legacy(data)


# ---------------------------------------------------------------------------- payload kinds
def _read_nvidia(
    payload: Any, legacy: bool, glow_old: bool | None = None, source: str = ""
) -> Checkpoint:
    """Detect the container, extract its tensors, normalise names, fuse, infer the config."""
    layout, state, hints, extra = _extract(payload, legacy)
    state, ignored, nemo = _normalise_names(state)
    if ignored:
        if any(name.startswith(("upsample.", "WN.", "wavenet.", "convinv.")) for name in ignored):
            raise _LayoutError("holds WaveGlow weights outside its 'waveglow.' part")
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
        raise _LayoutError(f"not a WaveGlow checkpoint of any known layout (a {_kind(payload)})")
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
    raise _LayoutError(f"not a WaveGlow checkpoint of any known layout (a dict with keys {keys})")


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
                raise _LayoutError(f"{prefix}{name} is a {_kind(value)}, not a tensor")
            state[prefix + str(name)] = value
    for name, child in (fields.get("_modules") or {}).items():
        if child is None:
            continue
        if not isinstance(child, PickledModule):
            raise _LayoutError(f"{prefix}{name} is a {_kind(child)}, not a module")
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
    """Fuse per-layer ``cond_layers`` and split ``res_layers``/``skip_layers`` into today's names."""
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
                raise _LayoutError(f"WN.{flow} has res_layers but no skip_layers")
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
            raise _LayoutError(f"{name} appears both fused and per layer")
        state[name] = tensor


def _layer_list(layers: dict[int, dict[str, torch.Tensor]], where: str) -> list[dict]:
    """The layers in order; their indices must be 0..n-1 and they must hold the same parameters."""
    if sorted(layers) != list(range(len(layers))):
        raise _LayoutError(f"{where} has layer indices {sorted(layers)}, expected 0..n-1")
    ordered = [layers[index] for index in range(len(layers))]
    if any(set(layer) != set(ordered[0]) for layer in ordered):
        raise _LayoutError(f"{where}: the layers hold different parameters")
    return ordered


def _cat_layers(layers: dict[int, dict[str, torch.Tensor]], where: str) -> dict[str, torch.Tensor]:
    """Concatenate along output channels (dim 0, also weight norm's dim: g and v stay exact)."""
    ordered = _layer_list(layers, where)
    try:
        return {name: torch.cat([layer[name] for layer in ordered]) for name in ordered[0]}
    except RuntimeError as error:
        raise _LayoutError(f"{where}: layer shapes do not concatenate ({error})") from None


def _res_skip_layers(
    res: dict[int, dict[str, torch.Tensor]], skip: dict[int, dict[str, torch.Tensor]], flow: int
) -> dict[int, dict[str, torch.Tensor]]:
    """Layer i < L-1: cat(res_i, skip_i) (residual channels first); the last layer: skip only."""
    skips = _layer_list(skip, f"WN.{flow}.skip_layers")
    residuals = _layer_list(res, f"WN.{flow}.res_layers") if res else []
    if len(residuals) != len(skips) - 1:
        raise _LayoutError(
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
    raise _LayoutError(f"missing {prefix}.weight (or weight_g/weight_v)")


def _indices(state: Mapping[str, torch.Tensor], pattern: str) -> list[int]:
    found = {int(match.group(1)) for name in state if (match := re.match(pattern, name))}
    return sorted(found)


def _infer_config(state: Mapping[str, torch.Tensor], hints: Mapping[str, Any]) -> Config:
    """The config that the tensor shapes (and the file's own config, if any) describe."""
    _require_waveglow(state)
    try:
        return _config_from_shapes(state, hints)
    except (ConfigError, IndexError) as error:
        raise _LayoutError(f"its shapes describe no valid WaveGlow ({error})") from None


def _config_from_shapes(state: Mapping[str, torch.Tensor], hints: Mapping[str, Any]) -> Config:
    upsample = _weight(state, "upsample")
    if upsample.dim() != 3 or upsample.shape[0] != upsample.shape[1]:
        raise _LayoutError(f"upsample.weight has shape {tuple(upsample.shape)}, expected (M, M, K)")
    mel_bins, filter_length = upsample.shape[0], upsample.shape[2]
    flows = _indices(state, r"^WN\.(\d+)\.")
    if flows != list(range(len(flows))) or _indices(state, r"^convinv\.(\d+)\.") != flows:
        raise _LayoutError("WN.k and convinv.k must be numbered 0..n_flows-1 alike")
    channels = [_weight(state, f"convinv.{k}.conv").shape[0] for k in flows]
    early_every, early_size = _early_outputs(channels)
    start = _weight(state, "WN.0.start")
    layers = _indices(state, r"^WN\.0\.in_layers\.(\d+)\.")
    if start.dim() != 3 or not layers:
        raise _LayoutError("WN.0.start / WN.0.in_layers are missing or malformed")
    wn = WNConfig(
        n_layers=len(layers),
        n_channels=start.shape[0],
        kernel_size=_weight(state, "WN.0.in_layers.0").shape[-1],
    )
    flow = WaveGlowConfig(mel_bins, len(flows), channels[0], early_every, early_size, wn)
    if [flow.channels_at(k) for k in flows] != channels:
        raise _LayoutError(f"the 1x1 convolutions' sizes {channels} follow no early-output pattern")
    _check_hints(flow, hints)
    data = _data_config(filter_length, hints)
    if data.hop_length % flow.n_group:
        raise _LayoutError(
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
    raise _LayoutError(f"has no WaveGlow weights: it looks like {guess} (keys: {sample} ...)")


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
        raise _LayoutError(f"its config disagrees with its weights: {', '.join(wrong)}")


def _data_config(filter_length: int, hints: Mapping[str, Any]) -> DataConfig:
    """The audio config: the upsampler's taps, the file's config where it has one, else defaults."""
    stated = hints.get("filter_length")
    if isinstance(stated, int) and stated != filter_length:
        raise _LayoutError(
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
        raise _LayoutError(
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
        raise _LayoutError(_key_mismatch("", missing, unexpected).removeprefix(": "))


def _broken_weight_norm(name: str, state: Mapping[str, torch.Tensor]) -> bool:
    """``weight_g`` without ``weight_v`` (or the reverse), or a plain ``weight`` beside them."""
    base = re.sub(r"\.(weight|weight_g|weight_v)$", "", name)
    if base == name:
        return False
    pair = (f"{base}.weight_g" in state) + (f"{base}.weight_v" in state)
    return pair == 1 or (pair == 2 and f"{base}.weight" in state)
