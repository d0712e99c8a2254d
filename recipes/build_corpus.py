"""Build an LJ-Speech-layout speech corpus at 22050 Hz from Debian packages, offline.

Sources (``--sources``, comma-separated):

``asterisk``  the Asterisk core prompts in English (``asterisk-core-sounds-en-g722``): one
              professional female US speaker, Allison Smith, 16 kHz G.722, decoded with ffmpeg and
              resampled with soxr; transcripts from ``asterisk-core-sounds-en``'s
              ``core-sounds-en.txt.gz``. CC-BY-SA-3.0. Tones, beeps and silences are left out.
``festival``  festival's HTS voice ``cmu_us_slt_arctic_hts`` (``festvox-us-slt-hts``) reading the
              sentences below.
``espeak``    ``espeak-ng`` voices reading the sentences below.

Output (``--output DIR``)::

    metadata.csv   id|text|normalized text          (LJ Speech)
    wavs/ID.wav    16-bit mono 22050 Hz
    train.txt      wavs/ID.wav|normalized text|speaker, every clip except the held-out ones
    heldout.txt    the same for the 17 held-out Asterisk prompts (never trained on)
    README.md      sources, licences, attributions and counts

Every file is written atomically; rerunning over an existing corpus rewrites it in place.

Usage: ``python recipes/build_corpus.py --output /work/corpus [--sources asterisk,festival,espeak]``
"""

from __future__ import annotations

import argparse
import gzip
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import soxr
from tqdm import tqdm

from waveglow.audio import atomic_path, save_wav

RATE = 22050
ASTERISK_RATE = 16000
ASTERISK_SOUNDS = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
ASTERISK_TRANSCRIPTS = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
FESTIVAL_VOICE = "cmu_us_slt_arctic_hts"
FESTIVAL_VOICE_DIR = Path("/usr/share/festival/voices/us") / FESTIVAL_VOICE
ESPEAK_VOICES = ("en-us", "en-us+f3", "en-gb", "en-gb-scotland+f2", "en-gb-x-rp", "en-029+m3")
SOURCES = ("asterisk", "festival", "espeak")
HELD_OUT = (
    "demo-congrats",
    "demo-echotest",
    "vm-options",
    "demo-abouttotry",
    "dir-intro",
    "confbridge-mute-extended",
    "demo-nogo",
    "tt-allbusy",
    "queue-periodic-announce",
    "vm-review",
    "vm-instructions",
    "vm-record-prepend",
    "dir-instr",
    "vm-newuser",
    "vm-intro",
    "demo-thanks",
    "agent-alreadyon",
)

# Sentences written for this corpus (BSD-3-Clause, like the project): varied vowels, consonant
# clusters, numbers, questions and exclamations, short and long.
SENTENCES = (
    "The quick brown vixen jumped over seven lazy hounds.",
    "Would you bring the yellow umbrella back before Thursday?",
    "Twelve thousand geese flew north across the frozen marsh.",
    "She sells fresh shrimp and thick chowder by the harbour.",
    "Please call extension four hundred and six after lunch.",
    "Nobody expected the orchestra to play the whole symphony twice.",
    "Which of these three paths leads to the old lighthouse?",
    "A sudden gust scattered the judge's papers all over the floor.",
    "Measure twice, cut once, and always sharpen the chisel.",
    "Our train leaves at eight fifteen from platform nine.",
    "Zebras, yaks and wombats rarely share the same enclosure.",
    "He whispered the answer, but everyone heard it anyway.",
    "The thermometer showed minus four degrees at dawn.",
    "Could you spell that surname for me, letter by letter?",
    "Bright violet sparks leapt from the grinding wheel.",
    "Thank you for waiting; your call is important to us.",
    "Fourteen fishermen hauled their nets through the choppy water.",
    "The museum closes early on Sundays and public holidays.",
    "Ask Judith whether the giraffe drawing is finished yet.",
    "My grandmother's recipe calls for nutmeg, cloves and ginger.",
    "Quietly, the cat crept toward the unsuspecting sparrow.",
    "The Pythagorean theorem relates the three sides of a right triangle.",
    "Is it true that the bridge was built in eighteen ninety two?",
    "Wow! That was the loudest thunderclap I have ever heard.",
    "Hold the button down for three seconds, then release it.",
    "Every Wednesday the bakery sells warm rhubarb crumble.",
    "The pilot announced a short delay because of heavy fog.",
    "Gloves, scarves and boots were piled high by the door.",
    "Photosynthesis turns sunlight, water and air into sugar.",
    "Don't forget to water the ferns while I'm away.",
    "The choir rehearsed the chorus until it sounded smooth.",
    "Exactly how much does a kilogram of cherries cost here?",
    "Thick clouds rolled in, and the oak trees began to sway.",
    "Press star to repeat this menu, or pound to return.",
    "An unusual owl was perched on the chimney all night.",
    "Jagged rocks lined the shore beneath the crumbling cliff.",
    "The first, second and third prizes went to the same family.",
    "Vera measured the voltage with a cheap but reliable meter.",
    "Why would anyone leave a perfectly good sandwich on the bus?",
    "Soft rain drummed on the tin roof of the workshop.",
)

ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


class CorpusError(RuntimeError):
    """A source that cannot be built (missing package, failed decoder); says how to fix it."""


@dataclass(frozen=True)
class Clip:
    """One utterance of the corpus."""

    identifier: str
    text: str
    normalized: str
    speaker: str
    source: str
    seconds: float


# ---------------------------------------------------------------------------- text
def spell_number(number: int) -> str:
    """English words for 0 <= number < 1,000,000."""
    if number < 20:
        return ONES[number]
    if number < 100:
        tens, ones = divmod(number, 10)
        return TENS[tens] + (f" {ONES[ones]}" if ones else "")
    if number < 1000:
        hundreds, rest = divmod(number, 100)
        return f"{ONES[hundreds]} hundred" + (f" {spell_number(rest)}" if rest else "")
    thousands, rest = divmod(number, 1000)
    return f"{spell_number(thousands)} thousand" + (f" {spell_number(rest)}" if rest else "")


def normalize_text(text: str) -> str:
    """Drop ``[..]``/``(..)`` notes, spell out numbers and keypad symbols, collapse spaces."""
    text = re.sub(r"\[[^\]]*\]|\([^)]*\)", " ", text)
    text = re.sub(r"\d+", lambda match: f" {spell_number(int(match.group()))} ", text)
    for symbol, word in (("#", " pound "), ("*", " star "), ("&", " and "), ("%", " percent ")):
        text = text.replace(symbol, word)
    text = re.sub(r"\s+([.,;:?!])", r"\1", text)
    return re.sub(r"\s+", " ", text).strip()


def read_asterisk_transcripts(path: Path = ASTERISK_TRANSCRIPTS) -> dict[str, str]:
    """``name: text`` lines of ``core-sounds-en.txt.gz`` (``;`` comments skipped)."""
    transcripts = {}
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            name, separator, text = line.partition(":")
            if separator and not line.startswith(";") and name.strip():
                transcripts[name.strip()] = text.strip()
    return transcripts


def is_speech(text: str) -> bool:
    """Transcripts in brackets or parentheses (``[ascending tones]``, ``(1 second of silence)``)
    describe sounds that are not speech."""
    return bool(text) and not text.startswith(("[", "("))


# ---------------------------------------------------------------------------- sources
def require(condition: bool, package: str, what: str) -> None:
    if not condition:
        raise CorpusError(
            f"{what} is missing: install the Debian package {package} "
            f"(apt-get install -y {package})"
        )


def check_source(source: str) -> None:
    """Raise :class:`CorpusError` naming the Debian package a source lacks."""
    if source == "asterisk":
        require(ASTERISK_SOUNDS.is_dir(), "asterisk-core-sounds-en-g722", f"{ASTERISK_SOUNDS}")
        require(
            ASTERISK_TRANSCRIPTS.is_file(), "asterisk-core-sounds-en", f"{ASTERISK_TRANSCRIPTS}"
        )
        require(shutil.which("ffmpeg") is not None, "ffmpeg", "the ffmpeg program")
    elif source == "festival":
        require(shutil.which("text2wave") is not None, "festival", "festival's text2wave program")
        require(FESTIVAL_VOICE_DIR.is_dir(), "festvox-us-slt-hts", f"the voice {FESTIVAL_VOICE}")
    elif source == "espeak":
        require(shutil.which("espeak-ng") is not None, "espeak-ng", "the espeak-ng program")
    else:
        raise CorpusError(f"unknown source {source!r}; choose from {', '.join(SOURCES)}")


def asterisk_clips(output: Path, progress: bool) -> Iterator[Clip]:
    """Decode, resample and write every spoken Asterisk prompt."""
    transcripts = read_asterisk_transcripts()
    files = sorted(ASTERISK_SOUNDS.rglob("*.g722"))
    for path in tqdm(files, desc="asterisk", disable=not progress):
        name = path.relative_to(ASTERISK_SOUNDS).with_suffix("").as_posix()
        text = transcripts.get(name, "")
        if not is_speech(text):
            continue
        audio = resample(decode_g722(path), ASTERISK_RATE)
        identifier = asterisk_identifier(name)
        save_wav(output / "wavs" / f"{identifier}.wav", audio, RATE)
        yield Clip(identifier, text, normalize_text(text), "allison", "asterisk", audio.size / RATE)


def asterisk_identifier(name: str) -> str:
    """``digits/10`` -> ``asterisk_digits_10``; held-out names keep their spelling."""
    return "asterisk_" + name.replace("/", "_")


def decode_g722(path: Path) -> np.ndarray:
    """16 kHz float32 samples of a raw G.722 file (ffmpeg's ``g722`` demuxer)."""
    command = ["ffmpeg", "-v", "error", "-f", "g722", "-i", str(path)]
    command += ["-f", "s16le", "-ac", "1", "-ar", str(ASTERISK_RATE), "-"]
    result = subprocess.run(command, capture_output=True, check=False)
    if result.returncode != 0 or not result.stdout:
        message = result.stderr.decode(errors="replace").strip() or "no audio decoded"
        raise CorpusError(f"{path}: ffmpeg could not decode it ({message})")
    return np.frombuffer(result.stdout, dtype="<i2").astype(np.float32) / 32768.0


def festival_clips(output: Path, sentences: Sequence[str], progress: bool) -> Iterator[Clip]:
    """The festival HTS voice (``cmu_us_slt_arctic_hts``) reading ``sentences``."""
    for number, sentence in enumerate(tqdm(sentences, desc="festival", disable=not progress), 1):
        with tempfile.TemporaryDirectory() as folder:
            text_file, wav_file = Path(folder) / "text.txt", Path(folder) / "out.wav"
            text_file.write_text(sentence + "\n", encoding="utf-8")
            command = ["text2wave", "-eval", f"(voice_{FESTIVAL_VOICE})", "-o", str(wav_file)]
            run_synthesizer([*command, str(text_file)], "text2wave", wav_file)
            audio = read_resampled(wav_file)
        identifier = f"slt_{number:04d}"
        save_wav(output / "wavs" / f"{identifier}.wav", audio, RATE)
        yield Clip(
            identifier, sentence, normalize_text(sentence), "slt", "festival", audio.size / RATE
        )


def espeak_clips(
    output: Path, sentences: Sequence[str], voices: Sequence[str], progress: bool
) -> Iterator[Clip]:
    """Every ``espeak-ng`` voice in ``voices`` reading every sentence."""
    jobs = [(voice, number, s) for voice in voices for number, s in enumerate(sentences, 1)]
    for voice, number, sentence in tqdm(jobs, desc="espeak", disable=not progress):
        with tempfile.TemporaryDirectory() as folder:
            wav_file = Path(folder) / "out.wav"
            command = ["espeak-ng", "-v", voice, "-w", str(wav_file), sentence]
            run_synthesizer(command, "espeak-ng", wav_file)
            audio = read_resampled(wav_file)
        speaker = "espeak-" + re.sub(r"[^a-z0-9]+", "-", voice.lower())
        identifier = f"{speaker}_{number:04d}"
        save_wav(output / "wavs" / f"{identifier}.wav", audio, RATE)
        yield Clip(
            identifier, sentence, normalize_text(sentence), speaker, "espeak", audio.size / RATE
        )


def run_synthesizer(command: Sequence[str], program: str, wav_file: Path) -> None:
    result = subprocess.run(command, capture_output=True, check=False)
    if result.returncode != 0 or not wav_file.is_file() or wav_file.stat().st_size <= 44:
        message = result.stderr.decode(errors="replace").strip() or "no audio written"
        raise CorpusError(f"{program} failed on {command[-1]!r}: {message}")


def read_resampled(path: Path) -> np.ndarray:
    audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return resample(audio.mean(axis=1), rate)


def resample(audio: np.ndarray, rate: int) -> np.ndarray:
    if rate == RATE:
        return audio.astype(np.float32)
    return soxr.resample(audio, rate, RATE, quality="HQ").astype(np.float32)


# ---------------------------------------------------------------------------- corpus
def build_corpus(
    output: Path,
    sources: Sequence[str] = SOURCES,
    sentences: Sequence[str] = SENTENCES,
    espeak_voices: Sequence[str] = ESPEAK_VOICES,
    progress: bool = True,
) -> list[Clip]:
    """Write every source's clips, then ``metadata.csv``, the filelists and ``README.md``."""
    for source in sources:
        check_source(source)  # every prerequisite before the first file is written
    output.mkdir(parents=True, exist_ok=True)
    clips: list[Clip] = []
    if "asterisk" in sources:
        clips += asterisk_clips(output, progress)
    if "festival" in sources:
        clips += festival_clips(output, sentences, progress)
    if "espeak" in sources:
        clips += espeak_clips(output, sentences, espeak_voices, progress)
    write_metadata(output, clips)
    return clips


def write_metadata(output: Path, clips: Sequence[Clip]) -> None:
    held_out = {asterisk_identifier(name) for name in HELD_OUT}
    write_text(
        output / "metadata.csv",
        "".join(f"{c.identifier}|{flat(c.text)}|{flat(c.normalized)}\n" for c in clips),
    )
    lines = {
        c.identifier: f"wavs/{c.identifier}.wav|{flat(c.normalized)}|{c.speaker}\n" for c in clips
    }
    write_text(output / "train.txt", "".join(v for k, v in lines.items() if k not in held_out))
    write_text(output / "heldout.txt", "".join(v for k, v in lines.items() if k in held_out))
    write_text(output / "README.md", corpus_readme(clips, held_out))


def flat(text: str) -> str:
    """One metadata field: no line breaks, no ``|``."""
    return re.sub(r"\s+", " ", text.replace("|", " ")).strip()


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def source_figures(clips: Sequence[Clip]) -> dict[str, tuple[int, float]]:
    """Source -> (clips, minutes)."""
    figures: dict[str, tuple[int, float]] = {}
    for clip in clips:
        count, seconds = figures.get(clip.source, (0, 0.0))
        figures[clip.source] = (count + 1, seconds + clip.seconds)
    return {source: (count, seconds / 60) for source, (count, seconds) in figures.items()}


LICENCES = {
    "asterisk": (
        "Asterisk core sound prompts, English (Debian packages asterisk-core-sounds-en-g722 and "
        "asterisk-core-sounds-en for the transcripts). Recorded by Allison Smith; financial "
        "contributions by Digium, Inc. Licence: Creative Commons Attribution-ShareAlike 3.0 "
        "(CC-BY-SA-3.0). Decoded from 16 kHz G.722 and resampled to 22050 Hz; tones and "
        "silences left out. Anything made from these clips is shared under CC-BY-SA-3.0."
    ),
    "festival": (
        "Synthesized by the Festival Speech Synthesis System with the HTS voice "
        "cmu_us_slt_arctic_hts (Debian package festvox-us-slt-hts; voice (c) 2003 Carnegie "
        "Mellon University, licence EST-2003, a BSD-style licence permitting free use and "
        "redistribution with its notice; speaker SLT of the CMU ARCTIC databases). The sentences "
        "were written for this project (BSD-3-Clause)."
    ),
    "espeak": (
        "Synthesized by eSpeak NG (Debian package espeak-ng, GPL-3.0-or-later; the speech it "
        "outputs is not covered by the program's licence). The sentences were written for this "
        "project (BSD-3-Clause)."
    ),
}


def corpus_readme(clips: Sequence[Clip], held_out: set[str]) -> str:
    figures = source_figures(clips)
    table = ["| source | clips | minutes |", "|---|---|---|"]
    table += [
        f"| {source} | {count} | {minutes:.1f} |" for source, (count, minutes) in figures.items()
    ]
    speakers = sorted({clip.speaker for clip in clips})
    licences = [f"- **{source}**: {LICENCES[source]}" for source in figures]
    held = sorted(
        identifier for identifier in held_out if identifier in {c.identifier for c in clips}
    )
    return "\n".join(
        [
            "# Speech corpus (LJ Speech layout, 22050 Hz, 16-bit mono)",
            "",
            "Built by `recipes/build_corpus.py` of the waveglow project from Debian packages.",
            "`metadata.csv` holds `id|text|normalized text`; audio is `wavs/ID.wav`. `train.txt`",
            "and `heldout.txt` list `wavs/ID.wav|normalized text|speaker`; the held-out clips are",
            "for evaluation only and are never trained on.",
            "",
            *table,
            "",
            f"Speakers: {', '.join(speakers)}.",
            "",
            "## Sources, licences and attributions",
            "",
            *licences,
            "",
            f"## Held out ({len(held)})",
            "",
            ", ".join(held) if held else "(none: the asterisk source was not built)",
            "",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", "-o", type=Path, required=True, help="corpus folder")
    parser.add_argument(
        "--sources",
        default=",".join(SOURCES),
        help=f"comma-separated subset of {','.join(SOURCES)} (default: all)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    arguments = parser.parse_args(argv)
    sources = [name.strip() for name in arguments.sources.split(",") if name.strip()]
    try:
        clips = build_corpus(arguments.output, sources, progress=not arguments.quiet)
    except CorpusError as error:
        print(f"build_corpus: {error}", file=sys.stderr)
        return 1
    for source, (count, minutes) in source_figures(clips).items():
        print(f"{source}: {count} clips, {minutes:.1f} minutes")
    print(f"wrote {arguments.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
