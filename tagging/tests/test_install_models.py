"""install_models: real musicnn checkpoints become Essentia models that match Essentia's own."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command

from nomarr_site.atomic import write_atomically
from tagging import convert, runtime

REFERENCE = (
    Path(__file__).resolve().parents[2].parent / "shared/fixtures/reference/msd-musicnn-1_joram.npz"
)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """Run the real command once into an empty folder."""
    from django.conf import settings

    out = tmp_path_factory.mktemp("models")
    old = settings.NOMARR_MODELS_DIR
    settings.NOMARR_MODELS_DIR = out
    try:
        call_command("install_models")
    finally:
        settings.NOMARR_MODELS_DIR = old
    return out


def test_it_writes_both_backbones_with_their_sidecars(installed):
    names = sorted(p.name for p in installed.iterdir())
    assert names == [
        "msd-musicnn-1.json",
        "msd-musicnn-1.pb",
        "mtt-musicnn-1.json",
        "mtt-musicnn-1.pb",
    ]
    for stem, labels in (
        ("msd-musicnn-1", convert.MSD_LABELS),
        ("mtt-musicnn-1", convert.MTT_LABELS),
    ):
        sidecar = json.loads((installed / f"{stem}.json").read_text())
        assert sidecar["classes"] == labels and len(labels) == 50
        assert sidecar["schema"]["inputs"] == [
            {"name": "model/Placeholder", "type": "float", "shape": [187, 96]}
        ]
        outputs = {o["output_purpose"]: o for o in sidecar["schema"]["outputs"]}
        assert outputs["predictions"]["name"] == "model/Sigmoid"
        assert outputs["embeddings"]["name"] == "model/dense/BiasAdd"
        assert outputs["embeddings"]["shape"][-1] == 200
        assert sidecar["inference"] == {
            "sample_rate": 16000,
            "algorithm": "TensorflowPredictMusiCNN",
        }
    assert convert.MSD_LABELS[:3] == ["rock", "pop", "alternative"]
    assert convert.MTT_LABELS[:3] == ["guitar", "classical", "slow"]


def test_the_converted_graph_matches_essentias_reference_outputs(installed):
    reference = np.load(REFERENCE)
    es = runtime.essentia_standard()
    predict = es.TensorflowPredict(
        graphFilename=str(installed / "msd-musicnn-1.pb"),
        inputs=["model/Placeholder"],
        outputs=["model/Sigmoid", "model/dense/BiasAdd"],
    )
    pool = runtime.essentia().Pool()
    pool.set("model/Placeholder", reference["melspectrogram"].astype(np.float32)[:, None])
    out = predict(pool)
    activations = np.asarray(out["model/Sigmoid"]).reshape(9, 50)
    embeddings = np.asarray(out["model/dense/BiasAdd"]).reshape(9, 200)
    assert np.abs(activations - reference["activations"]).max() < 1e-4
    assert np.abs(embeddings - reference["embeddings"]).max() < 1e-4


def test_running_it_twice_changes_nothing(installed):
    before = {p.name: p.stat().st_mtime_ns for p in installed.iterdir()}
    from django.conf import settings

    old = settings.NOMARR_MODELS_DIR
    settings.NOMARR_MODELS_DIR = installed
    try:
        call_command("install_models")
    finally:
        settings.NOMARR_MODELS_DIR = old
    assert {p.name: p.stat().st_mtime_ns for p in installed.iterdir()} == before


def test_a_failed_write_leaves_no_model_and_no_temp_file(tmp_path, monkeypatch):
    target = tmp_path / "msd-musicnn-1.pb"

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError):
        write_atomically(target, b"x" * 1000)
    assert list(tmp_path.iterdir()) == []
