"""What the API (/api/v1/) takes in and gives back, and the one check of a path it is sent.

Requests are read by serializers made of nomarr_site.api's strict fields, so a JSON
string stays a string and a number a number; answers are written by serializers
too, so the OpenAPI schema at /api/v1/schema/ is the code that writes them, not a
copy of it. A job is always written by `JobSerializer` (lists, a 503's queued jobs)
or `JobDetailSerializer` (with its result: POST /tag, /status/{id}).

Every path a request names, in a body or in Lidarr's payload, goes through
`library_path()`: the text must be an absolute path without NUL, and its real path
(symlinks and `..` resolved by tagging.boundary) must lie inside a library root and
exist. It answers the error a client sees: 400, 403 (outside the library) or 404.
`files_under()` applies the same rule to each audio file found under a folder.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

from django.conf import settings
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from nomarr_site.api import (
    AnswerSerializer,
    ErrorSerializer,
    OutsideLibraryError,
    PathNotFound,
    StrictBooleanField,
    StrictCharField,
    StrictFloatField,
    StrictIntegerField,
)
from tagging.boundary import OutsideLibrary, Roots, library_files, resolve_in_library
from tagging.jobs import MAX_CLEANUP_HOURS
from tagging.models import Job, WorkerState

Status = Job.Status

# --- paths ------------------------------------------------------------------------


def check_path_text(text: str) -> str:
    """text, if it can name a file: absolute, without NUL, and encodable as a file
    name (no lone surrogate); ValidationError if not."""
    if "\x00" in text:
        raise ValidationError("must not contain a NUL character")
    try:
        os.fsencode(text)
    except UnicodeEncodeError:
        raise ValidationError("is not a file name: it holds a lone surrogate") from None
    if not os.path.isabs(text):
        raise ValidationError("must be an absolute path")
    return text


def library_path(raw: str, roots: Roots | None = None) -> Path:
    """raw's real path inside a library root, or the API error that says why not.

    ValidationError (400) for text that is not an absolute path, OutsideLibraryError
    (403) for a path whose real path is outside every root, PathNotFound (404) for a
    path that is not there or cannot be opened (an unreadable folder, a symlink loop,
    a name too long). The 404's cause is the OSError, for a caller that reports it.
    roots defaults to every enabled root (pass them to check many paths against one
    reading, as the webhook does)."""
    check_path_text(raw)
    try:
        return resolve_in_library(raw, roots)
    except OutsideLibrary as exc:
        raise OutsideLibraryError(str(exc), path=raw) from None
    except FileNotFoundError as exc:
        raise PathNotFound(f"no such file or folder: {raw}", path=raw) from exc
    except (OSError, RuntimeError) as exc:
        raise PathNotFound(f"cannot open {raw}: {exc}", path=raw) from exc


def files_under(target: Path, roots: Roots | None = None) -> tuple[list[Path], list[dict]]:
    """The files to queue for target (itself, or the audio files under the folder)
    and the refused ones, each file checked by `tagging.boundary.library_files`: a
    file that is a symlink out of the library is refused, not followed; two links
    inside the library to one file give it once. roots as for library_path."""
    found = library_files([target], roots)
    refused = [{"path": r.path, "reason": r.reason, "detail": r.detail} for r in found.refused]
    return found.files, refused


# --- jobs ---------------------------------------------------------------------------

JOB_FIELDS = [
    "id",
    "path",
    "status",
    "force",
    "attempts",
    "created_at",
    "started_at",
    "finished_at",
    "error",
    "progress",
]
# Times are written in UTC ("...Z") whatever TZ the server runs in.
IN_UTC = {"default_timezone": datetime.UTC}


class JobSerializer(AnswerSerializer, serializers.ModelSerializer):
    class Meta:
        model = Job
        fields = JOB_FIELDS
        read_only_fields = JOB_FIELDS
        extra_kwargs = {"created_at": IN_UTC, "started_at": IN_UTC, "finished_at": IN_UTC}


class JobDetailSerializer(JobSerializer):
    class Meta(JobSerializer.Meta):
        fields = [*JOB_FIELDS, "result"]
        read_only_fields = fields


class RefusedPathSerializer(serializers.Serializer):
    path = serializers.CharField()
    reason = serializers.CharField(help_text="outside_library, or unreadable (a symlink loop)")
    detail = serializers.CharField()


class TagRequestSerializer(serializers.Serializer):
    path = StrictCharField(
        max_length=4096,
        validators=[check_path_text],
        help_text="Absolute path of a file, or of a folder (every audio file under it), "
        "inside a library root.",
    )
    force = StrictBooleanField(
        default=False, help_text="Tag again even when the file already has current tags."
    )
    wait = StrictFloatField(
        required=False,
        min_value=0,
        help_text="Seconds to wait for the result (default NOMARR_TAG_WAIT, at most "
        "NOMARR_TAG_MAX_WAIT; 0: answer at once).",
    )

    def validate(self, attrs: dict) -> dict:
        """`wait` is always there: the seconds asked (else NOMARR_TAG_WAIT), at most
        NOMARR_TAG_MAX_WAIT."""
        asked = attrs.get("wait")
        wait = settings.NOMARR_TAG_WAIT if asked is None else asked
        attrs["wait"] = max(0.0, min(float(wait), float(settings.NOMARR_TAG_MAX_WAIT)))
        return attrs


class TagResponseSerializer(serializers.Serializer):
    jobs = JobDetailSerializer(many=True)
    refused = RefusedPathSerializer(
        many=True, help_text="Files under the folder that are symlinks out of the library."
    )
    finished = serializers.BooleanField(help_text="Every job is done or failed.")
    waited = serializers.FloatField(help_text="Seconds this request waited for the jobs.")
    detail = serializers.CharField(required=False)


class NoWorkerSerializer(ErrorSerializer):
    jobs = JobSerializer(many=True, help_text="The jobs, queued and waiting for a worker.")


class JobListSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text="Jobs matching the status filter.")
    limit = serializers.IntegerField()
    offset = serializers.IntegerField()
    next_offset = serializers.IntegerField(allow_null=True)
    counts = serializers.DictField(child=serializers.IntegerField(), help_text="Jobs per status.")
    jobs = JobSerializer(many=True, help_text="Newest first; `result` is in /status/{id}.")


# The database counts rows in signed 64-bit integers: an offset past this (and the
# largest page after it) cannot be asked of it, and no list is that long.
MAX_OFFSET = 2**63 - 1 - 1000


class ListParamsSerializer(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=1000, default=50)
    offset = serializers.IntegerField(min_value=0, max_value=MAX_OFFSET, default=0)
    status = serializers.CharField(required=False)

    def validate_status(self, value: str) -> list[str]:
        wanted = [s.strip() for s in value.split(",") if s.strip()]
        unknown = sorted(set(wanted) - set(Status.values))
        if unknown:
            raise ValidationError(
                f"unknown status {', '.join(unknown)}; use {', '.join(Status.values)}"
            )
        return wanted


# --- models and workers ---------------------------------------------------------------


class StemsField(serializers.ListField):
    """A list of models, written as their names."""

    child = serializers.CharField()

    def to_representation(self, data):
        return [model.stem for model in data]


# The models serializers write a tagging.catalog.Catalog and its parts as they are.
# (No docstrings on serializers: drf-spectacular would publish them in the schema.)


class HeadSerializer(serializers.Serializer):
    name = serializers.CharField(source="stem")
    backbone = serializers.CharField()
    labels = serializers.ListField(child=serializers.CharField())
    mood = serializers.BooleanField(
        source="is_mood", help_text="Gives mood words (not only scores)."
    )


class BackboneSerializer(serializers.Serializer):
    name = serializers.CharField(source="stem")
    algorithm = serializers.CharField()
    heads = StemsField()


class SkippedModelSerializer(serializers.Serializer):
    # One of Catalog.skipped's (path, reason) pairs.
    path = serializers.CharField()
    reason = serializers.CharField()

    def to_representation(self, instance):
        path, reason = instance
        return super().to_representation({"path": path, "reason": reason})


class ModelsSerializer(serializers.Serializer):
    fingerprint = serializers.CharField()
    backbones = BackboneSerializer(many=True)
    heads = HeadSerializer(many=True)
    skipped = SkippedModelSerializer(many=True)


class WorkersAliveField(serializers.IntegerField):
    """How many workers are running now (whatever the object written)."""

    def get_attribute(self, instance) -> int:
        return WorkerState.objects.workers_alive()


class WorkerInfoSerializer(serializers.Serializer):
    # The WorkerState row, with the workers running now.
    paused = serializers.BooleanField()
    workers_alive = WorkersAliveField()
    models_generation = serializers.IntegerField()


class InfoSerializer(serializers.Serializer):
    version = serializers.CharField()
    models = ModelsSerializer()
    queue = serializers.DictField(child=serializers.IntegerField())
    worker = WorkerInfoSerializer()


# --- admin ----------------------------------------------------------------------------


class RemoveRequestSerializer(serializers.Serializer):
    id = StrictIntegerField(min_value=1, help_text="The job to remove (not a running one).")


class RemoveResponseSerializer(serializers.Serializer):
    removed = serializers.IntegerField()


class FlushRequestSerializer(serializers.Serializer):
    statuses = serializers.ListField(
        child=serializers.ChoiceField(choices=Status.values),
        allow_empty=False,
        help_text="Delete every job in these statuses (pending, done, error; running: 409).",
    )

    def to_internal_value(self, data):
        statuses = data.get("statuses") if isinstance(data, dict) else None
        if isinstance(statuses, list) and not all(isinstance(s, str) for s in statuses):
            raise ValidationError({"statuses": ["must be a list of strings"]})
        return super().to_internal_value(data)


class DeletedResponseSerializer(serializers.Serializer):
    deleted = serializers.IntegerField()


class CleanupRequestSerializer(serializers.Serializer):
    hours = StrictFloatField(
        min_value=0,
        max_value=MAX_CLEANUP_HOURS,
        help_text="Delete finished jobs older than this (at most a century).",
    )


class ResetRequestSerializer(serializers.Serializer):
    stuck = StrictBooleanField(
        default=False, help_text="Put back running jobs whose worker died or timed out."
    )
    errors = StrictBooleanField(default=False, help_text="Queue failed jobs again.")

    def validate(self, attrs):
        if not attrs["stuck"] and not attrs["errors"]:
            raise ValidationError("say what to reset: stuck, errors, or both")
        return attrs


class ResetResponseSerializer(serializers.Serializer):
    stuck = serializers.IntegerField(allow_null=True, help_text="Stuck jobs put back.")
    errors = serializers.IntegerField(allow_null=True, help_text="Failed jobs queued again.")


class ModelsRefreshSerializer(ModelsSerializer):
    models_generation = serializers.IntegerField()


# --- Lidarr ---------------------------------------------------------------------------


class LidarrTrackFileSerializer(serializers.Serializer):
    id = serializers.IntegerField(required=False)
    path = serializers.CharField(
        help_text="The file as Lidarr sees it (mapped by NOMARR_PATH_MAP)."
    )
    previousPath = serializers.CharField(required=False, help_text="Rename only: the old path.")


class LidarrWebhookSerializer(serializers.Serializer):
    eventType = serializers.CharField(
        help_text="Test, Download, Retag, Rename; others are ignored."
    )
    trackFiles = LidarrTrackFileSerializer(many=True, required=False)
    trackFile = LidarrTrackFileSerializer(required=False)
    renamedTrackFiles = LidarrTrackFileSerializer(many=True, required=False)


class LidarrOutcomeSerializer(serializers.Serializer):
    path = serializers.CharField(allow_null=True)
    local_path = serializers.CharField(required=False)
    previous_path = serializers.CharField(required=False)
    outcome = serializers.ChoiceField(
        choices=[
            "queued",
            "already_queued",
            "outside_library",
            "not_found",
            "invalid",
            "moved",
            "merged",
            "running",
            "no_pending_job",
        ]
    )
    detail = serializers.CharField(required=False)
    job = serializers.DictField(required=False, allow_null=True)


class LidarrResponseSerializer(serializers.Serializer):
    error = serializers.CharField(
        required=False, help_text="paths_refused (422): every track file was refused."
    )
    event = serializers.CharField()
    detail = serializers.CharField()
    ignored = serializers.BooleanField()
    queued = serializers.IntegerField(help_text="Files with a job (new or already queued).")
    refused = serializers.IntegerField(help_text="Files outside the library, missing or invalid.")
    files = LidarrOutcomeSerializer(many=True)
