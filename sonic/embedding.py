"""Embeddings for files analysed before sonic existed, or by another model set.

`missing()` is the truth of what is left (the files with no embedding of the current
model set), so `manage.py embed` resumes wherever it stopped. `embed_files` hears a
file with the models (tagging.pipeline.analyse: decoded once, each backbone once)
and stores the embeddings; it writes no tag.
"""

from __future__ import annotations

import logging

from django.db.models import QuerySet

from library.models import LibraryFile, LibraryRoot
from sonic.index import search_backbone
from sonic.storage import current_model_set, store
from tagging import pipeline
from tagging.boundary import OutsideLibrary, inside_library
from tagging.catalog import current_catalog

log = logging.getLogger(__name__)


def missing(root: LibraryRoot | None = None) -> QuerySet[LibraryFile]:
    """The library's readable files without an embedding of the current model set."""
    files = LibraryFile.objects.filter(error="")
    if root is not None:
        files = files.filter(root=root)
    model_set = current_model_set() or ""
    done = LibraryFile.objects.filter(
        embeddings__model_set=model_set, embeddings__backbone=search_backbone()
    )
    return files.exclude(pk__in=done.values("pk")).order_by("pk")


def embed_files(file_ids: list[int]) -> int:
    """Hear each file and store its embeddings; how many were stored. A file that
    cannot be heard is logged and left (it stays missing)."""
    stored = 0
    catalog = current_catalog()
    for file in LibraryFile.objects.filter(pk__in=file_ids):
        try:
            path = inside_library(file.path)
            analysis = pipeline.analyse(path, catalog)
        except (OutsideLibrary, OSError, pipeline.AnalysisError) as exc:
            log.warning("cannot embed %s: %s", file.path, exc)
            continue
        store(file, catalog.fingerprint, analysis.embeddings)
        stored += 1
    return stored
