"""synthesize_files / infer_batch / compute_mels: the library behind the CLI."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from conftest import TINY_DATA, make_tiny, random_mel
from waveglow import Denoiser, MelSpectrogram, load_audio
from waveglow.noise import block_noise
from waveglow.synthesize import (
    OUTPUT_SUFFIX,
    SILENCE,
    compute_mels,
    infer_batch,
    item_noise,
    synthesize_files,
)

HOP = TINY_DATA.hop_length
LSB = 1 / 32768


def read_wav(path: Path) -> torch.Tensor:
    pcm, rate = soundfile.read(path, dtype="int16")
    assert rate == TINY_DATA.sampling_rate
    return torch.from_numpy(pcm.astype(np.float64) / 32768)


def expected_audio(model, mel: torch.Tensor, sigma: float, seed: int, index: int) -> torch.Tensor:
    """What the documented noise contract gives: the position-tied noise of ``seed + index``
    (the service's and the stream's for that seed)."""
    z = block_noise(seed + index, (1, model.n_group), 0, mel.size(1), HOP, sigma)
    with torch.no_grad():
        return model.infer(mel[None], z=z)[0].double()


def test_files_are_the_models_inference_with_per_file_noise(tmp_path):
    model = make_tiny()
    mels = [random_mel(20, 0), random_mel(13, 1)]
    torch.save(mels[0], tmp_path / "a.pt")
    np.save(tmp_path / "b.npy", mels[1].numpy())
    inputs = [tmp_path / "a.pt", tmp_path / "b.npy"]
    report = synthesize_files(model, inputs, tmp_path / "out", seed=5, progress=False)
    assert [r.output.name for r in report.results] == ["a" + OUTPUT_SUFFIX, "b" + OUTPUT_SUFFIX]
    for index, (mel, result) in enumerate(zip(mels, report.results, strict=True)):
        written = read_wav(result.output)
        expected = expected_audio(model, mel, 0.6, 5, index).clamp(-1, 1)
        assert written.shape == (mel.size(1) * HOP,)
        torch.testing.assert_close(written, expected, atol=LSB + 1e-6, rtol=0)
    assert report.samples == 33 * HOP and not report.failures
    assert report.audio_seconds == pytest.approx(33 * HOP / 22050)
    assert report.khz == pytest.approx(report.samples / report.wall_seconds / 1000)
    assert "2 of 2 file(s)" in report.summary() and "kHz" in report.summary()


@pytest.mark.parametrize("precision", ["fp32", None])
def test_batched_items_equal_their_own_synthesis(precision):
    model = make_tiny()
    mels = [random_mel(30, 2), random_mel(17, 3), random_mel(24, 4)]
    noises = [item_noise(model, mel.size(1), 0.6, 7, index) for index, mel in enumerate(mels)]
    batched = infer_batch(model, mels, noises, precision)
    for mel, noise, audio in zip(mels, noises, batched, strict=True):
        alone = infer_batch(model, [mel], [noise], precision)[0]
        assert audio.shape == alone.shape == (mel.size(1) * HOP,)
        torch.testing.assert_close(audio, alone, atol=1e-5, rtol=1e-5)


def test_without_lengths_padding_leaks_into_the_tail():
    """The masking is what makes batching exact: unmasked, a padded item's tail changes."""
    model = make_tiny()
    short, long = random_mel(17, 3), random_mel(30, 2)
    noise = item_noise(model, 17, 0.6, 7)
    alone = model.infer(short.unsqueeze(0), z=noise.unsqueeze(0))[0]
    padded = torch.full((2, short.size(0), 30), SILENCE)  # (B, M, F)
    padded[0, :, :17], padded[1] = short, long
    z = torch.zeros(2, *item_noise(model, 30, 0.6, 8).shape)  # (B, G, T_G)
    z[0, :, : noise.size(1)] = noise
    masked = model.infer(padded, z=z, lengths=[17, 30])[0, : 17 * HOP]
    unmasked = model.infer(padded, z=z)[0, : 17 * HOP]
    torch.testing.assert_close(masked, alone, atol=1e-5, rtol=1e-5)
    assert (unmasked - alone).abs().max() > 1e-3
    torch.testing.assert_close(unmasked[: 8 * HOP], alone[: 8 * HOP], atol=1e-5, rtol=1e-5)


def test_noise_depends_on_seed_and_index_only():
    model = make_tiny()
    first = item_noise(model, 10, 0.6, seed=1, index=2)
    torch.testing.assert_close(first, item_noise(model, 10, 0.6, seed=1, index=2), rtol=0, atol=0)
    assert not torch.equal(first, item_noise(model, 10, 0.6, seed=1, index=3))
    assert first.shape == (4, 10 * HOP // 4)
    assert first.std().item() == pytest.approx(0.6, rel=0.2)


def test_loud_output_is_clipped_not_wrapped(tmp_path):
    model = make_tiny()
    mel = random_mel(40, 5)
    torch.save(mel, tmp_path / "loud.pt")
    report = synthesize_files(
        model, [tmp_path / "loud.pt"], tmp_path, sigma=20, seed=0, progress=False
    )
    written = read_wav(report.results[0].output)
    expected = expected_audio(model, mel, 20.0, 0, 0)
    assert (expected > 1).sum() > 50 and (expected < -1).sum() > 50
    assert (written[expected > 1] == 32767 / 32768).all()
    assert (written[expected < -1] == -1).all()


def test_denoise_applies_the_denoiser(tmp_path):
    model = make_tiny()
    mel = random_mel(25, 6)
    torch.save(mel, tmp_path / "d.pt")
    report = synthesize_files(
        model, [tmp_path / "d.pt"], tmp_path / "o", seed=3, denoise=0.5, progress=False
    )
    audio = expected_audio(model, mel, 0.6, 3, 0).float()
    expected = Denoiser(model)(audio, strength=0.5).double().clamp(-1, 1)
    written = read_wav(report.results[0].output)
    torch.testing.assert_close(written, expected, atol=LSB + 1e-5, rtol=0)
    assert (written - audio.double().clamp(-1, 1)).abs().max() > 10 * LSB  # it really denoised


def test_bad_inputs_are_reported_and_skipped(tmp_path):
    model = make_tiny()
    torch.save(random_mel(12, 7), tmp_path / "good.pt")
    (tmp_path / "empty.npy").write_bytes(b"")
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF1234WAVEfmt nonsense" * 4)
    torch.save(random_mel(12, 8, bins=80), tmp_path / "channels.pt")
    np.save(tmp_path / "nan.npy", np.full((8, 5), np.nan, dtype=np.float32))
    names = ["missing.pt", "empty.npy", "good.pt", "corrupt.wav", "channels.pt", "nan.npy"]
    errors: list[str] = []
    report = synthesize_files(
        model,
        [tmp_path / name for name in names],
        tmp_path / "out",
        batch_size=2,
        progress=False,
        on_error=errors.append,
    )
    assert [r.source.name for r in report.results] == names
    assert [r.ok for r in report.results] == [False, False, True, False, False, False]
    assert len(errors) == 5
    for name, error in zip([n for n in names if n != "good.pt"], errors, strict=True):
        assert str(tmp_path / name) in error and "\n" not in error
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good" + OUTPUT_SUFFIX]


def test_outputs_never_overwrite_inputs_or_each_other(tmp_path):
    model = make_tiny()
    (tmp_path / "a").mkdir()
    torch.save(random_mel(10, 9), tmp_path / "a" / "x.pt")
    np.save(tmp_path / "x.npy", random_mel(10, 10).numpy())
    torch.save(random_mel(10, 11), tmp_path / "y.pt")
    victim = tmp_path / ("y" + OUTPUT_SUFFIX)
    soundfile.write(victim, np.zeros(100), 22050, subtype="PCM_16")
    before = victim.read_bytes()
    inputs = [tmp_path / "a" / "x.pt", tmp_path / "x.npy", tmp_path / "y.pt", victim]
    report = synthesize_files(model, inputs, tmp_path, progress=False)
    assert [r.ok for r in report.results] == [True, False, False, True]
    assert "would overwrite" in report.results[1].error
    assert "would overwrite an input" in report.results[2].error
    assert victim.read_bytes() == before


def test_copy_synthesis_of_audio_file(tmp_path):
    model = make_tiny()
    rate_in = 16000
    t = np.arange(4000) / rate_in
    stereo = 0.3 * np.stack([np.sin(2 * np.pi * 300 * t), np.sin(2 * np.pi * 500 * t)], axis=1)
    soundfile.write(tmp_path / "speech.flac", stereo, rate_in)
    report = synthesize_files(model, [tmp_path / "speech.flac"], tmp_path, seed=0, progress=False)
    audio, _ = load_audio(tmp_path / "speech.flac", 22050)
    mel = MelSpectrogram(TINY_DATA, 8)(torch.from_numpy(audio))
    expected = expected_audio(model, mel, 0.6, 0, 0).clamp(-1, 1)
    torch.testing.assert_close(
        read_wav(report.results[0].output), expected, atol=LSB + 1e-6, rtol=0
    )


@pytest.mark.parametrize("fmt", ["pt", "npy"])
def test_compute_mels(tmp_path, fmt):
    audio = 0.2 * np.sin(np.arange(5000) * 0.05)
    soundfile.write(tmp_path / "v.wav", audio, 22050, subtype="PCM_16")
    (tmp_path / "bad.wav").write_bytes(b"\x00" * 100)
    errors: list[str] = []
    report = compute_mels(
        [tmp_path / "v.wav", tmp_path / "bad.wav"],
        tmp_path / "mels",
        format=fmt,
        progress=False,
        on_error=errors.append,
    )
    assert [r.ok for r in report.results] == [True, False] and len(errors) == 1
    assert str(tmp_path / "bad.wav") in errors[0]
    path = tmp_path / "mels" / f"v.{fmt}"
    saved = torch.load(path, weights_only=True) if fmt == "pt" else torch.from_numpy(np.load(path))
    expected = MelSpectrogram()(torch.from_numpy(load_audio(tmp_path / "v.wav")[0]))
    assert saved.dtype == torch.float32 and saved.shape == (80, 1 + 5000 // 256)
    torch.testing.assert_close(saved, expected, rtol=0, atol=0)
    assert sorted(p.name for p in (tmp_path / "mels").iterdir()) == [f"v.{fmt}"]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_synthesis_and_denoising_match_cpu(tmp_path):
    model = make_tiny()
    mel = random_mel(30, 12)
    torch.save(mel, tmp_path / "g.pt")
    outputs = {}
    for device in ("cpu", "cuda"):
        report = synthesize_files(
            make_tiny(),
            [tmp_path / "g.pt"],
            tmp_path / device,
            seed=2,
            denoise=0.1,
            device=device,
            progress=False,
        )
        outputs[device] = read_wav(report.results[0].output)
    # same noise on both devices (drawn on the CPU); TF32 convolutions allow small differences
    torch.testing.assert_close(outputs["cuda"], outputs["cpu"], atol=2e-3, rtol=0)
    denoiser = Denoiser(model.cuda())
    assert denoiser.bias_spectrum.is_cuda


def test_progress_is_in_seconds_of_audio_and_a_long_file_moves_it_chunk_by_chunk(
    tmp_path, monkeypatch
):
    from waveglow import synthesize as module

    updates: list[float] = []

    class Recorder:
        def __init__(self, **kwargs):
            self.total, self.unit = kwargs["total"], kwargs["unit"]

        def __enter__(self):
            return self

        def __exit__(self, *_):
            return None

        def update(self, amount):
            updates.append(amount)

        def set_postfix_str(self, *_args, **_kwargs):
            pass

    monkeypatch.setattr(module, "tqdm", Recorder)
    torch.save(random_mel(40, 0), tmp_path / "long.pt")
    torch.save(random_mel(5, 1), tmp_path / "short.pt")
    model = make_tiny()
    inputs = [tmp_path / "long.pt", tmp_path / "short.pt"]
    synthesize_files(model, inputs, tmp_path / "out", seed=0, chunk_frames=8, progress=True)
    seconds_per_frame = TINY_DATA.hop_length / TINY_DATA.sampling_rate
    assert len(updates) == 5 + 1  # 40 frames in chunks of 8, then the short file
    assert sum(updates[:5]) == pytest.approx(40 * seconds_per_frame)
    assert updates[5] == pytest.approx(5 * seconds_per_frame)


@pytest.mark.parametrize("job", ["synthesize", "mel"])
def test_a_run_removes_what_a_killed_run_left_in_its_folder(tmp_path, job):
    """kill -9 leaves a writer's temporary behind; the next run into that folder removes it,
    whatever the names it writes (a live writer's temporary stays)."""
    import subprocess

    finished = subprocess.Popen(["true"])
    finished.wait()
    out = tmp_path / "out"
    out.mkdir()
    dead = out / f".long{OUTPUT_SUFFIX}.{finished.pid}.0123abcd.tmp"
    alive = out / f".other{OUTPUT_SUFFIX}.{os.getppid()}.0123abcd.tmp"
    for path in (dead, alive):
        path.write_bytes(b"partial")
    if job == "synthesize":
        torch.save(random_mel(6, 0), tmp_path / "short.pt")
        synthesize_files(make_tiny(), [tmp_path / "short.pt"], out, progress=False)
    else:
        soundfile.write(tmp_path / "short.wav", np.zeros(2000), 22050, subtype="PCM_16")
        compute_mels([tmp_path / "short.wav"], out, progress=False)
    assert not dead.exists() and alive.exists()
