"""/api/v1/: the API's addresses, its OpenAPI schema and its documentation pages."""

from django.urls import path, re_path

from nomarr_site.api import RedocPage, SchemaPage, SwaggerPage, not_found
from tagging import api

app_name = "api"

urlpatterns = [
    path("tag", api.TagView.as_view(), name="tag"),
    path("list", api.JobListView.as_view(), name="list"),
    path("status/<int:job_id>", api.JobStatusView.as_view(), name="status"),
    path("info", api.InfoView.as_view(), name="info"),
    path("lidarr", api.LidarrWebhookView.as_view(), name="lidarr"),
    path("admin/queue/remove", api.QueueRemoveView.as_view(), name="queue-remove"),
    path("admin/queue/flush", api.QueueFlushView.as_view(), name="queue-flush"),
    path("admin/queue/cleanup", api.QueueCleanupView.as_view(), name="queue-cleanup"),
    path("admin/queue/reset", api.QueueResetView.as_view(), name="queue-reset"),
    path("admin/worker/pause", api.WorkerPauseView.as_view(), name="worker-pause"),
    path("admin/worker/resume", api.WorkerResumeView.as_view(), name="worker-resume"),
    path("admin/models/refresh", api.ModelsRefreshView.as_view(), name="models-refresh"),
    path("schema/", SchemaPage.as_view(api_version="1"), name="schema"),
    path("docs/", SwaggerPage.as_view(url_name="api:schema"), name="docs"),
    path("redoc/", RedocPage.as_view(url_name="api:schema"), name="redoc"),
    # Anything else under /api/v1/ is a JSON 404, not Django's HTML page.
    re_path(r"^.*$", not_found),
]
