"""What the backbones heard in each file, kept: one TrackEmbedding per file and backbone.

The table is the truth; the search index (sonic/index.py) is a cache rebuilt from it.
A row belongs to a LibraryFile, so it follows the file when the scanner recognises a
move or rename (same row, new path) and goes with it when the file is removed.
`model_set` is the version of what heard it (tagging.catalog.embedding_version: the
backbones and the patch hop, not the heads, so adding or teaching a head keeps every
row valid): a row of another version is stale, kept out of every search until the file
is heard again (`manage.py embed`), so two embedding spaces are never mixed.
"""

from __future__ import annotations

import numpy as np
from django.db import models

from library.models import LibraryFile


class TrackEmbedding(models.Model):
    """The track-level embedding of one file by one backbone: the mean over its patches
    and the spread (standard deviation), float32, in `vector` as mean then spread."""

    file = models.ForeignKey(LibraryFile, on_delete=models.CASCADE, related_name="embeddings")
    backbone = models.CharField(max_length=100)
    model_set = models.CharField(max_length=64, db_index=True)
    dims = models.PositiveSmallIntegerField()
    vector = models.BinaryField()
    patches = models.PositiveIntegerField(default=0)
    # From Generation: a row written later has a higher one, and none is used twice
    # (unlike an id, which SQLite hands out again once the highest row is deleted).
    generation = models.BigIntegerField(unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["file", "backbone"], name="one_embedding_per_backbone")
        ]
        indexes = [
            models.Index(
                fields=["backbone", "model_set", "generation"], name="sonic_space_generation"
            )
        ]

    def __str__(self) -> str:
        return f"{self.backbone} of {self.file_id}"

    @property
    def mean(self) -> np.ndarray:
        return np.frombuffer(bytes(self.vector), dtype="<f4")[: self.dims]

    @property
    def spread(self) -> np.ndarray:
        return np.frombuffer(bytes(self.vector), dtype="<f4")[self.dims :]


class Generation(models.Model):
    """The one counter TrackEmbedding.generation is drawn from (row 1)."""

    value = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"generation {self.value}"

    @classmethod
    def take(cls, count: int) -> int:
        """Reserve count generations; the first. Call inside the writing transaction:
        the row stays locked until it commits, so generations grow in commit order."""
        if not cls.objects.filter(pk=1).update(value=models.F("value") + count):
            cls.objects.create(pk=1, value=count)  # its migration made it; a flush did not
        return cls.objects.get(pk=1).value - count + 1


class EmbedRequest(models.Model):
    """A file to be heard for its embeddings alone (no tag is written), because it has
    none of the current model set: asked for by `manage.py embed` and by a scan that
    finds a file tagged by the current models without one (sonic/embedding.py).

    The table is the truth, as the Job table is for tagging: django-q2 only carries
    batches of request ids to the workers. A worker claims a request atomically
    (pending -> running, with its name), so a request sent twice is heard once;
    requests whose messages died with a worker cluster are sent again when workers
    start (tagging.signals.workers_started)."""

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        ERROR = "error"

    file = models.OneToOneField(LibraryFile, on_delete=models.CASCADE, related_name="embed_request")
    model_set = models.CharField(max_length=64)
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    worker = models.CharField(max_length=200, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"embed {self.file_id} ({self.status})"
