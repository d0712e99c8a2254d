"""Reading torch files without running their code: our own restricted unpickler, never
``torch.load``.

Torch's zip format, its pre-1.6 legacy format and NeMo's ``.nemo`` archives are read. The only
globals allowed are the WaveGlow and torch module classes, which become the inert
:class:`PickledModule` (only its ``_parameters``, ``_buffers`` and ``_modules`` are used), plus
containers, dtypes and tensor/storage rebuilders. Anything else (``os.system``, ``builtins.eval``,
...) is refused (:class:`RefusedGlobal`) before it can run. Storages are always made on the CPU, so
files of CUDA tensors load anywhere, and memory is bounded by the file's size.
"""

from __future__ import annotations

import codecs
import io
import pickle
import pickletools
import tarfile
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import torch


class PickledModule:
    """Inert stand-in for a pickled ``torch.nn.Module``: only its attribute dict, no behaviour."""


class PickledGlowOld(PickledModule):
    """Stand-in for a module pickled from NVIDIA's ``glow_old.py``."""


class PickledRecord:
    """Inert stand-in for other harmless pickled objects (weight-norm hooks, argparse namespaces)."""


def _no_backend(*_: Any) -> None:
    """Stand-in for torch 0.4's ``_get_thnn_function_backend`` (a ``_backend`` attribute)."""
    return None


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle names a global outside the allow-list (``name``), or calls an allowed one as no
    checkpoint does (``what`` says how); nothing of it has run."""

    def __init__(self, name: str, what: str | None = None) -> None:
        super().__init__(what or name)
        self.name = name
        self.what = what


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
    torch's legacy (pre-1.6) format; raises :class:`RefusedGlobal` for a global outside the
    allow-list, and the raw error of a bad file.

    Memory is bounded by the file: an archive may not declare much more data than it has
    (:data:`MAX_EXPANSION`), and the storages together not more than that data.
    """
    path = Path(path)
    with open(path, "rb") as handle:
        if zipfile.is_zipfile(handle):
            return _read_zip(handle), False
        if (mode := _tar_mode(handle)) is not None:
            return _read_nemo_archive(path, mode), False
        handle.seek(0)
        return _read_legacy(handle), True


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
        raise RefusedGlobal("torch.Tensor", _MAKES_A_TENSOR)


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
        raise RefusedGlobal("torch.Tensor", _MAKES_A_TENSOR)
    if new_type is not _TensorType or not any(func is known for known in _TENSOR_REBUILDERS):
        raise RefusedGlobal(
            "torch._tensor._rebuild_from_type_v2",
            f"it rebuilds a tensor with {func!r} as {new_type!r}, as torch never writes one",
        )
    return func(*args)


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only allow-listed globals (anything else raises :class:`RefusedGlobal` before it can
    be called); storages come from ``storages``; the legacy format's module source is ignored.

    What the pickle makes beyond its own opcodes is charged to ``storages``' budget (the file's
    size): the storages, and the bytes objects protocol 2 writes as ``_codecs.encode(str,
    'latin1')`` (one memoised string encoded many times would multiply the file).
    """

    def __init__(self, handle: IO[bytes], storages: _Storages) -> None:
        super().__init__(handle, encoding="utf-8")
        self.allowed = {**_allowed_globals(), "_codecs.encode": self._latin1_bytes}
        self.storages = storages
        self.handle = handle

    def load(self) -> Any:
        check_pickle(self.handle)
        return super().load()

    def _latin1_bytes(self, text: Any, encoding: str = "utf-8") -> bytes:
        if not isinstance(text, str) or _codec_name(encoding) != "iso8859-1":
            raise RefusedGlobal(
                "_codecs.encode",
                f"it encodes {type(text).__name__} as {encoding!r}, where a checkpoint only "
                "writes bytes as latin1 text",
            )
        self.storages.claim(len(text), "bytes")
        return text.encode("latin1")

    def find_class(self, module: str, name: str) -> Any:
        full_name = f"{module}.{name}"
        if full_name not in self.allowed:
            raise RefusedGlobal(full_name)
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


class _BoundedReader:
    """A file whose reads never ask for more than it holds: a pickle's declared lengths cannot
    make :func:`check_pickle` allocate them."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.end = _size(handle)

    def left(self) -> int:
        return self.end - self.handle.tell()

    def tell(self) -> int:
        return self.handle.tell()

    def read(self, size: int = -1) -> bytes:
        return self.handle.read(self.left() if size < 0 else min(size, self.left()))

    def readline(self) -> bytes:
        return self.handle.readline(self.left())


_MEMO_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})


def check_pickle(handle: IO[bytes]) -> None:
    """Walk the pickle at ``handle``'s position (then seek back) and refuse, before unpickling,
    what would make the unpickler allocate more than the file holds: a length (bytes, string,
    frame) past the end of the file, a memo index beyond the objects so far (CPython's unpickler
    sizes its memo by the index). A ValueError says which."""
    start = handle.tell()
    reader = _BoundedReader(handle)
    memoised = 0
    try:
        for opcode, argument, position in pickletools.genops(reader):
            if opcode.name == "FRAME" and argument > reader.left():
                raise ValueError(f"a pickle frame of {argument:,} bytes at byte {position} is "
                                 f"longer than the {reader.left():,} bytes left")  # fmt: skip
            if opcode.name in _MEMO_PUTS and not 0 <= argument <= memoised:
                raise ValueError(f"a pickle memo index {argument} at byte {position}, where "
                                 f"{memoised} objects were memoised")  # fmt: skip
            memoised += opcode.name in _MEMO_PUTS or opcode.name == "MEMOIZE"
    finally:
        handle.seek(start)


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


def _tar_mode(handle: IO[bytes]) -> str | None:
    """How to open ``handle`` as a ``.nemo`` tar (NeMo writes them plain or gzipped), else None.

    Not ``tarfile.is_tarfile``: it also tries xz/lzma, whose header names the dictionary size the
    decompressor allocates (4 GiB from a 13-byte header)."""
    handle.seek(0)
    head = handle.read(512)
    handle.seek(0)
    if head[:2] == b"\x1f\x8b":
        return "r:gz"
    return "r:" if head[257:262] == b"ustar" else None


def _read_nemo_archive(path: Path, mode: str = "r:") -> Any:
    """A ``.nemo`` file: a tar archive whose ``model_weights.ckpt`` is a torch state dict."""
    with tarfile.open(path, mode) as archive:
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
