"""Incremental streaming (waveglow.streaming): any split of an utterance's frames gives exactly
whole-utterance synthesis, in memory bounded by the context."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import pytest
import soundfile
import torch

from conftest import TINY, TINY_DATA, make_tiny, random_mel
from waveglow import Stream, WNConfig
from waveglow.model import context_frames
from waveglow.noise import block_noise
from waveglow.streaming import right_context

FRAME16 = dataclasses.replace(TINY, mel_upsampling="linear", n_group=8)
POSTFILTER = dataclasses.replace(
    TINY,
    mel_upsampling="linear",
    postfilter_config=WNConfig(n_layers=3, n_channels=4, kernel_size=3, dilation_base=3),
)
LAYOUTS = {"nvidia-upsampler": TINY, "frame-rate": FRAME16, "postfilter": POSTFILTER}


def _whole(model, mel: torch.Tensor, seed: int, sigma: float = 0.6) -> torch.Tensor:
    """``infer`` of the whole mel (M, F) with the stream's noise: (T,)."""
    frames = mel.size(1)
    z = block_noise(seed, (1, model.n_group), 0, frames, model.hop_length, sigma)
    return model.infer(mel.unsqueeze(0), z=z)[0]


def _streamed(model, mel: torch.Tensor, cuts: list[int], seed: int, **options) -> torch.Tensor:
    stream = Stream(model, sigma=0.6, seed=seed, **options)
    parts, previous = [], 0
    for cut in [*cuts, mel.size(1)]:
        parts.append(stream.push(mel[:, previous:cut]))
        previous = cut
    parts.append(stream.finish())
    return torch.cat(parts)


def _random_cuts(frames: int, rng: random.Random) -> list[int]:
    """Sorted cut points, repeats (empty pushes) and neighbours (one-frame pushes) included."""
    cuts = sorted(rng.randint(0, frames) for _ in range(rng.randint(0, 12)))
    if cuts and rng.random() < 0.5:
        cuts.append(cuts[-1])  # an empty push
    return sorted(cuts)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_any_split_is_whole_utterance_synthesis_bit_for_bit(layout: str):
    model = make_tiny(config=LAYOUTS[layout]).remove_weight_norm()
    rng = random.Random(layout)
    for trial in range(12):
        frames = rng.randint(1, 45)
        mel = random_mel(frames, seed=trial)
        whole = _whole(model, mel, seed=trial)
        cuts = _random_cuts(frames, rng)
        streamed = _streamed(model, mel, cuts, seed=trial)
        assert streamed.shape == whole.shape, (layout, frames, cuts)
        assert torch.equal(streamed, whole), (layout, frames, cuts)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_one_frame_pushes_and_empty_pushes(layout: str):
    model = make_tiny(config=LAYOUTS[layout]).remove_weight_norm()
    mel = random_mel(29, seed=3)
    stream = Stream(model, sigma=0.6, seed=11)
    parts = [stream.push(mel[:, :0])]
    hop, first_audio = model.hop_length, None
    for frame in range(mel.size(1)):
        audio = stream.push(mel[:, frame : frame + 1])
        assert audio.numel() % hop == 0
        if audio.numel() and first_audio is None:
            first_audio = frame + 1
        parts += [audio, stream.push(mel[:, :0])]
    parts.append(stream.finish())
    # the first audio comes as soon as R frames follow the first frame, not at the end
    assert first_audio == stream.exact_lookahead + 1
    assert torch.equal(torch.cat(parts), _whole(model, mel, seed=11))


def test_min_frames_batches_the_synthesis_and_stays_exact():
    model = make_tiny(config=FRAME16).remove_weight_norm()
    mel = random_mel(40, seed=4)
    stream = Stream(model, sigma=0.6, seed=5, min_frames=6)
    parts = [stream.push(mel[:, f : f + 1]) for f in range(40)]
    sizes = {part.numel() // model.hop_length for part in parts}
    assert sizes == {0, 6}
    parts.append(stream.finish())
    assert torch.equal(torch.cat(parts), _whole(model, mel, seed=5))


def test_right_context_is_the_flow_context_and_the_conditioning_reach():
    for config in (TINY, FRAME16, POSTFILTER):
        model = make_tiny(config=config)
        context = context_frames(model.config, model.data_config)
        assert right_context(model) == context + model.conditioning_reach[1]
    assert right_context(make_tiny(config=TINY)) == 3  # upsampler: no reach after
    assert right_context(make_tiny(config=FRAME16)) == context_frames(FRAME16, TINY_DATA) + 1


def test_the_right_context_is_needed():
    """Less lookahead changes the audio: R is not overestimated by more than the one frame of
    rounding a frame count up (the mel reaches a little less far than the noise)."""
    model = make_tiny(config=FRAME16).remove_weight_norm()
    mel = random_mel(30, seed=6)
    cuts = list(range(1, 30))
    exact = _streamed(model, mel, cuts, 2)
    for lookahead in (0, right_context(model) - 2):
        short = _streamed(model, mel, cuts, 2, lookahead=lookahead)
        assert exact.shape == short.shape
        assert not torch.equal(exact, short), lookahead
        assert float((exact - short).norm() / exact.norm()) < 1, lookahead


def test_memory_is_bounded_by_the_context_not_the_length():
    model = make_tiny(config=FRAME16).remove_weight_norm()
    stream = Stream(model, sigma=0.6, seed=1)
    bound = right_context(model) + context_frames(FRAME16, TINY_DATA) + 4
    samples = 0
    for step in range(400):  # 400 pushes of 3 frames: far longer than any window
        samples += stream.push(random_mel(3, seed=step)).numel()
        assert stream.plan.kept_frames <= bound
    samples += stream.finish().numel()
    assert samples == 1200 * model.hop_length


def test_bad_input_is_refused_with_the_fix():
    model = make_tiny()
    stream = Stream(model, seed=0)
    with pytest.raises(ValueError, match=r"transpose frame-major"):
        stream.push(torch.zeros(5, TINY.n_mel_channels))
    with pytest.raises(ValueError, match="NaN"):
        stream.push(torch.full((TINY.n_mel_channels, 2), float("nan")))
    with pytest.raises(ValueError, match="lookahead must lie in 0..3"):
        Stream(model, lookahead=4)
    assert stream.finish().numel() == 0
    with pytest.raises(RuntimeError, match="start a new one"):
        stream.push(torch.zeros(TINY.n_mel_channels, 1))


def test_drawn_seed_is_reported():
    model = make_tiny()
    first, second = Stream(model), Stream(model)
    assert isinstance(first.seed, int) and first.seed != second.seed


def test_the_pipe_writes_the_whole_utterance_pcm(checkpoint, tmp_path):
    """``waveglow stream`` as a real process: frame-major float32 in, s16le out, one stderr line."""
    import os
    import subprocess
    import sys

    import numpy as np

    from waveglow import load
    from waveglow.chunked import _pcm16

    model = load(checkpoint)
    mel = random_mel(37, seed=8)
    source = np.ascontiguousarray(mel.numpy().T, dtype="<f4").tobytes()  # (F, M)
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).parents[1] / "src"),
        "OMP_NUM_THREADS": "1",
    }
    command = [sys.executable, "-m", "waveglow", "stream", "-c", str(checkpoint), "--seed", "4"]
    done = subprocess.run(command, input=source, capture_output=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "seed 4" in done.stderr.decode() and "lookahead 3 frames" in done.stderr.decode()
    expected = _pcm16(_whole(model, mel, seed=4)).astype("<i2").tobytes()
    pcm = np.frombuffer(done.stdout, dtype="<i2")
    assert pcm.size == 37 * TINY_DATA.hop_length
    assert np.abs(pcm.astype(int) - np.frombuffer(expected, dtype="<i2")).max() <= 1
    cut = subprocess.run(command, input=source[:-2], capture_output=True, env=env, timeout=120)
    assert cut.returncode == 1 and b"inside a frame" in cut.stderr
    np.save(tmp_path / "mel.npy", mel.numpy())  # the same mel through `waveglow synthesize`
    synthesize = [sys.executable, "-m", "waveglow", "synthesize", "-c", str(checkpoint)]
    synthesize += [str(tmp_path / "mel.npy"), "-o", str(tmp_path / "out"), "--seed", "4"]
    done = subprocess.run(synthesize, capture_output=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    (written,) = (tmp_path / "out").glob("*.wav")
    synthesized = soundfile.read(written, dtype="int16")[0]
    assert np.abs(pcm.astype(int) - synthesized.astype(int)).max() <= 1


def test_info_prints_r(checkpoint, capsys):
    from waveglow.cli.program import main
    from waveglow.streaming import right_context_frames

    assert main(["info", str(checkpoint)]) == 0
    assert "R = 3 frames" in capsys.readouterr().out
    for config in (TINY, FRAME16, POSTFILTER):
        model = make_tiny(config=config)
        assert right_context_frames(model.full_config()) == right_context(model)
