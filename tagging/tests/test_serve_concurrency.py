"""A web process runs at most NOMARR_WEB_CONCURRENCY HTTP requests at once, the others in
turn: 200 clients must not mean 200 threads and 200 database connections."""

import asyncio

from asgiref.sync import async_to_sync

from nomarr_site.asgi import Bounded, application


def test_requests_beyond_the_limit_wait_their_turn_in_arrival_order():
    running, most, order = 0, 0, []

    async def slow_app(scope, receive, send):
        nonlocal running, most
        running += 1
        most = max(most, running)
        order.append(scope["n"])
        await asyncio.sleep(0.01)
        running -= 1

    bounded = Bounded(slow_app, 3)

    async def many():
        await asyncio.gather(*(bounded({"type": "http", "n": n}, None, None) for n in range(20)))

    async_to_sync(many)()
    assert most == 3
    assert order == list(range(20))


def test_the_site_bounds_http_but_not_websockets(settings):
    http = application.application_mapping["http"]
    assert isinstance(http, Bounded) and http.limit == settings.NOMARR_WEB_CONCURRENCY
    assert not isinstance(application.application_mapping["websocket"], Bounded)
