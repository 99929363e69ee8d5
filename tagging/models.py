"""Jobs: one file to tag, from queueing to its result. The table is the queue."""

from collections.abc import Collection

from django.db import models
from django.db.models import Count, Q
from django_q.status import Stat


class JobQuerySet(models.QuerySet):
    def live_by_path(self, paths: Collection[str]) -> dict[str, "Job"]:
        """The live (pending or running) job of each of paths that has one, by path.

        Looked up by path first, then by id. Asked for paths and statuses at once,
        SQLite's planner (it has no statistics: three paths look like more rows than
        two statuses) walked the status index, every pending job, on each look-up, so
        queueing slowed down as the queue grew: a look-up of 7 paths took 1.6 ms with
        6,000 jobs waiting, and a first scan's chunks of 500 walked the whole queue."""
        paths = list(paths)
        if not paths:
            return {}
        live = [
            pk
            for pk, status in self.filter(path__in=paths).values_list("pk", "status")
            if status in Job.ACTIVE
        ]
        if not live:
            return {}
        return {job.path: job for job in self.filter(pk__in=live, status__in=Job.ACTIVE)}

    def counts(self) -> dict[str, int]:
        """How many jobs are in each status (every status present, zeros included)."""
        found = dict(self.values_list("status").annotate(n=Count("pk")).order_by())
        return {status: found.get(status, 0) for status in Job.Status.values}

    def remove_unless_running(self) -> tuple[int, int]:
        """Delete these jobs but the running ones (a worker holds those); how many were
        deleted, and how many were kept because they run."""
        running = self.filter(status=Job.Status.RUNNING).count()
        deleted, _ = self.exclude(status=Job.Status.RUNNING).delete()
        return deleted, running


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

    objects = JobQuerySet.as_manager()

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


class WorkerStateManager(models.Manager):
    def workers_alive(self) -> int:
        """How many django-q2 clusters report themselves running (through the shared cache)."""
        return sum(1 for stat in Stat.get_all() if stat.status != "Stopped")


class WorkerState(models.Model):
    """The one row of shared worker state: paused or not, and which model set to load."""

    paused = models.BooleanField(default=False)
    # Bumped by a cache refresh; a worker whose loaded generation differs reloads its models.
    models_generation = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    objects = WorkerStateManager()

    def __str__(self) -> str:
        return "paused" if self.paused else "running"

    @classmethod
    def get(cls) -> "WorkerState":
        state, _ = cls.objects.get_or_create(pk=1)
        return state
