"""Storing what the backbones heard, and telling current embeddings from stale ones.

A tagging job's result carries each backbone's track-level embedding
(`tagging.pipeline.Embedding`: the mean over the patches, the spread and how many
patches were heard) and the model set's fingerprint. The library refreshes the
tagged file's rows and, inside that transaction, sends `library.signals.file_refreshed`
with the job's result; `store_on_refresh` stores the embeddings there, so a file's
rows and its embeddings are never out of step. `manage.py embed` stores through
`store` too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from django.db import transaction

from library.models import LibraryFile
from sonic.models import Generation, TrackEmbedding
from tagging import catalog


def current_model_set() -> str | None:
    """What embeddings are heard with now: the installed backbones and the patch hop
    (catalog.embedding_version), not the heads, so a head added, downloaded or taught
    leaves the stored embeddings valid; None when no backbone is installed."""
    return catalog.embedding_version()


def pack(mean: np.ndarray, spread: np.ndarray) -> bytes:
    """The stored form of an embedding: float32 little-endian, the mean then the spread."""
    return np.concatenate([mean, spread]).astype("<f4").tobytes()


def store(file: LibraryFile, model_set: str, embeddings: Mapping[str, Any]) -> int:
    """Replace the file's embeddings with these (backbone stem -> Embedding); how many.

    A replaced row is a new row with a new generation, so a search index learns of
    it as of any new row."""
    rows = [
        TrackEmbedding(
            file=file,
            backbone=stem,
            model_set=model_set,
            dims=len(heard.mean),
            vector=pack(np.asarray(heard.mean), np.asarray(heard.spread)),
            patches=heard.patches,
        )
        for stem, heard in embeddings.items()
        if np.all(np.isfinite(heard.mean)) and np.all(np.isfinite(heard.spread))
    ]
    with transaction.atomic():
        TrackEmbedding.objects.filter(file=file).delete()
        first = Generation.take(len(rows)) if rows else 0
        for offset, row in enumerate(rows):
            row.generation = first + offset
        TrackEmbedding.objects.bulk_create(rows)
    return len(rows)


def store_on_refresh(sender, file: LibraryFile, result: Any = None, **kwargs) -> None:
    """The receiver of library.signals.file_refreshed: the job's embeddings, stored in
    the refresh's transaction. A refresh without a result (a scan) stores nothing."""
    embeddings = getattr(result, "embeddings", None)
    model_set = getattr(result, "model_set", "")
    if embeddings and model_set:
        store(file, model_set, embeddings)
