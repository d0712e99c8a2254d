"""Chunked synthesis: any length in bounded memory, equal to whole-utterance synthesis."""

from __future__ import annotations

import pytest
import soundfile
import torch

from conftest import TINY, TINY_DATA, make_tiny
from waveglow.audio import MAX_WAV_VALUE
from waveglow.chunked import synthesize_to_wav
from waveglow.model import context_frames, receptive_field_steps
from waveglow.noise import NOISE_BLOCK_FRAMES, block_noise


def _mel(frames: int, batch: int = 1, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, TINY.n_mel_channels, frames, generator=generator)


def test_receptive_field_from_the_config():
    # TINY: 4 flows of a WN with 2 layers of k=3 and dilations 1, 2 -> 4 * 3 steps
    assert receptive_field_steps(TINY) == 12
    # 12 steps * 4 samples per step over a hop of 16 -> 3 frames
    assert context_frames(TINY, TINY_DATA) == 3


def test_context_is_needed():
    """Without the context the chunk edges differ: the receptive field is not overestimated
    into meaninglessness (this test fails if the flow does not look across chunks at all)."""
    model = make_tiny().remove_weight_norm()
    mel = _mel(12)
    z = torch.randn(1, TINY.n_group, 12 * TINY_DATA.hop_length // TINY.n_group)
    whole = model.infer(mel, z=z)
    cut = model.infer(mel[:, :, :6], z=z[:, :, : 6 * TINY_DATA.hop_length // TINY.n_group])
    assert not torch.allclose(cut, whole[:, : cut.size(1)], atol=1e-4)


@pytest.mark.parametrize("precision", [None, "fp32"])
@pytest.mark.parametrize("chunk_frames", [1, 2, 5, 7, 13, 40])
def test_chunks_join_into_the_whole_utterance(chunk_frames: int, precision):
    model = make_tiny().remove_weight_norm()
    frames = 23  # chunk boundaries at odd places, shorter and longer than the context
    mel = _mel(frames, batch=2)
    z = torch.randn(2, TINY.n_group, frames * TINY_DATA.hop_length // TINY.n_group) * 0.6
    whole = model.infer(mel, z=z, precision=precision)
    chunks = list(model.infer_chunks(mel, chunk_frames, z=z, precision=precision))
    assert [c.size(1) for c in chunks[:-1]] == [chunk_frames * TINY_DATA.hop_length] * (
        len(chunks) - 1
    )
    torch.testing.assert_close(torch.cat(chunks, dim=1), whole, rtol=1e-5, atol=1e-6)


def test_chunks_are_exact_in_float64():
    model = make_tiny(dtype=torch.float64).remove_weight_norm()
    mel = _mel(17).double()
    z = torch.randn(1, TINY.n_group, 17 * TINY_DATA.hop_length // TINY.n_group).double()
    whole = model.infer(mel, z=z)
    joined = torch.cat(list(model.infer_chunks(mel, 4, z=z)), dim=1)
    torch.testing.assert_close(joined, whole, rtol=0, atol=1e-12)


def test_block_noise_is_the_same_for_any_range():
    whole = block_noise(7, (2, 4), 0, 3 * NOISE_BLOCK_FRAMES + 5, 16)
    part = block_noise(7, (2, 4), NOISE_BLOCK_FRAMES - 3, NOISE_BLOCK_FRAMES + 9, 16)
    torch.testing.assert_close(part, whole[:, :, (NOISE_BLOCK_FRAMES - 3) * 4 :][:, :, : 12 * 4])
    assert not torch.equal(block_noise(8, (2, 4), 0, 5, 16), whole[:, :, : 5 * 4])


def test_drawn_noise_does_not_depend_on_the_chunk_size():
    model = make_tiny().remove_weight_norm()
    frames = 2 * NOISE_BLOCK_FRAMES + 3
    mel = _mel(frames)
    outputs = [
        torch.cat(
            list(model.infer_chunks(mel, size, generator=torch.Generator().manual_seed(1))), 1
        )
        for size in (7, 30, frames)
    ]
    torch.testing.assert_close(outputs[0], outputs[1])
    torch.testing.assert_close(outputs[0], outputs[2])
    seed_generator = torch.Generator().manual_seed(1)
    seed = int(torch.randint(0, 2**62, (1,), generator=seed_generator).item())
    z = block_noise(seed, (1, TINY.n_group), 0, frames, TINY_DATA.hop_length, sigma=0.6)
    torch.testing.assert_close(outputs[0], model.infer(mel, z=z), rtol=1e-5, atol=1e-6)


def test_synthesize_to_wav_writes_the_chunks(tmp_path):
    model = make_tiny().remove_weight_norm()
    mel = _mel(19)
    z = torch.randn(1, TINY.n_group, 19 * TINY_DATA.hop_length // TINY.n_group) * 0.6
    path = tmp_path / "out.wav"
    written = synthesize_to_wav(model, mel[0], path, chunk_frames=4, z=z)
    data, rate = soundfile.read(str(path), dtype="int16")
    assert rate == TINY_DATA.sampling_rate and written == data.size == 19 * TINY_DATA.hop_length
    expected = (model.infer(mel, z=z)[0].clamp(-1, 1) * MAX_WAV_VALUE).round()
    assert (torch.from_numpy(data).double() - expected.double()).abs().max() <= 1
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"]  # no temporary left


def test_synthesize_to_wav_keeps_the_old_file_on_error(tmp_path):
    model = make_tiny()
    path = tmp_path / "out.wav"
    path.write_bytes(b"old")
    with pytest.raises(ValueError, match="z has shape"):
        synthesize_to_wav(model, _mel(5)[0], path, z=torch.zeros(1, 4, 3))
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"]


def test_one_frame_less_context_is_not_exact(monkeypatch):
    """The computed context is tight: with one frame less the chunk edges show (in float64 the
    error is ~1e-11 on the tiny model, far above rounding; with the full context it is ~1e-15)."""
    import waveglow.model as model_module

    model = make_tiny(dtype=torch.float64).remove_weight_norm()
    mel = _mel(20).double()
    z = torch.randn(1, TINY.n_group, 20 * TINY_DATA.hop_length // TINY.n_group).double()
    whole = model.infer(mel, z=z)
    monkeypatch.setattr(
        model_module, "context_frames", lambda *_: context_frames(TINY, TINY_DATA) - 1
    )
    joined = torch.cat(list(model.infer_chunks(mel, 5, z=z)), dim=1)
    assert (joined - whole).abs().max() > 1e-13
