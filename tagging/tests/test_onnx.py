"""The onnxruntime engine: ONNX twins of Essentia's files, made once, equal to Essentia's outputs.

The suite's own catalog (get_catalog) runs on the twins in the data folder's cache,
made by the first process that needed them; the tests that make twins do it into
their own folders, with a copy of a head (tf2onnx in a child process: seconds).
"""

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings

from tagging import keys, onnx, runtime, tagfiles
from tagging.catalog import attach_twins, discover, get_catalog
from tagging.pipeline import analyse, tag_file

SHARED = Path(settings.SHARED_DIR)
JORAM = SHARED / "fixtures/audio/joram-moments_of_clarity-08-solipsism-59-88.mp3"
REFERENCE = SHARED / "fixtures/reference/msd-musicnn-1_joram.npz"
HEADS = Path(settings.FIXTURE_MODELS_DIR)
BACKBONES = settings.NOMARR_MODELS_DIR
MOOD = settings.NOMARR_MOOD_HEADS


def _msd(catalog):
    return next(b for b in catalog.backbones if b.stem == "msd-musicnn-1")


def _happy(catalog):
    return next(h for h in catalog.heads if h.stem == "mood_happy-msd-musicnn-1")


@pytest.fixture
def one_head(tmp_path):
    """A models folder with msd-musicnn-1 and a copy of one zoo head, and a cache
    folder that already holds the backbone's twin (so only the head is converted)."""
    models, cache = tmp_path / "models", tmp_path / "cache"
    models.mkdir()
    cache.mkdir()
    for suffix in (".pb", ".json"):
        shutil.copy(BACKBONES / f"msd-musicnn-1{suffix}", models)
        shutil.copy(HEADS / f"mood_happy-msd-musicnn-1{suffix}", models)
    backbone_twin = _msd(get_catalog()).onnx
    assert backbone_twin is not None, "the suite's catalog runs msd-musicnn-1 on onnxruntime"
    shutil.copy(backbone_twin, cache)
    return models, cache


def test_every_model_of_the_default_set_runs_on_onnxruntime():
    catalog = get_catalog()
    assert settings.NOMARR_ENGINE == "onnx"
    assert all(b.onnx is not None for b in catalog.backbones if b.is_musicnn)
    assert all(h.onnx is not None for h in catalog.heads if h.graph is not None)


def test_the_backbone_on_onnxruntime_gives_essentias_reference_outputs():
    reference = np.load(REFERENCE)
    msd = _msd(get_catalog())
    out = msd.run_patches(reference["melspectrogram"], 4)  # 9 patches: the last batch padded
    assert np.abs(out[msd.embeddings_output] - reference["embeddings"]).max() < 1e-4
    assert np.abs(out[msd.predictions_output] - reference["activations"]).max() < 1e-4


def test_each_head_on_onnxruntime_gives_what_essentias_own_algorithm_gives():
    embeddings = np.load(REFERENCE)["embeddings"].astype(np.float32)
    es = runtime.essentia_standard()
    heads = [h for h in get_catalog().heads if h.graph is not None]
    assert len(heads) == 9
    for head in heads:
        theirs = es.TensorflowPredict2D(
            graphFilename=str(head.graph), input=head.input_name, output=head.output_name
        )(embeddings)
        assert np.abs(head.predict(embeddings) - np.asarray(theirs)).max() < 1e-4, head.stem


def test_a_twin_is_made_once_and_then_reused(one_head, caplog):
    models, cache = one_head
    with caplog.at_level(logging.INFO, logger="tagging.catalog"):
        first = discover([models], MOOD)
        assert attach_twins(first, cache) == []
    made = [r.message for r in caplog.records if "made the ONNX twins" in r.message]
    assert made and "mood_happy-msd-musicnn-1" in made[0] and "msd-musicnn-1," not in made[0]
    head = _happy(first)
    assert head.onnx is not None
    digest = onnx.sha256(models / "mood_happy-msd-musicnn-1.pb")
    assert head.onnx == cache / f"mood_happy-msd-musicnn-1.{digest[:16]}.onnx"
    stamp = head.onnx.stat().st_mtime_ns

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="tagging.catalog"):
        again = discover([models], MOOD)
        assert attach_twins(again, cache) == []
    assert _happy(again).onnx == head.onnx
    assert head.onnx.stat().st_mtime_ns == stamp  # not written again
    assert not [r for r in caplog.records if "made the ONNX twins" in r.message]
    # And the twin gives what Essentia gives on the same embeddings.
    embeddings = np.load(REFERENCE)["embeddings"].astype(np.float32)
    essentia = _happy(discover([models], MOOD))  # no twin attached: Essentia runs it
    assert essentia.onnx is None
    assert np.abs(_happy(again).predict(embeddings) - essentia.predict(embeddings)).max() < 1e-4


def test_a_model_whose_twin_cannot_be_made_runs_on_essentia_and_says_so(one_head, caplog):
    models, cache = one_head
    shutil.copy(cache / _msd(get_catalog()).onnx.name, models)  # the backbone's twin beside it
    blocked = cache.parent / "not-a-folder"
    blocked.write_text("a file where the cache folder should be")
    catalog = discover([models], MOOD)
    with caplog.at_level(logging.INFO, logger="tagging.catalog"):
        left = attach_twins(catalog, blocked)
    assert left == ["mood_happy-msd-musicnn-1"]
    warnings = [r.message for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "no ONNX twin for mood_happy-msd-musicnn-1" in warnings[0]
    assert "run on Essentia" in warnings[0]
    head = _happy(catalog)
    assert head.onnx is None and _msd(catalog).onnx is not None  # the backbone found its twin
    embeddings = np.load(REFERENCE)["embeddings"].astype(np.float32)
    scores = head.predict(embeddings)  # on Essentia
    assert scores.shape == (9, 2) and np.allclose(scores.sum(axis=1), 1, atol=1e-4)


def test_tags_written_by_the_onnx_engine_carry_the_essentia_engines_tiers(make_audio):
    track = make_audio("flac")
    essentia = discover(settings.NOMARR_MODELS_DIRS, MOOD)  # no twins: Essentia runs all
    assert all(b.onnx is None for b in essentia.backbones)
    theirs = analyse(track, essentia)
    result = tag_file(track)  # the process's catalog: onnxruntime
    assert result.status == "tagged", result.error
    written = tagfiles.read_tags(track, keys.namespace())
    tiered = [score for score in theirs.scores if score.tier is not None]
    assert len(tiered) == 18
    for score in tiered:
        assert written[keys.tier_key(score.model, score.label)] == [score.tier], score
    for score in theirs.scores:  # the same scores, as written (three decimals)
        mine = float(written[keys.score_key(score.model, score.label)][0])
        assert abs(mine - score.score) <= 0.0015, score
    for name in ("strict", "regular", "loose"):
        key = keys.mood_set_key(name)
        assert written.get(key, []) == theirs.tags.get(key, []), key


def test_the_log_says_once_which_device_runs_the_models(caplog, monkeypatch):
    import onnxruntime

    head = _happy(get_catalog())
    monkeypatch.setattr(runtime, "_device_said", None)  # as in a fresh process
    with caplog.at_level(logging.INFO, logger="tagging.runtime"):
        for _ in range(3):
            runtime.onnx_session(head.onnx, 1)
    said = [r.message for r in caplog.records if "runs the models on the" in r.message]
    # No GPU and no onnxruntime-gpu here: the CPU, said once.
    assert "CUDAExecutionProvider" not in onnxruntime.get_available_providers()
    version = onnxruntime.__version__
    assert said == [
        f"onnxruntime {version} runs the models on the CPU (1 intra-op thread per model)"
    ]
