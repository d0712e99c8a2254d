"""Issue 12's abuse cases: hostile and broken inputs, each run in a bounded child process.

Each case builds its input in a temporary folder, runs the command line (``python -m waveglow``)
or an API snippet in a child process with a wall-clock timeout and an address-space cap (nothing
can take the machine down), records the exit code, whether stderr holds a Python traceback,
whether it hung, the child's peak RSS and its first error line, and judges the outcome against
what issue 12 asks for ("ok" / "FAIL"; "n/a" where the tree cannot express the case). Run it on
several source trees for a before/after table:

    python bench/abuse.py                                   # this tree's src
    python bench/abuse.py --tree before=/tmp/old/src --tree after=src --markdown table.md
    python bench/abuse.py -k zip -k nan                     # only cases whose name has these

The inputs are built once with this tree's code. Cases needing root (mknod, mount -t tmpfs) are
"n/a" without it. A tree's checkout (``src/..``) is where its docs are read from.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import pickle
import random
import re
import resource
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRACEBACK = "Traceback (most recent call last)"
LOW_MEMORY_MB = 1500.0  # a refused input costs no more than the program itself (torch: ~400 MB)


# ---------------------------------------------------------------------------- child processes
@dataclass
class Run:
    """One child process: exit status (negative: killed by that signal), output, resources."""

    code: int | None
    stdout: str
    stderr: str
    hung: bool
    peak_mb: float
    seconds: float

    @property
    def traceback(self) -> bool:
        return TRACEBACK in self.stderr

    def error_line(self) -> str:
        """The exception line of a traceback, else the first line saying error, else the first."""
        lines = [line.strip() for line in self.stderr.splitlines() if line.strip()]
        if self.traceback:
            return lines[-1] if lines else ""
        for line in lines:
            if "error" in line.lower():
                return line
        return lines[0] if lines else ""


def run_child(
    argv: Sequence[str],
    env: dict[str, str],
    cwd: Path,
    timeout: float,
    mem_gb: float,
    umask: int | None = None,
    reader_gone: bool = False,
) -> Run:
    """Run ``argv`` in its own session under RLIMIT_AS = ``mem_gb``; kill the whole session at
    ``timeout`` (a hang). ``reader_gone``: stdout is a pipe whose reader closed before the first
    write (what ``| head -1`` does to the lines after the first)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        stdout: int | object = out
        if reader_gone:
            read_end, stdout = os.pipe()
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=err,
            env=env,
            cwd=cwd,
            preexec_fn=_child_limits(int(mem_gb * 2**30), umask),
        )
        if reader_gone:
            os.close(stdout)  # type: ignore[arg-type]
            os.close(read_end)
        code, hung, peak_mb, seconds = wait_bounded(process, timeout)
        out.seek(0)
        err.seek(0)
        return Run(code, _text(out.read()), _text(err.read()), hung, peak_mb, seconds)


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _child_limits(mem_bytes: int, umask: int | None) -> Callable[[], None]:
    def apply() -> None:
        os.setsid()
        resource.setrlimit(resource.RLIMIT_AS, (mem_bytes, mem_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if umask is not None:
            os.umask(umask)

    return apply


def wait_bounded(
    process: subprocess.Popen, timeout: float
) -> tuple[int | None, bool, float, float]:
    """(exit status, hung, peak RSS in MB, seconds); the child's session is killed at the end
    either way (no worker outlives its case)."""
    started = time.monotonic()
    hung = False
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() - started > timeout:
            hung = True
            _kill_session(process.pid)
            pid, status, usage = os.wait4(process.pid, 0)
            break
        time.sleep(0.05)
    seconds = time.monotonic() - started
    _kill_session(process.pid)
    process.returncode = os.waitstatus_to_exitcode(status)
    code = None if hung else process.returncode
    return code, hung, usage.ru_maxrss / 1024, seconds


def _kill_session(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


# ---------------------------------------------------------------------------- verdicts
@dataclass
class Verdict:
    status: str  # "ok", "FAIL" or "n/a"
    note: str
    run: Run | None = None
    show_memory: bool = False

    def cell(self) -> str:
        parts = []
        if self.run is not None:
            run = self.run
            parts.append(
                f"HANG (killed at {run.seconds:.0f} s)" if run.hung else f"exit {run.code}"
            )
            if run.traceback:
                parts.append("traceback")
            if self.show_memory or run.peak_mb > LOW_MEMORY_MB:
                parts.append(f"peak {run.peak_mb:,.0f} MB")
        facts = ", ".join(parts)
        text = f"**{self.status}** {facts}" + (f": {self.note}" if self.note else "")
        return text.replace("|", "\\|").replace("\n", " ")


def ok(note: str, run: Run | None = None, **kwargs: bool) -> Verdict:
    return Verdict("ok", note, run, **kwargs)


def fail(note: str, run: Run | None = None, **kwargs: bool) -> Verdict:
    return Verdict("FAIL", note, run, **kwargs)


def not_applicable(note: str, run: Run | None = None) -> Verdict:
    return Verdict("n/a", note, run)


def quoted(line: str, limit: int = 150) -> str:
    line = " ".join(line.split())
    return "`" + (line if len(line) <= limit else line[: limit - 1] + "…").replace("`", "'") + "`"


def broken(run: Run) -> Verdict | None:
    """FAIL for a hang or a traceback, n/a for an option this tree does not have, else None."""
    if run.hung:
        return fail("hung", run)
    if run.traceback:
        return fail(quoted(run.error_line()), run)
    if run.code == 2 and re.search(r"unrecognized arguments|invalid choice", run.stderr):
        return not_applicable("option unknown to this tree", run)
    return None


def expect_error(
    run: Run,
    contains: Sequence[str] = (),
    absent: Sequence[str] = (),
    code: int = 1,
    max_mb: float | None = None,
) -> Verdict:
    """ok: exit ``code`` with one error line holding each of ``contains`` (case-insensitive)
    and none of ``absent``, within ``max_mb`` of memory."""
    show = max_mb is not None
    if (verdict := broken(run)) is not None:
        verdict.show_memory = show
        return verdict
    line = run.error_line()
    if run.code != code:
        return fail(f"exit {run.code}, not {code}: {quoted(line)}", run, show_memory=show)
    text = run.stderr.lower()
    missing = [word for word in contains if word.lower() not in text]
    if missing:
        return fail(f"no {missing[0]!r} in {quoted(line)}", run, show_memory=show)
    present = [word for word in absent if word.lower() in text]
    if present:
        return fail(f"says {present[0]!r}: {quoted(line)}", run, show_memory=show)
    if max_mb is not None and run.peak_mb > max_mb:
        return fail(f"peak memory over {max_mb:,.0f} MB: {quoted(line)}", run, show_memory=show)
    return ok(quoted(line), run, show_memory=show)


def results(run: Run) -> dict[str, str]:
    """``RESULT key=value`` lines an API snippet printed."""
    found = {}
    for line in run.stdout.splitlines():
        if line.startswith("RESULT "):
            key, _, value = line[len("RESULT ") :].partition("=")
            found[key] = value
    return found


# ---------------------------------------------------------------------------- inputs
@dataclass
class Inputs:
    """The files every tree's cases read (never written by a case)."""

    folder: Path
    tiny: Path = field(init=False)  # a small working model (8 mels, hop 16)
    micro: Path = field(init=False)  # the smallest model file, base of the hostile configs
    mel: Path = field(init=False)  # (8, 100) mel for the tiny model
    long_mel: Path = field(init=False)  # (8, 100000): 73 s of audio, streamed chunk by chunk
    clip: Path = field(init=False)  # 1 s of harmonic tone, 16-bit
    corpus: Path = field(init=False)  # 12 clips of 0.4 s
    train_config: Path = field(init=False)  # the tiny model's training config (no data path)

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            if name != "folder":
                suffix = {"corpus": "", "train_config": ".json", "clip": ".wav", "long_mel": ".npy"}
                suffix = suffix.get(name, ".pt")
                setattr(self, name, self.folder / f"{name}{suffix}")


def build_inputs(folder: Path) -> Inputs:
    """The shared inputs, made with this tree's code."""
    sys.path.insert(0, str(ROOT / "src"))
    import numpy as np
    import soundfile
    import torch

    import waveglow
    from waveglow import DataConfig, WaveGlow, WaveGlowConfig, WNConfig

    inputs = Inputs(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    tiny_data = DataConfig(filter_length=64, hop_length=16, win_length=64, mel_fmax=8000.0)
    tiny = WaveGlow(
        WaveGlowConfig(8, 4, 4, 2, 2, WNConfig(n_layers=2, n_channels=8, kernel_size=3)),
        tiny_data,
    )
    with torch.no_grad():
        for wn in tiny.WN:
            wn.end.weight.normal_(0, 0.1)
            wn.end.bias.normal_(0, 0.1)
    waveglow.save(tiny.remove_weight_norm(), inputs.tiny)
    micro = WaveGlow(
        WaveGlowConfig(1, 1, 2, 1, 0, WNConfig(n_layers=1, n_channels=2, kernel_size=3)),
        DataConfig(filter_length=4, hop_length=2, win_length=4, mel_fmax=8000.0),
    )
    waveglow.save(micro.remove_weight_norm(), inputs.micro)
    soundfile.write(str(inputs.clip), tone(1.0), 22050, subtype="PCM_16")
    mel = waveglow.MelSpectrogram(tiny_data, 8)(torch.from_numpy(tone(0.1)))[:, :100]
    torch.save(mel.contiguous(), inputs.mel)
    np.save(inputs.long_mel, np.tile(mel.numpy(), (1, 1000)))
    inputs.corpus.mkdir()
    for index in range(12):
        path = inputs.corpus / f"clip_{index:02d}.wav"
        soundfile.write(str(path), tone(0.4, seed=index), 22050, subtype="PCM_16")
    config = waveglow.Config(waveglow_config=tiny.config, data_config=tiny_data).to_dict()
    config["data_config"]["segment_length"] = 1024
    config["train_config"].update(
        batch_size=4, learning_rate=1e-3, max_iters=2, iters_per_checkpoint=1,
        iters_per_validation=1, iters_per_log=1, validation_size=2, num_workers=0, seed=7,
        wn_implementation="conv", n_synthesis_samples=0,
    )  # fmt: skip
    inputs.train_config.write_text(json.dumps(config, indent=1))
    return inputs


def tone(seconds: float, seed: int = 0, rate: int = 22050):  # noqa: ANN201 - numpy array
    """A voiced-speech-like tone with a little noise, peak 0.3."""
    import numpy as np

    generator = np.random.default_rng(seed)
    time_axis = np.arange(int(seconds * rate)) / rate
    f0 = generator.uniform(110, 260) * (1 + 0.03 * np.sin(2 * np.pi * 5 * time_axis))
    phase = 2 * np.pi * np.cumsum(f0) / rate
    audio = sum(np.sin(k * phase) / k**1.3 for k in range(1, 7))
    audio = 0.3 * audio / np.max(np.abs(audio))
    return (audio + 1e-3 * generator.standard_normal(len(time_axis))).astype(np.float32)


def hostile_config(source: Path, target: Path, change: Callable[[dict], None]) -> Path:
    """``source`` (our .pt format) with its config changed by ``change``; the tensors as they are."""
    import torch

    payload = torch.load(source, weights_only=True)
    change(payload["config"]["waveglow_config"])
    torch.save(payload, target, _use_new_zipfile_serialization=False)  # the smaller, older format
    return target


class _StorageKey:
    def __init__(self, key: str, numel: int) -> None:
        self.key, self.numel = key, numel


class _LazyTensor:
    """Pickles as a float tensor of ``shape`` over a storage that is never in memory."""

    def __init__(self, key: str, shape: tuple[int, ...]) -> None:
        self.storage = _StorageKey(key, math.prod(shape))
        self.shape = shape

    def __reduce__(self):  # noqa: ANN204 - pickle protocol
        import torch

        strides = tuple(math.prod(self.shape[k + 1 :]) for k in range(len(self.shape)))
        arguments = (self.storage, 0, self.shape, strides, False, OrderedDict())
        return (torch._utils._rebuild_tensor_v2, arguments)


class _TorchPickler(pickle.Pickler):
    def persistent_id(self, obj: object) -> object:
        if isinstance(obj, _StorageKey):
            import torch

            return ("storage", torch.FloatStorage, obj.key, "cpu", obj.numel)
        return None


def zip_bomb(path: Path, content: Callable[[], object], storages: dict[str, int]) -> Path:
    """A torch zip file whose storages (key -> bytes) are zeros, deflated (about 1000:1)."""
    name = path.stem
    with zipfile.ZipFile(path, "w", allowZip64=True) as archive:
        archive.writestr(f"{name}/data.pkl", _pickled(content()))
        archive.writestr(f"{name}/byteorder", "little")
        for key, size in storages.items():
            info = zipfile.ZipInfo(f"{name}/data/{key}")
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w", force_zip64=True) as entry:
                block = bytes(2**24)
                for start in range(0, size, len(block)):
                    entry.write(block[: min(len(block), size - start)])
        archive.writestr(f"{name}/version", "3\n")
    return path


def _pickled(obj: object) -> bytes:
    import io

    stream = io.BytesIO()
    _TorchPickler(stream, protocol=2).dump(obj)
    return stream.getvalue()


def safetensors_with_metadata(source: Path, target: Path, metadata: str) -> Path:
    """``source``'s tensors in a .safetensors file whose WaveGlow metadata is ``metadata``."""
    import torch
    from safetensors.torch import save_file

    payload = torch.load(source, weights_only=True)
    save_file(payload["state_dict"], str(target), metadata={"waveglow": metadata})
    return target


# ---------------------------------------------------------------------------- context
@dataclass
class Context:
    """What a case runs in: a tree's sources, the shared inputs and the case's own folder."""

    src: Path
    inputs: Inputs
    folder: Path
    timeout: float
    mem_gb: float

    @property
    def checkout(self) -> Path:
        return self.src.parent

    def env(self) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(self.src), "PYTHONDONTWRITEBYTECODE": "1"}

    def cli(self, *args: object, timeout: float | None = None, **options: object) -> Run:
        argv = [sys.executable, "-m", "waveglow", *map(str, args)]
        return self._run(argv, timeout, **options)

    def api(self, code: str, timeout: float | None = None, **options: object) -> Run:
        """Run ``code`` after ``import waveglow, torch, numpy as np``; our ValueErrors are caught
        and printed as ``RESULT refused=<message>``, anything else is a traceback."""
        prelude = "import sys, torch, numpy as np, waveglow\ntry:\n"
        body = "".join(f"    {line}\n" for line in code.strip().splitlines())
        ending = "except ValueError as error:\n    print('RESULT refused=' + ' '.join(str(error).split()))\n"
        return self._run([sys.executable, "-c", prelude + body + ending], timeout, **options)

    def _run(self, argv: list[str], timeout: float | None, **options: object) -> Run:
        return run_child(
            argv,
            self.env(),
            self.folder,
            timeout or self.timeout,
            float(options.pop("mem_gb", self.mem_gb)),  # type: ignore[arg-type]
            **options,  # type: ignore[arg-type]
        )

    def start(self, *args: object) -> subprocess.Popen:
        """The CLI started in its own session, for the signal cases."""
        return subprocess.Popen(
            [sys.executable, "-m", "waveglow", *map(str, args)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=self.env(),
            cwd=self.folder,
            preexec_fn=_child_limits(int(self.mem_gb * 2**30), None),
        )

    def train(self, output: Path, *args: object, timeout: float = 180) -> Run:
        """Train the tiny model on the shared corpus (two steps unless ``args`` say otherwise)."""
        return self.cli(
            "train", "--config", self.inputs.train_config, "--data", self.inputs.corpus,
            "-o", output, "-q", *args, timeout=timeout,
        )  # fmt: skip


def temporaries(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.glob(".*tmp*")) if folder.is_dir() else []


def wav_peak(path: Path) -> float | None:
    import numpy as np
    import soundfile

    if not path.is_file():
        return None
    data, _ = soundfile.read(str(path), dtype="float32")
    return float(np.abs(data).max()) if data.size else 0.0


# ---------------------------------------------------------------------------- resources
def _refused_cheaply(run: Run) -> Verdict:
    return expect_error(run, max_mb=LOW_MEMORY_MB)


def channels_65536_info(ctx: Context) -> Verdict:
    path = hostile_config(
        ctx.inputs.micro, ctx.folder / "wide.pt", lambda c: c["WN_config"].update(n_channels=65536)
    )
    return _refused_cheaply(ctx.cli("info", path))


def channels_65536_synthesize(ctx: Context) -> Verdict:
    path = hostile_config(
        ctx.inputs.micro, ctx.folder / "wide.pt", lambda c: c["WN_config"].update(n_channels=65536)
    )
    mel = ctx.folder / "mel.npy"
    _write_npy(mel, (1, 20))
    return _refused_cheaply(ctx.cli("synthesize", "-c", path, mel, "-o", "out", "-q"))


def wn_2048_layers_info(ctx: Context) -> Verdict:
    path = hostile_config(
        ctx.inputs.micro,
        ctx.folder / "deep.pt",
        lambda c: c["WN_config"].update(n_layers=2048, n_channels=8),
    )
    return _refused_cheaply(ctx.cli("info", path))


def flows_1e7_info(ctx: Context) -> Verdict:
    path = hostile_config(
        ctx.inputs.micro, ctx.folder / "flows.pt", lambda c: c.update(n_flows=10**7)
    )
    return _refused_cheaply(ctx.cli("info", path))


def flows_1e7_synthesize(ctx: Context) -> Verdict:
    path = hostile_config(
        ctx.inputs.micro, ctx.folder / "flows.pt", lambda c: c.update(n_flows=10**7)
    )
    mel = ctx.folder / "mel.npy"
    _write_npy(mel, (1, 20))
    return _refused_cheaply(ctx.cli("synthesize", "-c", path, mel, "-o", "out", "-q"))


def _write_npy(path: Path, shape: tuple[int, ...], value: float = -5.0) -> Path:
    import numpy as np

    np.save(path, np.full(shape, value, dtype=np.float32))
    return path


def zip_bomb_checkpoint(ctx: Context) -> Verdict:
    """1024 storages of 2 MiB of zeros: each smaller than the file, 2 GiB together."""
    keys = [str(key) for key in range(1024)]
    path = zip_bomb(
        ctx.folder / "bomb.pt",
        lambda: {f"t{key}": _LazyTensor(key, (2**19,)) for key in keys},
        dict.fromkeys(keys, 2**21),
    )
    run = ctx.cli("info", path, mem_gb=6)
    verdict = _refused_cheaply(run)
    verdict.note += f" ({path.stat().st_size / 2**20:.1f} MB file)"
    return verdict


def zip_bomb_mel(ctx: Context) -> Verdict:
    path = zip_bomb(ctx.folder / "bomb.pt", lambda: _LazyTensor("0", (8, 2**26)), {"0": 2**31})
    run = ctx.cli("synthesize", "-c", ctx.inputs.tiny, path, "-o", "out", "-q", mem_gb=6)
    verdict = _refused_cheaply(run)
    verdict.note += f" ({path.stat().st_size / 2**20:.1f} MB file)"
    return verdict


def npy_header_lies(ctx: Context) -> Verdict:
    import numpy as np

    path = ctx.folder / "liar.npy"
    with open(path, "wb") as handle:
        header = {"descr": "<f4", "fortran_order": False, "shape": (8, 10**11)}
        np.lib.format.write_array_header_1_0(handle, header)
        handle.write(bytes(1024))
    return _refused_cheaply(ctx.cli("synthesize", "-c", ctx.inputs.tiny, path, "-o", "out", "-q"))


def broadcast_weights(ctx: Context) -> Verdict:
    import torch

    payload = torch.load(ctx.inputs.tiny, weights_only=True)
    payload["config"]["waveglow_config"]["WN_config"]["n_channels"] = 4096
    state = payload["state_dict"]
    for name, tensor in list(state.items()):
        if name.startswith("WN.") and tensor.dim() == 3:
            state[name] = torch.zeros(1).expand(4096 * 2, 4096, tensor.shape[-1])
    path = ctx.folder / "broadcast.pt"
    torch.save(payload, path)
    return _refused_cheaply(ctx.cli("info", path))


class _TensorCall:
    """Pickles as ``torch.Tensor(numel)``: a tensor the file does not hold."""

    def __init__(self, numel: int) -> None:
        self.numel = numel

    def __reduce__(self):  # noqa: ANN204 - pickle protocol
        import torch

        return (torch.Tensor, (self.numel,))


def tensor_call_in_pickle(ctx: Context) -> Verdict:
    """2.5 KB: a config of 7000 WN channels (392 M values) made to pass for the weights by a
    torch.Tensor(5e8) in the state dict."""
    import torch

    payload = torch.load(ctx.inputs.micro, weights_only=True)
    payload["config"]["waveglow_config"]["WN_config"]["n_channels"] = 7000
    payload["state_dict"]["padding"] = _TensorCall(5 * 10**8)
    path = ctx.folder / "padded.pt"
    torch.save(payload, path, _use_new_zipfile_serialization=False)
    mel = _write_npy(ctx.folder / "mel.npy", (1, 20))
    run = ctx.cli("synthesize", "-c", path, mel, "-o", "out", "-q", mem_gb=6)
    verdict = _refused_cheaply(run)
    verdict.note += f" ({path.stat().st_size / 1024:.1f} KB file)"
    return verdict


class _Latin1:
    """Pickles as protocol 2 writes bytes: ``_codecs.encode(text, 'latin1')``."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __reduce__(self):  # noqa: ANN204 - pickle protocol
        import codecs

        return (codecs.encode, (self.text, "latin1"))


def encode_bomb(ctx: Context) -> Verdict:
    """One memoised 1 MiB string encoded 4000 times: 4 GiB of bytes from a 0.3 MB file."""
    import torch

    text = "x" * 2**20
    path = ctx.folder / "copies.pt"
    payload = {"copies": [_Latin1(text) for _ in range(4000)]}
    torch.save(payload, path, _use_new_zipfile_serialization=False, pickle_protocol=2)
    run = ctx.cli("info", path, mem_gb=3)
    verdict = _refused_cheaply(run)
    verdict.note += f" ({path.stat().st_size / 2**20:.1f} MB file)"
    return verdict


# ---------------------------------------------------------------------------- silent garbage
def nan_weights(ctx: Context) -> Verdict:
    import torch

    payload = torch.load(ctx.inputs.tiny, weights_only=True)
    for tensor in payload["state_dict"].values():
        tensor.fill_(float("nan"))
    path = ctx.folder / "nan.pt"
    torch.save(payload, path)
    run = ctx.cli("synthesize", "-c", path, ctx.inputs.mel, "-o", "out", "-q")
    if run.code == 0:
        peak = wav_peak(ctx.folder / "out" / "mel_synthesis.wav")
        return fail(f"a wav written, peak {peak}", run)
    return expect_error(run, contains=["nan"])


def _api_refuses(ctx: Context, code: str, words: Sequence[str] = ()) -> Verdict:
    run = ctx.api(f"model = waveglow.load({str(ctx.inputs.tiny)!r})\n{code}")
    if (verdict := broken(run)) is not None:
        return verdict
    found = results(run)
    if "refused" in found:
        missing = [word for word in words if word.lower() not in found["refused"].lower()]
        if missing:
            return fail(f"refused without {missing[0]!r}: {quoted(found['refused'])}", run)
        return ok("ValueError " + quoted(found["refused"]), run)
    return fail(", ".join(f"{key} {value}" for key, value in found.items()) or "no result", run)


_NAN_REPORT = (
    "print('RESULT returned=audio', 'finite' if torch.isfinite(audio).all() else 'with NaN')"
)


def api_nan_mel(ctx: Context) -> Verdict:
    code = f"mel = torch.full((1, 8, 20), -5.0); mel[0, 0, 3] = float('nan')\naudio = model.infer(mel)\n{_NAN_REPORT}"
    return _api_refuses(ctx, code, ["nan"])


def api_nan_sigma(ctx: Context) -> Verdict:
    code = f"audio = model.infer(torch.full((1, 8, 20), -5.0), sigma=float('nan'))\n{_NAN_REPORT}"
    return _api_refuses(ctx, code, ["sigma"])


def api_nan_z(ctx: Context) -> Verdict:
    code = (
        "z = torch.zeros(1, 4, 80); z[0, 1, 5] = float('nan')\n"
        f"audio = model.infer(torch.full((1, 8, 20), -5.0), z=z)\n{_NAN_REPORT}"
    )
    return _api_refuses(ctx, code, ["nan"])


def _save_wav_refuses(ctx: Context, array: str) -> Verdict:
    path = ctx.folder / "out.wav"
    code = (
        f"waveglow.save_wav({str(path)!r}, {array}, 22050)\n"
        f"import soundfile; info = soundfile.info({str(path)!r})\n"
        "print(f'RESULT wrote={info.frames} frames x {info.channels} channel(s)')"
    )
    run = ctx.api(code)
    if (verdict := broken(run)) is not None:
        return verdict
    found = results(run)
    if "refused" in found and not path.exists():
        return ok("ValueError " + quoted(found["refused"]) + "; no file", run)
    return fail(", ".join(f"{key} {value}" for key, value in found.items()), run)


def save_wav_nan(ctx: Context) -> Verdict:
    return _save_wav_refuses(ctx, "np.array([0.1, float('nan'), 0.2] * 100, dtype=np.float32)")


def save_wav_two_channels(ctx: Context) -> Verdict:
    return _save_wav_refuses(ctx, "np.zeros((2, 1000), dtype=np.float32)")


def mel_of_1e30(ctx: Context) -> Verdict:
    path = _write_npy(ctx.folder / "loud.npy", (8, 50), 1e30)
    run = ctx.cli("synthesize", "-c", ctx.inputs.tiny, path, "-o", "out", "-q")
    return _warned_or_refused(run, "loud.npy")


def _warned_or_refused(run: Run, name: str) -> Verdict:
    if (verdict := broken(run)) is not None:
        return verdict
    lines = [line for line in run.stderr.splitlines() if name in line]
    if lines and re.search(r"warning|error", lines[0]):
        return ok(quoted(lines[0]), run)
    return fail("exit 0 without a word about the input", run)


def float_wav_peak_5(ctx: Context) -> Verdict:
    import soundfile

    path = ctx.folder / "hot.wav"
    soundfile.write(str(path), tone(0.5) / 0.3 * 5.0, 22050, subtype="FLOAT")
    run = ctx.cli("synthesize", "-c", ctx.inputs.tiny, path, "-o", "out", "-q")
    return _warned_or_refused(run, "hot.wav")


def destructive_learning_rate(ctx: Context) -> Verdict:
    output = ctx.folder / "run"
    first = ctx.train(output)
    if first.code != 0:
        return fail("the first two steps failed: " + quoted(first.error_line()), first)
    run = ctx.train(
        output, "--resume", "--max-iters", "30", "--set", "train.learning_rate=1e6",
        "--set", "train.max_bad_steps=2", "--set", "train.keep_checkpoints=1",
    )  # fmt: skip
    if (verdict := broken(run)) is not None:
        return verdict
    good = _finite_checkpoints(ctx, output)
    line = run.error_line()
    if "bf16" in line:
        return fail("advises fp32/bf16 to an fp32 run: " + quoted(line), run)
    if run.code == 0 or "rolled back" not in line or not good:
        return fail(f"finite checkpoints left: {good or 'none'}; {quoted(line)}", run)
    return ok(f"{quoted(line)}; finite: {', '.join(good)}", run)


def _finite_checkpoints(ctx: Context, output: Path) -> list[str]:
    code = (
        f"from pathlib import Path\nfor path in sorted(Path({str(output)!r}).glob('waveglow_*.pt')):\n"
        "    state = torch.load(path, weights_only=True)['state_dict']\n"
        "    finite = all(bool(torch.isfinite(t).all()) for t in state.values() if t.is_floating_point())\n"
        "    print(f'RESULT {path.name}={finite}')"
    )
    found = results(ctx.api(code))
    return [name for name, finite in found.items() if finite == "True"]


# ---------------------------------------------------------------------------- paths
def _device_node(ctx: Context, name: str, minor: int) -> Path | None:
    path = ctx.folder / name
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, minor))
    except PermissionError:
        return None
    return path


def _node_kept(ctx: Context, args: Sequence[object], minor: int) -> Verdict:
    node = _device_node(ctx, "node", minor)
    if node is None:
        return not_applicable("mknod needs root")
    run = ctx.cli(*[node if arg is None else arg for arg in args])
    mode = os.lstat(node).st_mode
    kept = stat.S_ISCHR(mode)
    left = temporaries(ctx.folder)
    if not kept:
        what = (
            f"a {os.lstat(node).st_size / 2**20:.2f} MB regular file"
            if stat.S_ISREG(mode)
            else "gone"
        )
        return fail(f"the device node is now {what}", run)
    if left:
        return fail(f"left {left}", run)
    return expect_error(run, contains=["node"])


def convert_onto_null(ctx: Context) -> Verdict:
    return _node_kept(ctx, ["convert", ctx.inputs.tiny, None], 3)


def convert_onto_full(ctx: Context) -> Verdict:
    return _node_kept(ctx, ["convert", ctx.inputs.tiny, None], 7)


def export_torchscript_onto_null(ctx: Context) -> Verdict:
    return _node_kept(ctx, ["export", "--format", "torchscript", ctx.inputs.tiny, None], 3)


def export_onnx_onto_null(ctx: Context) -> Verdict:
    return _node_kept(ctx, ["export", "--format", "onnx", ctx.inputs.tiny, None], 3)


def mel_onto_null(ctx: Context) -> Verdict:
    out = ctx.folder / "mels"
    out.mkdir()
    try:
        os.mknod(out / "clip.pt", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        return not_applicable("mknod needs root")
    run = ctx.cli("mel", ctx.inputs.clip, "-o", out, "-q")
    if not stat.S_ISCHR(os.lstat(out / "clip.pt").st_mode):
        return fail("the device node mels/clip.pt was replaced", run)
    return expect_error(run, contains=["clip.pt"])


def _onto_directory(ctx: Context, args: Sequence[object]) -> Verdict:
    target = ctx.folder / "target"
    target.mkdir()
    run = ctx.cli(*[target if arg is None else arg for arg in args])
    if not target.is_dir():
        return fail("the directory was replaced", run)
    verdict = expect_error(run, contains=["target"], absent=[".tmp"])
    if verdict.status == "ok" and temporaries(ctx.folder):
        return fail(f"left {temporaries(ctx.folder)}", run)
    return verdict


def convert_onto_directory(ctx: Context) -> Verdict:
    return _onto_directory(ctx, ["convert", ctx.inputs.tiny, None])


def export_onto_directory(ctx: Context) -> Verdict:
    return _onto_directory(ctx, ["export", "--format", "torchscript", ctx.inputs.tiny, None])


def modes_follow_umask(ctx: Context) -> Verdict:
    runs = [
        ctx.cli("convert", ctx.inputs.tiny, name, umask=0o027)
        for name in ("model.pt", "model.safetensors")
    ]
    for run in runs:
        if (verdict := broken(run)) is not None:
            return verdict
    modes = {
        name: oct(os.stat(ctx.folder / name).st_mode & 0o777)
        for name in ("model.pt", "model.safetensors")
        if (ctx.folder / name).exists()
    }
    note = ", ".join(f"{name} {mode}" for name, mode in modes.items())
    if set(modes.values()) == {"0o640"} and len(modes) == 2:
        return ok(note + " (umask 027)", runs[1])
    return fail(note + " (umask 027: both should be 0o640)", runs[1])


def _synthesis_killed(ctx: Context, number: int) -> tuple[subprocess.Popen, Run, list[str]]:
    """Synthesis of the long mel, sent signal ``number`` once its temporary file exists."""
    out = ctx.folder / "out"
    process = ctx.start("synthesize", "-c", ctx.inputs.tiny, ctx.inputs.long_mel, "-o", out, "-q")
    deadline = time.monotonic() + ctx.timeout
    while not temporaries(out) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    seen = temporaries(out)
    if process.poll() is None:
        process.send_signal(number)
    code, hung, peak, seconds = wait_bounded(process, 60)
    stderr = _text(process.stderr.read()) if process.stderr else ""
    return process, Run(code, "", stderr, hung, peak, seconds), seen


def sigterm_during_synthesis(ctx: Context) -> Verdict:
    _, run, seen = _synthesis_killed(ctx, signal.SIGTERM)
    if not seen:
        return fail("no temporary file seen: the synthesis ended first", run)
    if (verdict := broken(run)) is not None:
        return verdict
    left = temporaries(ctx.folder / "out")
    if left:
        return fail(f"left {left}", run)
    return ok(f"no temporary left; {quoted(run.error_line())}", run)


def kill_9_then_next_run(ctx: Context) -> Verdict:
    _, killed, seen = _synthesis_killed(ctx, signal.SIGKILL)
    if not seen:
        return fail("no temporary file seen: the synthesis ended first", killed)
    after_kill = temporaries(ctx.folder / "out")
    run = ctx.cli("synthesize", "-c", ctx.inputs.tiny, ctx.inputs.mel, "-o", "out", "-q")
    if (verdict := broken(run)) is not None:
        return verdict
    left = temporaries(ctx.folder / "out")
    if left:
        return fail(f"kill -9 left {len(after_kill)}; the next run left {left}", run)
    return ok(f"kill -9 left {len(after_kill)} temporary; the next run removed it", run)


@contextlib.contextmanager
def small_disk(folder: Path, size: str = "200k") -> Iterator[Path | None]:
    """A tmpfs of ``size`` mounted at ``folder`` (None without root); unmounted afterwards."""
    folder.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)]
    if subprocess.run(command, capture_output=True).returncode != 0:
        yield None
        return
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], capture_output=True)


def _full_disk(
    ctx: Context, count: int, args: Callable[[Path], list[object]], glob: str
) -> Verdict:
    """``count`` outputs written into a 200 KB tmpfs by the command ``args(disk)``: each one that
    does not fit is one error line, the others are written, no temporary is left."""
    with small_disk(ctx.folder / "disk") as disk:
        if disk is None:
            return not_applicable("mount -t tmpfs needs root")
        run = ctx.cli(*args(disk))
        written = sorted(path.name for path in disk.glob(glob))
        left = temporaries(disk)
    if (verdict := broken(run)) is not None:
        return verdict
    errors = [line for line in run.stderr.splitlines() if "error" in line.lower()]
    note = f"{len(written)} of {count} written, {len(errors)} error line(s)"
    if left:
        return fail(f"{note}; left {left}", run)
    if run.code == 1 and len(written) + len(errors) == count and errors:
        return ok(f"{note}: {quoted(errors[0])}", run)
    return fail(f"{note}; {quoted(run.error_line())}", run)


def full_disk_mid_batch(ctx: Context) -> Verdict:
    mels = [_write_npy(ctx.folder / f"m{k}.npy", (8, 2500)) for k in range(4)]  # 80 KB wavs
    return _full_disk(
        ctx, 4, lambda disk: ["synthesize", "-c", ctx.inputs.tiny, *mels, "-o", disk, "-q",
                              "--batch-size", "2"], "*.wav",
    )  # fmt: skip


def full_disk_streamed(ctx: Context) -> Verdict:
    return _full_disk(
        ctx, 1, lambda disk: ["synthesize", "-c", ctx.inputs.tiny, ctx.inputs.long_mel, "-o", disk,
                              "-q"], "*.wav",
    )  # fmt: skip


def full_disk_mels(ctx: Context) -> Verdict:
    import soundfile

    clips = []
    for index in range(4):
        clips.append(ctx.folder / f"c{index}.wav")
        soundfile.write(str(clips[-1]), tone(4.0, seed=index), 22050)  # 80-bin mels of ~60 KB
    return _full_disk(ctx, 4, lambda disk: ["mel", *clips, "-o", disk, "-q"], "*.pt")


def _evaluate_with(ctx: Context, bad_name: str, bad_content: Callable[[Path], None]) -> Verdict:
    import soundfile

    clips = ctx.folder / "clips"
    clips.mkdir()
    for index in range(2):
        soundfile.write(str(clips / f"good{index}.wav"), tone(1.0, seed=index), 22050)
    bad_content(clips / bad_name)
    out = ctx.folder / "eval"
    run = ctx.cli(
        "evaluate", "-c", ctx.inputs.tiny, clips, "-o", out, "--baseline", "none",
        "--no-dnsmos", "-q", timeout=180,
    )  # fmt: skip
    if (verdict := broken(run)) is not None:
        return verdict
    rows = (out / "metrics.csv").read_text().splitlines() if (out / "metrics.csv").exists() else []
    scored = [row for row in rows[1:] if "good" in row]
    note = f"{len(scored)} of 2 good clips scored"
    if run.code == 1 and bad_name in run.stderr and len(scored) >= 2:
        return ok(f"{note}; {quoted(run.error_line())}", run)
    return fail(f"{note}; {quoted(run.error_line())}", run)


def evaluate_unreadable_clip(ctx: Context) -> Verdict:
    return _evaluate_with(ctx, "broken.wav", lambda path: path.write_bytes(b"RIFF" + bytes(60)))


def evaluate_short_clip(ctx: Context) -> Verdict:
    import soundfile

    return _evaluate_with(
        ctx, "short.wav", lambda path: soundfile.write(str(path), tone(0.002), 22050)
    )


def evaluate_all_clips_bad(ctx: Context) -> Verdict:
    clips = ctx.folder / "clips"
    clips.mkdir()
    (clips / "broken.wav").write_bytes(b"RIFF" + bytes(60))
    run = ctx.cli(
        "evaluate", "-c", ctx.inputs.tiny, clips, "-o", "eval", "--baseline", "none",
        "--no-dnsmos", "-q", timeout=120,
    )  # fmt: skip
    return expect_error(run, contains=["broken.wav"])


# ---------------------------------------------------------------------------- hangs, tracebacks
def corrupt_training_folder(ctx: Context) -> Verdict:
    corpus = ctx.folder / "corrupt"
    corpus.mkdir()
    for index in range(8):
        (corpus / f"clip_{index}.wav").write_bytes(b"RIFF" + bytes(64))
    run = ctx.cli(
        "train", "--config", ctx.inputs.train_config, "--data", corpus, "-o", "run", "-q",
        "--set", "train.num_workers=2", "--set", "train.validation_size=1",
        "--set", "train.batch_size=2", timeout=60,
    )  # fmt: skip
    verdict = expect_error(run)
    if verdict.status == "ok":
        lines = [line for line in run.stderr.splitlines() if line.strip()]
        if len(lines) != 1 or run.seconds > 30:
            return fail(f"{len(lines)} lines in {run.seconds:.0f} s: {quoted(lines[0])}", run)
        verdict.note += f" in {run.seconds:.0f} s"
    return verdict


def resume_another_wn_size(ctx: Context) -> Verdict:
    first = ctx.train(ctx.folder / "run", "--max-iters", "1")
    if first.code != 0:
        return fail("the first step failed: " + quoted(first.error_line()), first)
    run = ctx.train(
        ctx.folder / "run", "--resume", "--max-iters", "2",
        "--set", "waveglow_config.WN_config.n_channels=16",
    )  # fmt: skip
    return expect_error(run, contains=["n_channels"])


def metadata_not_an_object(ctx: Context) -> Verdict:
    path = safetensors_with_metadata(ctx.inputs.tiny, ctx.folder / "list.safetensors", "[1, 2]")
    return expect_error(ctx.cli("info", path), contains=["list.safetensors"])


def metadata_not_json(ctx: Context) -> Verdict:
    path = safetensors_with_metadata(ctx.inputs.tiny, ctx.folder / "text.safetensors", "{oops")
    return expect_error(ctx.cli("info", path), contains=["text.safetensors"])


def unparsable_set_value(ctx: Context) -> Verdict:
    run = ctx.train(ctx.folder / "run", "--set", "train_config.batch_size=abc", timeout=60)
    return expect_error(run, contains=["batch_size"], absent=["not supported between"])


def boolean_set_value(ctx: Context) -> Verdict:
    run = ctx.train(ctx.folder / "run", "--set", "train_config.iters_per_log=true", timeout=60)
    return expect_error(run, contains=["iters_per_log"])


def info_into_closed_pipe(ctx: Context) -> Verdict:
    run = ctx.cli("info", "demo", reader_gone=True)
    if (verdict := broken(run)) is not None:
        return verdict
    if run.code != 0 or run.stderr.strip():
        return fail(f"exit {run.code}: {quoted(run.error_line())}", run)
    return ok("quiet", run)


def _api_converts(ctx: Context, mel: str) -> Verdict:
    code = (
        f"model = waveglow.load({str(ctx.inputs.tiny)!r})\naudio = model.infer({mel})\n"
        "print('RESULT audio=' + str(tuple(audio.shape)) + ' ' + str(audio.dtype) + "
        "(' finite' if torch.isfinite(audio).all() else ' NaN'))"
    )
    run = ctx.api(code)
    if (verdict := broken(run)) is not None:
        return verdict
    found = results(run)
    if found.get("audio") == "(1, 320) torch.float32 finite":
        return ok("audio (1, 320) float32", run)
    return fail(", ".join(f"{key} {value}" for key, value in found.items()), run)


def api_int_mel(ctx: Context) -> Verdict:
    return _api_converts(ctx, "torch.full((1, 8, 20), -5, dtype=torch.int64)")


def api_fp64_mel(ctx: Context) -> Verdict:
    return _api_converts(ctx, "torch.full((1, 8, 20), -5.0, dtype=torch.float64)")


def api_numpy_mel(ctx: Context) -> Verdict:
    return _api_converts(ctx, "np.full((1, 8, 20), -5.0)")


def api_list_mel(ctx: Context) -> Verdict:
    return _api_converts(ctx, "[[[-5.0] * 20] * 8]")


def api_string_mel(ctx: Context) -> Verdict:
    return _api_refuses(ctx, f"audio = model.infer('mel.npy')\n{_NAN_REPORT}", ["mel"])


def api_cuda_without_cuda(ctx: Context) -> Verdict:
    code = "model = waveglow.load('demo', device='cuda')\nprint('RESULT loaded=on', next(model.parameters()).device)"
    run = ctx.api(code)
    if "RESULT loaded=on cuda" in run.stdout:
        return not_applicable("this machine has CUDA", run)
    if (verdict := broken(run)) is not None:
        return verdict
    found = results(run)
    if "refused" in found and "cuda" in found["refused"].lower():
        return ok("ValueError " + quoted(found["refused"]), run)
    return fail(str(found), run)


def cli_cuda_without_cuda(ctx: Context) -> Verdict:
    run = ctx.cli(
        "synthesize", "-c", ctx.inputs.tiny, ctx.inputs.mel, "-o", "out", "--device", "cuda"
    )
    if run.code == 0:
        return not_applicable("this machine has CUDA", run)
    return expect_error(run, contains=["cuda"])


def api_wrong_channels(ctx: Context) -> Verdict:
    return _api_refuses(ctx, f"audio = model.infer(torch.zeros(1, 80, 20))\n{_NAN_REPORT}", ["80"])


def api_unbatched_mel(ctx: Context) -> Verdict:
    code = (
        f"model = waveglow.load({str(ctx.inputs.tiny)!r})\naudio = model.infer(torch.full((8, 20), -5.0))\n"
        "print('RESULT audio=' + str(tuple(audio.shape)))"
    )
    run = ctx.api(code)
    if (verdict := broken(run)) is not None:
        return verdict
    found = results(run)
    if "refused" in found:
        return ok("ValueError " + quoted(found["refused"]), run)
    return ok(f"audio {found.get('audio')}", run) if "audio" in found else fail(str(found), run)


def complex_npy_mel(ctx: Context) -> Verdict:
    import numpy as np

    np.save(ctx.folder / "complex.npy", np.full((8, 20), -5 + 1j, dtype=np.complex64))
    run = ctx.cli("synthesize", "-c", ctx.inputs.tiny, "complex.npy", "-o", "out", "-q")
    return expect_error(run, contains=["complex.npy"])


def train_empty_folder(ctx: Context) -> Verdict:
    (ctx.folder / "empty").mkdir()
    return expect_error(ctx.train(ctx.folder / "run", "--data", ctx.folder / "empty", timeout=60))


def train_missing_data(ctx: Context) -> Verdict:
    run = ctx.train(ctx.folder / "run", "--data", ctx.folder / "nowhere", timeout=60)
    return expect_error(run, contains=["nowhere"])


def info_of_a_directory(ctx: Context) -> Verdict:
    (ctx.folder / "model.pt").mkdir()
    return expect_error(ctx.cli("info", "model.pt"), contains=["model.pt", "directory"])


# ---------------------------------------------------------------------------- rough edges
def long_input_progress(ctx: Context) -> Verdict:
    run = ctx.cli(
        "synthesize", "-c", ctx.inputs.tiny, ctx.inputs.long_mel, "-o", "out",
        "--chunk-frames", "20000",
    )  # fmt: skip
    if (verdict := broken(run)) is not None:
        return verdict
    updates = re.findall(r"([\d.]+)/([\d.]+) s of audio", run.stderr)
    between = {done for done, total in updates if 0 < float(done) < float(total)}
    bars = [line for line in run.stderr.replace("\r", "\n").splitlines() if line.strip()]
    shown = quoted(bars[-2] if len(bars) > 1 else (bars or [""])[0], 110)
    if run.code == 0 and between:
        return ok(f"{len(between)} updates in seconds of audio, e.g. {shown}", run)
    return fail(f"no progress within the file: {shown}", run)


def resume_after_max_iters(ctx: Context) -> Verdict:
    first = ctx.train(ctx.folder / "run", "--max-iters", "1")
    if first.code != 0:
        return fail("the first step failed: " + quoted(first.error_line()), first)
    run = ctx.cli("train", "-o", ctx.folder / "run", "--resume", "-q", timeout=120)
    if (verdict := broken(run)) is not None:
        return verdict
    if run.code == 0:
        return fail("exit 0, nothing trained, nothing said: " + quoted(run.stdout), run)
    return expect_error(run, contains=["max"])


def init_from_demo_with_set(ctx: Context) -> Verdict:
    run = ctx.cli(
        "train", "--data", ctx.inputs.corpus, "-o", "run", "-q", "--init-from", "demo",
        "--max-iters", "1", "--set", "waveglow_config.WN_config.n_channels=32",
        "--set", "train.batch_size=1", "--set", "train.validation_size=1",
        "--set", "train.num_workers=0", "--set", "data.segment_length=4096",
        "--set", "train.n_synthesis_samples=0", "--set", "train.iters_per_checkpoint=1",
        timeout=240,
    )  # fmt: skip
    if (verdict := broken(run)) is not None:
        return verdict
    said = [line for line in run.stderr.splitlines() if "n_channels" in line]
    if said:
        return ok(quoted(said[0]), run)
    return fail("the --set was ignored without a word: " + quoted(run.stdout), run)


def info_demo_facts(ctx: Context) -> Verdict:
    run = ctx.cli("info", "demo")
    if (verdict := broken(run)) is not None:
        return verdict
    paths = re.findall(r'"(/[^"]+)"', run.stdout)
    default_rate = re.search(r'"learning_rate": 0\.0001\b', run.stdout)
    if paths or default_rate or run.code != 0:
        shown = f"machine path {paths[0]}" if paths else "learning_rate 1e-4 (the default)"
        return fail(shown, run)
    trained = "trained:" in run.stdout
    return ok("no machine path; " + ("its training facts" if trained else "no training facts"), run)


def convert_help_names(ctx: Context) -> Verdict:
    run = ctx.cli("convert", "--help")
    if "universe_v5" in run.stdout or "universal_v5" not in run.stdout:
        return fail("names " + ("universe_v5" if "universe_v5" in run.stdout else "no file"), run)
    return ok("names waveglow_256channels_universal_v5.pt", run)


def training_docs(ctx: Context) -> Verdict:
    text = (ctx.checkout / "docs" / "training.md").read_text()
    problems = []
    if "once the converter reads them" in text:
        problems.append("says NVIDIA's models work 'once the converter reads them'")
    if not re.search(r"GB", text):
        problems.append("no cost of the full model")
    if not re.search(r"tiny|laptop", text, re.IGNORECASE):
        problems.append("no small recipe")
    return fail("; ".join(problems)) if problems else ok("cost of the full model, a tiny recipe")


def readme_names_nvidia_pages(ctx: Context) -> Verdict:
    text = (ctx.checkout / "README.md").read_text()
    missing = [word for word in ("universal_v5", "NGC", "DeepLearningExamples") if word not in text]
    return fail(f"no {', '.join(missing)}") if missing else ok("NVIDIA/waveglow, NGC, DLE pages")


def model_file_has_no_machine_path(ctx: Context) -> Verdict:
    first = ctx.train(ctx.folder / "run", "--max-iters", "1")
    if first.code != 0:
        return fail("the first step failed: " + quoted(first.error_line()), first)
    checkpoint = sorted((ctx.folder / "run").glob("waveglow_*.pt"))[-1]
    converted = ctx.cli("convert", checkpoint, ctx.folder / "model.safetensors")
    if (verdict := broken(converted)) is not None:
        return verdict
    run = ctx.cli("info", ctx.folder / "model.safetensors")
    if (verdict := broken(run)) is not None:
        return verdict
    if str(ctx.inputs.corpus) in run.stdout:
        return fail("info shows the training machine's corpus path", run)
    return ok("no path of the training machine", run)


# ---------------------------------------------------------------------------- already handled
def missing_checkpoint(ctx: Context) -> Verdict:
    return expect_error(ctx.cli("info", "nothing.pt"), contains=["nothing.pt"])


def empty_checkpoint(ctx: Context) -> Verdict:
    (ctx.folder / "empty.pt").touch()
    return expect_error(ctx.cli("info", "empty.pt"), contains=["empty.pt"])


def truncated_checkpoint(ctx: Context) -> Verdict:
    data = ctx.inputs.tiny.read_bytes()
    (ctx.folder / "cut.pt").write_bytes(data[: len(data) // 2])
    return expect_error(ctx.cli("info", "cut.pt"), contains=["cut.pt"])


def text_as_checkpoint(ctx: Context) -> Verdict:
    (ctx.folder / "notes.pt").write_text("not a checkpoint\n" * 10)
    return expect_error(ctx.cli("info", "notes.pt"), contains=["notes.pt"])


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204 - pickle protocol
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


def hostile_pickle_checkpoint(ctx: Context) -> Verdict:
    import torch

    marker = ctx.folder / "PWNED"
    torch.save({"state_dict": _Exploit(marker)}, ctx.folder / "evil.pt")
    run = ctx.cli("info", "evil.pt")
    if marker.exists():
        return fail("the pickle ran code", run)
    return expect_error(run, contains=["evil.pt"])


def hostile_pickle_mel(ctx: Context) -> Verdict:
    import torch

    marker = ctx.folder / "PWNED"
    torch.save(_Exploit(marker), ctx.folder / "evil.pt")
    run = ctx.cli("synthesize", "-c", ctx.inputs.tiny, "evil.pt", "-o", "out", "-q")
    if marker.exists():
        return fail("the pickle ran code", run)
    return expect_error(run, contains=["evil.pt"])


def checkpoint_of_another_model(ctx: Context) -> Verdict:
    import torch

    torch.save(
        {"fc.weight": torch.zeros(10, 10), "fc.bias": torch.zeros(10)}, ctx.folder / "net.pt"
    )
    return expect_error(ctx.cli("info", "net.pt"), contains=["net.pt"])


def mel_wrong_channels(ctx: Context) -> Verdict:
    _write_npy(ctx.folder / "m80.npy", (80, 20))
    run = ctx.cli("synthesize", "-c", ctx.inputs.tiny, "m80.npy", "-o", "out", "-q")
    return expect_error(run, contains=["m80.npy"])


def mel_with_nan_file(ctx: Context) -> Verdict:
    _write_npy(ctx.folder / "nan.npy", (8, 20), float("nan"))
    run = ctx.cli("synthesize", "-c", ctx.inputs.tiny, "nan.npy", "-o", "out", "-q")
    return expect_error(run, contains=["nan.npy"])


def mel_without_frames(ctx: Context) -> Verdict:
    _write_npy(ctx.folder / "none.npy", (8, 0))
    run = ctx.cli("synthesize", "-c", ctx.inputs.tiny, "none.npy", "-o", "out", "-q")
    return expect_error(run, contains=["none.npy"])


def corrupt_audio_input(ctx: Context) -> Verdict:
    (ctx.folder / "noise.wav").write_bytes(random.Random(4).randbytes(4000))
    run = ctx.cli("synthesize", "-c", ctx.inputs.tiny, "noise.wav", "-o", "out", "-q")
    return expect_error(run, contains=["noise.wav"])


def one_bad_file_among_good(ctx: Context) -> Verdict:
    (ctx.folder / "bad.npy").write_bytes(b"\x93NUMPY garbage")
    run = ctx.cli(
        "synthesize", "-c", ctx.inputs.tiny, ctx.inputs.mel, "bad.npy", ctx.inputs.clip,
        "-o", "out", "-q",
    )  # fmt: skip
    written = len(list((ctx.folder / "out").glob("*.wav")))
    verdict = expect_error(run, contains=["bad.npy"])
    if verdict.status == "ok" and written != 2:
        return fail(f"{written} of 2 good files written", run)
    return verdict


def input_is_a_directory(ctx: Context) -> Verdict:
    (ctx.folder / "folder.npy").mkdir()
    run = ctx.cli("synthesize", "-c", ctx.inputs.tiny, "folder.npy", "-o", "out", "-q")
    return expect_error(run, contains=["folder.npy", "directory"])


def output_dir_is_a_file(ctx: Context) -> Verdict:
    (ctx.folder / "out").write_text("a file")
    run = ctx.cli("synthesize", "-c", ctx.inputs.tiny, ctx.inputs.mel, "-o", "out", "-q")
    return expect_error(run, contains=["out"])


def negative_sigma(ctx: Context) -> Verdict:
    run = ctx.cli("synthesize", "-c", ctx.inputs.tiny, ctx.inputs.mel, "-o", "out", "--sigma", "-1")
    return expect_error(run, contains=["sigma"], code=2)


def unknown_config_key(ctx: Context) -> Verdict:
    return expect_error(
        ctx.train(ctx.folder / "run", "--set", "train.batch_sise=3"), ["batch_sise"]
    )


def config_not_json(ctx: Context) -> Verdict:
    (ctx.folder / "config.json").write_text("{'single': quotes}")
    run = ctx.cli("train", "--config", "config.json", "--data", ctx.inputs.corpus, "-o", "run")
    return expect_error(run, contains=["config.json"])


def resume_without_checkpoint(ctx: Context) -> Verdict:
    return expect_error(ctx.train(ctx.folder / "fresh", "--resume", timeout=60), ["resume"])


def nemo_not_a_tar(ctx: Context) -> Verdict:
    (ctx.folder / "model.nemo").write_bytes(random.Random(12).randbytes(2000))
    return expect_error(ctx.cli("info", "model.nemo"), contains=["model.nemo"])


def kill_9_training_then_resume(ctx: Context) -> Verdict:
    """kill -9 of a run, then --resume: it goes on from the last checkpoint, no traceback."""
    output = ctx.folder / "run"
    process = ctx.start(
        "train", "--config", ctx.inputs.train_config, "--data", ctx.inputs.corpus, "-o", output,
        "-q", "--max-iters", "1000",
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not list(output.glob("waveglow_*.pt")) and time.monotonic() < deadline:
        if process.poll() is not None:
            break
        time.sleep(0.1)
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    wait_bounded(process, 30)
    run = ctx.train(output, "--resume", "--max-iters", "3", timeout=180)
    if (verdict := broken(run)) is not None:
        return verdict
    if run.code == 0 and "trained to step 3" in run.stdout:
        return ok("resumed to step 3", run)
    return fail(quoted(run.error_line() or run.stdout), run)


# ---------------------------------------------------------------------------- the list
@dataclass(frozen=True)
class Case:
    group: str
    name: str
    input: str
    command: str
    check: Callable[[Context], Verdict]


def all_cases() -> list[Case]:
    resources = "Resources bounded by the input"
    garbage = "No silent garbage"
    paths = "Paths: never replace what is not ours"
    hangs = "Nothing hangs, nothing is a traceback"
    rough = "Rough edges of the main workflows"
    handled = "Already handled (regression guard)"
    return [
        Case(resources, "channels-65536-info", "model file declaring WN n_channels=65536", "info wide.pt", channels_65536_info),
        Case(resources, "channels-65536-synthesize", "the same file", "synthesize -c wide.pt mel.npy", channels_65536_synthesize),
        Case(resources, "wn-2048x8-info", "model file declaring a 2048-layer x 8-channel WN", "info deep.pt", wn_2048_layers_info),
        Case(resources, "flows-1e7-info", "model file declaring n_flows=10^7", "info flows.pt", flows_1e7_info),
        Case(resources, "flows-1e7-synthesize", "the same file", "synthesize -c flows.pt mel.npy", flows_1e7_synthesize),
        Case(resources, "zip-bomb-checkpoint", "deflated zip .pt: 1024 storages of 2 MiB of zeros, each smaller than the file", "info bomb.pt", zip_bomb_checkpoint),
        Case(resources, "zip-bomb-mel", "deflated zip .pt mel: (8, 2^26) zeros, 2 GiB", "synthesize -c tiny.pt bomb.pt", zip_bomb_mel),
        Case(resources, "npy-header-lies", ".npy header declaring (8, 10^11) over 1 KB", "synthesize -c tiny.pt liar.npy", npy_header_lies),
        Case(resources, "tensor-call-in-pickle", "2.5 KB: torch.Tensor(5e8) posing as the weights of a 7000-channel WN", "synthesize -c padded.pt mel.npy", tensor_call_in_pickle),
        Case(resources, "encode-bomb", "protocol-2 bytes: one 1 MiB string encoded 4000 times", "info copies.pt", encode_bomb),
        Case(resources, "broadcast-weights", "stride-0 tensors posing as a 4096-channel WN", "info broadcast.pt", broadcast_weights),
        Case(garbage, "nan-weights", "checkpoint whose weights are NaN", "synthesize -c nan.pt mel.pt", nan_weights),
        Case(garbage, "api-nan-mel", "mel with a NaN", "model.infer(mel)", api_nan_mel),
        Case(garbage, "api-nan-sigma", "sigma=NaN", "model.infer(mel, sigma=nan)", api_nan_sigma),
        Case(garbage, "api-nan-z", "z with a NaN", "model.infer(mel, z=z)", api_nan_z),
        Case(garbage, "save-wav-nan", "audio with NaN", "save_wav(path, audio, 22050)", save_wav_nan),
        Case(garbage, "save-wav-2xN", "a (2, 1000) array", "save_wav(path, audio, 22050)", save_wav_two_channels),
        Case(garbage, "mel-1e30", "mel of 1e30", "synthesize -c tiny.pt loud.npy", mel_of_1e30),
        Case(garbage, "float-wav-peak-5", "float wav peaking at +-5", "synthesize -c tiny.pt hot.wav", float_wav_peak_5),
        Case(garbage, "learning-rate-1e6", "2 good steps, then --resume at learning_rate=1e6", "train --resume --set train.learning_rate=1e6", destructive_learning_rate),
        Case(paths, "convert-onto-null", "DST: a char device node (1, 3), a copy of /dev/null", "convert tiny.pt node", convert_onto_null),
        Case(paths, "convert-onto-full", "DST: a copy of /dev/full (1, 7)", "convert tiny.pt node", convert_onto_full),
        Case(paths, "export-ts-onto-null", "OUT: a copy of /dev/null", "export --format torchscript tiny.pt node", export_torchscript_onto_null),
        Case(paths, "export-onnx-onto-null", "OUT: a copy of /dev/null", "export --format onnx tiny.pt node", export_onnx_onto_null),
        Case(paths, "mel-onto-null", "mels/clip.pt is a copy of /dev/null", "mel clip.wav -o mels", mel_onto_null),
        Case(paths, "convert-onto-directory", "DST: a directory", "convert tiny.pt target/", convert_onto_directory),
        Case(paths, "export-onto-directory", "OUT: a directory", "export --format torchscript tiny.pt target/", export_onto_directory),
        Case(paths, "umask-modes", "umask 027, .pt and .safetensors outputs", "convert tiny.pt model.{pt,safetensors}", modes_follow_umask),
        Case(paths, "sigterm-synthesis", "SIGTERM while a long file streams", "synthesize -c tiny.pt long_mel.npy; kill -TERM", sigterm_during_synthesis),
        Case(paths, "kill-9-then-next-run", "kill -9 while a long file streams, then a run in that folder", "synthesize ...; kill -9; synthesize ... -o out", kill_9_then_next_run),
        Case(paths, "enospc-mid-batch", "4 mels of 80 KB into a 200 KB tmpfs", "synthesize --batch-size 2 m0..m3.npy -o disk", full_disk_mid_batch),
        Case(paths, "enospc-streamed", "one long file streamed into a 200 KB tmpfs", "synthesize long_mel.npy -o disk", full_disk_streamed),
        Case(paths, "enospc-mels", "4 mels of ~60 KB into a 200 KB tmpfs", "mel c0..c3.wav -o disk", full_disk_mels),
        Case(paths, "evaluate-unreadable-clip", "2 good clips and a corrupt one", "evaluate -c tiny.pt clips/ --baseline none", evaluate_unreadable_clip),
        Case(paths, "evaluate-short-clip", "2 good clips and one of 44 samples", "evaluate -c tiny.pt clips/ --baseline none", evaluate_short_clip),
        Case(paths, "evaluate-all-bad", "only a corrupt clip", "evaluate -c tiny.pt clips/ --baseline none", evaluate_all_clips_bad),
        Case(hangs, "corrupt-training-folder", "8 corrupt wavs, 2 workers", "train --data corrupt/ --set train.num_workers=2", corrupt_training_folder),
        Case(hangs, "resume-other-wn-size", "a run of WN 8 channels resumed with 16", "train --resume --set ...n_channels=16", resume_another_wn_size),
        Case(hangs, "metadata-json-list", "safetensors metadata '[1, 2]'", "info list.safetensors", metadata_not_an_object),
        Case(hangs, "metadata-not-json", "safetensors metadata '{oops'", "info text.safetensors", metadata_not_json),
        Case(hangs, "set-value-abc", "train_config.batch_size=abc", "train --set train_config.batch_size=abc", unparsable_set_value),
        Case(hangs, "set-value-bool", "train_config.iters_per_log=true", "train --set train_config.iters_per_log=true", boolean_set_value),
        Case(hangs, "info-head-1", "stdout's reader gone", "info demo \\| head -1", info_into_closed_pipe),
        Case(hangs, "api-int-mel", "int64 mel tensor", "model.infer(mel)", api_int_mel),
        Case(hangs, "api-fp64-mel", "float64 mel tensor", "model.infer(mel)", api_fp64_mel),
        Case(hangs, "api-numpy-mel", "numpy float64 mel", "model.infer(mel)", api_numpy_mel),
        Case(hangs, "api-list-mel", "nested list mel", "model.infer(mel)", api_list_mel),
        Case(hangs, "api-string-mel", "a string as the mel", "model.infer('mel.npy')", api_string_mel),
        Case(hangs, "api-cuda", "device='cuda' without CUDA", "waveglow.load('demo', device='cuda')", api_cuda_without_cuda),
        Case(hangs, "cli-cuda", "--device cuda without CUDA", "synthesize --device cuda", cli_cuda_without_cuda),
        Case(hangs, "api-80-bins", "an 80-bin mel for an 8-bin model", "model.infer(mel)", api_wrong_channels),
        Case(hangs, "api-unbatched-mel", "a (M, F) mel without its batch axis", "model.infer(mel)", api_unbatched_mel),
        Case(hangs, "complex-npy-mel", "a complex64 .npy mel", "synthesize -c tiny.pt complex.npy", complex_npy_mel),
        Case(hangs, "train-empty-folder", "--data: an empty folder", "train --data empty/", train_empty_folder),
        Case(hangs, "train-missing-data", "--data: no such path", "train --data nowhere", train_missing_data),
        Case(hangs, "info-directory", "CKPT: a directory", "info model.pt/", info_of_a_directory),
        Case(rough, "long-input-progress", "one mel of 73 s of audio", "synthesize -c tiny.pt long_mel.npy", long_input_progress),
        Case(rough, "resume-after-max-iters", "a run of --max-iters 1, resumed", "train -o run --resume", resume_after_max_iters),
        Case(rough, "init-from-demo-set", "--init-from demo with a WN width", "train --init-from demo --set ...n_channels=32", init_from_demo_with_set),
        Case(rough, "info-demo-facts", "the bundled model", "info demo", info_demo_facts),
        Case(rough, "model-file-paths", "a model converted from a training checkpoint", "convert run/waveglow_1.pt m.safetensors; info", model_file_has_no_machine_path),
        Case(rough, "convert-help", "", "convert --help", convert_help_names),
        Case(rough, "docs-training", "docs/training.md", "(read)", training_docs),
        Case(rough, "readme-nvidia-pages", "README.md", "(read)", readme_names_nvidia_pages),
        Case(handled, "missing-checkpoint", "no such file", "info nothing.pt", missing_checkpoint),
        Case(handled, "empty-checkpoint", "0 bytes", "info empty.pt", empty_checkpoint),
        Case(handled, "truncated-checkpoint", "the first half of a model", "info cut.pt", truncated_checkpoint),
        Case(handled, "text-checkpoint", "a text file", "info notes.pt", text_as_checkpoint),
        Case(handled, "hostile-pickle-checkpoint", "a pickle calling os.system", "info evil.pt", hostile_pickle_checkpoint),
        Case(handled, "hostile-pickle-mel", "a .pt mel calling os.system", "synthesize -c tiny.pt evil.pt", hostile_pickle_mel),
        Case(handled, "another-model", "a state dict of another network", "info net.pt", checkpoint_of_another_model),
        Case(handled, "mel-80-channels", "an 80-bin mel for an 8-bin model", "synthesize -c tiny.pt m80.npy", mel_wrong_channels),
        Case(handled, "mel-nan-file", "a .npy mel of NaN", "synthesize -c tiny.pt nan.npy", mel_with_nan_file),
        Case(handled, "mel-no-frames", "a (8, 0) mel", "synthesize -c tiny.pt none.npy", mel_without_frames),
        Case(handled, "corrupt-audio", "4 KB of random bytes as .wav", "synthesize -c tiny.pt noise.wav", corrupt_audio_input),
        Case(handled, "one-bad-among-good", "mel.pt, bad.npy, clip.wav", "synthesize -c tiny.pt mel.pt bad.npy clip.wav", one_bad_file_among_good),
        Case(handled, "input-directory", "a directory named folder.npy", "synthesize -c tiny.pt folder.npy", input_is_a_directory),
        Case(handled, "output-dir-is-file", "-o names a file", "synthesize ... -o out", output_dir_is_a_file),
        Case(handled, "negative-sigma", "--sigma -1", "synthesize --sigma -1", negative_sigma),
        Case(handled, "unknown-config-key", "train.batch_sise=3", "train --set train.batch_sise=3", unknown_config_key),
        Case(handled, "config-not-json", "config.json with single quotes", "train --config config.json", config_not_json),
        Case(handled, "resume-nothing", "an empty output folder", "train --resume -o fresh", resume_without_checkpoint),
        Case(handled, "nemo-not-tar", "random bytes as model.nemo", "info model.nemo", nemo_not_a_tar),
        Case(handled, "kill-9-training-resume", "kill -9 after the first checkpoint, then --resume", "train ...; kill -9; train --resume", kill_9_training_then_resume),
    ]  # fmt: skip


# ---------------------------------------------------------------------------- running
def run_tree(
    label: str,
    src: Path,
    inputs: Inputs,
    work: Path,
    cases: Sequence[Case],
    args: argparse.Namespace,
) -> dict[str, Verdict]:
    verdicts = {}
    for case in cases:
        folder = work / label / case.name
        folder.mkdir(parents=True)
        context = Context(src.resolve(), inputs, folder, args.timeout, args.mem_gb)
        started = time.monotonic()
        try:
            verdict = case.check(context)
        except Exception as error:  # noqa: BLE001 - a case that cannot run is reported, not fatal
            verdict = Verdict("n/a", f"the case could not run: {type(error).__name__}: {error}")
        verdict.note = verdict.note.replace(f"{folder}/", "").replace(str(work), "$T")
        print(f"[{label}] {case.name}: {verdict.status} ({time.monotonic() - started:.0f} s) "
              f"{verdict.cell()}", file=sys.stderr, flush=True)  # fmt: skip
        verdicts[case.name] = verdict
    return verdicts


def counts(verdicts: dict[str, Verdict]) -> dict[str, int]:
    runs = [verdict.run for verdict in verdicts.values() if verdict.run is not None]
    return {
        "tracebacks": sum(run.traceback for run in runs),
        "hangs": sum(run.hung for run in runs),
        "ok": sum(verdict.status == "ok" for verdict in verdicts.values()),
        "FAIL": sum(verdict.status == "FAIL" for verdict in verdicts.values()),
        "n/a": sum(verdict.status == "n/a" for verdict in verdicts.values()),
    }


def markdown(cases: Sequence[Case], trees: dict[str, dict[str, Verdict]]) -> str:
    labels = list(trees)
    lines = ["| tree | " + " | ".join(counts(next(iter(trees.values()))).keys()) + " |"]
    lines.append("|---" * (1 + len(counts({}))) + "|")
    for label, verdicts in trees.items():
        lines.append(f"| {label} | " + " | ".join(map(str, counts(verdicts).values())) + " |")
    group = None
    for number, case in enumerate(cases, 1):
        if case.group != group:
            group = case.group
            lines += ["", f"### {group}", ""]
            lines.append("| # | case | input | command | " + " | ".join(labels) + " |")
            lines.append("|---" * (4 + len(labels)) + "|")
        cells = [trees[label][case.name].cell() for label in labels]
        command = case.command.replace("|", "\\|") if "\\|" not in case.command else case.command
        lines.append(
            f"| {number} | {case.name} | {case.input} | `{command}` | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines) + "\n"


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--tree", action="append", metavar="LABEL=SRC", default=[],
        help="a source tree to run (repeatable; default: this tree's src as HEAD)",
    )  # fmt: skip
    parser.add_argument(
        "-k", action="append", default=[], metavar="WORD", help="cases whose name has WORD"
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds per command (default: 60)"
    )
    parser.add_argument(
        "--mem-gb", type=float, default=4.0, help="address space per command (default: 4)"
    )
    parser.add_argument("--markdown", type=Path, help="write the table there too")
    parser.add_argument("--json", type=Path, help="write every run's raw record there")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    cases = [
        case for case in all_cases() if not args.k or any(word in case.name for word in args.k)
    ]
    if args.list:
        for case in cases:
            print(f"{case.name:28} {case.group}: {case.input}")
        return 0
    trees = dict(_tree(text) for text in args.tree) or {"HEAD": ROOT / "src"}
    work = Path(tempfile.mkdtemp(prefix="waveglow-abuse-"))
    try:
        inputs = build_inputs(work / "inputs")
        verdicts = {
            label: run_tree(label, src, inputs, work, cases, args) for label, src in trees.items()
        }
    finally:
        if not args.keep:
            _remove(work)
        else:
            print(f"kept {work}", file=sys.stderr)
    table = markdown(cases, verdicts)
    print(table)
    if args.markdown:
        args.markdown.write_text(table)
    if args.json:
        records = {
            label: {name: asdict(verdict) for name, verdict in found.items()}
            for label, found in verdicts.items()
        }
        args.json.write_text(json.dumps(records, indent=1))
    return 0


def _tree(text: str) -> tuple[str, Path]:
    label, _, src = text.partition("=")
    if not src or not (Path(src) / "waveglow" / "__init__.py").is_file():
        raise SystemExit(f"--tree {text}: expected LABEL=SRC, SRC holding waveglow/")
    return label, Path(src)


def _remove(work: Path) -> None:
    for mount in _mounts_under(work):
        subprocess.run(["umount", mount], capture_output=True)
    shutil.rmtree(work, ignore_errors=True)


def _mounts_under(folder: Path) -> Iterator[str]:
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return
    for line in lines:
        point = line.split()[1]
        if point.startswith(str(folder)):
            yield point


if __name__ == "__main__":
    sys.exit(main())
