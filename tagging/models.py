"""Jobs: one file to tag, from queueing to its result. The table is the queue."""

from django.db import models
from django.db.models import Q


class Job(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        ERROR = "error"

    ACTIVE = (Status.PENDING, Status.RUNNING)
    FINISHED = (Status.DONE, Status.ERROR)

    path = models.CharField(max_length=4096, db_index=True)
    force = models.BooleanField(default=False)
    status = models.CharField(
        max_length=8, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # host:pid of the worker process that claimed it, to find jobs whose worker died.
    worker = models.CharField(max_length=255, blank=True)
    error = models.TextField(blank=True)
    # What the tagger did: {"status": "tagged"|"skipped", "reason", "scores", "tags"}.
    result = models.JSONField(null=True, blank=True)
    # Live progress while running: {"model": ..., "done": n, "total": m}.
    progress = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            # Lidarr may send the same import twice: a path has at most one live job.
            models.UniqueConstraint(
                fields=["path"],
                condition=Q(status__in=["pending", "running"]),
                name="one_active_job_per_path",
            )
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.status} {self.path}"


class WorkerState(models.Model):
    """The one row of shared worker state: paused or not, and which model set to load."""

    paused = models.BooleanField(default=False)
    # Bumped by a cache refresh; a worker whose loaded generation differs reloads its models.
    models_generation = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return "paused" if self.paused else "running"

    @classmethod
    def get(cls) -> "WorkerState":
        state, _ = cls.objects.get_or_create(pk=1)
        return state
