"""The flow's maths: exact inversion, the log-determinant against autograd, shapes and layouts."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from conftest import TINY, TINY_DATA, make_tiny
from nvidia_layouts import glow_old_infer
from waveglow import Config, WaveGlow, WaveGlowConfig, WNConfig, nll_loss


def _batch(batch: int = 2, frames: int = 6, dtype: torch.dtype = torch.float64, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    mel = torch.randn(batch, TINY.n_mel_channels, frames, generator=generator, dtype=dtype)
    audio = (
        torch.randn(batch, frames * TINY_DATA.hop_length, generator=generator, dtype=dtype) * 0.3
    )
    return mel, audio


def test_float64_round_trip_is_exact():
    model = make_tiny(dtype=torch.float64)
    mel, audio = _batch()
    z, _ = model(mel, audio)
    assert torch.allclose(model.infer(mel, z=z), audio, rtol=0, atol=1e-9)


def test_round_trip_with_weight_norm_folded():
    model = make_tiny(dtype=torch.float64)
    mel, audio = _batch()
    z_before, log_det_before = model(mel, audio)
    model.remove_weight_norm()
    assert not model.has_weight_norm
    z_after, log_det_after = model(mel, audio)
    torch.testing.assert_close(z_after, z_before, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(log_det_after, log_det_before, rtol=1e-12, atol=1e-12)
    assert torch.allclose(model.infer(mel, z=z_after), audio, atol=1e-9)


@pytest.mark.parametrize("swapped", [False, True], ids=["glow", "glow_old-swapped"])
def test_log_det_equals_autograd_jacobian(swapped):
    model = make_swapped() if swapped else make_tiny(dtype=torch.float64)
    mel, audio = _batch(batch=1, frames=3)
    length = audio.size(1)

    def flow(x: torch.Tensor) -> torch.Tensor:
        return model(mel, x.view(1, length))[0].reshape(-1)

    jacobian = torch.autograd.functional.jacobian(flow, audio.reshape(-1))
    expected = torch.linalg.slogdet(jacobian)[1]
    _, log_det = model(mel, audio)
    torch.testing.assert_close(log_det[0], expected, rtol=1e-10, atol=1e-10)
    assert abs(expected.item()) > 1e-3  # the flow really is not volume-preserving here


def test_batch_items_are_independent():
    model = make_tiny(dtype=torch.float64)
    mel, audio = _batch(batch=3)
    z, log_det = model(mel, audio)
    for i in range(3):
        z_i, log_det_i = model(mel[i : i + 1], audio[i : i + 1])
        torch.testing.assert_close(z_i, z[i : i + 1])
        torch.testing.assert_close(log_det_i, log_det[i : i + 1])


@pytest.mark.parametrize(
    "precision, grad",
    [(None, False), ("fp32", False), ("fp32", True)],
    ids=["conv", "gemm", "gemm-autograd"],
)
def test_padded_items_with_valid_steps_equal_their_own_inverse(precision, grad):
    model = make_tiny(dtype=torch.float64)
    mel, _ = _batch(batch=2, frames=9)
    lengths, hop = [4, 9], TINY_DATA.hop_length
    z = torch.randn(2, TINY.n_group, 9 * hop // TINY.n_group, dtype=torch.float64)  # (B, G, T_G)
    with torch.set_grad_enabled(grad):
        groups = model.condition(mel, 9 * hop)  # (B, M*G, T_G)
        valid = model.valid_steps(lengths, 9)
        batched = model.inverse(groups, z, precision, valid)  # (B, G, T_G)
        for item, frames in enumerate(lengths):
            steps = frames * hop // TINY.n_group
            own_groups = model.condition(mel[item : item + 1, :, :frames], frames * hop)
            alone = model.inverse(own_groups, z[item : item + 1, :, :steps], precision)
            torch.testing.assert_close(
                batched[item : item + 1, :, :steps], alone, rtol=1e-12, atol=1e-12
            )
    assert valid.sum(1).tolist() == [4 * hop // TINY.n_group, 9 * hop // TINY.n_group]


def test_infer_length_is_frames_times_hop_and_z_layout_matches_forward():
    model = make_tiny(dtype=torch.float64)
    mel, audio = _batch(frames=7)
    z, _ = model(mel, audio)
    assert z.shape == (2, TINY.n_group, 7 * TINY_DATA.hop_length // TINY.n_group)
    generated = model.infer(mel, sigma=0.6, generator=torch.Generator().manual_seed(0))
    assert generated.shape == (2, 7 * TINY_DATA.hop_length)


def test_forward_groups_sample_t_into_channel_t_mod_g():
    """With identity 1x1 convolutions and silent couplings the flow is only the grouping."""
    model = make_tiny(dtype=torch.float64, active=False)
    with torch.no_grad():
        for conv in model.convinv:
            channels = conv.conv.weight.size(0)
            conv.conv.weight.copy_(torch.eye(channels, dtype=torch.float64).unsqueeze(-1))
    mel, _ = _batch(batch=1, frames=2)
    audio = torch.arange(2 * TINY_DATA.hop_length, dtype=torch.float64).unsqueeze(0)
    z, log_det = model(mel, audio)
    for t in range(audio.size(1)):
        assert z[0, t % TINY.n_group, t // TINY.n_group] == t
    assert log_det.abs().max() < 1e-12


def test_forward_matches_a_step_by_step_reading_of_the_algorithm():
    """Early outputs come first in emission order; the coupling is exp(log_s) * x_b + shift."""
    model = make_tiny(dtype=torch.float64)
    mel, audio = _batch(batch=1)
    group = TINY.n_group
    mel_groups = model.condition(mel, audio.size(1))
    x = audio.view(1, -1, group).transpose(1, 2)  # (B, G, T_G)
    emitted = []
    for k in range(TINY.n_flows):
        if k > 0 and k % TINY.n_early_every == 0:
            emitted.append(x[:, : TINY.n_early_size])
            x = x[:, TINY.n_early_size :]
        weight = model.convinv[k].conv.weight[:, :, 0]
        x = torch.einsum("ij,bjt->bit", weight, x)
        half = x.size(1) // 2
        out = model.WN[k](x[:, :half], mel_groups)
        x = torch.cat([x[:, :half], torch.exp(out[:, half:]) * x[:, half:] + out[:, :half]], 1)
    expected = torch.cat([*emitted, x], 1)
    z, _ = model(mel, audio)
    torch.testing.assert_close(z, expected)


def test_mel_channel_order_is_bin_times_group_plus_position():
    model = make_tiny(dtype=torch.float64)
    mel, _ = _batch(batch=1, frames=3)
    length = 3 * TINY_DATA.hop_length
    upsampled = model.upsample(mel)[:, :, :length]
    grouped = model.condition(mel, length)
    for m in (0, TINY.n_mel_channels - 1):
        for g in range(TINY.n_group):
            torch.testing.assert_close(
                grouped[0, m * TINY.n_group + g], upsampled[0, m, g :: TINY.n_group]
            )


def test_inverse_follows_weight_changes():
    model = make_tiny(dtype=torch.float64)
    mel, audio = _batch()
    model.infer(mel, z=model(mel, audio)[0])  # fills the inverse caches
    with torch.no_grad():
        for conv in model.convinv:
            conv.conv.weight.add_(0.05 * torch.randn_like(conv.conv.weight))
    z, _ = model(mel, audio)
    assert torch.allclose(model.infer(mel, z=z), audio, atol=1e-9)


def test_inverse_follows_load_state_dict():
    source, target = make_tiny(seed=1, dtype=torch.float64), make_tiny(seed=2, dtype=torch.float64)
    mel, audio = _batch()
    target.infer(mel, z=target(mel, audio)[0])
    target.load_state_dict(source.state_dict())
    z, _ = target(mel, audio)
    assert torch.allclose(target.infer(mel, z=z), audio, atol=1e-9)


def test_one_by_one_log_det_matches_slogdet():
    model = make_tiny(dtype=torch.float64)
    conv = model.convinv[0]
    with torch.no_grad():
        conv.conv.weight.add_(0.3 * torch.randn_like(conv.conv.weight))
    x = torch.randn(3, conv.conv.weight.size(0), 11, dtype=torch.float64)
    _, log_det = conv(x)
    expected = torch.linalg.slogdet(conv.conv.weight[:, :, 0])[1] * 11
    torch.testing.assert_close(log_det, expected.expand(3))


def test_initial_one_by_one_is_a_rotation():
    model = make_tiny(dtype=torch.float64)
    for conv in model.convinv:
        weight = conv.conv.weight[:, :, 0]
        eye = torch.eye(weight.size(0), dtype=weight.dtype)
        torch.testing.assert_close(weight @ weight.T, eye, atol=1e-6, rtol=0)
        assert torch.linalg.det(weight) > 0


def test_fresh_model_couplings_are_identity():
    """NVIDIA zero-initialises each WN's `end`: a fresh flow is volume-preserving."""
    model = make_tiny(active=False, dtype=torch.float64)
    mel, audio = _batch()
    _, log_det = model(mel, audio)
    # float32-initialised rotations: |det| = 1 to float32 rounding, summed over T_G steps
    assert log_det.abs().max() < 1e-5


def test_nll_loss_is_nvidia_normalisation():
    model = make_tiny(dtype=torch.float64)
    mel, audio = _batch()
    z, log_det = model(mel, audio)
    sigma = 0.7
    expected = (z.pow(2).sum() / (2 * sigma**2) - log_det.sum()) / (
        z.size(0) * z.size(1) * z.size(2)
    )
    torch.testing.assert_close(nll_loss(z, log_det, sigma), expected)
    with pytest.raises(ValueError, match="sigma"):
        nll_loss(z, log_det, 0.0)


def test_gradients_flow_to_every_parameter():
    model = make_tiny()
    mel, audio = _batch(dtype=torch.float32)
    loss = nll_loss(*model(mel, audio))
    loss.backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None]
    assert not missing


def test_official_sizes_and_names():
    model = WaveGlow()
    names = set(model.state_dict())
    assert "upsample.weight" in names and "convinv.11.conv.weight" in names
    assert "WN.0.cond_layer.weight_g" in names and "WN.0.res_skip_layers.7.weight_v" in names
    assert model.state_dict()["WN.0.cond_layer.weight_v"].shape == (2 * 256 * 8, 80 * 8, 1)
    assert model.state_dict()["WN.0.res_skip_layers.7.weight_v"].shape == (256, 256, 1)
    assert model.state_dict()["WN.4.start.weight_v"].shape == (256, 3, 1)
    assert model.state_dict()["convinv.8.conv.weight"].shape == (4, 4, 1)
    assert model.upsample.weight.shape == (80, 80, 1024) and model.upsample.stride == (256,)
    assert sum(p.numel() for p in model.parameters()) > 80_000_000


def test_bad_inputs_raise_clear_errors():
    model = make_tiny()
    with pytest.raises(ValueError, match="unsqueeze"):
        model.infer(torch.randn(TINY.n_mel_channels, 4))
    with pytest.raises(ValueError, match="shape"):
        model.infer(torch.randn(1, TINY.n_mel_channels + 1, 4))
    with pytest.raises(ValueError, match="z has shape"):
        model.infer(torch.randn(1, TINY.n_mel_channels, 4), z=torch.randn(1, 4, 3))
    with pytest.raises(ValueError, match="multiple of n_group"):
        model(torch.randn(1, TINY.n_mel_channels, 4), torch.randn(1, 63))
    with pytest.raises(ValueError, match="lengths"):
        model.infer(torch.randn(2, TINY.n_mel_channels, 4), lengths=[4, 5])
    with pytest.raises(ValueError, match="2 lengths for a batch of 1"):
        model.infer(torch.randn(1, TINY.n_mel_channels, 4), lengths=[4, 4])
    with pytest.raises(ValueError, match="cover"):
        model(torch.randn(1, TINY.n_mel_channels, 1), torch.randn(1, 512))


def test_noise_follows_the_mel_dtype_and_generator():
    model = make_tiny(dtype=torch.float64)
    mel = torch.randn(1, TINY.n_mel_channels, 4, dtype=torch.float64)
    first = model.infer(mel, generator=torch.Generator().manual_seed(3))
    second = model.infer(mel, generator=torch.Generator().manual_seed(3))
    assert first.dtype == torch.float64 and torch.equal(first, second)
    silent = model.infer(mel, sigma=0.0)
    assert silent.abs().max() < first.abs().max()


def test_odd_channel_configs_are_rejected():
    with pytest.raises(ValueError, match="even"):
        WaveGlowConfig(n_group=6, n_early_every=1, n_early_size=1, n_flows=3)
    config = WaveGlowConfig(n_flows=3, n_group=4, n_early_every=5, WN_config=WNConfig(1, 4))
    assert [config.channels_at(k) for k in range(3)] == [4, 4, 4]


# ---------------------------------------------------------------------------- glow_old couplings
SWAPPED = dataclasses.replace(TINY, swap_odd_couplings=True)


def make_swapped(seed: int = 0, dtype: torch.dtype = torch.float64) -> WaveGlow:
    """A tiny WaveGlow with NVIDIA glow_old.py's couplings, every ``end`` layer randomised."""
    return make_tiny(seed, dtype, config=SWAPPED)


def test_swapped_float64_round_trip_is_exact():
    model = make_swapped()
    mel, audio = _batch()
    z, _ = model(mel, audio)
    assert torch.allclose(model.infer(mel, z=z), audio, rtol=0, atol=1e-9)
    assert torch.allclose(model.infer(mel, z=z, precision=None), audio, rtol=0, atol=1e-9)


def test_swapped_infer_matches_a_step_by_step_reading_of_glow_old():
    model = make_swapped()
    mel, _ = _batch(frames=5)
    steps = 5 * TINY_DATA.hop_length // TINY.n_group
    z = torch.randn(2, TINY.n_group, steps, dtype=torch.float64) * 0.6
    expected = glow_old_infer(model, mel, z)
    torch.testing.assert_close(model.infer(mel, z=z), expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(model.infer(mel, z=z, precision=None), expected)
    # the swap matters: the same weights without it give other audio
    unswapped = WaveGlow(TINY, TINY_DATA).to(torch.float64)
    unswapped.load_state_dict(model.state_dict())
    assert (unswapped.infer(mel, z=z) - expected).abs().max() > 1e-3


def test_glow_old_reading_equals_infer_when_there_is_no_odd_flow():
    """The reading itself: a one-flow model has no odd flow, so swapped or not, all agree."""
    config = dataclasses.replace(TINY, n_flows=1)
    for swap in (False, True):
        torch.manual_seed(0)
        model = WaveGlow(dataclasses.replace(config, swap_odd_couplings=swap), TINY_DATA).double()
        with torch.no_grad():
            model.WN[0].end.weight.normal_(0, 0.1)
        mel, _ = _batch(frames=2)
        z = torch.randn(2, TINY.n_group, 2 * TINY_DATA.hop_length // TINY.n_group).double()
        torch.testing.assert_close(model.infer(mel, z=z), glow_old_infer(model, mel, z))


def test_swap_odd_couplings_round_trips_through_the_config_dict():
    config = Config(waveglow_config=SWAPPED, data_config=TINY_DATA)
    data = config.to_dict()
    assert data["waveglow_config"]["swap_odd_couplings"] is True
    assert Config.from_dict(data) == config
    # NVIDIA's config.json never has it, and ours only writes it when set
    unswapped = Config(waveglow_config=TINY, data_config=TINY_DATA)
    assert "swap_odd_couplings" not in unswapped.to_dict()["waveglow_config"]
    assert Config.from_dict(unswapped.to_dict()) == unswapped
    with pytest.raises(ValueError, match="swap_odd_couplings"):
        dataclasses.replace(TINY, swap_odd_couplings="yes")


@pytest.mark.parametrize(
    "config",
    [
        TINY,
        dataclasses.replace(TINY, n_early_size=0),
        dataclasses.replace(TINY, n_flows=6, n_group=8, n_early_every=3, n_early_size=2),
        dataclasses.replace(TINY, WN_config=WNConfig(n_layers=1, n_channels=6, kernel_size=5)),
    ],
    ids=["tiny", "no-early", "early-every-3", "one-layer"],
)
@pytest.mark.parametrize("weight_norm", [True, False], ids=["weight-norm", "folded"])
def test_parameter_count_from_the_config_matches_the_built_model(config, weight_norm):
    model = WaveGlow(config, TINY_DATA)
    if not weight_norm:
        model.remove_weight_norm()
    built = sum(parameter.numel() for parameter in model.parameters())
    assert WaveGlow.parameter_count(config, TINY_DATA, weight_norm) == built


def test_parameter_count_stops_early_past_its_limit():
    huge = dataclasses.replace(TINY, n_flows=10**9, n_early_size=0)  # every flow: hours
    count = WaveGlow.parameter_count(huge, TINY_DATA, limit=1000)
    assert 1000 < count < WaveGlow.parameter_count(TINY, TINY_DATA) * 2


def test_a_config_of_many_flows_validates_without_visiting_each():
    config = dataclasses.replace(TINY, n_flows=10**12, n_early_size=0)
    assert config.channels_at(10**12 - 1) == TINY.n_group
    with pytest.raises(ValueError, match="would see"):
        dataclasses.replace(TINY, n_flows=10**12)  # early outputs exhaust the channels


@pytest.mark.parametrize(
    "convert",
    [
        lambda mel: mel.double(),
        lambda mel: mel.round().int(),
        lambda mel: mel.numpy(),
        lambda mel: mel.tolist(),
    ],
    ids=["float64", "int", "numpy", "nested-list"],
)
def test_infer_converts_what_can_be_converted(convert):
    model = make_tiny()
    mel = torch.randn(1, TINY.n_mel_channels, 4).round()
    z = torch.randn(1, TINY.n_group, 4 * TINY_DATA.hop_length // TINY.n_group).round()
    expected = model.infer(mel, z=z)
    audio = model.infer(convert(mel), z=convert(z))
    assert audio.dtype == torch.float32
    torch.testing.assert_close(audio, expected)


@pytest.mark.parametrize(
    ("mel", "z", "sigma", "message"),
    [
        ("mel.pt", None, 0.6, r"mel must be a tensor.*got str \(to read a mel file"),
        ([["a", "b"]], None, 0.6, "mel must hold real numbers"),
        ({"mel": 1}, None, 0.6, "mel must be a tensor.*got dict"),
        (math.nan, None, 0.6, "mel contains NaN or infinite values"),
        (math.inf, None, 0.6, "mel contains NaN or infinite values"),
        (None, math.nan, 0.6, "z contains NaN or infinite values"),
        (None, None, math.nan, "sigma must be a finite number"),
        (None, None, "loud", "sigma must be a number"),
    ],
)
def test_infer_refuses_garbage_in_our_words(mel, z, sigma, message):
    model = make_tiny()
    good = torch.zeros(1, TINY.n_mel_channels, 3)
    if isinstance(mel, float):  # one bad value in a good mel
        mel, good[0, 0, 1] = good, mel
    if isinstance(z, float):
        z = torch.full((1, TINY.n_group, 3 * TINY_DATA.hop_length // TINY.n_group), z)
    with pytest.raises(ValueError, match=message):
        model.infer(good if mel is None else mel, sigma=sigma, z=z)


def test_a_model_knows_its_mel():
    """The model's mel is the Tacotron 2 mel of its own data_config and n_mel_channels."""
    from waveglow.audio import MelSpectrogram, mel_transform

    config = dataclasses.replace(TINY_DATA, mel_fmax=5000.0)
    model = WaveGlow(TINY, config)
    audio = torch.randn(2000, generator=torch.Generator().manual_seed(0)) * 0.1
    mel = model.mel_transform()(audio)
    assert mel.shape == (TINY.n_mel_channels, 1 + 2000 // config.hop_length)
    expected = MelSpectrogram(config, TINY.n_mel_channels)(audio)
    torch.testing.assert_close(mel, expected, rtol=0, atol=0)
    torch.testing.assert_close(mel_transform(model.full_config())(audio), mel, rtol=0, atol=0)
    assert (mel - MelSpectrogram(TINY_DATA, TINY.n_mel_channels)(audio)).abs().max() > 0.1
