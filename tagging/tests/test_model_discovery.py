"""Model discovery: sidecars decide what a model is; bad files are skipped with a reason."""

import json
import shutil
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

from tagging.catalog import discover, get_catalog, is_negation

HEADS = Path(settings.FIXTURE_MODELS_DIR)
BACKBONES = settings.NOMARR_MODELS_DIR
MOOD = settings.NOMARR_MOOD_HEADS


def link_model(
    src: Path, folder: Path, stem: str | None = None, sidecar: dict | None = None
) -> Path:
    """Place a model in folder (symlinked .pb, as a user's drop-in would be)."""
    stem = stem or src.stem
    pb = folder / f"{stem}.pb"
    pb.symlink_to(src)
    data = sidecar if sidecar is not None else json.loads(src.with_suffix(".json").read_text())
    (folder / f"{stem}.json").write_text(json.dumps(data))
    return pb


def test_it_finds_both_backbones_and_the_nine_heads():
    catalog = discover([BACKBONES, HEADS], MOOD)
    assert [b.stem for b in catalog.backbones] == ["msd-musicnn-1", "mtt-musicnn-1"]
    msd = catalog.backbones[0]
    file_heads = sorted(h.stem for h in msd.heads if h.graph is not None)
    assert len(file_heads) == 9 and "mood_sad-msd-musicnn-1" in file_heads
    own = [h for h in catalog.heads if h.graph is None]
    assert sorted(h.stem for h in own) == ["msd-musicnn-1", "mtt-musicnn-1"]
    assert all(len(h.labels) == 50 for h in own)
    assert catalog.skipped == []


def test_labels_come_from_the_sidecar_in_output_order_not_the_file_name(tmp_path):
    sad = json.loads((HEADS / "mood_sad-msd-musicnn-1.json").read_text())
    link_model(
        HEADS / "mood_sad-msd-musicnn-1.pb", tmp_path, stem="mood_happy-msd-musicnn-1", sidecar=sad
    )
    catalog = discover([BACKBONES, tmp_path], MOOD)
    head = next(h for h in catalog.heads if h.stem == "mood_happy-msd-musicnn-1")
    assert head.labels == ["non_sad", "sad"]
    voice = discover([BACKBONES, HEADS], MOOD)
    labels = {h.stem: h.labels for h in voice.heads}
    assert labels["voice_instrumental-msd-musicnn-1"] == ["instrumental", "voice"]


def test_negations_are_never_mood_words():
    assert is_negation("non_happy") and is_negation("not_danceable") and is_negation("non_party")
    assert (
        not is_negation("happy")
        and not is_negation("danceable")
        and not is_negation("instrumental")
    )


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("missing", "no sidecar"),
        ("corrupt", "not valid JSON"),
        ("no_classes", "no list of classes"),
        ("orphan", "backbone 'vgg-999' is not installed"),
        ("unknown", "unsupported inference.algorithm"),
    ],
)
def test_a_bad_model_is_skipped_with_a_reason_and_the_rest_still_load(tmp_path, case, reason):
    src = HEADS / "mood_party-msd-musicnn-1.pb"
    sidecar = json.loads(src.with_suffix(".json").read_text())
    pb = link_model(src, tmp_path, stem="broken-head")
    if case == "missing":
        pb.with_suffix(".json").unlink()
    elif case == "corrupt":
        pb.with_suffix(".json").write_text('{"name": "broken", "classes": [')
    elif case == "no_classes":
        del sidecar["classes"]
        pb.with_suffix(".json").write_text(json.dumps(sidecar))
    elif case == "orphan":
        sidecar["inference"]["embedding_model"]["model_name"] = "vgg-999"
        pb.with_suffix(".json").write_text(json.dumps(sidecar))
    elif case == "unknown":
        sidecar["inference"]["algorithm"] = "SomethingElse"
        pb.with_suffix(".json").write_text(json.dumps(sidecar))
    catalog = discover([BACKBONES, HEADS, tmp_path], MOOD)
    assert any(Path(p).name == "broken-head.pb" and reason in r for p, r in catalog.skipped)
    assert len(catalog.heads) == 11


def test_the_models_command_lists_loaded_and_skipped_models(tmp_path, settings):
    shutil.copy(HEADS / "gender-msd-musicnn-1.pb", tmp_path / "lonely.pb")
    settings.NOMARR_MODELS_DIRS = [BACKBONES, HEADS, tmp_path]
    from tagging import catalog as catalog_module

    catalog_module.refresh_catalog()
    try:
        out = StringIO()
        call_command("models", stdout=out)
    finally:
        settings.NOMARR_MODELS_DIRS = [BACKBONES, HEADS]
        catalog_module.refresh_catalog()
    text = out.getvalue()
    assert "backbone msd-musicnn-1 (TensorflowPredictMusiCNN)" in text
    assert "head mood_happy-msd-musicnn-1: 2 labels, mood [happy, non_happy]" in text
    assert "head gender-msd-musicnn-1: 2 labels [female, male]" in text
    assert f"skipped {tmp_path / 'lonely.pb'}: no sidecar lonely.json" in text


def test_models_load_once_per_process():
    assert get_catalog() is get_catalog()


def test_the_fingerprint_changes_when_the_model_set_changes(tmp_path):
    before = discover([BACKBONES, HEADS], MOOD).fingerprint
    assert before == discover([BACKBONES, HEADS], MOOD).fingerprint
    link_model(HEADS / "mood_party-msd-musicnn-1.pb", tmp_path, stem="mood_party2-msd-musicnn-1")
    assert discover([BACKBONES, HEADS, tmp_path], MOOD).fingerprint != before
