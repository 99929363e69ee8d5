"""A tag taught by example: its name, its examples (yes and no), and what was learned.

`TaughtTag` holds the classifier learned last (the weights of a logistic regression
on one backbone's track-mean embeddings, with the standardisation folded in, so
`score = sigmoid(weights . mean + bias)`), how well it did under cross-validation,
and whether it was written into the files and saved as a model head. `Example` is
one file marked yes or no, from wherever it came (a mark on a page, a folder, a
playlist file, a Navidrome playlist, a tag value).
"""

from __future__ import annotations

import numpy as np
from django.contrib.auth import get_user_model
from django.db import models

from library.models import LibraryFile


class TaughtTag(models.Model):
    name = models.CharField(max_length=40, unique=True)
    description = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(
        get_user_model(), null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)

    # The classifier learned last, and where: one backbone's space under one model set.
    backbone = models.CharField(max_length=100, blank=True)
    model_set = models.CharField(max_length=64, blank=True)
    weights = models.BinaryField(blank=True, default=b"")  # float64: the weights, then the bias
    trained_at = models.DateTimeField(null=True, blank=True)
    positives = models.PositiveIntegerField(default=0)
    negatives = models.PositiveIntegerField(default=0)
    cv_accuracy = models.FloatField(null=True, blank=True)
    cv_balanced_accuracy = models.FloatField(null=True, blank=True)
    cv_folds = models.PositiveSmallIntegerField(default=0)

    # Written into the files (how many), and saved as a head (its .pb path).
    applied_at = models.DateTimeField(null=True, blank=True)
    applied_files = models.PositiveIntegerField(default=0)
    head_path = models.CharField(max_length=4096, blank=True)

    class Writing(models.TextChoices):
        NONE = "", "not asked"
        WAITING = "waiting", "waiting for a worker"
        RUNNING = "running", "being written"
        DONE = "done", "written"
        FAILED = "failed", "failed"

    # The background write into the files: this row is the truth, a django-q2
    # message only carries its id (teach/tasks.py).
    writing = models.CharField(max_length=8, choices=Writing.choices, blank=True, default="")
    writing_done = models.PositiveIntegerField(default=0)
    writing_total = models.PositiveIntegerField(default=0)
    writing_failed = models.PositiveIntegerField(default=0)
    writing_message = models.TextField(blank=True)
    writing_at = models.DateTimeField(null=True, blank=True)  # its last sign of life

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def busy(self) -> bool:
        return self.writing in (self.Writing.WAITING, self.Writing.RUNNING)

    @property
    def trained(self) -> bool:
        return bool(self.weights)

    def coefficients(self) -> tuple[np.ndarray, float]:
        """(weights, bias) of the classifier learned last."""
        values = np.frombuffer(bytes(self.weights), dtype="<f8")
        return values[:-1], float(values[-1])

    def set_coefficients(self, weights: np.ndarray, bias: float) -> None:
        self.weights = np.concatenate([np.asarray(weights, "<f8"), [bias]]).astype("<f8").tobytes()


class Example(models.Model):
    class Source(models.TextChoices):
        MARK = "mark", "marked on a page"
        FOLDER = "folder", "a folder"
        PLAYLIST = "playlist", "an M3U playlist"
        NAVIDROME = "navidrome", "a Navidrome playlist"
        TAG = "tag", "a tag value"

    tag = models.ForeignKey(TaughtTag, on_delete=models.CASCADE, related_name="examples")
    file = models.ForeignKey(LibraryFile, on_delete=models.CASCADE, related_name="+")
    positive = models.BooleanField()
    source = models.CharField(max_length=12, choices=Source.choices, default=Source.MARK)
    added_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tag", "file"], name="one_example_per_file")]

    def __str__(self) -> str:
        return f"{self.tag}: {'yes' if self.positive else 'no'} {self.file_id}"
