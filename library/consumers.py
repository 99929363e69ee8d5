"""Live scan progress: ws/scans/ pushes the scans page's live region as HTML.

Same design as the tagging pages (tagging/live.py, tagging/consumers.py): the Scan
rows are the truth (a scan saves its counters about once a second, see
library/scanning.py) and every push renders the region from the database, so a page
opened mid-scan shows the current state at once. Through channels-redis a scan
announces each save to the GROUP (`announce`, the scan's on_progress callback);
the in-memory channel layer of the embedded set-up cannot carry that from a
qcluster process to the web server, so there the consumer watches the database.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from asgiref.sync import async_to_sync, sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.db.models import Count
from django.template.loader import render_to_string
from django.utils import timezone

from library.models import LibraryFile, Scan
from tagging.live import crosses_processes

GROUP = "nomarr.scans"
HISTORY = 20
POLL_SECONDS = 0.5
#: Problems listed per scan in the history (the Scan row keeps up to 200).
PROBLEMS_SHOWN = 10


def announce(*_args) -> None:
    """Tell the web servers that a scan changed (its row is already saved).

    Fits Scan's on_progress callback: `scan_root(root, on_progress=announce)`."""
    if not crosses_processes():
        return
    try:
        async_to_sync(get_channel_layer().group_send)(GROUP, {"type": "scan.changed"})
    except Exception:  # a page missing an update must never fail a scan
        logging.getLogger(__name__).warning("could not announce a scan change", exc_info=True)


def scans_state() -> dict:
    """The running scans with their counters, and the last HISTORY scans."""
    history = list(Scan.objects.select_related("root").order_by("-pk")[:HISTORY])
    running = [scan for scan in history if scan.status == Scan.Status.RUNNING]
    older = Scan.objects.filter(status=Scan.Status.RUNNING).exclude(pk__in=[s.pk for s in running])
    running += list(older.select_related("root"))
    # A scan's total is unknown until its walk ends: the root's files at the last
    # scan are the estimate.
    known = dict(
        LibraryFile.objects.filter(root__in={scan.root_id for scan in running})
        .values_list("root")
        .annotate(n=Count("id"))
    )
    now = timezone.now()
    for scan in running:
        scan.expected = known.get(scan.root_id, 0)
        scan.percent = min(100, round(100 * scan.seen / scan.expected)) if scan.expected else None
        scan.elapsed = _duration((now - scan.started_at).total_seconds())
    for scan in history:
        scan.problems_shown = scan.problems[:PROBLEMS_SHOWN]
        scan.problems_more = max(0, len(scan.problems) - PROBLEMS_SHOWN)
        scan.took = _duration(scan.seconds)
    return {"running": sorted(running, key=lambda s: s.pk), "history": history}


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 1:
        return "under 1 s"
    return str(timedelta(seconds=round(seconds))).removeprefix("0:")


def signature() -> tuple:
    """Changes whenever the live region would change; cheap enough to poll."""
    fields = ("pk", "status", "cancel_requested", "message", *Scan.COUNTERS)
    return tuple(Scan.objects.order_by("-pk").values_list(*fields)[:HISTORY]) + tuple(
        Scan.objects.filter(status=Scan.Status.RUNNING).values_list("pk", *Scan.COUNTERS)
    )


def render_live() -> str:
    return render_to_string("library/_scans_live.html", scans_state())


class ScansConsumer(AsyncWebsocketConsumer):
    """ws/scans/: the scans page's live region (#scans-live), for people logged in."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        self.poller = None
        await self.accept()
        await self.channel_layer.group_add(GROUP, self.channel_name)
        self.joined = True
        self.last = await sync_to_async(signature)()
        await self.push()
        if not crosses_processes():
            self.poller = asyncio.create_task(self.watch_database())

    async def disconnect(self, code: int) -> None:
        if getattr(self, "poller", None):
            self.poller.cancel()
        if getattr(self, "joined", False):
            await self.channel_layer.group_discard(GROUP, self.channel_name)

    async def scan_changed(self, event: dict) -> None:
        await self.push()

    async def watch_database(self) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            current = await sync_to_async(signature)()
            if current != self.last:
                self.last = current
                await self.push()

    async def push(self) -> None:
        await self.send(text_data=await sync_to_async(render_live)())
