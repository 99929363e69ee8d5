"""Live scan progress over ws/scans/, as the browser's htmx ws extension receives it."""

from __future__ import annotations

import re

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from library.consumers import ScansConsumer
from library.live import announce
from library.models import Scan
from library.scanning import claim_scan, scan_root
from nomarr_site.asgi import application
from tagging.tests.support import websocket_headers

# scaleout: bin/test runs these again with channels-redis, where the consumer does not
# watch the database but is told by the scan (its on_progress callback) and the page.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.scaleout]


async def watch(headers, change=None, until=None, timeout: float = 10) -> list[str]:
    """Connect, take the first message, make the change, then take messages until one
    satisfies until (or only the first, without a change)."""
    communicator = WebsocketCommunicator(application, "/ws/scans/", headers=headers)
    connected, code = await communicator.connect()
    if not connected:
        return [f"closed {code}"]
    received = [await communicator.receive_from(timeout=timeout)]
    if change:
        await change()
        while not until(received[-1]) or len(received) == 1:
            received.append(await communicator.receive_from(timeout=timeout))
    await communicator.disconnect()
    return received


def test_the_anonymous_get_a_closed_socket():
    assert async_to_sync(watch)(websocket_headers()) == ["closed 4401"]


def test_a_scan_is_seen_from_start_to_finish(admin_user, root_row, add):
    for n in range(3):
        add(f"Album/{n}.flac")

    async def a_scan_runs():
        await sync_to_async(scan_root)(root_row, on_progress=announce)

    messages = async_to_sync(watch)(
        websocket_headers(admin_user), a_scan_runs, until=lambda m: 'scan-status">done<' in m
    )
    first, last = messages[0], messages[-1]
    assert first.startswith('<div id="scans-live">') and 'id="no-scan-running"' in first
    scan = Scan.objects.get()
    assert f'id="scan-row-{scan.pk}"' in last and 'id="no-scan-running"' in last
    row = last[last.index(f'id="scan-row-{scan.pk}"') :]
    assert "<td>3</td><td>3</td><td>3</td>" in row  # seen, read, new


def test_a_running_scans_counters_and_cancel_flag_are_pushed(admin_user, root_row):
    running = claim_scan(root_row)
    client = Client()
    client.force_login(admin_user)

    async def progress_then_cancel():
        await sync_to_async(Scan.objects.filter(pk=running.pk).update)(seen=7, new=5)
        await sync_to_async(client.post)(
            f"/library/scans/{root_row.pk}/", {"action": "cancel", "confirm": "yes"}
        )

    messages = async_to_sync(watch)(
        websocket_headers(admin_user), progress_then_cancel, until=lambda m: "cancelling" in m
    )
    assert f'id="scan-{running.pk}"' in messages[0] and 'class="scan-seen">0<' in messages[0]
    assert 'class="scan-seen">7<' in messages[-1] and "cancelling" in messages[-1]


def test_the_page_and_the_socket_render_the_same_region(admin_client, root_row):
    claim_scan(root_row)
    page = admin_client.get("/library/scans/").content.decode()
    region = ScansConsumer().render()

    def steady(text: str) -> str:  # the elapsed time may tick between the two
        return re.sub(r"running for [^<]+", "running for …", text)

    assert 'id="scans-live"' in region and steady(region.strip()) in steady(page)
