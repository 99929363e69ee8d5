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


def test_a_lane_given_back_goes_to_the_longest_waiter_not_to_a_request_just_come():
    order = []
    bounded = None

    async def app(scope, receive, send):
        order.append(scope["n"])
        if scope["n"] == 0:
            await asyncio.sleep(0)  # the next one is waiting for the lane now
            # A request arrives as this one ends: it first runs after this one gave its
            # lane back, but before the waiting one woke up.
            later.append(asyncio.ensure_future(bounded({"type": "http", "n": 2}, None, None)))
            return
        await asyncio.sleep(0)

    bounded = Bounded(app, 1)
    later: list[asyncio.Future] = []

    async def scenario():
        first = asyncio.ensure_future(bounded({"type": "http", "n": 0}, None, None))
        waiting = asyncio.ensure_future(bounded({"type": "http", "n": 1}, None, None))
        await asyncio.gather(first, waiting)
        await asyncio.gather(*later)

    async_to_sync(scenario)()
    assert order == [0, 1, 2]


def test_a_request_cancelled_while_waiting_for_a_lane_gives_up_its_turn():
    started = []

    async def app(scope, receive, send):
        started.append(scope["n"])
        await asyncio.sleep(0.01)

    bounded = Bounded(app, 1)

    async def scenario():
        first = asyncio.ensure_future(bounded({"type": "http", "n": 0}, None, None))
        gone = asyncio.ensure_future(bounded({"type": "http", "n": 1}, None, None))
        third = asyncio.ensure_future(bounded({"type": "http", "n": 2}, None, None))
        await asyncio.sleep(0)
        gone.cancel()
        await asyncio.gather(first, third)
        await bounded({"type": "http", "n": 3}, None, None)  # the lane came back

    async_to_sync(scenario)()
    assert started == [0, 2, 3]


def test_the_site_bounds_http_but_not_websockets(settings):
    http = application.application_mapping["http"]
    assert isinstance(http, Bounded) and http.limit == settings.NOMARR_WEB_CONCURRENCY
    assert not isinstance(application.application_mapping["websocket"], Bounded)
