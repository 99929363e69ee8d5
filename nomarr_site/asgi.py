"""ASGI entry point: HTTP (pages, API) and websockets (live progress), served by daphne.

Django runs each HTTP request in a thread of its own, with its own database
connection, so a process would otherwise run as many at once as clients send:
200 clients meant 200 threads fighting over the GIL and up to 200 connections
(PostgreSQL refuses past 100: 500s). `Bounded` lets NOMARR_WEB_CONCURRENCY requests
of this process run at once and queues the rest in arrival order (an asyncio
semaphore is first come first served). Websockets are not counted: they live long
and touch the database only in short calls.
"""

import asyncio
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nomarr_site.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402

from nomarr_site.routing import websocket_urlpatterns  # noqa: E402


class Bounded:
    """An ASGI app that runs at most `limit` of its calls at once; the others wait in turn."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit
        self.turns: asyncio.Semaphore | None = None  # made in the server's event loop

    async def __call__(self, scope, receive, send):
        if self.turns is None:
            self.turns = asyncio.Semaphore(self.limit)
        async with self.turns:
            await self.app(scope, receive, send)


application = ProtocolTypeRouter(
    {
        "http": Bounded(django_asgi_app, settings.NOMARR_WEB_CONCURRENCY),
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)
