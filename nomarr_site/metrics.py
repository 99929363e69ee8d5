"""GET /metrics: Nomarr's figures in Prometheus' text format, for Grafana.

Every figure is read from the database when Prometheus scrapes (the Job and Scan
tables are the truth, shared by the web server and every worker process), so the
answer is the same whichever process serves it:

    nomarr_jobs{status}                         jobs in the table by status (queue depth:
                                                pending and running; done and error
                                                until `cleanup` removes them)
    nomarr_jobs_finished_last_hour{status}      done and error jobs finished in the last hour
    nomarr_analysis_seconds_per_audio_minute    worker seconds per minute of audio, over
                                                the last 100 files tagged
    nomarr_workers_alive                        worker clusters reporting themselves running
    nomarr_workers_paused                       1 while the queue is paused
    nomarr_library_files                        audio files in the library table
    nomarr_scan_running{root}                   1 while a scan of that root runs
    nomarr_scan_last_duration_seconds{root}     how long the root's last finished scan took
    nomarr_scan_last_finished_timestamp_seconds{root}

Scraping needs an API key (`Authorization: Bearer <key>`, as the API; Prometheus'
`authorization: {credentials: <key>}`) or a staff login, unless
NOMARR_METRICS_PUBLIC is true.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Max
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from rest_framework.exceptions import AuthenticationFailed

from accounts.auth import REALM, check_key, key_from_request
from library.models import LibraryFile, Scan
from nomarr_site import roles
from tagging.models import Job, WorkerState

# The analysis rate is measured over this many of the latest tagged files.
RATE_SAMPLE = 100


def analysis_seconds_per_audio_minute() -> float | None:
    """Worker seconds spent per minute of audio, over the latest tagged files whose
    duration the library knows; None before there is one."""
    latest = list(
        Job.objects.filter(
            status=Job.Status.DONE,
            result__status="tagged",
            started_at__isnull=False,
            finished_at__isnull=False,
        )
        .order_by("-finished_at")
        .values_list("path", "started_at", "finished_at")[:RATE_SAMPLE]
    )
    durations = dict(
        LibraryFile.objects.filter(
            path__in=[path for path, _, _ in latest], duration__gt=0
        ).values_list("path", "duration")
    )
    seconds = minutes = 0.0
    for path, started, finished in latest:
        if path in durations:
            seconds += (finished - started).total_seconds()
            minutes += durations[path] / 60
    return seconds / minutes if minutes else None


class NomarrCollector:
    """Reads every figure afresh from the database on each scrape."""

    def collect(self):
        jobs = GaugeMetricFamily("nomarr_jobs", "Jobs in the table by status", labels=["status"])
        for status, count in Job.objects.counts().items():
            jobs.add_metric([status], count)
        yield jobs

        finished = GaugeMetricFamily(
            "nomarr_jobs_finished_last_hour",
            "Jobs that finished in the last hour, done or error",
            labels=["status"],
        )
        recent = dict(
            Job.objects.filter(
                status__in=Job.FINISHED, finished_at__gte=timezone.now() - timedelta(hours=1)
            )
            .values_list("status")
            .annotate(n=Count("pk"))
            .order_by()
        )
        for status in Job.FINISHED:
            finished.add_metric([status], recent.get(status, 0))
        yield finished

        rate = analysis_seconds_per_audio_minute()
        if rate is not None:
            yield GaugeMetricFamily(
                "nomarr_analysis_seconds_per_audio_minute",
                f"Worker seconds per minute of audio, over the last {RATE_SAMPLE} files tagged",
                value=rate,
            )
        yield GaugeMetricFamily(
            "nomarr_workers_alive",
            "Worker clusters reporting themselves running",
            value=WorkerState.objects.workers_alive(),
        )
        yield GaugeMetricFamily(
            "nomarr_workers_paused",
            "1 while the queue is paused",
            value=int(WorkerState.objects.filter(paused=True).exists()),
        )
        yield GaugeMetricFamily(
            "nomarr_library_files", "Audio files in the library", value=LibraryFile.objects.count()
        )
        yield from self.scans()

    def scans(self):
        running = GaugeMetricFamily(
            "nomarr_scan_running", "1 while a scan of the root runs", labels=["root"]
        )
        duration = GaugeMetricFamily(
            "nomarr_scan_last_duration_seconds",
            "How long the root's last finished scan took",
            labels=["root"],
        )
        finished_at = GaugeMetricFamily(
            "nomarr_scan_last_finished_timestamp_seconds",
            "When the root's last finished scan ended (Unix time)",
            labels=["root"],
        )
        active = set(
            Scan.objects.filter(status=Scan.Status.RUNNING).values_list("root__path", flat=True)
        )
        last = (
            Scan.objects.filter(finished_at__isnull=False)
            .order_by()
            .values("root")
            .annotate(last=Max("pk"))
        )
        roots = set(active)
        for scan in Scan.objects.filter(pk__in=[row["last"] for row in last]).select_related(
            "root"
        ):
            root = scan.root.path
            roots.add(root)
            duration.add_metric([root], (scan.finished_at - scan.started_at).total_seconds())
            finished_at.add_metric([root], scan.finished_at.timestamp())
        for root in sorted(roots):
            running.add_metric([root], int(root in active))
        yield running
        yield duration
        yield finished_at


def refused(detail: str) -> JsonResponse:
    response = JsonResponse({"error": "not_authenticated", "detail": detail}, status=401)
    response["WWW-Authenticate"] = f'Bearer realm="{REALM}"'
    return response


@never_cache
@require_safe
def metrics(request):
    if not settings.NOMARR_METRICS_PUBLIC:
        try:
            key = key_from_request(request)
            if key is not None:
                check_key(key)
            elif not roles.is_staff(request.user):
                return refused("metrics need an API key (Authorization: Bearer <key>)")
        except AuthenticationFailed as exc:
            return refused(str(exc.detail))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NomarrCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
