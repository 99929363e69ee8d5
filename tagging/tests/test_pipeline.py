"""The pipeline: real audio through real models to scores, tiers, mood sets and keys."""

import subprocess
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings

from tagging.catalog import Head, get_catalog
from tagging.keys import label_keys, mood_set_key, score_key, tier_key, version_key
from tagging.pipeline import TooShort, analyse, cut_patches, decode, describe, musicnn_mel

SHARED = Path(settings.SHARED_DIR)
JORAM = SHARED / "fixtures/audio/joram-moments_of_clarity-08-solipsism-59-88.mp3"
GUITAR = SHARED / "fixtures/audio/TRWJAZW128F42760DD_test.mp3"
REFERENCE = SHARED / "fixtures/reference/msd-musicnn-1_joram.npz"


def _head(stem: str, labels: list[str], mood: bool = True) -> Head:
    return Head(
        stem=stem, labels=labels, backbone="msd-musicnn-1", graph=Path("x.pb"), is_mood=mood
    )


def test_mood_sets_nest_and_contradictions_cancel():
    analysis = describe(
        [
            (_head("mood_happy-msd-musicnn-1", ["happy", "non_happy"]), np.array([0.9, 0.1])),
            (_head("mood_sad-msd-musicnn-1", ["non_sad", "sad"]), np.array([0.3, 0.7])),
            (
                _head("mood_relaxed-msd-musicnn-1", ["non_relaxed", "relaxed"]),
                np.array([0.22, 0.78]),
            ),
            (
                _head("danceability-msd-musicnn-1", ["danceable", "not_danceable"]),
                np.array([0.05, 0.95]),
            ),
            (_head("gender-msd-musicnn-1", ["female", "male"], mood=False), np.array([0.95, 0.05])),
        ],
        "nom",
        "nomarr1-test",
    )
    tags = analysis.tags
    # happy is high, sad only low: they meet (and cancel) in the loose set alone.
    assert tags[mood_set_key("strict")] == ["happy"]
    assert tags[mood_set_key("regular")] == ["happy", "relaxed"]
    assert tags[mood_set_key("loose")] == ["relaxed"]
    # A negation (not_danceable, high) never becomes a mood word; gender is no mood.
    assert all(
        "danceable" not in tags[k] and "female" not in tags[k]
        for k in map(mood_set_key, ("strict", "regular", "loose"))
    )
    assert analysis.moods == ["happy", "relaxed"]
    assert tags[tier_key("danceability-msd-musicnn-1", "not_danceable")] == ["high"]
    assert tags[score_key("mood_happy-msd-musicnn-1", "happy")] == ["0.900"]
    assert tags[version_key()] == ["nomarr1-test"]


def test_keys_are_distinct_lowercase_and_name_their_model():
    catalog = get_catalog()
    keys = []
    for head in catalog.heads:
        keys += label_keys(head.stem, head.labels, "nom")
    assert len(keys) == len(set(keys)) == 100 + 18
    assert all(k == k.lower() and k.replace("_", "").isalnum() for k in keys)
    assert score_key("msd-musicnn-1", "happy", "nom") in keys
    assert score_key("mood_happy-msd-musicnn-1", "happy", "nom") in keys
    assert score_key("msd-musicnn-1", "hip-hop", "nom") in keys


def test_decoding_and_the_mel_frontend_match_essentias_reference():
    reference = np.load(REFERENCE)["melspectrogram"].reshape(-1, 96)
    mel = musicnn_mel(decode(JORAM, 16000))
    # The reference frames start at sample 0; Essentia's model centres its first frame
    # there, so the reference's frame k is our frame k + 1.
    assert np.abs(mel[1 : 1 + len(reference)] - reference).max() < 0.01


@pytest.mark.parametrize("clip", [GUITAR, JORAM])
def test_each_patch_gives_what_essentias_own_musicnn_algorithm_gives(clip):
    from tagging import runtime

    catalog = get_catalog()
    msd = next(b for b in catalog.backbones if b.stem == "msd-musicnn-1")
    es = runtime.essentia_standard()
    # The same samples into both (decoding is compared on its own below).
    audio = es.MonoLoader(filename=str(clip), sampleRate=16000)()
    ours = msd.run_patches(cut_patches(musicnn_mel(audio), 93), 64)[msd.embeddings_output]
    essentia = es.TensorflowPredictMusiCNN(
        graphFilename=str(msd.graph), output=msd.embeddings_output
    )(audio)
    # Same patches (ours adds one aligned to the end of the track).
    assert len(ours) == len(essentia) + 1
    assert np.abs(ours[: len(essentia)] - essentia).max() < 1e-4


def test_a_stereo_file_is_mixed_down_as_essentia_does(tmp_path):
    from tagging import runtime

    stereo = tmp_path / "stereo.flac"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(JORAM), "-ac", "2", "-ar", "44100", str(stereo)],
        check=True,
    )
    ours = decode(stereo, 16000)
    essentia = runtime.essentia_standard().MonoLoader(filename=str(stereo), sampleRate=16000)()
    assert len(ours) == len(essentia)
    assert np.abs(ours - essentia).max() < 1e-4


def test_the_last_patch_reaches_the_end_of_the_track():
    mel = np.arange(500 * 96, dtype=np.float32).reshape(500, 96)
    patches = cut_patches(mel, 187)
    assert len(patches) == 3
    assert np.array_equal(patches[-1][-1], mel[-1])


def test_it_hears_an_instrumental_guitar_piece_as_instrumental_and_calm():
    analysis = analyse(GUITAR)
    scores = {(s.model, s.label): s for s in analysis.scores}
    assert len(scores) == 118
    assert all(0.0 <= s.score <= 1.0 for s in analysis.scores)
    assert scores[("voice_instrumental-msd-musicnn-1", "instrumental")].score > 0.8
    assert scores[("mood_aggressive-msd-musicnn-1", "aggressive")].score < 0.1
    assert scores[("danceability-msd-musicnn-1", "danceable")].score < 0.2
    assert "instrumental" in analysis.moods and "aggressive" not in analysis.moods
    msd = {s.label: s.score for s in analysis.scores if s.model == "msd-musicnn-1"}
    assert msd["acoustic"] > msd["metal"] and msd["guitar"] > msd["House"]
    assert 29 < analysis.duration < 31


def test_it_hears_the_electronic_clip_as_more_danceable_than_the_guitar_piece():
    electronic = {(s.model, s.label): s.score for s in analyse(JORAM).scores}
    guitar = {(s.model, s.label): s.score for s in analyse(GUITAR).scores}
    key = ("danceability-msd-musicnn-1", "danceable")
    assert electronic[key] > guitar[key] + 0.3
    assert electronic[("msd-musicnn-1", "electronic")] > guitar[("msd-musicnn-1", "electronic")]


def test_a_track_shorter_than_the_minimum_is_skipped(tmp_path):
    short = tmp_path / "short.flac"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(JORAM), "-t", "5", str(short)], check=True)
    with pytest.raises(TooShort, match=r"5\.0 s, shorter than the 7 s minimum"):
        analyse(short)
