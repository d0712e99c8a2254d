"""Export the synthesis graph: ONNX (for ONNX Runtime and others) and TorchScript.

The exported graph is deterministic: it takes the mel (B, M, F) and the latent z (B, G, F*hop/G)
-- draw z ~ N(0, sigma^2) yourself, e.g. ``sigma * randn`` -- and returns the audio (B, F*hop).
Batch and time axes are dynamic. It is the same :meth:`WaveGlow.decode` as eager synthesis, with
the WNs evaluated by the ``conv`` backend (the default: the form exporters and runtimes optimise
best) or by ``gemm``, the matrix products of :mod:`waveglow.fast` (its functional formulation: the
in-place buffers are not traced), and the inverse 1x1 matrices frozen as constants.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from .audio import atomic_path, remove_stale_temporaries
from .backends import evaluation
from .model import WaveGlow
from .noise import gaussian

ONNX_OPSET = 17


class Synthesizer(nn.Module):
    """``(mel, z) -> audio``: the deterministic synthesis graph that is exported."""

    def __init__(
        self, model: WaveGlow, precision: str | None = None, backend: str | None = None
    ) -> None:
        super().__init__()
        self.backend, self.precision = evaluation(backend, precision)
        self.model = copy.deepcopy(model).float().eval()
        if self.model.has_weight_norm:
            self.model.remove_weight_norm()
        self.model.requires_grad_(False)
        for conv in self.model.convinv:
            conv.inverse_matrix(torch.float32)  # cached now, a constant in the traced graph

    def forward(self, mel: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.model.decode(mel, z, self.precision, backend=self.backend)  # (B, T)


def example_inputs(model: WaveGlow, frames: int = 8, batch: int = 1) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(0)
    mel = torch.randn(batch, model.config.n_mel_channels, frames, generator=generator)
    steps = frames * model.hop_length // model.n_group
    z = gaussian((batch, model.n_group, steps), 0.6, generator)
    return mel, z


def export_onnx(
    model: WaveGlow,
    path: str | Path,
    opset: int = ONNX_OPSET,
    precision: str | None = None,
    backend: str | None = None,
) -> Path:
    """Write the synthesis graph as ONNX (inputs ``mel``, ``z``; output ``audio``), atomically.

    ``backend`` and ``precision`` as for :meth:`WaveGlow.inverse`: by default the WNs are exported
    as convolutions; ``gemm`` in fp32 exports the matrix products of :mod:`waveglow.fast` (the
    formulation of :meth:`WaveGlow.infer`'s default path).
    """
    path = Path(path)
    remove_stale_temporaries(path.parent)
    synthesizer = Synthesizer(model, precision, backend)
    with torch.no_grad(), atomic_path(path) as temporary, _quiet_tracer():
        torch.onnx.export(
            synthesizer,
            example_inputs(synthesizer.model),
            str(temporary),
            input_names=["mel", "z"],
            output_names=["audio"],
            dynamic_axes={
                "mel": {0: "batch", 2: "frames"},
                "z": {0: "batch", 2: "steps"},
                "audio": {0: "batch", 1: "samples"},
            },
            opset_version=opset,
            dynamo=False,
        )
    return path


def export_torchscript(model: WaveGlow, path: str | Path) -> Path:
    """Write the synthesis graph as a traced TorchScript module (``torch.jit.load``), atomically.

    TorchScript is deprecated in recent torch releases but still loads everywhere (C++ included).
    """
    path = Path(path)
    remove_stale_temporaries(path.parent)
    synthesizer = Synthesizer(model)
    with torch.no_grad(), _quiet_tracer():
        traced = torch.jit.trace(synthesizer, example_inputs(synthesizer.model), check_trace=False)
    with atomic_path(path) as temporary, _quiet_tracer():
        torch.jit.save(traced, str(temporary))
    return path


@contextlib.contextmanager
def _quiet_tracer() -> Iterator[None]:
    """Silence the tracer's warnings about the input checks it keeps as constants."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module="torch.onnx")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        yield
