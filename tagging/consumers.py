"""Websockets that push live HTML fragments (htmx's ws extension swaps them in by id)."""

from __future__ import annotations

import asyncio

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.template.loader import render_to_string

from tagging import live
from tagging.models import Job

POLL_SECONDS = 0.5


class JobsConsumer(AsyncWebsocketConsumer):
    """ws/dashboard/ (the dashboard's live region) and ws/jobs/<id>/ (one job)."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        self.job_id = self.scope["url_route"]["kwargs"].get("job_id")
        self.poller = None
        await self.accept()
        await self.channel_layer.group_add(live.GROUP, self.channel_name)
        self.last = await sync_to_async(live.signature)(self.job_id)
        await self.push()
        if not live.crosses_processes():
            self.poller = asyncio.create_task(self.watch_database())

    async def disconnect(self, code: int) -> None:
        if getattr(self, "poller", None):
            self.poller.cancel()
        if hasattr(self, "job_id"):
            await self.channel_layer.group_discard(live.GROUP, self.channel_name)

    async def job_changed(self, event: dict) -> None:
        if self.job_id is None or event.get("job") == self.job_id:
            await self.push()

    async def watch_database(self) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            current = await sync_to_async(live.signature)(self.job_id)
            if current != self.last:
                self.last = current
                await self.push()

    async def push(self) -> None:
        await self.send(text_data=await sync_to_async(self.render)())

    def render(self) -> str:
        if self.job_id is None:
            return render_to_string("tagging/_dashboard_live.html", live.dashboard_state())
        job = Job.objects.filter(pk=self.job_id).first()
        return render_to_string("tagging/_job_live.html", job_context(job))


def job_context(job: Job | None) -> dict:
    """A job and its scores grouped by model, for the job page and its live region."""
    groups: dict[str, list[dict]] = {}
    if job and job.result:
        for score in job.result.get("scores", []):
            groups.setdefault(score["model"], []).append(
                {**score, "percent": round(score["score"] * 100, 1)}
            )
    return {"job": job, "groups": groups}
