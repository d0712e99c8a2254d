"""What a WaveGlow configuration reaches and costs, from the config alone: the receptive field of
the inverse flow and of the post-filter, the context a chunk needs for exact chunked synthesis,
and the multiply-adds of one output sample."""

from __future__ import annotations

import math

from .config import DataConfig, WaveGlowConfig, WNConfig


def receptive_field_steps(config: WaveGlowConfig) -> int:
    """How many T_G steps to each side one output step of the inverse flow depends on."""
    wn = config.WN_config
    per_wn = sum((wn.kernel_size - 1) // 2 * wn.dilation_base**i for i in range(wn.n_layers))
    return config.n_flows * per_wn


def postfilter_reach(config: WaveGlowConfig) -> int:
    """How many samples to each side one output sample of the post-filter reads (0 without)."""
    wn = config.postfilter_config
    if wn is None:
        return 0
    return sum((wn.kernel_size - 1) // 2 * wn.dilation_base**i for i in range(wn.n_layers))


def context_frames(config: WaveGlowConfig, data_config: DataConfig) -> int:
    """Mel frames of context needed on each side of a chunk for exact chunked synthesis: the
    inverse flow's receptive field, widened by the post-filter's reach."""
    samples = receptive_field_steps(config) * config.n_group + postfilter_reach(config)
    return math.ceil(samples / data_config.hop_length)


def multiply_adds_per_sample(config: WaveGlowConfig, data_config: DataConfig) -> float:
    """Multiply-adds of one synthesis (or one forward pass) per output sample: the upsampler,
    every 1x1 convolution, every WN's convolutions and the post-filter's, in synthesis (the
    elementwise gate, coupling and the frame-rate interpolation are not counted)."""
    per_step = 0
    for k in range(config.n_flows):
        audio_channels = config.channels_at(k)
        per_step += audio_channels**2  # convinv
        per_step += _wn_multiply_adds(
            audio_channels // 2, config.conditioning_channels, config.WN_config
        )
    mel_bins = config.n_mel_channels
    upsampler = (
        mel_bins * mel_bins * data_config.filter_length / data_config.hop_length
        if config.has_upsampler
        else 0.0
    )
    postfilter = (
        0
        if config.postfilter_config is None
        else _wn_multiply_adds(1, mel_bins, config.postfilter_config)
    )
    return per_step / config.n_group + upsampler + postfilter


def _wn_multiply_adds(n_in: int, conditioning: int, wn: WNConfig) -> int:
    """Multiply-adds of one step of a WN with ``n_in`` input and ``conditioning`` mel channels."""
    channels, layers = wn.n_channels, wn.n_layers
    total = n_in * channels + channels * 2 * n_in  # start, end
    total += conditioning * 2 * channels * layers  # cond_layer
    if wn.depthwise_separable:  # in_layers: depthwise taps, then pointwise C -> 2C
        total += layers * (wn.kernel_size * channels + channels * 2 * channels)
    else:
        total += layers * wn.kernel_size * channels * 2 * channels  # in_layers
    return total + (layers - 1) * channels * 2 * channels + channels * channels  # res_skip
