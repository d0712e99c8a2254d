"""recipes/build_corpus.py: an espeak-only mini corpus in the LJ Speech layout."""

from __future__ import annotations

import shutil

import pytest
import soundfile

from conftest import load_recipe


def test_normalize_text_spells_numbers_and_keys():
    recipe = load_recipe("build_corpus")
    assert recipe.normalize_text("Press 1, then #.") == "Press one, then pound."
    assert recipe.normalize_text("Hang up. (simple tone sound plays)") == "Hang up."
    assert recipe.normalize_text("at [@]") == "at"
    assert not recipe.is_speech("(1 second of silence)")
    assert not recipe.is_speech("[ascending tones]")
    assert recipe.is_speech("Goodbye.")
    assert recipe.spell_number(2047) == "two thousand forty seven"
    assert recipe.spell_number(310) == "three hundred ten"


def test_missing_package_names_the_apt_command(monkeypatch, tmp_path):
    recipe = load_recipe("build_corpus")
    monkeypatch.setattr(recipe.shutil, "which", lambda name: None)
    with pytest.raises(recipe.CorpusError, match=r"apt-get install -y espeak-ng"):
        recipe.build_corpus(tmp_path / "corpus", ["espeak"], progress=False)
    assert not (tmp_path / "corpus" / "metadata.csv").exists()
    with pytest.raises(recipe.CorpusError, match="unknown source 'nope'"):
        recipe.build_corpus(tmp_path / "corpus", ["nope"], progress=False)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_espeak_mini_corpus(tmp_path):
    recipe = load_recipe("build_corpus")
    sentences = recipe.SENTENCES[:3]
    output = tmp_path / "corpus"
    clips = recipe.build_corpus(output, ["espeak"], sentences, ["en-us"], progress=False)
    assert len(clips) == 3
    lines = (output / "metadata.csv").read_text().splitlines()
    assert [line.split("|")[0] for line in lines] == [c.identifier for c in clips]
    assert all(len(line.split("|")) == 3 for line in lines)
    for clip in clips:
        info = soundfile.info(output / "wavs" / f"{clip.identifier}.wav")
        assert (info.samplerate, info.channels, info.subtype) == (22050, 1, "PCM_16")
        assert info.duration > 0.5
    assert len((output / "train.txt").read_text().splitlines()) == 3
    assert (output / "heldout.txt").read_text() == ""
    readme = (output / "README.md").read_text()
    assert "eSpeak NG" in readme and "| espeak | 3 |" in readme
