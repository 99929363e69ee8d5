"""A taught tag saved as an Essentia-format head, so new files get it from the pipeline.

`save_head` writes `<tag>-<backbone>.pb` (a frozen graph made by teach/export.py in a
child process: TensorFlow cannot share a process with Essentia) and its `.json`
sidecar in the zoo's schema (TensorflowPredict2D on the backbone's embeddings,
classes `<tag>` and `non_<tag>`) into the models folder (NOMARR_MODELS_DIR), then
tells every worker to reload its models (tagging.jobs.refresh_models). The catalog
finds it as it finds a zoo head; the file can be copied to another Nomarr.

Installing a head changes the model set's fingerprint (it covers every head): files
tagged before are re-tagged when queued again, and their stored embeddings count as
another model set's until they are heard again (`manage.py embed`). So saving is a
step of its own, after the tag was written into the files.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from django.conf import settings

from nomarr_site.atomic import write_atomically
from tagging import catalog, jobs
from teach import export
from teach.learning import TeachError, current_coefficients, head_stem, labels
from teach.models import TaughtTag

#: Seconds the conversion (a TensorFlow start) may take.
EXPORT_TIMEOUT = 300


def sidecar(tag: TaughtTag, dims: int) -> dict:
    """The Essentia sidecar of a taught tag's head."""
    backbone = next(
        (b for b in catalog.current_catalog().backbones if b.stem == tag.backbone), None
    )
    algorithm = backbone.algorithm if backbone else "TensorflowPredictMusiCNN"
    rate = backbone.sample_rate if backbone else 16000
    return {
        "name": tag.name,
        "type": "taught classifier",
        "version": "1",
        "description": tag.description or f"{tag.name}, taught to Nomarr by example",
        "author": getattr(tag.created_by, "username", "") or "nomarr",
        "release_date": (tag.trained_at.date().isoformat() if tag.trained_at else ""),
        "framework": "tensorflow",
        "classes": labels(tag.name),
        "model_types": ["frozen_model"],
        "dataset": {
            "name": "the library's own examples",
            "size": tag.positives + tag.negatives,
            "metrics": {
                "cv_accuracy": tag.cv_accuracy,
                "cv_balanced_accuracy": tag.cv_balanced_accuracy,
                "cv_folds": tag.cv_folds,
            },
        },
        "schema": {
            "inputs": [{"name": export.INPUT, "type": "float", "shape": ["batch_size", dims]}],
            "outputs": [
                {
                    "name": export.PREDICTIONS,
                    "type": "float",
                    "shape": ["batch_size", 2],
                    "op": "Softmax",
                    "output_purpose": "predictions",
                },
                {
                    "name": export.LOGITS,
                    "type": "float",
                    "shape": ["batch_size", 2],
                    "op": "fully connected",
                    "output_purpose": "logits",
                },
            ],
        },
        "inference": {
            "sample_rate": rate,
            "algorithm": "TensorflowPredict2D",
            "embedding_model": {"algorithm": algorithm, "model_name": tag.backbone},
        },
        "nomarr": {
            "taught": True,
            "positives": tag.positives,
            "negatives": tag.negatives,
            "trained_on": "track-mean embeddings; the pipeline averages per-patch outputs",
        },
    }


def save_head(tag: TaughtTag, out_dir: Path | None = None) -> Path:
    """Write the tag's head into the models folder and reload the models; its .pb path.

    Raises TeachError: not trained in the current space, another model has its file
    name, the folder cannot be written, the conversion failed (nothing is left)."""
    weights, bias = current_coefficients(tag)
    out_dir = Path(out_dir or settings.NOMARR_MODELS_DIR)
    stem = head_stem(tag.name, tag.backbone)
    pb, js = out_dir / f"{stem}.pb", out_dir / f"{stem}.json"
    others = [
        folder / f"{stem}.pb"
        for folder in settings.NOMARR_MODELS_DIRS
        if (folder / f"{stem}.pb").exists() and folder / f"{stem}.pb" != pb
    ]
    if others:
        raise TeachError(f"another model is already named {stem}: {others[0]}")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TeachError(f"cannot make the models folder {out_dir}: {exc}") from None
    with tempfile.TemporaryDirectory(prefix="nomarr-teach-") as work:
        npz = Path(work) / "weights.npz"
        np.savez(npz, weights=weights, bias=np.float64(bias))
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "teach.export", str(npz), str(pb)],
                cwd=settings.BASE_DIR,
                capture_output=True,
                text=True,
                timeout=EXPORT_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            raise TeachError(f"the conversion took longer than {EXPORT_TIMEOUT} s") from None
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-3:])
        raise TeachError(f"the conversion failed: {tail}")
    try:
        # The .pb first: a model counts as installed once its sidecar is there.
        write_atomically(js, json.dumps(sidecar(tag, len(weights)), indent=2).encode())
    except OSError as exc:
        pb.unlink(missing_ok=True)
        raise TeachError(f"cannot write {js}: {exc}") from None
    tag.head_path = str(pb)
    tag.save(update_fields=["head_path"])
    jobs.refresh_models()
    return pb
