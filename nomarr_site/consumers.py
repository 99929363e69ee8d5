"""Live pages: a change is announced to a group, a websocket pushes the region as HTML.

The database is the truth. A worker (or a scan) saves its row first, then
`announce`s it to the app's group; every `LiveConsumer` in that group renders its
page's live region from the database and sends it whole (htmx's ws extension
swaps it in by id), so a page opened mid-job shows the current state at once.

Through channels-redis (the scale-out set-up) an announcement reaches every web
server's consumers directly. The in-memory channel layer of the embedded set-up
does not cross from a `qcluster` process to the web server: there `announce`
does nothing and each consumer watches the database instead, polling its
`signature()` (cheap, and different whenever the region would be) every
POLL_SECONDS.

An app's live code (its group, state, signature, announce) lives in its own
`live.py`; its consumers only name the group and say how to sign and render.
"""

from __future__ import annotations

import asyncio
import logging

from asgiref.sync import async_to_sync, sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import InMemoryChannelLayer, get_channel_layer

POLL_SECONDS = 0.5
#: Close code for a socket opened by someone not logged in (the page's login_required).
NOT_LOGGED_IN = 4401

log = logging.getLogger(__name__)


def crosses_processes() -> bool:
    """Whether an announcement reaches consumers in other processes (channels-redis)."""
    layer = get_channel_layer()
    return layer is not None and not isinstance(layer, InMemoryChannelLayer)


def announce(group: str, **details) -> None:
    """Tell the web servers' consumers in group that something changed (already saved).

    details travel with the event (a consumer's `wants` reads them). A failure is
    logged, never raised: a page missing an update must never fail a job or a scan."""
    if not crosses_processes():
        return
    try:
        async_to_sync(get_channel_layer().group_send)(group, {"type": "live.changed", **details})
    except Exception:
        log.warning("could not announce a change to %s %s", group, details, exc_info=True)


class LiveConsumer(AsyncWebsocketConsumer):
    """A websocket that pushes one live region, for people logged in.

    A subclass sets `group` and defines `signature()` and `render()` (both run in a
    thread: they query the database), and `wants(event)` if only some of the
    group's announcements concern it."""

    group: str

    def signature(self) -> tuple:
        raise NotImplementedError

    def render(self) -> str:
        raise NotImplementedError

    def wants(self, event: dict) -> bool:
        return True

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=NOT_LOGGED_IN)
            return
        self.poller = None
        await self.accept()
        await self.channel_layer.group_add(self.group, self.channel_name)
        self.joined = True
        self.last = await sync_to_async(self.signature)()
        await self.push()
        if not crosses_processes():
            self.poller = asyncio.create_task(self.watch_database())

    async def disconnect(self, code: int) -> None:
        if getattr(self, "poller", None):
            self.poller.cancel()
        if getattr(self, "joined", False):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def live_changed(self, event: dict) -> None:
        if self.wants(event):
            await self.push()

    async def watch_database(self) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            current = await sync_to_async(self.signature)()
            if current != self.last:
                self.last = current
                await self.push()

    async def push(self) -> None:
        await self.send(text_data=await sync_to_async(self.render)())
