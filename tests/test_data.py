"""Dataset layouts, the train/validation split and the segment dataset."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import soundfile
import torch
from torch.utils.data import DataLoader

from conftest import TINY_DATA
from corpus import harmonic_clip, make_folder_corpus, write_clip
from waveglow.audio import MelSpectrogram
from waveglow.config import DataConfig
from waveglow.data import (
    DataError,
    ResumableSampler,
    SegmentDataset,
    Utterance,
    collate,
    detect_layout,
    find_utterances,
    prepare_split,
    read_filelist,
    split_utterances,
)

DATA = dataclasses.replace(TINY_DATA, segment_length=1024)


def tiny_mel(config: DataConfig = DATA) -> MelSpectrogram:
    """The mel of the tiny test model (8 bins)."""
    return MelSpectrogram(config, 8)


# ---------------------------------------------------------------------------- layouts
def test_ljspeech_layout(tmp_path):
    for name in ("LJ001-0001", "LJ001-0002"):
        write_clip(tmp_path / "wavs" / f"{name}.wav", seed=1)
    (tmp_path / "metadata.csv").write_text(
        "LJ001-0001|Printing, in the only sense|Printing, in the only sense\n"
        "LJ001-0002|in being comparatively modern.|in being comparatively modern.\n"
    )
    write_clip(tmp_path / "wavs" / "not_listed.wav", seed=2)
    utterances = find_utterances(tmp_path)
    assert detect_layout(tmp_path) == "ljspeech"
    assert [u.path.name for u in utterances] == ["LJ001-0001.wav", "LJ001-0002.wav"]
    assert {u.speaker for u in utterances} == {""}


def test_filelist_paths_relative_to_list_or_data_root(tmp_path):
    write_clip(tmp_path / "audio" / "a.wav", seed=1)
    write_clip(tmp_path / "audio" / "b.wav", seed=2)
    listing = tmp_path / "lists" / "train.txt"
    listing.parent.mkdir()
    listing.write_text("../audio/a.wav|some text\n\n# a comment\n../audio/b.wav\n")
    assert detect_layout(listing) == "filelist"
    paths = [u.path.resolve() for u in find_utterances(listing)]
    assert paths == [(tmp_path / "audio" / n).resolve() for n in ("a.wav", "b.wav")]
    rooted = tmp_path / "rooted.txt"
    rooted.write_text("audio/a.wav|text\n")
    assert find_utterances(rooted, data_root=tmp_path)[0].path == tmp_path / "audio" / "a.wav"


def test_folder_tree_layout_finds_audio_only(tmp_path):
    write_clip(tmp_path / "x" / "one.wav", seed=1)
    write_clip(tmp_path / "x" / "y" / "two.flac", seed=2)
    (tmp_path / "x" / "notes.txt").write_text("not audio")
    utterances = find_utterances(tmp_path)
    assert detect_layout(tmp_path) == "folder"
    assert sorted(u.path.name for u in utterances) == ["one.wav", "two.flac"]


def test_vctk_layout_speakers_and_one_microphone(tmp_path):
    root = tmp_path / "wav48_silence_trimmed"
    for speaker in ("p225", "p226"):
        for number in (1, 2):
            for mic in (1, 2):
                write_clip(root / speaker / f"{speaker}_{number:03d}_mic{mic}.flac", seed=number)
    write_clip(root / "p227" / "p227_001.wav", seed=3)  # the older VCTK 0.80 naming
    utterances = find_utterances(tmp_path)
    assert detect_layout(tmp_path) == "vctk"
    assert len(utterances) == 5
    assert all("_mic2" not in u.path.name for u in utterances)
    assert {u.speaker for u in utterances} == {"p225", "p226", "p227"}
    assert all(u.path.parent.name == u.speaker for u in utterances)


def test_libritts_layout_speaker_from_folders(tmp_path):
    for speaker, chapter in (("19", "198"), ("19", "227"), ("26", "495")):
        write_clip(
            tmp_path / "train-clean-100" / speaker / chapter / f"{speaker}_{chapter}_1.wav", 1
        )
    utterances = find_utterances(tmp_path)
    assert detect_layout(tmp_path) == "libritts"
    assert [u.speaker for u in utterances] == ["19", "19", "26"]


def test_missing_or_empty_source_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        find_utterances(tmp_path / "nowhere")
    with pytest.raises(DataError, match="no audio files"):
        find_utterances(tmp_path)


# ---------------------------------------------------------------------------- split
def _speakers(tmp_path, counts: dict[str, int]) -> list[Utterance]:
    return [
        Utterance(tmp_path / speaker / f"{index}.wav", speaker)
        for speaker, count in counts.items()
        for index in range(count)
    ]


def test_split_is_deterministic_disjoint_and_per_speaker(tmp_path):
    utterances = _speakers(tmp_path, {"a": 10, "b": 20, "c": 1})
    train, validation = split_utterances(utterances, 0.1, seed=3)
    assert set(train).isdisjoint(validation)
    assert set(train) | set(validation) == set(utterances)
    held = {s: sum(u.speaker == s for u in validation) for s in "abc"}
    assert held == {"a": 1, "b": 2, "c": 0}  # a lone utterance stays in training
    assert split_utterances(list(reversed(utterances)), 0.1, seed=3) == (train, validation)
    assert split_utterances(utterances, 0.1, seed=4)[1] != validation


def test_split_fixed_count_takes_speakers_in_turn(tmp_path):
    utterances = _speakers(tmp_path, {"a": 5, "b": 5, "c": 5})
    _, validation = split_utterances(utterances, 4, seed=0)
    assert len(validation) == 4
    assert sorted({u.speaker for u in validation}) == ["a", "b", "c"]
    lone = _speakers(tmp_path, {"": 1})
    assert split_utterances(lone, 1, seed=0) == (lone, [])  # never a speaker's last clip
    with pytest.raises(DataError, match="no training"):
        split_utterances(_speakers(tmp_path, {"": 2}), 0.99, seed=0)


def test_split_is_written_and_reused(tmp_path):
    corpus = make_folder_corpus(tmp_path / "corpus", count=6)
    run = tmp_path / "run"
    train, validation = prepare_split(corpus, run, validation_size=2, seed=1)
    assert len(validation) == 2 and len(train) == 4
    write_clip(corpus / "new.wav", seed=99)  # the data grow: the split on disk still holds
    again = prepare_split(corpus, run, validation_size=3, seed=2)
    assert [u.path for u in again[1]] == [u.path.resolve() for u in validation]
    assert read_filelist(run / "validation_files.txt") == again[1]


# ---------------------------------------------------------------------------- dataset
def test_segments_are_slices_with_their_mel_and_depend_on_epoch(tmp_path):
    path = write_clip(tmp_path / "a.wav", seed=5, seconds=0.3)
    audio = soundfile.read(str(path), dtype="float32")[0]
    dataset = SegmentDataset([Utterance(path)], tiny_mel(), seed=1)
    sample = dataset[0]
    assert sample.audio.shape == (1024,) and sample.failed == ()
    start = _find(audio, sample.audio.numpy())
    assert start is not None
    expected_mel = tiny_mel()(sample.audio)
    torch.testing.assert_close(sample.mel, expected_mel)
    assert torch.equal(dataset[0].audio, sample.audio)  # same (seed, epoch, index): same slice
    starts = set()
    for epoch in range(6):
        dataset.set_epoch(epoch)
        starts.add(_find(audio, dataset[0].audio.numpy()))
    assert len(starts) > 1


def _find(audio: np.ndarray, segment: np.ndarray) -> int | None:
    for start in range(len(audio) - len(segment) + 1):
        if np.array_equal(audio[start : start + len(segment)], segment):
            return start
    return None


def test_short_clip_is_zero_padded_and_centred_segments_are_fixed(tmp_path):
    short = write_clip(tmp_path / "short.wav", seed=1, seconds=0.02)
    audio = soundfile.read(str(short), dtype="float32")[0]
    sample = SegmentDataset([Utterance(short)], tiny_mel())[0]
    assert torch.equal(sample.audio[: len(audio)], torch.from_numpy(audio))
    assert torch.all(sample.audio[len(audio) :] == 0)
    long = write_clip(tmp_path / "long.wav", seed=2, seconds=0.2)
    centred = SegmentDataset([Utterance(long)], tiny_mel(), random_segments=False)
    full = soundfile.read(str(long), dtype="float32")[0]
    start = (len(full) - 1024) // 2
    assert torch.equal(centred[0].audio, torch.from_numpy(full[start : start + 1024]))


def test_any_rate_and_channels_are_resampled_to_mono(tmp_path):
    stereo = np.stack([harmonic_clip(1, 0.5, 16000), harmonic_clip(2, 0.5, 16000)], axis=1)
    path = tmp_path / "stereo16k.flac"
    soundfile.write(str(path), stereo, 16000)
    dataset = SegmentDataset(
        [Utterance(path)], tiny_mel(dataclasses.replace(DATA, segment_length=20000))
    )
    audio = dataset[0].audio
    resampled_length = round(0.5 * 22050)
    assert torch.all(audio[resampled_length + 5 :] == 0)  # padded after the 11025 real samples
    assert torch.any(audio[resampled_length - 100 : resampled_length - 5] != 0)


def test_corrupt_empty_short_and_silent_clips_are_replaced_and_named(tmp_path):
    good = write_clip(tmp_path / "good.wav", seed=1)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 10)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    silent = tmp_path / "silent.wav"
    soundfile.write(str(silent), np.zeros(4000, dtype=np.float32), 22050)
    short = write_clip(tmp_path / "short.wav", seed=2, seconds=0.01)
    utterances = [Utterance(p) for p in (corrupt, empty, silent, short, good)]
    dataset = SegmentDataset(utterances, tiny_mel(), min_duration=0.05, skip_silent=True)
    sample = dataset[0]
    assert len(sample.failed) == 2
    assert str(corrupt) in sample.failed[0] and str(empty) in sample.failed[1]
    assert sample.skipped == (str(silent), str(short))
    assert torch.any(sample.audio != 0)
    broken = SegmentDataset([Utterance(corrupt)], tiny_mel())
    with pytest.raises(DataError, match="none of the 1 clips"):
        broken[0]


def test_cache_gives_the_same_items(tmp_path):
    utterances = [Utterance(write_clip(tmp_path / f"{i}.wav", seed=i)) for i in range(3)]
    plain = SegmentDataset(utterances, tiny_mel())
    cached = SegmentDataset(utterances, tiny_mel(), cache_directory=tmp_path / "cache")
    for _ in range(2):  # the second pass reads the cache
        for index in range(3):
            assert torch.equal(plain[index].audio, cached[index].audio)
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 3


def test_workers_and_resumed_sampler_give_the_same_batches(tmp_path):
    corpus = make_folder_corpus(tmp_path, count=8, seconds=0.1)
    dataset = SegmentDataset(find_utterances(corpus), tiny_mel(), seed=3)

    def batches(workers: int, start: int = 0) -> list[torch.Tensor]:
        sampler = ResumableSampler(dataset, seed=3)
        sampler.set_epoch(2, start=start)
        loader = DataLoader(
            dataset, batch_size=2, sampler=sampler, num_workers=workers, collate_fn=collate
        )
        return [batch.audio for batch in loader]

    serial = batches(0)
    assert len(serial) == 4
    for one, other in zip(serial, batches(2), strict=True):
        assert torch.equal(one, other)
    for one, other in zip(serial[1:], batches(0, start=2), strict=True):
        assert torch.equal(one, other)


def test_distributed_shares_cover_the_epoch_once(tmp_path):
    utterances = [Utterance(tmp_path / f"{i}.wav") for i in range(10)]
    dataset = SegmentDataset(utterances, tiny_mel())
    shares = []
    for rank in range(2):
        sampler = ResumableSampler(dataset, rank=rank, world_size=2, seed=1)
        sampler.set_epoch(0)
        shares.append(list(sampler))
    assert set(shares[0]).isdisjoint(shares[1])
    assert sorted(shares[0] + shares[1]) == list(range(10))
