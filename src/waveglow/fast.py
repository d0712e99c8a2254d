"""The WN as matrix products: the fast evaluation of the same parameters, for inference and training.

:func:`wn_forward` computes exactly the function of :meth:`waveglow.modules.WN.forward` (same
parameters, same state-dict names) but arranged for GEMM throughput, in time-major layout (B, T, C):

* the dilated k-tap convolution and this layer's slice of ``cond_layer`` are ONE matrix product: the
  input matrix holds the k time-shifted copies of the residual stream side by side, followed by the
  grouped mel, ``[x(t - d) | x(t) | x(t + d) | mel(t)]`` (B, T, k*C + M*G), and the weight stacks the
  conv taps over the cond_layer rows; the in_layer and cond_layer biases are summed into one;
* the gated activation is applied to that product's output;
* the skip halves of the res_skip layers and the ``end`` layer are composed into one (L*C, 2*n_in)
  matrix (both are linear), so no skip sum of C channels is ever formed; this product is in fp32;
* with ``dtype`` bfloat16 or float16, the big products (taps + cond, residual) run in that dtype;
  the residual stream, the skip/end product and hence the shift and log-scale stay in float32.

The weights are rearranged (and weight norm folded) by :func:`gemm_weights`: differentiably when
autograd is on, from a cache keyed on the parameters' versions when it is off. Under
``torch.no_grad``/``torch.inference_mode`` the layer input matrix is a preallocated buffer whose mel
columns are written once per inverse pass, shared by every flow (see :class:`GemmCondition`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .backends import resolve_precision
from .modules import WN


# ---------------------------------------------------------------------------- conditioning
@dataclass
class GemmCondition:
    """The grouped mel (B, M*G, T_G) with the matmul dtype: the :class:`~waveglow.modules.WNEvaluation`
    that the inverse/forward flow passes to every WN to select the GEMM evaluation. Holds the
    inference buffers, shared by all flows."""

    mel_groups: torch.Tensor
    dtype: torch.dtype
    buffers: dict[str, torch.Tensor] = field(default_factory=dict)

    @classmethod
    def prepare(
        cls, mel_groups: torch.Tensor, precision: str | torch.dtype = "fp32"
    ) -> GemmCondition:
        dtype = (
            precision
            if isinstance(precision, torch.dtype)
            else resolve_precision(precision, mel_groups.device)
        )
        if dtype == torch.float32 and mel_groups.dtype == torch.float64:
            dtype = torch.float64  # "full precision" follows a float64 model
        return cls(mel_groups, dtype)

    def evaluate(self, wn: WN, audio: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
        """``wn`` evaluated as matrix products (see :func:`wn_forward`)."""
        return wn_forward(wn, audio, self, valid)

    def time_major(self) -> torch.Tensor:
        """The mel as (B, T_G, M*G) in the matmul dtype (differentiable; a view when it can be)."""
        return self.mel_groups.transpose(1, 2).to(self.dtype)  # (B, T_G, M*G)

    def layer_input(self, taps: int, channels: int) -> torch.Tensor:
        """The (B, T_G, taps*C + M*G) inference buffer, its mel columns filled once."""
        batch, mel_channels, length = self.mel_groups.shape
        width = taps * channels + mel_channels
        buffer = self.buffers.get("layer_input")
        if buffer is None or buffer.shape != (batch, length, width):
            buffer = self.mel_groups.new_empty((batch, length, width), dtype=self.dtype)
            buffer[:, :, taps * channels :] = self.time_major()
            self.buffers["layer_input"] = buffer
        return buffer

    def scratch(self, name: str, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """A reusable inference buffer (same name, shape and dtype: same memory)."""
        buffer = self.buffers.get(name)
        if buffer is None or buffer.shape != shape or buffer.dtype != dtype:
            buffer = self.mel_groups.new_empty(shape, dtype=dtype)
            self.buffers[name] = buffer
        return buffer


# ---------------------------------------------------------------------------- weights
@dataclass(frozen=True)
class GemmWeights:
    """A WN's parameters rearranged for time-major matrix products (weight norm folded)."""

    start_weight: torch.Tensor  # (n_in, C) fp32
    start_bias: torch.Tensor  # (C,) fp32
    layer_weights: tuple[torch.Tensor, ...]  # L x (k*C + M*G, 2C), matmul dtype
    layer_biases: tuple[torch.Tensor, ...]  # L x (2C,), matmul dtype
    residual_weights: tuple[torch.Tensor, ...]  # (L-1) x (C, C), matmul dtype
    residual_biases: tuple[torch.Tensor, ...]  # (L-1) x (C,), matmul dtype
    skip_end_weights: tuple[torch.Tensor, ...]  # L x (C, 2*n_in) fp32: end o skip_i
    end_bias: torch.Tensor  # (2*n_in,) fp32


def gemm_weights(wn: WN, dtype: torch.dtype) -> GemmWeights:
    """``wn``'s weights in GEMM layout; cached (per dtype) while autograd is off."""
    if torch.is_grad_enabled() or torch.jit.is_tracing() or torch.compiler.is_compiling():
        return _rearrange(wn, dtype)
    key = (dtype, *((p._version, p.data_ptr(), p.device) for p in wn.parameters()))
    cache, slot = wn.evaluation_cache, ("gemm", dtype)
    if cache.get(slot, (None,))[0] != key:
        cache[slot] = (key, _rearrange(wn, dtype))
    return cache[slot][1]


def _rearrange(wn: WN, dtype: torch.dtype) -> GemmWeights:
    channels, layers = wn.n_channels, wn.n_layers
    precise = torch.promote_types(wn.end.weight.dtype, torch.float32)
    cond_weight = wn.cond_layer.weight.squeeze(-1)  # (2*C*L, M*G)
    cond_bias = wn.cond_layer.bias
    end_weight = wn.end.weight.squeeze(-1).to(precise)  # (2*n_in, C)
    layer_weights, layer_biases, residual_weights, residual_biases = [], [], [], []
    skip_end_weights, skip_bias = [], torch.zeros_like(wn.end.bias, dtype=precise)
    for i, (in_layer, res_skip) in enumerate(zip(wn.in_layers, wn.res_skip_layers, strict=True)):
        rows = slice(2 * channels * i, 2 * channels * (i + 1))
        taps = in_layer.weight.permute(2, 1, 0).reshape(-1, 2 * channels)  # (k*C, 2C)
        layer_weights.append(torch.cat([taps, cond_weight[rows].t()]).to(dtype))
        layer_biases.append((in_layer.bias + cond_bias[rows]).to(dtype))
        res_weight = res_skip.weight.squeeze(-1)  # (C or 2C, C)
        skip_weight, skip_b = res_weight, res_skip.bias
        if i < layers - 1:
            residual_weights.append(res_weight[:channels].t().to(dtype))
            residual_biases.append(res_skip.bias[:channels].to(dtype))
            skip_weight, skip_b = res_weight[channels:], res_skip.bias[channels:]
        skip_end_weights.append((end_weight @ skip_weight.to(precise)).t())  # (C, 2*n_in)
        skip_bias = skip_bias + end_weight @ skip_b.to(precise)
    return GemmWeights(
        start_weight=wn.start.weight.squeeze(-1).t().to(precise),
        start_bias=wn.start.bias.to(precise),
        layer_weights=tuple(layer_weights),
        layer_biases=tuple(layer_biases),
        residual_weights=tuple(residual_weights),
        residual_biases=tuple(residual_biases),
        skip_end_weights=tuple(skip_end_weights),
        end_bias=wn.end.bias.to(precise) + skip_bias,
    )


# ---------------------------------------------------------------------------- evaluation
def wn_forward(
    wn: WN, audio: torch.Tensor, condition: GemmCondition, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """The WN's output (B, 2*n_in, T_G) for audio (B, n_in, T_G), evaluated as matrix products.

    With autograd on, every intermediate is a new tensor (differentiable); with it off, the
    products write into the condition's reusable buffers (no per-layer allocations). Under
    ``torch.jit.trace`` (ONNX/TorchScript export) it is always the functional formulation: the
    in-place ``out=`` products do not export and the buffer bookkeeping would freeze the shapes.
    ``valid`` (B, T_G) bool: the steps each item owns in a padded batch (see :meth:`WN.forward`).
    """
    weights = gemm_weights(wn, condition.dtype)
    if torch.is_grad_enabled() or torch.jit.is_tracing():
        return _forward_autograd(wn, weights, audio, condition, valid)
    return _forward_inference(wn, weights, audio, condition, valid)


def _forward_autograd(
    wn: WN,
    weights: GemmWeights,
    audio: torch.Tensor,
    condition: GemmCondition,
    valid: torch.Tensor | None,
) -> torch.Tensor:
    taps = wn.in_layers[0].weight.size(2)
    x = torch.matmul(audio.transpose(1, 2).to(weights.start_weight.dtype), weights.start_weight)
    x = x + weights.start_bias  # (B, T_G, C)
    mel = condition.time_major()  # (B, T_G, M*G)
    output = weights.end_bias
    for i in range(wn.n_layers):
        layer_x = x if valid is None else x.where(valid.unsqueeze(2), 0.0)
        inputs = _layer_input(layer_x, mel, _as_int(wn.in_layers[i].dilation), taps)
        hidden = torch.matmul(inputs, weights.layer_weights[i]) + weights.layer_biases[i]
        acts = _gate(hidden)  # (B, T_G, C)
        if i < wn.n_layers - 1:
            x = x + torch.matmul(acts, weights.residual_weights[i]) + weights.residual_biases[i]
        output = output + torch.matmul(acts.to(x.dtype), weights.skip_end_weights[i])
    return output.transpose(1, 2)  # (B, 2*n_in, T_G)


def _forward_inference(
    wn: WN,
    weights: GemmWeights,
    audio: torch.Tensor,
    condition: GemmCondition,
    valid: torch.Tensor | None,
) -> torch.Tensor:
    batch, n_in, length = audio.shape
    channels, taps, dtype = wn.n_channels, wn.in_layers[0].weight.size(2), condition.dtype
    precise, rows = weights.start_weight.dtype, batch * length
    inputs = condition.layer_input(taps, channels)  # (B, T_G, k*C + M*G)
    hidden = condition.scratch("hidden", (rows, 2 * channels), dtype)
    acts = condition.scratch("acts", (rows, channels), dtype)
    residual = condition.scratch("residual", (rows, channels), dtype)
    acts_precise = acts if dtype == precise else condition.scratch("acts32", acts.shape, precise)
    flat_audio = audio.transpose(1, 2).reshape(rows, n_in).to(precise)  # (B*T_G, n_in)
    x = torch.addmm(weights.start_bias, flat_audio, weights.start_weight)  # (B*T_G, C)
    output = weights.end_bias.expand(rows, -1).clone()  # (B*T_G, 2*n_in)
    for i in range(wn.n_layers):
        dilation = _as_int(wn.in_layers[i].dilation)
        if valid is not None:  # padding past an item's end: what a lone item's conv reads
            x.view(batch, length, channels).masked_fill_(~valid.unsqueeze(2), 0.0)
        _fill_layer_input(inputs, x.view(batch, length, channels), dilation, taps)
        flat_inputs = inputs.view(rows, -1)  # (B*T_G, k*C + M*G)
        torch.addmm(weights.layer_biases[i], flat_inputs, weights.layer_weights[i], out=hidden)
        tanh_half, sigmoid_half = hidden[:, :channels], hidden[:, channels:]
        torch.mul(tanh_half.tanh_(), sigmoid_half.sigmoid_(), out=acts)
        if i < wn.n_layers - 1:
            weight, bias = weights.residual_weights[i], weights.residual_biases[i]
            x.add_(torch.addmm(bias, acts, weight, out=residual))
        if acts_precise is not acts:
            acts_precise.copy_(acts)
        output.addmm_(acts_precise, weights.skip_end_weights[i])
    return output.view(batch, length, -1).transpose(1, 2)  # (B, 2*n_in, T_G)


def _as_int(value: int | tuple[int, ...]) -> int:
    return value[0] if isinstance(value, tuple) else value


def _gate(hidden: torch.Tensor) -> torch.Tensor:
    """tanh(first half) * sigmoid(second half), the conditioning already in ``hidden``."""
    tanh_in, sigmoid_in = hidden.chunk(2, dim=-1)
    return torch.tanh(tanh_in) * torch.sigmoid(sigmoid_in)


def _offsets(dilation: int, taps: int) -> list[int]:
    """Time offset of each tap: the convolution's tap j reads x(t + offset_j)."""
    return [(j - (taps - 1) // 2) * dilation for j in range(taps)]


def _layer_input(x: torch.Tensor, mel: torch.Tensor, dilation: int, taps: int) -> torch.Tensor:
    """``[x(t + offset_j) for each tap | mel(t)]`` as a new (B, T_G, k*C + M*G) tensor (autograd)."""
    length = x.size(1)
    pad = dilation * (taps - 1) // 2
    padded = torch.nn.functional.pad(x.to(mel.dtype), (0, 0, pad, pad))  # (B, T_G + 2 pad, C)
    shifted = [
        padded[:, pad + offset : pad + offset + length] for offset in _offsets(dilation, taps)
    ]
    return torch.cat([*shifted, mel], dim=2)  # (B, T_G, k*C + M*G)


def _fill_layer_input(
    buffer: torch.Tensor, x: torch.Tensor, dilation: int, taps: int
) -> torch.Tensor:
    """Write the k shifted copies of ``x`` into the first k*C columns of ``buffer`` in place."""
    length, channels = x.shape[1:]
    for j, offset in enumerate(_offsets(dilation, taps)):
        block = buffer[:, :, j * channels : (j + 1) * channels]
        low, high = max(0, -offset), min(length, length - offset)
        if low >= high:
            block.zero_()
            continue
        block[:, low:high].copy_(x[:, low + offset : high + offset])
        block[:, :low].zero_()
        block[:, high:].zero_()
    return buffer
