"""Playlist files Nomarr wrote: the record that lets it overwrite its own files, and
only those."""

from __future__ import annotations

from django.db import models


class WrittenPlaylist(models.Model):
    """One playlist file (.nsp or .m3u8) as Nomarr last wrote it."""

    class Kind(models.TextChoices):
        SMART = "nsp", "smart playlist (.nsp)"
        M3U = "m3u8", "static playlist (.m3u8)"

    path = models.CharField(max_length=4096, unique=True)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    name = models.CharField(max_length=255)
    rules = models.JSONField(default=dict, blank=True)
    tracks = models.PositiveIntegerField(null=True, blank=True, help_text="for .m3u8 files")
    # sha256 of the bytes written: a file still holding them is certainly ours.
    sha256 = models.CharField(max_length=64)
    written_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-written_at"]

    def __str__(self) -> str:
        return self.path
