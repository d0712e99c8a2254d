"""The speed baseline: a straightforward eager implementation of NVIDIA's WaveGlow inference path.

Our own code, written to mirror the algorithm of NVIDIA's ``glow.py`` ``infer`` with weight norm
removed, in fp32: upsample the mel with a transposed convolution and cut the overlap, fold it into
groups, then for each flow in reverse order run the WN with plain ``conv1d`` calls (cond_layer over
the whole mel, dilated in_layers, fused tanh*sigmoid, res_skip layers, end), undo the affine coupling,
apply the inverse 1x1 convolution (as a conv1d) and prepend the early noise channels. It reads the
weights of a :class:`waveglow.WaveGlow` so both run the same network, and takes the latent ``z`` in
our layout (B, G, T_G) so that their outputs can be compared.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from waveglow import WaveGlow


def _weight(layer: torch.nn.Module) -> torch.Tensor:
    return layer.weight.detach()


def _wn(wn: torch.nn.Module, audio: torch.Tensor, spect: torch.Tensor) -> torch.Tensor:
    channels = wn.n_channels
    audio = F.conv1d(audio, _weight(wn.start), wn.start.bias)
    output = torch.zeros_like(audio)
    spect = F.conv1d(spect, _weight(wn.cond_layer), wn.cond_layer.bias)
    for i in range(wn.n_layers):
        layer = wn.in_layers[i]
        dilation = layer.dilation[0] if isinstance(layer.dilation, tuple) else layer.dilation
        kernel = _weight(layer).size(2)
        padding = dilation * (kernel - 1) // 2
        in_act = F.conv1d(audio, _weight(layer), layer.bias, dilation=dilation, padding=padding)
        in_act = in_act + spect[:, i * 2 * channels : (i + 1) * 2 * channels]
        acts = torch.tanh(in_act[:, :channels]) * torch.sigmoid(in_act[:, channels:])
        res_skip = wn.res_skip_layers[i]
        res_skip_acts = F.conv1d(acts, _weight(res_skip), res_skip.bias)
        if i < wn.n_layers - 1:
            audio = audio + res_skip_acts[:, :channels]
            output = output + res_skip_acts[:, channels:]
        else:
            output = output + res_skip_acts
    return F.conv1d(output, _weight(wn.end), wn.end.bias)


@torch.no_grad()
def reference_infer(model: WaveGlow, mel: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Mel (B, M, F) and latent z (B, G, F*hop/G) to audio (B, F*hop), NVIDIA's way."""
    config = model.config
    upsample = model.upsample
    spect = F.conv_transpose1d(mel, _weight(upsample), upsample.bias, stride=upsample.stride)
    cutoff = upsample.kernel_size[0] - upsample.stride[0]
    spect = spect[:, :, :-cutoff] if cutoff > 0 else spect  # (B, M, F*hop)
    batch, bins, length = spect.shape
    group = config.n_group
    spect = spect.unfold(2, group, group).permute(0, 2, 1, 3)  # (B, T_G, M, G)
    spect = spect.contiguous().view(batch, length // group, bins * group)  # (B, T_G, M*G)
    spect = spect.permute(0, 2, 1)  # (B, M*G, T_G)
    early_end = group - config.channels_at(config.n_flows - 1)
    audio = z[:, early_end:]  # (B, C_last, T_G)
    for k in reversed(range(config.n_flows)):
        half = audio.size(1) // 2
        audio_0, audio_1 = audio[:, :half], audio[:, half:]
        output = _wn(model.WN[k], audio_0, spect)
        shift, log_scale = output[:, :half], output[:, half:]
        audio_1 = (audio_1 - shift) / torch.exp(log_scale)
        audio = torch.cat([audio_0, audio_1], 1)  # (B, C_k, T_G)
        weight = _weight(model.convinv[k].conv).squeeze(-1).double()
        inverse = torch.linalg.inv(weight).float().unsqueeze(-1)  # (C_k, C_k, 1)
        audio = F.conv1d(audio, inverse)
        if config.emits_early(k):
            start = early_end - config.n_early_size
            audio = torch.cat([z[:, start:early_end], audio], 1)  # (B, C_k + n_early, T_G)
            early_end = start
    return audio.permute(0, 2, 1).contiguous().view(batch, -1)  # (B, T)
