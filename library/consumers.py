"""ws/scans/: the scans page's live region (#scans-live), from library/live.py."""

from __future__ import annotations

from django.template.loader import render_to_string

from library import live
from nomarr_site.consumers import LiveConsumer


class ScansConsumer(LiveConsumer):
    """Every scan's progress and the recent history, as the scans page shows them."""

    group = live.GROUP

    def signature(self) -> tuple:
        return live.signature()

    def render(self) -> str:
        return render_to_string("library/_scans_live.html", live.scans_state())
