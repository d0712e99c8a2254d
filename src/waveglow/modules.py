"""Building blocks of the flow: weight-normalised convolutions, the invertible 1x1 convolution and
the WaveNet-like network (WN) that predicts each affine coupling's shift and log-scale.

Parameter names follow NVIDIA's ``glow.py`` (fused layout) so their state dicts load without renaming:
``start``, ``in_layers.i``, ``cond_layer``, ``res_skip_layers.i``, ``end``; weight-normalised layers hold
``weight_g`` and ``weight_v``; the 1x1 convolution holds ``conv.weight``.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from .config import WNConfig


class WNEvaluation(Protocol):
    """Another evaluation of the same WN function, passed to every WN in place of the mel
    tensor: it carries the conditioning and evaluates the WN its own way (e.g. the matrix
    products of :class:`waveglow.fast.GemmCondition`)."""

    def evaluate(self, wn: WN, audio: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
        """The WN's output (B, 2*n_in, T_G) for ``audio`` (B, n_in, T_G), as :meth:`WN.forward`."""
        ...


class WeightNormConv1d(nn.Module):
    """A Conv1d with weight normalisation over dim 0: ``weight = g * v / ||v||`` per output channel.

    Stores ``weight_g`` (C_out, 1, 1), ``weight_v`` and ``bias`` like ``torch.nn.utils.weight_norm``
    did, without its deprecated hook machinery. :meth:`fold` returns the equivalent plain Conv1d.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        dilation: int = 1,
        groups: int = 1,
    ) -> None:
        super().__init__()
        conv = nn.Conv1d(
            in_channels,
            out_channels,
            kernel_size,
            dilation=dilation,
            padding=_same(kernel_size, dilation),
            groups=groups,
        )
        self.dilation = dilation
        self.groups = groups
        self.padding = conv.padding[0]
        self.weight_v = nn.Parameter(conv.weight.detach().clone())
        self.weight_g = nn.Parameter(norm_except_dim0(self.weight_v.detach()))
        self.bias = nn.Parameter(conv.bias.detach().clone())

    @property
    def weight(self) -> torch.Tensor:
        return self.weight_g * self.weight_v / norm_except_dim0(self.weight_v)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv1d(
            x,
            self.weight,
            self.bias,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups,
        )

    @staticmethod
    def parameter_count(
        in_channels: int, out_channels: int, kernel_size: int = 1, weight_norm: bool = True
    ) -> int:
        """Values of such a convolution: weight (or weight_v and weight_g) and bias."""
        return out_channels * in_channels * kernel_size + out_channels * (2 if weight_norm else 1)

    def fold(self) -> nn.Conv1d:
        out_channels, in_per_group, kernel_size = self.weight_v.shape
        conv = nn.Conv1d(
            in_per_group * self.groups,
            out_channels,
            kernel_size,
            dilation=self.dilation,
            padding=self.padding,
            groups=self.groups,
        ).to(device=self.weight_v.device, dtype=self.weight_v.dtype)
        with torch.no_grad():
            conv.weight.copy_(self.weight)
            conv.bias.copy_(self.bias)
        return conv


def norm_except_dim0(weight: torch.Tensor) -> torch.Tensor:
    """L2 norm of each output channel, shaped (C_out, 1, ..., 1) like ``weight_g``."""
    return weight.flatten(1).norm(dim=1).view(-1, *([1] * (weight.dim() - 1)))


def _same(kernel_size: int, dilation: int) -> int:
    return (kernel_size * dilation - dilation) // 2


class Invertible1x1Conv(nn.Module):
    """The invertible 1x1 convolution ``W`` that mixes the audio channels before each coupling.

    Initialised as a random rotation (orthogonal, det +1). The inverse matrix is computed in float64
    and cached against the weight's version counter, so it follows every optimiser step and every
    ``load_state_dict`` (NVIDIA computes it once and never refreshes it).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, 1, bias=False)
        rotation = torch.linalg.qr(torch.randn(channels, channels, dtype=torch.float64))[0]
        if torch.linalg.det(rotation) < 0:
            rotation[:, 0] = -rotation[:, 0]
        with torch.no_grad():
            self.conv.weight.copy_(rotation.view(channels, channels, 1))
        self._inverse_cache: tuple[tuple, torch.Tensor] | None = None

    @staticmethod
    def parameter_count(channels: int) -> int:
        return channels * channels

    @property
    def matrix(self) -> torch.Tensor:
        return self.conv.weight.squeeze(-1)

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``W @ audio`` and its log-determinant per batch item, shape (B,).

        Runs outside autocast: under mixed precision the mixing and its determinant stay in the
        audio's own dtype (fp32 in training).
        """
        batch, _, length = audio.shape
        with torch.autocast(audio.device.type, enabled=False):
            matrix = self.matrix
            precise = matrix.to(torch.promote_types(matrix.dtype, torch.float32))
            log_det = torch.linalg.slogdet(precise)[1] * length
            return torch.matmul(matrix.to(audio.dtype), audio), log_det.expand(batch)

    def inverse(self, audio: torch.Tensor) -> torch.Tensor:
        """``W^-1 @ audio`` (B, C, T), as a product over time-major rows: each step's rounding
        is then the same wherever the step lies in ``audio`` (chunked and streamed synthesis
        are bit for bit whole-utterance synthesis)."""
        inverse = self.inverse_matrix(audio.dtype)
        return torch.matmul(audio.transpose(1, 2), inverse.t()).transpose(1, 2)  # (B, C, T)

    def inverse_matrix(self, dtype: torch.dtype) -> torch.Tensor:
        """``W^-1`` computed in float64, cast to ``dtype``; recomputed whenever the weight changes
        (cached without autograd, in the graph when gradients flow to the weight)."""
        weight = self.conv.weight
        in_graph = weight.requires_grad and (torch.is_grad_enabled() or torch.jit.is_tracing())
        if torch.compiler.is_compiling() or in_graph:
            # compiled, traced with trainable weights, or trained through (a spectral loss on
            # the synthesis): the inverse stays in the graph
            return torch.linalg.inv(self.matrix.double()).to(dtype)
        # frozen weights while tracing (export): the cached inverse becomes a constant
        key = (weight._version, weight.data_ptr(), weight.device, dtype)
        if self._inverse_cache is None or self._inverse_cache[0] != key:
            inverse = torch.linalg.inv(self.matrix.detach().double()).to(dtype)
            self._inverse_cache = (key, inverse)
        return self._inverse_cache[1]

    def _apply(self, fn, recurse: bool = True):  # noqa: ANN001 - torch's signature
        self._inverse_cache = None
        return super()._apply(fn, recurse)


class SeparableConv1d(nn.Module):
    """SqueezeWave's in_layer: a depthwise k-tap convolution (C -> C, one filter per channel)
    followed by a pointwise one (C -> 2C), both weight-normalised.

    :attr:`weight` and :attr:`bias` are the equivalent dense convolution's (2C, C, k) taps and
    bias (``pointwise . depthwise`` is linear), which is what the GEMM evaluation reads.
    """

    def __init__(self, channels: int, out_channels: int, kernel_size: int, dilation: int) -> None:
        super().__init__()
        self.depthwise = WeightNormConv1d(channels, channels, kernel_size, dilation, channels)
        self.pointwise = WeightNormConv1d(channels, out_channels)
        self.dilation = dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))

    @property
    def weight(self) -> torch.Tensor:
        """(2C, C, k): tap j of input c to output o is pointwise[o, c] * depthwise[c, j]."""
        return self.pointwise.weight[:, :, :1] * self.depthwise.weight.transpose(0, 1)

    @property
    def bias(self) -> torch.Tensor:
        return self.pointwise.bias + self.pointwise.weight[:, :, 0] @ self.depthwise.bias


class WN(nn.Module):
    """WaveNet-like network: dilated convolutions gated by the upsampled mel, summed skip outputs.

    Input: the first half of the audio channels (B, n_in, T_G) and the grouped mel (B, M*G, T_G).
    Output: (B, 2*n_in, T_G) = (shift, log_scale) for the second half of the channels.
    """

    def __init__(self, n_in_channels: int, n_mel_channels: int, config: WNConfig) -> None:
        super().__init__()
        channels, layers = config.n_channels, config.n_layers
        self.n_layers = layers
        self.n_channels = channels
        self.start = WeightNormConv1d(n_in_channels, channels)
        self.end = nn.Conv1d(channels, 2 * n_in_channels, 1)
        nn.init.zeros_(self.end.weight)
        nn.init.zeros_(self.end.bias)
        self.cond_layer = WeightNormConv1d(n_mel_channels, 2 * channels * layers)
        in_layer = SeparableConv1d if config.depthwise_separable else WeightNormConv1d
        self.in_layers = nn.ModuleList(
            in_layer(channels, 2 * channels, config.kernel_size, config.dilation_base**i)
            for i in range(layers)
        )
        self.res_skip_layers = nn.ModuleList(
            WeightNormConv1d(channels, 2 * channels if i < layers - 1 else channels)
            for i in range(layers)
        )
        self.evaluation_cache: dict = {}  # what a WNEvaluation derives from the parameters

    @staticmethod
    def parameter_count(
        n_in_channels: int, n_mel_channels: int, config: WNConfig, weight_norm: bool = True
    ) -> int:
        """The values a WN of these sizes holds, computed from the sizes alone (as :meth:`__init__`
        lays them out), so that a file's declared config can be checked before anything is built."""
        channels, layers = config.n_channels, config.n_layers
        conv = WeightNormConv1d.parameter_count
        if config.depthwise_separable:  # one k-tap filter per channel, then C -> 2C
            in_layer = conv(1, channels, config.kernel_size, weight_norm)
            in_layer += conv(channels, 2 * channels, 1, weight_norm)
        else:
            in_layer = conv(channels, 2 * channels, config.kernel_size, weight_norm)
        return (
            conv(n_in_channels, channels, 1, weight_norm)
            + conv(channels, 2 * n_in_channels, 1, weight_norm=False)  # end: a plain Conv1d
            + conv(n_mel_channels, 2 * channels * layers, 1, weight_norm)
            + layers * in_layer
            + (layers - 1) * conv(channels, 2 * channels, 1, weight_norm)
            + conv(channels, channels, 1, weight_norm)
        )

    def forward(
        self,
        audio: torch.Tensor,
        mel: torch.Tensor | WNEvaluation,
        valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Reference evaluation (plain convolutions) for a mel tensor; for a
        :class:`WNEvaluation`, the same function evaluated its own way.

        ``valid`` (B, T_G) bool marks each item's own steps in a padded batch: the dilated
        convolutions then read zeros past an item's end, as they do when it is synthesized alone.
        """
        if not isinstance(mel, torch.Tensor):
            return mel.evaluate(self, audio, valid)
        audio = self.start(audio)
        cond = self.cond_layer(mel)
        output = torch.zeros_like(audio)
        channels = self.n_channels
        for i, (in_layer, res_skip_layer) in enumerate(
            zip(self.in_layers, self.res_skip_layers, strict=True)
        ):
            offset = 2 * channels * i
            layer_input = audio if valid is None else audio.where(valid.unsqueeze(1), 0.0)
            acts = gated_activation(in_layer(layer_input), cond[:, offset : offset + 2 * channels])
            res_skip = res_skip_layer(acts)
            if i < self.n_layers - 1:
                audio = audio + res_skip[:, :channels]
                output = output + res_skip[:, channels:]
            else:
                output = output + res_skip
        return self.end(output)

    def _apply(self, fn, recurse: bool = True):  # noqa: ANN001 - torch's signature
        self.evaluation_cache = {}
        return super()._apply(fn, recurse)


def gated_activation(audio: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
    """WaveNet's gate: tanh(first half) * sigmoid(second half) of ``audio + cond``."""
    tanh_in, sigmoid_in = (audio + cond).chunk(2, dim=1)
    return torch.tanh(tanh_in) * torch.sigmoid(sigmoid_in)


def remove_weight_norm(module: nn.Module) -> nn.Module:
    """Replace every :class:`WeightNormConv1d` below ``module`` with its folded plain Conv1d."""
    for name, child in module.named_children():
        if isinstance(child, WeightNormConv1d):
            setattr(module, name, child.fold())
        else:
            remove_weight_norm(child)
    return module
