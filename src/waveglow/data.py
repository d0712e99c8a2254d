"""Training data: dataset layouts, the train/validation split and the segment dataset.

Layouts (:func:`find_utterances` recognises them):
  ljspeech   ``metadata.csv`` (``id|text|normalized``) and ``wavs/{id}.wav``
  filelist   a text file, one ``path`` or ``path|text`` per line (NVIDIA / Tacotron 2), paths relative
             to the list's folder or to ``data_root``
  vctk       ``wav48*/pXXX/*.wav|flac`` (speaker ``pXXX``; of ``_mic1``/``_mic2`` pairs, mic 1 only)
  libritts   ``[subset/]speaker/chapter/*.wav`` with numeric speaker and chapter folders
  folder     any folder tree of audio files (single speaker)

Every item is a random ``segment_length`` slice of a clip (zero-padded when the clip is shorter,
as NVIDIA's ``mel2samp.py`` does) and the Tacotron 2 mel of that slice. The slice is drawn from a
generator seeded by (seed, epoch, index), so the data do not depend on worker processes, ranks or
resumption. A file that cannot be read is replaced by another item and reported with the batch, so
a corrupt clip never stops an epoch.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler, Sampler

from .audio import AudioError, MelSpectrogram, atomic_path, load_audio, remove_stale_temporaries

AUDIO_SUFFIXES = frozenset(
    {".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff", ".au", ".caf", ".w64", ".rf64", ".opus"}
)
TRAIN_LIST = "train_files.txt"
VALIDATION_LIST = "validation_files.txt"


class DataError(ValueError):
    """A dataset that cannot be used; the message names the file or folder and the problem."""


@dataclass(frozen=True)
class Utterance:
    """One audio file and its speaker (``""`` for single-speaker data)."""

    path: Path
    speaker: str = ""


# ---------------------------------------------------------------------------- layouts
def find_utterances(source: str | Path, data_root: str | Path | None = None) -> list[Utterance]:
    """The utterances of a dataset folder or filelist, sorted by path; the layout is detected."""
    source = Path(source)
    if source.is_file():
        utterances = read_filelist(source, data_root)
    elif not source.is_dir():
        raise DataError(f"{source}: no such file or folder")
    elif (source / "metadata.csv").is_file() and (source / "wavs").is_dir():
        utterances = _ljspeech(source)
    elif any(source.glob("wav48*")):
        utterances = _vctk(source)
    else:
        utterances = _folder(source)
    if not utterances:
        raise DataError(f"{source}: no audio files found")
    return sorted(utterances, key=lambda utterance: str(utterance.path))


def detect_layout(source: str | Path) -> str:
    """The name of ``source``'s layout (see the module docstring)."""
    source = Path(source)
    if source.is_file():
        return "filelist"
    if (source / "metadata.csv").is_file() and (source / "wavs").is_dir():
        return "ljspeech"
    if any(source.glob("wav48*")):
        return "vctk"
    files = _audio_files(source)
    return "libritts" if files and all(_libritts_speaker(source, f) for f in files) else "folder"


def read_filelist(path: Path, data_root: str | Path | None = None) -> list[Utterance]:
    """``path`` or ``path|text[|speaker]`` per line; blank lines and ``#`` comments are ignored."""
    base = Path(data_root) if data_root is not None else path.parent
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read the file list ({error})") from None
    utterances = []
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split("|")
        audio = Path(fields[0].strip())
        speaker = fields[2].strip() if len(fields) > 2 else ""
        utterances.append(Utterance(audio if audio.is_absolute() else base / audio, speaker))
    return utterances


def write_filelist(path: Path, utterances: Sequence[Utterance]) -> None:
    """Write ``path|text|speaker`` lines (text empty) that :func:`read_filelist` reads back."""
    text = "".join(f"{u.path.resolve()}||{u.speaker}\n" for u in utterances)
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def _ljspeech(root: Path) -> list[Utterance]:
    utterances = []
    metadata = root / "metadata.csv"
    for number, line in enumerate(metadata.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        name = line.split("|", 1)[0].strip()
        if not name:
            raise DataError(f"{metadata}:{number}: a line without an utterance id")
        utterances.append(Utterance(root / "wavs" / f"{name}.wav"))
    return utterances


def _vctk(root: Path) -> list[Utterance]:
    utterances = []
    for folder in sorted(root.glob("wav48*")):
        for path in _audio_files(folder):
            if (
                path.stem.endswith("_mic2")
                and path.with_name(path.name.replace("_mic2", "_mic1")).exists()
            ):
                continue
            utterances.append(Utterance(path, path.parent.name))
    return utterances


def _folder(root: Path) -> list[Utterance]:
    files = _audio_files(root)
    speakers = [_libritts_speaker(root, path) for path in files]
    if files and all(speakers):
        return [Utterance(path, speaker) for path, speaker in zip(files, speakers, strict=True)]
    return [Utterance(path) for path in files]


def _libritts_speaker(root: Path, path: Path) -> str:
    """The speaker of a LibriTTS file ``[subset/]speaker/chapter/name``, or ``""``."""
    parts = path.relative_to(root).parts
    if len(parts) >= 3 and parts[-3].isdigit() and parts[-2].isdigit():
        return parts[-3]
    return ""


def _audio_files(root: Path) -> list[Path]:
    return sorted(
        path for path in root.rglob("*") if path.suffix.lower() in AUDIO_SUFFIXES and path.is_file()
    )


# ---------------------------------------------------------------------------- split
def split_utterances(
    utterances: Sequence[Utterance], validation_size: float, seed: int = 1234
) -> tuple[list[Utterance], list[Utterance]]:
    """A deterministic (train, validation) split.

    ``validation_size`` < 1 holds out that fraction of every speaker's utterances (at least one
    where the speaker has two or more); >= 1 holds out that many utterances in all, taken in turn
    from each speaker. The result depends only on the set of paths and ``seed``.
    """
    if validation_size < 0:
        raise DataError(f"validation_size must be >= 0, got {validation_size}")
    by_speaker: dict[str, list[Utterance]] = {}
    for utterance in sorted(set(utterances), key=lambda u: str(u.path)):
        by_speaker.setdefault(utterance.speaker, []).append(utterance)
    generator = random.Random(seed)
    for group in by_speaker.values():
        generator.shuffle(group)
    held: set[Utterance] = set()
    if 0 < validation_size < 1:
        for group in by_speaker.values():
            count = round(validation_size * len(group))
            held.update(group[: max(count, 1) if len(group) > 1 else 0])
    else:
        _take_in_turn(by_speaker, int(validation_size), held)
    ordered = [u for group in by_speaker.values() for u in group]
    if len(held) >= len(ordered):
        raise DataError(
            f"the validation split ({validation_size}) leaves no training utterances "
            f"out of {len(ordered)}"
        )
    train = sorted((u for u in ordered if u not in held), key=lambda u: str(u.path))
    return train, sorted(held, key=lambda u: str(u.path))


def _take_in_turn(by_speaker: dict[str, list[Utterance]], count: int, held: set) -> None:
    round_number = 0
    while len(held) < count:
        taken = False
        for group in by_speaker.values():
            if round_number < len(group) - 1 and len(held) < count:
                held.add(group[round_number])
                taken = True
        if not taken:
            return
        round_number += 1


def prepare_split(
    source: str | Path,
    output_directory: str | Path,
    validation_size: float,
    seed: int,
    data_root: str | Path | None = None,
    validation_files: str | Path | None = None,
) -> tuple[list[Utterance], list[Utterance]]:
    """The (train, validation) lists of a run, written to ``output_directory`` on first use and
    read back afterwards, so that a resumed run never validates on clips it trained on."""
    output = Path(output_directory)
    train_list, validation_list = output / TRAIN_LIST, output / VALIDATION_LIST
    if train_list.is_file() and validation_list.is_file():
        return read_filelist(train_list), read_filelist(validation_list)
    utterances = find_utterances(source, data_root)
    if validation_files:
        validation = find_utterances(validation_files, data_root)
        held = {u.path.resolve() for u in validation}
        train = [u for u in utterances if u.path.resolve() not in held]
    else:
        train, validation = split_utterances(utterances, validation_size, seed)
    write_filelist(train_list, train)
    write_filelist(validation_list, validation)
    return train, validation


# ---------------------------------------------------------------------------- dataset
@dataclass(frozen=True)
class Sample:
    """One training item: mel (M, F), audio (L,), and the paths that failed while making it."""

    mel: torch.Tensor
    audio: torch.Tensor
    failed: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()


class SegmentDataset(Dataset):
    """Random (or, with ``random_segments=False``, centred) audio segments and their mels.

    ``mel`` is the model's mel (:func:`waveglow.audio.mel_transform`); its ``config`` gives the
    sampling rate and the default ``segment_length``.
    ``min_duration`` (seconds) and ``skip_silent`` drop short and silent clips; dropped and
    unreadable clips are replaced by the next readable item and named in the returned sample.
    ``cache_directory`` keeps each clip's decoded, resampled audio as ``.npy`` (memory-mapped reads).
    """

    def __init__(
        self,
        utterances: Sequence[Utterance],
        mel: MelSpectrogram,
        segment_length: int | None = None,
        seed: int = 1234,
        random_segments: bool = True,
        min_duration: float = 0.0,
        skip_silent: bool = False,
        cache_directory: str | Path | None = None,
    ) -> None:
        if not utterances:
            raise DataError("the dataset has no utterances")
        self.utterances = list(utterances)
        data_config = mel.config
        self.data_config = data_config
        self.segment_length = segment_length or data_config.segment_length
        self.seed = seed
        self.random_segments = random_segments
        self.min_samples = int(min_duration * data_config.sampling_rate)
        self.skip_silent = skip_silent
        self.cache_directory = Path(cache_directory) if cache_directory else None
        if self.cache_directory is not None:
            remove_stale_temporaries(self.cache_directory)
        self.mel = mel
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.utterances)

    def __getitem__(self, index: int) -> Sample:
        failed, skipped = [], []
        for attempt in range(len(self.utterances)):
            position = (index + attempt) % len(self.utterances)
            path = self.utterances[position].path
            try:
                audio = self._read(path)
            except AudioError as error:
                failed.append(str(error))
                continue
            if len(audio) < self.min_samples or (self.skip_silent and _is_silent(audio)):
                skipped.append(str(path))
                continue
            segment = self._segment(audio, position)
            with torch.no_grad():
                mel = self.mel(segment)  # (M, F)
            return Sample(mel, segment, tuple(failed), tuple(skipped))
        raise DataError(
            f"none of the {len(self.utterances)} clips is usable; first problems: "
            + "; ".join((failed + skipped)[:5])
        )

    def _segment(self, audio: np.ndarray, position: int) -> torch.Tensor:
        length = self.segment_length
        if len(audio) < length:
            return torch.from_numpy(np.pad(audio, (0, length - len(audio))))
        if self.random_segments:
            generator = np.random.default_rng((self.seed, self.epoch, position))
            start = int(generator.integers(0, len(audio) - length + 1))
        else:
            start = (len(audio) - length) // 2
        return torch.from_numpy(np.array(audio[start : start + length], dtype=np.float32))

    def _read(self, path: Path) -> np.ndarray:
        rate = self.data_config.sampling_rate
        if self.cache_directory is None:
            return load_audio(path, rate)[0]
        cached = self.cache_directory / f"{_cache_key(path, rate)}.npy"
        if cached.is_file():
            try:
                return np.load(cached, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError):
                cached.unlink(missing_ok=True)
        audio = load_audio(path, rate)[0]
        with atomic_path(cached) as temporary, open(temporary, "wb") as handle:
            np.save(handle, audio)
        return audio


def _is_silent(audio: np.ndarray, threshold: float = 1e-4) -> bool:
    return float(np.max(np.abs(audio))) < threshold


def _cache_key(path: Path, rate: int) -> str:
    status = path.stat()
    identity = json.dumps([str(path.resolve()), status.st_size, status.st_mtime_ns, rate])
    return hashlib.sha1(identity.encode()).hexdigest()


@dataclass
class Batch:
    """A collated batch: mel (B, M, F), audio (B, L) and the problems met while reading it."""

    mel: torch.Tensor
    audio: torch.Tensor
    failed: tuple[str, ...]
    skipped: tuple[str, ...]


def collate(samples: Sequence[Sample]) -> Batch:
    return Batch(
        mel=torch.stack([s.mel for s in samples]),  # (B, M, F)
        audio=torch.stack([s.audio for s in samples]),  # (B, L)
        failed=tuple(p for s in samples for p in s.failed),
        skipped=tuple(p for s in samples for p in s.skipped),
    )


class ResumableSampler(Sampler[int]):
    """A :class:`DistributedSampler` (shuffled by seed and epoch) that can start mid-epoch.

    ``start`` indices of this rank's share of the epoch are skipped (resumption); ``set_epoch``
    also tells the dataset the epoch, so its segment offsets follow.
    """

    def __init__(
        self, dataset: SegmentDataset, rank: int = 0, world_size: int = 1, seed: int = 1234
    ) -> None:
        self.dataset = dataset
        self.sampler = DistributedSampler(
            dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True
        )
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.sampler.set_epoch(epoch)
        self.dataset.set_epoch(epoch)
        self.start = start

    def __iter__(self) -> Iterator[int]:
        indices = list(self.sampler)
        return iter(indices[self.start :])

    def __len__(self) -> int:
        return len(self.sampler) - self.start
