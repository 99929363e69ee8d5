"""Websocket routes (the web UI's live updates, see nomarr_site/consumers.py)."""

from django.urls import path

from library.consumers import ScansConsumer
from tagging.consumers import DashboardConsumer, JobConsumer, QueueConsumer

websocket_urlpatterns = [
    path("ws/dashboard/", DashboardConsumer.as_asgi()),
    path("ws/jobs/<int:job_id>/", JobConsumer.as_asgi()),
    path("ws/queue/", QueueConsumer.as_asgi()),
    path("ws/scans/", ScansConsumer.as_asgi()),
]
