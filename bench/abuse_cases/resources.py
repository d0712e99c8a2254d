"""Resources bounded by the input: files whose cost is out of all proportion to their size
(declared widths, zip and pickle bombs, lying headers) are refused before they cost memory or time."""

from __future__ import annotations

from .harness import Context
from .inputs import LazyTensor, hostile_config, write_npy, zip_bomb
from .processes import LOW_MEMORY_MB, Run
from .verdicts import Verdict, expect_error


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
    write_npy(mel, (1, 20))
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
    write_npy(mel, (1, 20))
    return _refused_cheaply(ctx.cli("synthesize", "-c", path, mel, "-o", "out", "-q"))


def zip_bomb_checkpoint(ctx: Context) -> Verdict:
    """1024 storages of 2 MiB of zeros: each smaller than the file, 2 GiB together."""
    keys = [str(key) for key in range(1024)]
    path = zip_bomb(
        ctx.folder / "bomb.pt",
        lambda: {f"t{key}": LazyTensor(key, (2**19,)) for key in keys},
        dict.fromkeys(keys, 2**21),
    )
    run = ctx.cli("info", path, mem_gb=6)
    verdict = _refused_cheaply(run)
    verdict.note += f" ({path.stat().st_size / 2**20:.1f} MB file)"
    return verdict


def zip_bomb_mel(ctx: Context) -> Verdict:
    path = zip_bomb(ctx.folder / "bomb.pt", lambda: LazyTensor("0", (8, 2**26)), {"0": 2**31})
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
    mel = write_npy(ctx.folder / "mel.npy", (1, 20))
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
