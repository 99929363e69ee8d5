"""Websocket routes (the web UI's live updates)."""

from django.urls import path

from library.consumers import ScansConsumer
from tagging.consumers import JobsConsumer

websocket_urlpatterns = [
    path("ws/dashboard/", JobsConsumer.as_asgi()),
    path("ws/jobs/<int:job_id>/", JobsConsumer.as_asgi()),
    path("ws/scans/", ScansConsumer.as_asgi()),
]
