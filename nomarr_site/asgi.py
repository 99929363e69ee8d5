"""ASGI entry point: HTTP (pages, API) and websockets (live progress), served by daphne.

Django runs each HTTP request's view in a thread: by default a new thread for every
request (and another to join it), each with a new database connection. `Bounded` runs
them instead in NOMARR_WEB_CONCURRENCY lanes, threads made once per process: a request
takes a free lane, runs all its sync code in that lane's thread, and gives the lane
back; the others wait in arrival order (asyncio's queue is first come first served).
So a process has at most that many requests, threads and database connections at
once: 200 clients once meant 200 threads fighting over the GIL and up to 200
connections (PostgreSQL refuses past 100: 500s). A lane's thread keeps its
connection between requests when NOMARR_DB_CONN_MAX_AGE says so (on PostgreSQL the
web processes take theirs from a pool instead, NOMARR_DB_POOL: nomarr_site.webserver).
Websockets are not counted: they live long and touch the database only in short calls.

`LaneHandler` is Django's ASGI handler with the request's sync part made one call:
the request_started signal, the middleware, the view and, for an answer that is not
streamed, the request_finished signal (the connection given back) run together in
the lane's thread. Django's own would go to that thread and back four times a
request (its sync middleware, then its async-capable middleware in the event loop,
then the sync view, then closing), each hop a thread handover and a wake-up of the
event loop: a third or more of a small API request's CPU (POST /api/v1/tag through
the application on SQLite: 6-9 ms of CPU with Django's handler, 4-5.5 ms with this
one). Nomarr has no async views, so a sync middleware chain loses nothing.
"""

import asyncio
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nomarr_site.settings")
django.setup(set_prefix=False)  # what get_asgi_application does first

from asgiref.sync import ThreadSensitiveContext, sync_to_async  # noqa: E402
from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core import signals  # noqa: E402
from django.core.exceptions import RequestAborted  # noqa: E402
from django.core.handlers.asgi import ASGIHandler, get_script_prefix  # noqa: E402
from django.http import FileResponse  # noqa: E402
from django.urls import set_script_prefix  # noqa: E402

from nomarr_site.routing import websocket_urlpatterns  # noqa: E402


class LaneHandler(ASGIHandler):
    """Django's ASGI handler, running each request's sync part in one call of its
    thread (the lane's, under `Bounded`): see the module's docstring."""

    def __init__(self):
        super().__init__()
        self.load_middleware(is_async=False)  # one sync chain, the view at its end

    async def handle(self, scope, receive, send):
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        try:
            response = await sync_to_async(self._respond, thread_sensitive=True)(scope, body_file)
            try:
                await self.send_response(response, send)
            except asyncio.CancelledError:
                pass  # the client went away while the answer was sent (as Django does)
            finally:
                if response.streaming:
                    await sync_to_async(response.close, thread_sensitive=True)()
        finally:
            body_file.close()

    def _respond(self, scope, body_file):
        """The answer to one request, in the request's thread. An answer that is not
        streamed is complete here: it is closed here too (request_finished: the
        database connection is closed or given back before the bytes are sent)."""
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, response = self.create_request(scope, body_file)
        if request is not None:
            response = self.get_response(request)  # exceptions become answers (500)
            response._handler_class = self.__class__
            if isinstance(response, FileResponse):
                response.block_size = self.chunk_size
        if not response.streaming:
            response.close()
        return response


class Bounded:
    """An ASGI app that runs at most `limit` of its calls at once, each in one of `limit`
    lanes (a thread apiece, made once, for the calls' sync code); the others wait in turn.

    Strictly in turn: a lane given back goes straight to the call that has waited
    longest. (An asyncio.Queue of lanes was not fair: a call arriving while a woken
    waiter had not yet run took the lane, and the waiter went to the back of the line;
    under load some requests waited 4 s while most took 1 s.)"""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit
        self.free: list[ThreadPoolExecutor] | None = None  # made on the first call
        self.waiting: deque[asyncio.Future[ThreadPoolExecutor]] = deque()

    async def _take(self) -> ThreadPoolExecutor:
        if self.free is None:
            self.free = [
                ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"web-lane-{n}")
                for n in reversed(range(self.limit))
            ]
        if self.free and not self.waiting:
            return self.free.pop()
        turn = asyncio.get_running_loop().create_future()
        self.waiting.append(turn)
        try:
            return await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._give_back(turn.result())  # handed over as the wait was cancelled
            else:
                self.waiting.remove(turn)
            raise

    def _give_back(self, lane: ThreadPoolExecutor) -> None:
        while self.waiting:
            turn = self.waiting.popleft()
            if not turn.done():
                turn.set_result(lane)
                return
        assert self.free is not None
        self.free.append(lane)

    async def __call__(self, scope, receive, send):
        lane = await self._take()
        try:
            # Django's own ThreadSensitiveContext (one new thread a request) sees this
            # one and uses it: every sync part of the request runs in the lane's thread.
            async with ThreadSensitiveContext(executor=lane):
                await self.app(scope, receive, send)
        finally:
            self._give_back(lane)


application = ProtocolTypeRouter(
    {
        "http": Bounded(LaneHandler(), settings.NOMARR_WEB_CONCURRENCY),
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)
