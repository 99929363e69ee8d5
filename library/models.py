"""The music library: its roots, every audio file in them with its tags, and scan history.

LibraryFile is one row per audio file (the common tags as columns); TagValue is one
row per tag value, with the value parsed as a number where it is one, so scores can
be queried in the database ("nom_mood_happy_... above 0.7").
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from tagging import keys

DEFAULT_IGNORE_PATTERNS = "\n".join(
    [
        "*/.Trash*",  # desktop trash folders
        "*/._*",  # macOS AppleDouble files: "._song.mp3" is not audio
        "*/@eaDir",  # Synology thumbnails
        "*/#recycle",  # Synology / Samba recycle bin
        "*/lost+found",
    ]
)


class LibraryRoot(models.Model):
    """A folder of the user's music. Every path Nomarr accepts must lie inside one."""

    path = models.CharField(
        max_length=4096, unique=True, help_text="Absolute folder; symlinks are resolved on save."
    )
    name = models.CharField(max_length=200, blank=True)
    enabled = models.BooleanField(
        default=True,
        help_text="Disabled roots are not scanned and do not count as part of the library.",
    )
    auto_tag = models.BooleanField(
        default=True,
        help_text="Queue new files, and files tagged by an older model set, for tagging.",
    )
    ignore_patterns = models.TextField(
        blank=True,
        default=DEFAULT_IGNORE_PATTERNS,
        help_text=(
            "One shell pattern per line (* also matches /), matched against the absolute "
            "path and the path inside the root of every folder and file; a matching "
            "folder is skipped with everything in it. Example: */.Trash*"
        ),
    )
    # Seeded from NOMARR_LIBRARY_ROOTS (and re-created from it if deleted).
    from_settings = models.BooleanField(default=False, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["path"]

    def __str__(self) -> str:
        return self.name or self.path

    def save(self, *args, **kwargs):
        self.path = self.normalise(self.path)
        if not self.name:
            self.name = Path(self.path).name or self.path
        super().save(*args, **kwargs)

    @staticmethod
    def normalise(path: str) -> str:
        return str(Path(path).expanduser().resolve())

    def patterns(self) -> list[str]:
        return [
            line.strip()
            for line in self.ignore_patterns.splitlines()
            if line.strip() and not line.strip().startswith("#")
        ]

    def clean(self) -> None:
        if not self.path or "\x00" in self.path or not Path(self.path).expanduser().is_absolute():
            raise ValidationError({"path": "Give an absolute folder path."})
        self.path = self.normalise(self.path)
        if not Path(self.path).is_dir():
            raise ValidationError({"path": f"{self.path} is not a folder."})


class ScanQuerySet(models.QuerySet):
    def cancel(self) -> int:
        """Ask the running scans among these to stop (each stops within about a second,
        when it next saves its progress); how many were asked. One that still waits for
        a worker (nobody holds it) is cancelled at once."""
        now = timezone.now()
        waiting = self.filter(status=Scan.Status.RUNNING, worker="").update(
            status=Scan.Status.CANCELLED,
            cancel_requested=True,
            message="cancelled",
            finished_at=now,
            updated_at=now,
        )
        return waiting + self.filter(status=Scan.Status.RUNNING).update(cancel_requested=True)


class Scan(models.Model):
    """One walk over a root: what it found, live while it runs, kept afterwards as history."""

    class Status(models.TextChoices):
        RUNNING = "running"
        DONE = "done"
        CANCELLED = "cancelled"
        # Stopped at its time budget (a background scan); the next scan carries on.
        INTERRUPTED = "interrupted"
        FAILED = "failed"

    COUNTERS = (
        "seen",
        "read",
        "new",
        "changed",
        "moved",
        "removed",
        "errors",
        "skipped",
        "empty_folders",
        "queued",
    )

    root = models.ForeignKey(LibraryRoot, on_delete=models.CASCADE, related_name="scans")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.RUNNING)
    full = models.BooleanField(default=False, help_text="Re-read every file, changed or not.")
    trigger = models.CharField(max_length=20, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    # Heartbeat: saved with the progress, so a scan whose process died can be told apart.
    updated_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=255, blank=True)
    cancel_requested = models.BooleanField(default=False)

    seen = models.PositiveIntegerField(default=0, help_text="audio files found")
    read = models.PositiveIntegerField(default=0, help_text="files whose tags were read")
    new = models.PositiveIntegerField(default=0)
    changed = models.PositiveIntegerField(default=0)
    moved = models.PositiveIntegerField(default=0)
    removed = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0, help_text="unreadable files and folders")
    skipped = models.PositiveIntegerField(default=0, help_text="symlinks and ignored paths")
    empty_folders = models.PositiveIntegerField(default=0)
    queued = models.PositiveIntegerField(default=0, help_text="files queued for tagging")
    # The first problems met: [{"path": ..., "problem": ...}].
    problems = models.JSONField(default=list, blank=True)
    message = models.TextField(blank=True)

    objects = ScanQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["root"], condition=Q(status="running"), name="one_running_scan_per_root"
            )
        ]

    def __str__(self) -> str:
        return f"scan #{self.pk} {self.status} {self.root}"

    def counts(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.COUNTERS}

    @property
    def seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class LibraryFileQuerySet(models.QuerySet):
    #: Words of a search that count (each adds four LIKE conditions).
    MAX_TERMS = 8

    def search(
        self, text: str = "", mood: str = "", tier: str = "", tier_keys: Sequence[str] = ()
    ) -> LibraryFileQuerySet:
        """The files whose artist, album, album artist or title holds every word of text
        (the first MAX_TERMS), and that carry the mood word at tier.

        tier is a mood set's name (the word is in the file's mood set) or a tier (one of
        tier_keys, the tier keys of the word's labels in the catalog, holds it); a word
        of an older model set has no tier keys in the catalog, so then any model's tier
        key for the word counts.
        """
        files = self
        for term in text.split()[: self.MAX_TERMS]:
            files = files.filter(
                Q(artist__icontains=term)
                | Q(album__icontains=term)
                | Q(title__icontains=term)
                | Q(album_artist__icontains=term)
            )
        if mood:
            if tier in keys.MOOD_SETS:
                tagged = TagValue.objects.filter(key=keys.mood_set_key(tier), value=mood)
            elif tier_keys:
                tagged = TagValue.objects.filter(key__in=tier_keys, value=tier)
            else:
                tagged = TagValue.objects.filter(
                    key__startswith=keys.prefix(), key__endswith=keys.tier_suffix(mood), value=tier
                )
            files = files.filter(pk__in=tagged.values("file_id"))
        return files


class LibraryFile(models.Model):
    """One audio file of the library, as of its last read."""

    root = models.ForeignKey(LibraryRoot, on_delete=models.CASCADE, related_name="files")
    path = models.CharField(max_length=4096, unique=True)
    folder = models.CharField(max_length=4096, db_index=True)
    # What the incremental scan compares: unchanged size and mtime mean unchanged file.
    size = models.BigIntegerField()
    mtime_ns = models.BigIntegerField()
    ctime_ns = models.BigIntegerField(default=0)
    # Audio-content fingerprint, unchanged by tag writes: recognises moved files.
    fingerprint = models.CharField(max_length=32, blank=True, db_index=True)

    format = models.CharField(max_length=16, blank=True)
    duration = models.FloatField(null=True, blank=True)
    bitrate = models.IntegerField(null=True, blank=True)
    sample_rate = models.IntegerField(null=True, blank=True)
    channels = models.SmallIntegerField(null=True, blank=True)

    title = models.TextField(blank=True)
    artist = models.TextField(blank=True)
    album = models.TextField(blank=True)
    album_artist = models.TextField(blank=True)
    genre = models.TextField(blank=True)
    year = models.IntegerField(null=True, blank=True)
    track_number = models.IntegerField(null=True, blank=True)
    disc_number = models.IntegerField(null=True, blank=True)
    mb_recording_id = models.CharField("MusicBrainz recording id", max_length=200, blank=True)
    mb_track_id = models.CharField("MusicBrainz release track id", max_length=200, blank=True)
    mb_album_id = models.CharField("MusicBrainz release id", max_length=200, blank=True)
    mb_artist_id = models.CharField("MusicBrainz artist id", max_length=200, blank=True)
    mb_album_artist_id = models.CharField("MusicBrainz album artist id", max_length=200, blank=True)
    mb_release_group_id = models.CharField(
        "MusicBrainz release group id", max_length=200, blank=True
    )

    # The model set the file's tags came from (its `nom_version` tag).
    nom_version = models.CharField(max_length=64, blank=True, db_index=True)
    # The model set it was last queued for by a scan, so it is queued once per model set.
    queued_version = models.CharField(max_length=64, blank=True)
    # Hash of the file's tag values: a re-read with the same tags leaves TagValue alone.
    tags_digest = models.CharField(max_length=32, blank=True)
    # Why the file could not be read (it is then kept out of tagging until it changes).
    error = models.TextField(blank=True)

    first_seen = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)

    objects = LibraryFileQuerySet.as_manager()

    class Meta:
        ordering = ["path"]

    def __str__(self) -> str:
        return self.path

    def tag_dict(self) -> dict[str, list[str]]:
        result: dict[str, list[str]] = {}
        for key, value in self.tags.order_by("id").values_list("key", "value"):
            result.setdefault(key, []).append(value)
        return result


class TagValue(models.Model):
    """One value of one tag of one file; `number` holds it as a number where it is one."""

    VALUE_LENGTH = 500

    file = models.ForeignKey(LibraryFile, on_delete=models.CASCADE, related_name="tags")
    key = models.CharField(max_length=255)
    value = models.CharField(max_length=VALUE_LENGTH, blank=True)
    number = models.FloatField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["key", "number"], name="library_tag_key_number"),
            models.Index(fields=["key", "value"], name="library_tag_key_value"),
        ]

    def __str__(self) -> str:
        return f"{self.key}={self.value}"


class ScoreDistribution(models.Model):
    """The library's score distribution per label at one moment (library/calibration.py).

    `labels` holds, per score key, how many files have the score (`n`), its percentiles
    (`p5` ... `p95`, and `min`, `max`) and a histogram over [0, 1]. A `measured` row is
    the library as it was (remeasured as the library grows); a `calibration` row is one
    a person chose to calibrate tiers on: the latest is the calibration in use when
    NOMARR_TIER_SCORES=calibrated, and the drift is the latest measure against it."""

    class Kind(models.TextChoices):
        MEASURED = "measured"
        CALIBRATION = "calibration"

    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.MEASURED)
    created_at = models.DateTimeField(auto_now_add=True)
    files = models.PositiveIntegerField(default=0, help_text="files with scores")
    # What the library was when measured (files and their last read), to tell a stale measure.
    library_state = models.CharField(max_length=100, blank=True)
    labels = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.files} files)"

    def bounds(self) -> dict[str, tuple[float, float]]:
        """{score key: (p5, p95)}: what tiers are calibrated on."""
        return {key: (stats["p5"], stats["p95"]) for key, stats in self.labels.items()}


class RetierRun(models.Model):
    """One `retier`: tiers and mood sets re-decided from the stored scores, file by file
    in id order; `cursor` is the last file done, so a run that stopped carries on there."""

    class Status(models.TextChoices):
        RUNNING = "running"
        DONE = "done"
        INTERRUPTED = "interrupted"  # at its time budget, or its process died: resumable
        CANCELLED = "cancelled"
        FAILED = "failed"

    COUNTERS = ("checked", "changed", "unchanged", "errors")

    status = models.CharField(max_length=12, choices=Status.choices, default=Status.RUNNING)
    trigger = models.CharField(max_length=20, blank=True)
    # What the tiers are decided by (NOMARR_TIER_SCORES, the calibration, the rules): a
    # run resumed under another rule starts again.
    tier_scores = models.CharField(max_length=12, default="raw")
    calibration = models.ForeignKey(
        ScoreDistribution, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    rule = models.CharField(max_length=64, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now_add=True)  # heartbeat
    finished_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=255, blank=True)  # host:pid; empty: waits for one
    cursor = models.BigIntegerField(default=0, help_text="the last file id done")
    total = models.PositiveIntegerField(default=0, help_text="files of the current model set")
    checked = models.PositiveIntegerField(default=0)
    changed = models.PositiveIntegerField(default=0, help_text="files whose tags were rewritten")
    unchanged = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    problems = models.JSONField(default=list, blank=True)  # [{"path", "problem"}], the first few
    message = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["status"], condition=Q(status="running"), name="one_running_retier"
            )
        ]

    def __str__(self) -> str:
        return f"retier #{self.pk} {self.status}"

    def counts(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in ("total", *self.COUNTERS)}

    @property
    def percent(self) -> int:
        return round(100 * self.checked / self.total) if self.total else 100
