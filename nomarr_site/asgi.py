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
"""

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nomarr_site.settings")
django_asgi_app = get_asgi_application()

from asgiref.sync import ThreadSensitiveContext  # noqa: E402
from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402

from nomarr_site.routing import websocket_urlpatterns  # noqa: E402


class Bounded:
    """An ASGI app that runs at most `limit` of its calls at once, each in one of `limit`
    lanes (a thread apiece, made once, for the calls' sync code); the others wait in turn."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit
        self.lanes: asyncio.Queue[ThreadPoolExecutor] | None = None  # made in the server's loop

    async def __call__(self, scope, receive, send):
        if self.lanes is None:
            self.lanes = asyncio.Queue()
            for n in range(self.limit):
                self.lanes.put_nowait(
                    ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"web-lane-{n}")
                )
        lane = await self.lanes.get()
        try:
            # Django's own ThreadSensitiveContext (one new thread a request) sees this
            # one and uses it: every sync part of the request runs in the lane's thread.
            async with ThreadSensitiveContext(executor=lane):
                await self.app(scope, receive, send)
        finally:
            self.lanes.put_nowait(lane)


application = ProtocolTypeRouter(
    {
        "http": Bounded(django_asgi_app, settings.NOMARR_WEB_CONCURRENCY),
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)
