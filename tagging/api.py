"""The HTTP API (/api/v1/): queue files for tagging, follow jobs, run the queue, and
receive Lidarr's webhook.

Views only: each checks what comes in (tagging.serializers, and
`library_path` for a path), calls tagging.jobs (or tagging.lidarr for the webhook),
and writes the answer with a serializer. The shared pieces (base views, strict
fields, error answers) are in nomarr_site.api.
"""

from __future__ import annotations

import time

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.response import Response

from nomarr_site.api import (
    AdminView,
    Conflict,
    ErrorSerializer,
    JobNotFound,
    NomarrView,
    NoWorker,
    errors,
    validated,
    version,
)
from tagging import jobs, lidarr
from tagging.boundary import library_roots
from tagging.catalog import current_catalog
from tagging.models import Job, WorkerState
from tagging.serializers import (
    CleanupRequestSerializer,
    DeletedResponseSerializer,
    FlushRequestSerializer,
    InfoSerializer,
    JobDetailSerializer,
    JobListSerializer,
    JobSerializer,
    LidarrResponseSerializer,
    LidarrWebhookSerializer,
    ListParamsSerializer,
    ModelsRefreshSerializer,
    ModelsSerializer,
    NoWorkerSerializer,
    RemoveRequestSerializer,
    RemoveResponseSerializer,
    ResetRequestSerializer,
    ResetResponseSerializer,
    TagRequestSerializer,
    TagResponseSerializer,
    WorkerInfoSerializer,
    files_under,
    library_path,
)

Status = Job.Status

# --- tagging ---------------------------------------------------------------------


class TagView(NomarrView):
    @extend_schema(
        summary="Queue a file or a folder for tagging",
        description=(
            "A file queues one job; a folder queues one job per audio file under it. The "
            "path is translated by NOMARR_PATH_MAP first, as the webhook's are. A "
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
            **errors(400, 401, 413),
            403: OpenApiResponse(ErrorSerializer, description="Path outside the library roots."),
            404: OpenApiResponse(ErrorSerializer, description="No such file or folder."),
            503: OpenApiResponse(NoWorkerSerializer, description="Waiting asked; no worker."),
        },
        tags=["tagging"],
    )
    def post(self, request):
        params = validated(TagRequestSerializer, request.data)
        # Lidarr's Custom Script and other callers name files as they see them.
        roots = library_roots()  # read once for the path and every file under it
        target = library_path(lidarr.map_lidarr_path(params["path"]), roots)
        files, refused = files_under(target, roots)
        # Each file was just checked (and resolved) by files_under: not resolved again.
        queued = [job for job, _ in jobs.queue_files(files, params["force"], checked=True)]
        body = {"jobs": [], "refused": refused, "finished": False, "waited": 0.0}
        if not queued:
            body.update(finished=True, detail="no audio files found")
            return Response(body, status=200)
        if params["wait"] > 0:
            if WorkerState.objects.workers_alive() == 0:
                raise NoWorker(
                    "no worker available; the jobs stay queued",
                    jobs=JobSerializer(queued, many=True).data,
                )
            if WorkerState.get().paused:
                body["detail"] = "workers are paused; not waiting"
            else:
                started = time.monotonic()
                order = {job.pk: n for n, job in enumerate(queued)}
                done = jobs.wait_for(list(order), params["wait"])
                queued = sorted(done, key=lambda job: order[job.pk])
                body["waited"] = round(time.monotonic() - started, 3)
        finished = bool(queued) and all(job.status in Job.FINISHED for job in queued)
        body.update(jobs=JobDetailSerializer(queued, many=True).data, finished=finished)
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
        page = queryset[offset : offset + limit]
        return Response(
            {
                "count": total,
                "limit": limit,
                "offset": offset,
                "next_offset": offset + limit if offset + limit < total else None,
                "counts": Job.objects.counts(),
                "jobs": JobSerializer(page, many=True).data,
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
        return Response(JobDetailSerializer(job).data)


class InfoView(NomarrView):
    @extend_schema(
        summary="Version, models, queue and workers",
        responses={200: InfoSerializer, **errors(401)},
        tags=["tagging"],
    )
    def get(self, request):
        info = {
            "version": version(),
            "models": current_catalog(),
            "queue": Job.objects.counts(),
            "worker": WorkerState.get(),
        }
        return Response(InfoSerializer(info).data)


# --- admin -------------------------------------------------------------------------


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
        return Response(WorkerInfoSerializer(WorkerState.get()).data)


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
        models = ModelsSerializer(current_catalog()).data
        return Response({"models_generation": generation, **models})


# --- Lidarr -------------------------------------------------------------------------


class LidarrWebhookView(NomarrView):
    @extend_schema(
        summary="Lidarr's Webhook connection",
        description=(
            "Point a Lidarr *Webhook* connection (method POST or PUT, the same) at this "
            "URL, with the API key as the password (any user name) or, from Lidarr 2.9.4, "
            "in an `X-Api-Key` header.\n\n"
            "- `Test`: answers 200, does nothing.\n"
            "- `Download` (On Release Import, On Upgrade): queues every "
            "`trackFiles[].path`.\n"
            "- `Retag` (On Track Retag): queues `trackFile.path` and every "
            "`trackFiles[].path` again, without force: a file whose Nomarr tags survived "
            "Lidarr's own tag writing is skipped by the version check, one whose tags "
            "Lidarr scrubbed is tagged again.\n"
            "- `Rename`: queues nothing; for each `renamedTrackFiles[]`, a pending job for "
            "`previousPath` is pointed at `path` (if `path` already has a job, the old one "
            "is removed; a job already running on the old path is reported, not changed).\n"
            "- Any other event: 200, ignored.\n\n"
            "Paths are translated by NOMARR_PATH_MAP, then checked against the library "
            "roots. Each file gets its own outcome; a refused or missing file does not fail "
            "the others. 202 when at least one file has a job, else 200; 422 "
            "(`paths_refused`, the fix in `detail`) when a Download or Retag named files "
            "and every one was refused, so that Lidarr's log shows it. Refused paths are "
            "also logged and shown on the dashboard.\n\n"
            "A payload naming more than NOMARR_LIDARR_MAX_FILES (default 20,000) track "
            "files is refused with 413 (`too_many_files`) and nothing is done; below that, "
            "even a payload that large is queued in bulk and answered in seconds."
        ),
        request=LidarrWebhookSerializer,
        responses={
            200: LidarrResponseSerializer,
            202: LidarrResponseSerializer,
            422: OpenApiResponse(
                LidarrResponseSerializer,
                description="Every track file refused (`error`: paths_refused): nothing "
                "queued; `detail` says how to fix NOMARR_PATH_MAP.",
            ),
            **errors(400, 401),
            413: OpenApiResponse(
                ErrorSerializer,
                description="Body over NOMARR_MAX_BODY_MB (request_too_large), or more "
                "track files than NOMARR_LIDARR_MAX_FILES (too_many_files).",
            ),
        },
        tags=["lidarr"],
    )
    def post(self, request):
        body = lidarr.handle(request.data)
        return Response(body, status=lidarr.status_code(body))

    @extend_schema(exclude=True)  # the POST's documentation says PUT is the same
    def put(self, request):
        return self.post(request)
