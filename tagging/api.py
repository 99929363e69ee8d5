"""The HTTP API (/api/v1/): queue files for tagging, follow jobs, run the queue, and
receive Lidarr's webhook.

The queue logic lives in tagging.jobs and the library check in library.roots; the
views here only check what comes in, call those, and say what happened. Errors are
shaped by nomarr_site.api.exception_handler.
"""

from __future__ import annotations

import os
import re
import time
from functools import cache
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_api_key.models import APIKey

from library.roots import OutsideLibrary, resolve_in_library
from nomarr_site.api import (
    Conflict,
    ErrorSerializer,
    JobNotFound,
    NoWorker,
    OutsideLibraryError,
    PathNotFound,
)
from tagging import jobs
from tagging.models import Job, WorkerState

Status = Job.Status

# --- parsing --------------------------------------------------------------------


class SafeJSONParser(JSONParser):
    """JSON only; a body nested too deep for Python's parser is a 400, not a 500."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply") from None


class StrictCharField(serializers.CharField):
    """A JSON string, and only that (DRF's CharField would take 12 as "12")."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """true or false, not "yes" or 1."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class StrictFloatField(serializers.FloatField):
    """A JSON number (not a string, not a boolean)."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer (not a string, a boolean or 1.5)."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


def validated(serializer_class: type[serializers.Serializer], data) -> dict:
    """The serializer's validated data; ValidationError (400) otherwise."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def check_path_text(text: str) -> str:
    if "\x00" in text:
        raise serializers.ValidationError("must not contain a NUL character")
    if not os.path.isabs(text):
        raise serializers.ValidationError("must be an absolute path")
    return text


def in_library(raw: str) -> Path:
    """raw's real path inside a library root, or the API error that says why not."""
    try:
        return resolve_in_library(raw)
    except OutsideLibrary as exc:
        raise OutsideLibraryError(str(exc), path=raw) from None
    except FileNotFoundError:
        raise PathNotFound(f"no such file or folder: {raw}", path=raw) from None
    except (OSError, RuntimeError) as exc:  # unreadable folder, symlink loop, name too long
        raise PathNotFound(f"cannot open {raw}: {exc}", path=raw) from None


# --- permissions ----------------------------------------------------------------


class IsKeyOrStaff(BasePermission):
    """Admin endpoints: a machine with an API key, or a staff member logged in."""

    message = "admin endpoints need an API key or a staff login"

    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, APIKey) or bool(
            request.user and getattr(request.user, "is_staff", False)
        )


class NomarrView(APIView):
    parser_classes = [SafeJSONParser]
    permission_classes = [IsAuthenticated]


class AdminView(NomarrView):
    permission_classes = [IsAuthenticated, IsKeyOrStaff]


# --- serializers (answers) --------------------------------------------------------

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


class JobSerializer(serializers.ModelSerializer):
    class Meta:
        model = Job
        fields = JOB_FIELDS
        read_only_fields = JOB_FIELDS


class JobDetailSerializer(serializers.ModelSerializer):
    class Meta:
        model = Job
        fields = [*JOB_FIELDS, "result"]
        read_only_fields = fields


class RefusedPathSerializer(serializers.Serializer):
    path = serializers.CharField()
    reason = serializers.CharField(help_text="outside_library")
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


class ListParamsSerializer(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=1000, default=50)
    offset = serializers.IntegerField(min_value=0, default=0)
    status = serializers.CharField(required=False)

    def validate_status(self, value: str) -> list[str]:
        wanted = [s.strip() for s in value.split(",") if s.strip()]
        unknown = sorted(set(wanted) - set(Status.values))
        if unknown:
            raise serializers.ValidationError(
                f"unknown status {', '.join(unknown)}; use {', '.join(Status.values)}"
            )
        return wanted


class HeadSerializer(serializers.Serializer):
    name = serializers.CharField()
    backbone = serializers.CharField()
    labels = serializers.ListField(child=serializers.CharField())
    mood = serializers.BooleanField(help_text="Gives mood words (not only scores).")


class BackboneSerializer(serializers.Serializer):
    name = serializers.CharField()
    algorithm = serializers.CharField()
    heads = serializers.ListField(child=serializers.CharField())


class SkippedModelSerializer(serializers.Serializer):
    path = serializers.CharField()
    reason = serializers.CharField()


class ModelsSerializer(serializers.Serializer):
    fingerprint = serializers.CharField()
    backbones = BackboneSerializer(many=True)
    heads = HeadSerializer(many=True)
    skipped = SkippedModelSerializer(many=True)


class WorkerInfoSerializer(serializers.Serializer):
    paused = serializers.BooleanField()
    workers_alive = serializers.IntegerField()
    models_generation = serializers.IntegerField()


class InfoSerializer(serializers.Serializer):
    version = serializers.CharField()
    models = ModelsSerializer()
    queue = serializers.DictField(child=serializers.IntegerField())
    worker = WorkerInfoSerializer()


def _when(value) -> str | None:
    # As DRF's DateTimeField writes it: ISO 8601, UTC as "Z".
    if value is None:
        return None
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def job_dict(job: Job, detail: bool = False) -> dict:
    """What JobSerializer (detail: JobDetailSerializer) gives, built directly: the
    serializers document the shape; this is on every POST /tag, so it is kept cheap."""
    data = {
        "id": job.pk,
        "path": job.path,
        "status": job.status,
        "force": job.force,
        "attempts": job.attempts,
        "created_at": _when(job.created_at),
        "started_at": _when(job.started_at),
        "finished_at": _when(job.finished_at),
        "error": job.error,
        "progress": job.progress,
    }
    if detail:
        data["result"] = job.result
    return data


def job_list(queryset, detail: bool = False) -> list[dict]:
    return [job_dict(job, detail) for job in queryset]


ERRORS = {
    400: OpenApiResponse(ErrorSerializer, description="Malformed body or parameters."),
    401: OpenApiResponse(ErrorSerializer, description="No key, or a wrong one."),
    403: OpenApiResponse(ErrorSerializer, description="Not allowed."),
}


def errors(*codes: int) -> dict:
    return {code: ERRORS[code] for code in codes}


# --- tagging ---------------------------------------------------------------------


def wait_seconds(asked: float | None) -> float:
    wait = settings.NOMARR_TAG_WAIT if asked is None else asked
    return max(0.0, min(float(wait), float(settings.NOMARR_TAG_MAX_WAIT)))


def audio_under(target: Path) -> tuple[list[Path], list[dict]]:
    """The files to queue for target (itself, or the audio files under the folder),
    each checked against the library roots: a file symlinked out of the library is
    refused, not followed."""
    from tagging.pipeline import audio_files

    if not target.is_dir():
        return [target], []
    found, refused, seen = [], [], set()
    for path in audio_files([target]):
        try:
            real = resolve_in_library(path)
            if real not in seen:  # two links inside the library to one file: one job
                seen.add(real)
                found.append(real)
        except OutsideLibrary as exc:
            refused.append({"path": str(path), "reason": "outside_library", "detail": str(exc)})
        except (OSError, RuntimeError):
            continue  # gone since the folder was listed
    return found, refused


class TagView(NomarrView):
    @extend_schema(
        summary="Queue a file or a folder for tagging",
        description=(
            "A file queues one job; a folder queues one job per audio file under it. A "
            "path that already has a pending or running job gets that job back. With "
            "`wait` (or NOMARR_TAG_WAIT) the request waits for the jobs, at most "
            "NOMARR_TAG_MAX_WAIT seconds: 200 when they all finished (with their "
            "results), 202 when not yet. Waiting with no worker running answers 503; "
            "the jobs stay queued."
        ),
        request=TagRequestSerializer,
        responses={
            200: OpenApiResponse(TagResponseSerializer, description="Finished (waited)."),
            202: OpenApiResponse(TagResponseSerializer, description="Queued."),
            **errors(400, 401),
            403: OpenApiResponse(ErrorSerializer, description="Path outside the library roots."),
            404: OpenApiResponse(ErrorSerializer, description="No such file or folder."),
            503: OpenApiResponse(NoWorkerSerializer, description="Waiting asked; no worker."),
        },
        tags=["tagging"],
    )
    def post(self, request):
        params = validated(TagRequestSerializer, request.data)
        target = in_library(params["path"])
        wait = wait_seconds(params.get("wait"))
        files, refused = audio_under(target)
        queued = jobs.queue_paths(files, force=params["force"])
        body = {"jobs": [], "refused": refused, "finished": False, "waited": 0.0}
        if not queued:
            body.update(finished=True, detail="no audio files found")
            return Response(body, status=200)
        ids = [job.pk for job in queued]
        if wait > 0:
            if jobs.workers_alive() == 0:
                raise NoWorker("no worker available; the jobs stay queued", jobs=job_list(queued))
            if WorkerState.get().paused:
                body["detail"] = "workers are paused; not waiting"
            else:
                started = time.monotonic()
                order = {job_id: n for n, job_id in enumerate(ids)}
                queued = sorted(jobs.wait_for(ids, wait), key=lambda job: order[job.pk])
                body["waited"] = round(time.monotonic() - started, 3)
        finished = bool(queued) and all(job.status in Job.FINISHED for job in queued)
        body.update(jobs=job_list(queued, detail=True), finished=finished)
        return Response(body, status=200 if finished else 202)


class JobListView(NomarrView):
    @extend_schema(
        summary="List jobs",
        parameters=[
            OpenApiParameter("limit", int, description="1 to 1000 (default 50)."),
            OpenApiParameter("offset", int, description="Jobs to skip (default 0)."),
            OpenApiParameter(
                "status",
                str,
                description="Only these statuses, comma-separated: " + ", ".join(Status.values),
            ),
        ],
        responses={200: JobListSerializer, **errors(400, 401)},
        tags=["tagging"],
    )
    def get(self, request):
        params = validated(ListParamsSerializer, request.query_params)
        queryset = Job.objects.order_by("-id")
        if params.get("status"):
            queryset = queryset.filter(status__in=params["status"])
        limit, offset = params["limit"], params["offset"]
        total = queryset.count()
        page = list(queryset[offset : offset + limit])
        return Response(
            {
                "count": total,
                "limit": limit,
                "offset": offset,
                "next_offset": offset + limit if offset + limit < total else None,
                "counts": jobs.counts(),
                "jobs": job_list(page),
            }
        )


class JobStatusView(NomarrView):
    @extend_schema(
        summary="One job, with its result",
        responses={
            200: JobDetailSerializer,
            **errors(401),
            404: OpenApiResponse(ErrorSerializer, description="No such job."),
        },
        tags=["tagging"],
    )
    def get(self, request, job_id: int):
        job = Job.objects.filter(pk=job_id).first()
        if job is None:
            raise JobNotFound(f"no job {job_id}")
        return Response(job_dict(job, detail=True))


@cache
def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed_version

    try:
        return installed_version("nomarr")
    except PackageNotFoundError:
        pass
    try:
        import tomllib

        with open(Path(settings.BASE_DIR) / "pyproject.toml", "rb") as handle:
            return str(tomllib.load(handle)["project"]["version"])
    except (OSError, KeyError, ValueError):
        return "unknown"


def models_info() -> dict:
    from tagging.catalog import get_catalog

    catalog = get_catalog()
    return {
        "fingerprint": catalog.fingerprint,
        "backbones": [
            {"name": b.stem, "algorithm": b.algorithm, "heads": [h.stem for h in b.heads]}
            for b in catalog.backbones
        ],
        "heads": [
            {"name": h.stem, "backbone": h.backbone, "labels": h.labels, "mood": h.is_mood}
            for h in catalog.heads
        ],
        "skipped": [{"path": path, "reason": reason} for path, reason in catalog.skipped],
    }


def worker_info() -> dict:
    state = WorkerState.get()
    return {
        "paused": state.paused,
        "workers_alive": jobs.workers_alive(),
        "models_generation": state.models_generation,
    }


class InfoView(NomarrView):
    @extend_schema(
        summary="Version, models, queue and workers",
        responses={200: InfoSerializer, **errors(401)},
        tags=["tagging"],
    )
    def get(self, request):
        return Response(
            {
                "version": version(),
                "models": models_info(),
                "queue": jobs.counts(),
                "worker": worker_info(),
            }
        )


# --- admin -------------------------------------------------------------------------


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
    hours = StrictFloatField(min_value=0, help_text="Delete finished jobs older than this.")


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


class QueueRemoveView(AdminView):
    @extend_schema(
        summary="Remove a job",
        request=RemoveRequestSerializer,
        responses={
            200: RemoveResponseSerializer,
            **errors(400, 401, 403),
            404: OpenApiResponse(ErrorSerializer, description="No such job."),
            409: OpenApiResponse(ErrorSerializer, description="The job is running."),
        },
        tags=["admin"],
    )
    def post(self, request):
        job_id = validated(RemoveRequestSerializer, request.data)["id"]
        try:
            jobs.remove(job_id)
        except Job.DoesNotExist:
            raise JobNotFound(f"no job {job_id}") from None
        except jobs.JobConflict as exc:
            raise Conflict(str(exc)) from None
        return Response({"removed": job_id})


class QueueFlushView(AdminView):
    @extend_schema(
        summary="Delete every job in the given statuses",
        request=FlushRequestSerializer,
        responses={
            200: DeletedResponseSerializer,
            **errors(400, 401, 403),
            409: OpenApiResponse(ErrorSerializer, description="Running jobs cannot be flushed."),
        },
        tags=["admin"],
    )
    def post(self, request):
        statuses = validated(FlushRequestSerializer, request.data)["statuses"]
        try:
            deleted = jobs.flush(statuses)
        except jobs.JobConflict as exc:
            raise Conflict(str(exc)) from None
        return Response({"deleted": deleted})


class QueueCleanupView(AdminView):
    @extend_schema(
        summary="Delete finished jobs older than some hours",
        request=CleanupRequestSerializer,
        responses={200: DeletedResponseSerializer, **errors(400, 401, 403)},
        tags=["admin"],
    )
    def post(self, request):
        hours = validated(CleanupRequestSerializer, request.data)["hours"]
        return Response({"deleted": jobs.cleanup(hours)})


class QueueResetView(AdminView):
    @extend_schema(
        summary="Put stuck jobs back, and/or queue failed jobs again",
        request=ResetRequestSerializer,
        responses={200: ResetResponseSerializer, **errors(400, 401, 403)},
        tags=["admin"],
    )
    def post(self, request):
        params = validated(ResetRequestSerializer, request.data)
        return Response(
            {
                "stuck": jobs.reset_stuck() if params["stuck"] else None,
                "errors": jobs.reset_errors() if params["errors"] else None,
            }
        )


class WorkerPauseView(AdminView):
    paused = True

    @extend_schema(
        summary="Pause the workers (running jobs finish; no new ones start)",
        request=None,
        responses={200: WorkerInfoSerializer, **errors(401, 403)},
        tags=["admin"],
    )
    def post(self, request):
        jobs.set_paused(self.paused)
        return Response(worker_info())


class WorkerResumeView(WorkerPauseView):
    paused = False

    @extend_schema(
        summary="Resume the workers (waiting jobs are sent again)",
        request=None,
        responses={200: WorkerInfoSerializer, **errors(401, 403)},
        tags=["admin"],
    )
    def post(self, request):
        return super().post(request)


class ModelsRefreshView(AdminView):
    @extend_schema(
        summary="Read the models folder again; every worker reloads before its next job",
        request=None,
        responses={200: ModelsRefreshSerializer, **errors(401, 403)},
        tags=["admin"],
    )
    def post(self, request):
        generation = jobs.refresh_models()
        return Response({"models_generation": generation, **models_info()})


# --- Lidarr -------------------------------------------------------------------------


SEPARATORS = ("/", "\\")


def _path_map() -> list[tuple[str, str, bool]]:
    """(Lidarr prefix without its trailing separator, Nomarr prefix, is Windows),
    longest Lidarr prefix first."""
    pairs = []
    for lidarr, local in settings.NOMARR_PATH_MAP:
        lidarr, local = str(lidarr), str(local)
        windows = "\\" in lidarr or bool(re.match(r"^[A-Za-z]:", lidarr))
        trimmed = lidarr.rstrip("/\\")
        if trimmed or lidarr:  # "/" trims to "": it matches every absolute path
            pairs.append((trimmed, local.rstrip("/") or "/", windows))
    return sorted(pairs, key=lambda pair: len(pair[0]), reverse=True)


def map_lidarr_path(path: str) -> str:
    """Lidarr's path for a file as Nomarr sees it, by NOMARR_PATH_MAP.

    The longest matching Lidarr prefix wins, and it must end at a path separator
    (/music does not match /musicals). A Windows prefix (C:\\... or with
    backslashes) matches regardless of case, and the backslashes of the rest of the
    path become slashes. A path no prefix matches is kept as it is."""
    for lidarr, local, windows in _path_map():
        head, rest = path[: len(lidarr)], path[len(lidarr) :]
        same = head.lower() == lidarr.lower() if windows else head == lidarr
        if not same or (rest and not rest.startswith(SEPARATORS)):
            continue
        if windows:
            rest = rest.replace("\\", "/")
        if local == "/":
            return rest or "/"
        return local + rest
    return path


def _entries(payload: dict, key: str) -> list:
    value = payload.get(key)
    if value is None:
        return []
    if key == "trackFile":
        value = [value]
    if not isinstance(value, list):
        raise ValidationError({key: ["must be a list of track files"]})
    return value


def _local(entry, key: str = "path") -> tuple[str | None, dict | None]:
    """(Nomarr's path for entry[key], None) or (None, the outcome saying why not)."""
    raw = entry.get(key) if isinstance(entry, dict) else None
    if not isinstance(raw, str) or not raw:
        return None, {
            "path": raw if isinstance(raw, str) else None,
            "outcome": "invalid",
            "detail": f"track file without a '{key}' string",
        }
    return map_lidarr_path(raw), None


def _queue_entry(entry, force: bool) -> dict:
    local, invalid = _local(entry)
    if invalid:
        return invalid
    outcome = {"path": entry["path"], "local_path": local}
    if "\x00" in local or not os.path.isabs(local):
        return {**outcome, "outcome": "invalid", "detail": f"not an absolute path: {local!r}"}
    try:
        resolved = resolve_in_library(local)
        if resolved.is_dir():
            raise IsADirectoryError(local)
    except OutsideLibrary as exc:
        return {**outcome, "outcome": "outside_library", "detail": str(exc)}
    except FileNotFoundError:
        return {**outcome, "outcome": "not_found", "detail": f"no such file: {local}"}
    except (OSError, RuntimeError) as exc:
        return {**outcome, "outcome": "not_found", "detail": f"not a readable file: {exc}"}
    job, created = jobs.queue_file(resolved, force=force)
    return {
        **outcome,
        "outcome": "queued" if created else "already_queued",
        "job": {"id": job.pk, "status": job.status},
    }


def _rename_entry(entry) -> dict:
    """Point a pending job for previousPath at path (the file Lidarr renamed)."""
    new_local, invalid = _local(entry)
    if invalid:
        return invalid
    old_local, invalid = _local(entry, "previousPath")
    if invalid:
        return {**invalid, "path": entry["path"]}
    outcome = {
        "path": entry["path"],
        "previous_path": entry["previousPath"],
        "local_path": new_local,
    }
    if "\x00" in new_local or not os.path.isabs(new_local):
        return {**outcome, "outcome": "invalid", "detail": f"not an absolute path: {new_local!r}"}
    try:
        new = resolve_in_library(new_local)
    except OutsideLibrary as exc:
        return {**outcome, "outcome": "outside_library", "detail": str(exc)}
    except (OSError, RuntimeError):
        return {**outcome, "outcome": "not_found", "detail": f"no such file: {new_local}"}
    old_candidates = {os.path.normpath(old_local)}
    if os.path.isabs(old_local) and "\x00" not in old_local:
        old_candidates.add(str(Path(old_local).resolve(strict=False)))
    live = Job.objects.filter(path__in=old_candidates, status__in=Job.ACTIVE).first()
    if live is None:
        return {**outcome, "outcome": "no_pending_job", "detail": "nothing queued for the old path"}
    try:
        with transaction.atomic():
            moved = Job.objects.filter(pk=live.pk, status=Status.PENDING).update(path=str(new))
    except IntegrityError:
        # The new path has its own live job already: the old one would only fail.
        Job.objects.filter(pk=live.pk, status=Status.PENDING).delete()
        existing = Job.objects.filter(path=str(new), status__in=Job.ACTIVE).first()
        return {
            **outcome,
            "outcome": "merged",
            "detail": f"job {live.pk} removed; the new path already has a job",
            "job": {"id": existing.pk, "status": existing.status} if existing else None,
        }
    if not moved:
        return {
            **outcome,
            "outcome": "running",
            "detail": f"job {live.pk} already started on the old path; tag the new path again",
            "job": {"id": live.pk, "status": Status.RUNNING},
        }
    return {**outcome, "outcome": "moved", "job": {"id": live.pk, "status": Status.PENDING}}


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
    event = serializers.CharField()
    detail = serializers.CharField()
    ignored = serializers.BooleanField()
    queued = serializers.IntegerField(help_text="Files with a job (new or already queued).")
    refused = serializers.IntegerField(help_text="Files outside the library, missing or invalid.")
    files = LidarrOutcomeSerializer(many=True)


QUEUED = {"queued", "already_queued"}


class LidarrWebhookView(NomarrView):
    @extend_schema(
        summary="Lidarr's Webhook connection",
        description=(
            "Point a Lidarr *Webhook* connection (method POST) at this URL, with the API "
            "key as the password (any user name) or in an `X-Api-Key` header.\n\n"
            "- `Test`: answers 200, does nothing.\n"
            "- `Download` (import or upgrade): queues every `trackFiles[].path`.\n"
            "- `Retag`: queues `trackFile.path` and every `trackFiles[].path` again, "
            "with force.\n"
            "- `Rename`: queues nothing; for each `renamedTrackFiles[]`, a pending job for "
            "`previousPath` is pointed at `path` (if `path` already has a job, the old one "
            "is removed; a job already running on the old path is reported, not changed).\n"
            "- Any other event: 200, ignored.\n\n"
            "Paths are translated by NOMARR_PATH_MAP, then checked against the library "
            "roots. Each file gets its own outcome; a refused or missing file does not fail "
            "the others. 202 when at least one file has a job, else 200."
        ),
        request=LidarrWebhookSerializer,
        responses={
            200: LidarrResponseSerializer,
            202: LidarrResponseSerializer,
            **errors(400, 401),
        },
        tags=["lidarr"],
    )
    def post(self, request):
        payload = request.data
        if not isinstance(payload, dict):
            raise ValidationError("expected a JSON object (Lidarr's webhook payload)")
        event = payload.get("eventType")
        if not isinstance(event, str) or not event.strip():
            raise ValidationError({"eventType": ["required: a string such as Download or Test"]})
        kind = event.strip().lower()
        files: list[dict] = []
        ignored = False
        if kind == "test":
            detail = "test received; nothing done"
        elif kind == "download":
            files = [_queue_entry(e, force=False) for e in _entries(payload, "trackFiles")]
            detail = "imported files queued" if files else "no trackFiles in the payload"
        elif kind == "retag":
            entries = _entries(payload, "trackFile") + _entries(payload, "trackFiles")
            files = [_queue_entry(e, force=True) for e in entries]
            detail = (
                "retagged files queued with force" if files else "no track files in the payload"
            )
        elif kind == "rename":
            files = [_rename_entry(e) for e in _entries(payload, "renamedTrackFiles")]
            detail = "pending jobs follow the renamed files; nothing new queued"
        else:
            ignored = True
            detail = f"event {event!r} is ignored; Nomarr acts on Download, Retag and Rename"
        queued = sum(1 for f in files if f["outcome"] in QUEUED)
        refused = sum(
            1 for f in files if f["outcome"] in {"outside_library", "not_found", "invalid"}
        )
        body = {
            "event": event,
            "detail": detail,
            "ignored": ignored,
            "queued": queued,
            "refused": refused,
            "files": files,
        }
        return Response(body, status=202 if queued else 200)
