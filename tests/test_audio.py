"""The Tacotron 2 mel contract (golden tests against an independent numpy/librosa computation) and
audio/mel file I/O."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile
import torch

from conftest import librosa_stft
from waveglow import DataConfig, MelSpectrogram, load_audio, load_mel, save_mel, save_wav
from waveglow.audio import SILENCE, AudioError, atomic_path, mel_filters

RATE = 22050


# ---------------------------------------------------------------------------- signals
def speech_like(seconds: float = 1.0, seed: int = 0, rate: int = RATE) -> np.ndarray:
    """Int16-quantised float audio: voiced syllables with vibrato, a noise burst, silence."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    f0 = 120 + 15 * np.sin(2 * np.pi * 5.5 * t) + 30 * t  # vibrato and a rising contour
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voiced = sum(np.sin(k * phase + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 30))
    syllables = np.clip(np.sin(2 * np.pi * 3 * t), 0, None) ** 0.7  # on/off envelope
    audio = 0.25 * voiced * syllables
    burst = slice(int(0.55 * len(t)), int(0.65 * len(t)))
    audio[burst] += rng.normal(0, 0.1, burst.stop - burst.start)  # a fricative
    audio[int(0.85 * len(t)) :] = 0.0  # digital silence at the end
    return np.round(np.clip(audio, -1, 1 - 1 / 32768) * 32768) / 32768


def reference_mel(audio: np.ndarray, config: DataConfig, n_mels: int = 80) -> np.ndarray:
    """The Tacotron 2 mel computed independently: librosa STFT, hand-built Slaney filters, log."""
    spectrum = librosa_stft(audio.astype(np.float64), config)
    filters = slaney_filters(config.sampling_rate, config.filter_length, n_mels, 0.0, 8000.0)
    return np.log(np.maximum(filters @ np.abs(spectrum), 1e-5))


def slaney_filters(rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Slaney's Auditory Toolbox mel bank: linear below 1 kHz, log above, area-normalised."""

    def to_mel(hz: np.ndarray) -> np.ndarray:
        hz = np.asarray(hz, dtype=np.float64)
        log_part = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
        return np.where(hz >= 1000.0, log_part, hz / (200.0 / 3.0))

    def to_hz(mel: np.ndarray) -> np.ndarray:
        log_part = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0))
        return np.where(mel >= 15.0, log_part, mel * (200.0 / 3.0))

    edges = to_hz(np.linspace(to_mel(fmin), to_mel(fmax), n_mels + 2))
    bins = np.linspace(0, rate / 2, n_fft // 2 + 1)
    rising = (bins[None, :] - edges[:-2, None]) / np.diff(edges)[:-1, None]
    falling = (edges[2:, None] - bins[None, :]) / np.diff(edges)[1:, None]
    triangles = np.maximum(0.0, np.minimum(rising, falling))
    return triangles * (2.0 / (edges[2:] - edges[:-2]))[:, None]


# ---------------------------------------------------------------------------- the mel contract
def test_slaney_filters_match_ours():
    ours = mel_filters(DataConfig(), 80)
    np.testing.assert_allclose(ours, slaney_filters(RATE, 1024, 80, 0.0, 8000.0), atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_mel_matches_independent_computation(seed):
    audio = speech_like(seed=seed)
    mel = MelSpectrogram()(torch.from_numpy(audio).float()).double().numpy()
    expected = reference_mel(audio.astype(np.float32), DataConfig())
    assert mel.shape == expected.shape == (80, 1 + len(audio) // 256)
    assert (expected > np.log(1e-5) + 1).mean() > 0.5  # mostly above the floor: a real test
    np.testing.assert_allclose(mel, expected, atol=2e-3, rtol=0)
    assert np.abs(mel - expected).mean() < 1e-4


def test_mel_with_window_shorter_than_filter():
    config = DataConfig(win_length=800)
    audio = speech_like(seconds=0.5, seed=2)
    mel = MelSpectrogram(config)(torch.from_numpy(audio).float()).double().numpy()
    expected = reference_mel(audio.astype(np.float32), config)
    np.testing.assert_allclose(mel, expected, atol=2e-3, rtol=0)
    full_window = MelSpectrogram()(torch.from_numpy(audio).float()).double().numpy()
    assert np.abs(full_window - mel).max() > 0.05  # the window really changed


@pytest.mark.parametrize("length", [513, 1024, 1279, 1280, 22050])
def test_mel_frame_count(length):
    audio = torch.from_numpy(speech_like(seconds=length / RATE + 0.01)[:length]).float()
    assert MelSpectrogram()(audio).shape == (80, 1 + length // 256)


def test_mel_batch_equals_items_and_floor():
    audio = torch.from_numpy(np.stack([speech_like(0.3, 3), np.zeros(int(0.3 * RATE))])).float()
    mel = MelSpectrogram()(audio)
    assert mel.shape == (2, 80, 1 + audio.shape[1] // 256)
    torch.testing.assert_close(mel[0], MelSpectrogram()(audio[0]))
    torch.testing.assert_close(mel[1], torch.full_like(mel[1], float(np.log(1e-5))))
    torch.testing.assert_close(mel[1], torch.full_like(mel[1], SILENCE))  # what pads batches


# ---------------------------------------------------------------------------- audio files
def test_load_int16_is_exact(tmp_path):
    pcm = np.array([-32768, -32767, -1, 0, 1, 12345, 32767] * 200, dtype=np.int16)
    soundfile.write(tmp_path / "a.wav", pcm, RATE, subtype="PCM_16")
    audio, rate = load_audio(tmp_path / "a.wav")
    assert rate == RATE and audio.dtype == np.float32
    np.testing.assert_array_equal(audio, pcm.astype(np.float32) / 32768)


def test_stereo_is_mixed_to_mono(tmp_path):
    left = (np.arange(3000) % 200 - 100).astype(np.int16) * 50
    right = -(np.arange(3000) % 70).astype(np.int16) * 100
    soundfile.write(tmp_path / "s.wav", np.stack([left, right], axis=1), RATE, subtype="PCM_16")
    audio, _ = load_audio(tmp_path / "s.wav")
    expected = (left.astype(np.float64) + right) / 2 / 32768
    np.testing.assert_allclose(audio, expected, atol=1e-7)


def test_resampling_16k_to_22050(tmp_path):
    t = np.arange(16000) / 16000
    soundfile.write(tmp_path / "r.wav", 0.5 * np.sin(2 * np.pi * 440 * t), 16000, subtype="FLOAT")
    audio, rate = load_audio(tmp_path / "r.wav", 22050)
    assert rate == 22050 and abs(len(audio) - 22050) <= 1
    expected = 0.5 * np.sin(2 * np.pi * 440 * np.arange(len(audio)) / 22050)
    np.testing.assert_allclose(audio[500:-500], expected[500:-500], atol=1e-3)
    kept, rate = load_audio(tmp_path / "r.wav", None)
    assert rate == 16000 and len(kept) == 16000


def test_save_wav_clips_never_wraps(tmp_path):
    save_wav(tmp_path / "c.wav", np.array([1.5, -1.5, 1.0, -1.0, 0.5, 0.0, 2e9]), RATE)
    pcm, rate = soundfile.read(tmp_path / "c.wav", dtype="int16")
    assert rate == RATE
    np.testing.assert_array_equal(pcm, [32767, -32768, 32767, -32768, 16384, 0, 32767])
    assert soundfile.info(str(tmp_path / "c.wav")).subtype == "PCM_16"


def test_save_wav_failure_keeps_old_file(tmp_path):
    path = tmp_path / "keep.wav"
    save_wav(path, np.zeros(100), RATE)
    before = path.read_bytes()
    with pytest.raises(Exception):  # noqa: B017 - whatever soundfile raises for a bad rate
        save_wav(path, np.ones(100) * 0.1, 0)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.wav"]


@pytest.mark.parametrize("problem", ["missing", "empty", "corrupt", "nan", "no samples"])
def test_bad_audio_files_name_the_file(tmp_path, problem):
    path = tmp_path / f"{problem.replace(' ', '_')}.wav"
    if problem == "empty":
        path.write_bytes(b"")
    elif problem == "corrupt":
        path.write_bytes(b"RIFF\x00\x01garbage" * 10)
    elif problem == "nan":
        soundfile.write(path, np.array([0.1, np.nan, 0.2] * 100), RATE, subtype="FLOAT")
    elif problem == "no samples":
        soundfile.write(path, np.zeros(0), RATE, subtype="PCM_16")
    with pytest.raises(AudioError, match=str(path).replace("\\", "\\\\")):
        load_audio(path)


# ---------------------------------------------------------------------------- mel files
@pytest.mark.parametrize("suffix", [".pt", ".npy"])
def test_mel_file_round_trip(tmp_path, suffix):
    mel = torch.randn(80, 37)
    save_mel(tmp_path / f"m{suffix}", mel)
    torch.testing.assert_close(load_mel(tmp_path / f"m{suffix}"), mel, rtol=0, atol=0)
    if suffix == ".pt":
        assert torch.load(tmp_path / "m.pt", weights_only=True).shape == (80, 37)


def test_mel_with_batch_dimension_is_accepted(tmp_path):
    torch.save(torch.ones(1, 80, 5), tmp_path / "b.pt")
    assert load_mel(tmp_path / "b.pt").shape == (80, 5)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("channels.pt", torch.zeros(40, 10), r"shape \(80, frames\)"),
        ("nan.npy", np.full((80, 10), np.nan, dtype=np.float32), "NaN"),
        ("frames.npy", np.zeros((80, 0), dtype=np.float32), "no frames"),
        ("dict.pt", {"mel": torch.zeros(80, 3)}, "expected a tensor"),
        ("corrupt.pt", b"not a torch file", "not a readable mel"),
        ("empty.npy", b"", "empty"),
    ],
)
def test_bad_mel_files_name_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, np.ndarray):
        np.save(path, content)
    else:
        torch.save(content, path)
    with pytest.raises(AudioError, match=message) as caught:
        load_mel(path)
    assert str(path) in str(caught.value)


def test_atomic_writes_get_the_mode_a_plain_write_would(tmp_path):
    import os

    from waveglow.audio import atomic_path

    previous = os.umask(0o027)
    try:
        save_wav(tmp_path / "a.wav", torch.zeros(100), 22050)
        with atomic_path(tmp_path / "b.bin") as temporary:
            temporary.write_bytes(b"data")
    finally:
        os.umask(previous)
    for name in ("a.wav", "b.bin"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o640  # not mkstemp's 0o600
    assert (tmp_path / "b.bin").read_bytes() == b"data"


def test_zip_bomb_mel_is_refused_before_expanding(tmp_path):
    import zipfile

    path = tmp_path / "bomb.pt"
    torch.save(torch.zeros(80, 50000), path)  # 16 MB of zeros
    with zipfile.ZipFile(path) as archive:
        entries = [(info.filename, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    with pytest.raises(AudioError, match=r"bomb\.pt: .*declares 16,\d{3},\d{3} bytes"):
        load_mel(path)


class _RunsACommand:
    def __reduce__(self):
        return (os.system, ("touch hacked",))


def test_a_hostile_torch_mel_is_refused_in_plain_words_and_runs_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save(_RunsACommand(), path)
    with pytest.raises(AudioError) as refused:
        load_mel(path)
    message = str(refused.value)
    assert message.startswith(f"{path}: refused to load: it names ")
    assert "system, which a mel file never contains; nothing was executed" in message
    assert "RefusedGlobal" not in message
    assert not (tmp_path / "hacked").exists()


def test_npy_header_declaring_more_than_the_file_is_refused(tmp_path):
    path = tmp_path / "liar.npy"
    with open(path, "wb") as handle:
        header = {"descr": "<f4", "fortran_order": False, "shape": (80, 10**10)}
        np.lib.format.write_array_header_1_0(handle, header)
        handle.write(bytes(1280))  # data for 4 frames only
    with pytest.raises(AudioError, match=r"liar\.npy: .*declares 3,200,000,000,000 bytes"):
        load_mel(path)
    # negative dimensions whose product numpy computes in int64, wrapping to 2**33 elements
    with open(path, "wb") as handle:
        header = {"descr": "<f4", "fortran_order": False, "shape": (2**31 - 1, -(2**33))}
        np.lib.format.write_array_header_1_0(handle, header)
        handle.write(bytes(64))
    with pytest.raises(AudioError, match=r"liar\.npy: .*negative dimension"):
        load_mel(path)


@pytest.mark.parametrize(
    ("audio", "message"),
    [
        (np.array([0.1, np.nan, 0.2]), "NaN or infinite"),
        (np.zeros((2, 100)), r"shape \(samples,\), got \(2, 100\)"),
    ],
    ids=["nan", "two-channels"],
)
def test_save_wav_refuses_garbage_and_writes_nothing(tmp_path, audio, message):
    with pytest.raises(AudioError, match=message):
        save_wav(tmp_path / "out.wav", audio, 22050)
    assert list(tmp_path.iterdir()) == []


def test_out_of_range_inputs_are_used_with_a_warning(tmp_path):
    from waveglow.audio import InputWarning

    loud = tmp_path / "loud.wav"
    soundfile.write(loud, np.linspace(-5, 5, 2000, dtype=np.float32), 22050, subtype="FLOAT")
    with pytest.warns(InputWarning, match=r"loud\.wav: the samples peak at 5"):
        audio, _ = load_audio(loud)
    assert audio.max() == pytest.approx(5.0)  # used as it is
    absurd = tmp_path / "absurd.npy"
    np.save(absurd, np.full((80, 4), 1e30, dtype=np.float32))
    with pytest.warns(InputWarning, match=r"absurd\.npy: the mel's values span \[1e\+30"):
        assert load_mel(absurd).max() == pytest.approx(1e30)


def test_atomic_writes_replace_only_regular_files(tmp_path):
    import os

    from waveglow.audio import atomic_path

    folder = tmp_path / "out.wav"
    folder.mkdir()
    with pytest.raises(IsADirectoryError) as caught:
        save_wav(folder, np.zeros(10), 22050)
    assert caught.value.filename == str(folder)  # not the temporary file
    fifo = tmp_path / "fifo.bin"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="not a regular file"), atomic_path(fifo) as temporary:
        temporary.write_bytes(b"data")
    assert fifo.is_fifo() and folder.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo.bin", "out.wav"]


def test_atomic_writes_leave_a_device_node_alone(tmp_path):
    import stat

    null = tmp_path / "null"  # a copy of the null device (never the real one)
    try:
        os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except (PermissionError, OSError):
        pytest.skip("cannot make a device node here")
    with pytest.raises(OSError, match="not a regular file"):
        save_wav(null, np.zeros(10), 22050)
    assert null.is_char_device() and [p.name for p in tmp_path.iterdir()] == ["null"]


def test_safetensors_and_torch_outputs_both_follow_the_umask(tmp_path):
    import os

    from conftest import make_tiny
    from waveglow import save

    previous = os.umask(0o022)
    try:
        for name in ("model.pt", "model.safetensors"):
            save(make_tiny(), tmp_path / name)
    finally:
        os.umask(previous)
    modes = {
        name: (tmp_path / name).stat().st_mode & 0o777 for name in ("model.pt", "model.safetensors")
    }
    assert modes == {"model.pt": 0o644, "model.safetensors": 0o644}


def test_dead_writers_temporaries_are_removed_and_live_ones_kept(tmp_path):
    import subprocess

    from waveglow import audio

    finished = subprocess.Popen(["true"])
    finished.wait()
    dead = tmp_path / f".song.wav.{finished.pid}.0123abcd.tmp"
    alive = tmp_path / f".other.wav.{os.getppid()}.0123abcd.tmp"
    unrelated = tmp_path / ".notes.tmp"
    for path in (dead, alive, unrelated):
        path.write_bytes(b"partial")
    assert audio.remove_stale_temporaries(tmp_path, tmp_path / "missing") == [dead]
    assert alive.exists() and unrelated.exists()
    dead.write_bytes(b"partial")  # a second death: no memory of the first sweep
    assert audio.remove_stale_temporaries(tmp_path) == [dead]


def test_an_atomic_write_does_not_list_its_folder(tmp_path, monkeypatch):
    """Writing N files into one folder stays linear: the jobs sweep once, not each write."""

    def no_listing(*_args):
        raise AssertionError("the folder was listed")

    monkeypatch.setattr(os, "scandir", no_listing)
    save_wav(tmp_path / "new.wav", np.zeros(10), 22050)
    assert (tmp_path / "new.wav").is_file()


def test_a_writer_failing_on_a_full_disk_says_so(tmp_path, monkeypatch):
    """libsndfile says "System error." and torch "file write failed" when the disk is full: the
    error names the path and ENOSPC; on a disk with space left, the writer's own message."""
    import errno

    target = tmp_path / "x.wav"
    full = os.statvfs_result((4096, 4096, 50, 0, 0, 100, 90, 90, 0, 255))
    with monkeypatch.context() as patch:
        patch.setattr(os, "statvfs", lambda _path: full)
        with pytest.raises(OSError) as caught, atomic_path(target) as temporary:
            temporary.write_bytes(b"partial")
            raise RuntimeError("Error writing: System error.")
    assert (caught.value.errno, caught.value.filename) == (errno.ENOSPC, str(target))
    assert caught.value.strerror == os.strerror(errno.ENOSPC)
    with pytest.raises(OSError, match="System error") as caught, atomic_path(target):
        raise RuntimeError("Error writing: System error.")
    assert caught.value.errno == errno.EIO
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("dtype", [np.complex64, np.bool_], ids=["complex", "bool"])
def test_a_mel_of_complex_or_boolean_values_is_refused(tmp_path, dtype):
    """Not cast to float with torch's warning (a complex mel lost its imaginary part, exit 0)."""
    path = tmp_path / "m.npy"
    np.save(path, np.ones((80, 5), dtype=dtype))
    with pytest.raises(AudioError, match=r"m\.npy: a mel must hold real numbers, got torch\."):
        load_mel(path)


def test_a_directory_or_a_fifo_is_named_as_such_not_as_missing(tmp_path):
    folder = tmp_path / "clip.wav"
    folder.mkdir()
    with pytest.raises(AudioError, match=r"clip\.wav: is a directory, not a file"):
        load_audio(folder)
    fifo = tmp_path / "mel.npy"
    os.mkfifo(fifo)
    with pytest.raises(AudioError, match=r"mel\.npy: is not a regular file"):
        load_mel(fifo)
    with pytest.raises(AudioError, match=r"absent\.npy: no such file"):
        load_mel(tmp_path / "absent.npy")
