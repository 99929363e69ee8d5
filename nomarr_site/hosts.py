"""A request for a host name the server does not answer to, told what to change.

Django refuses a `Host` header missing from ALLOWED_HOSTS with a bare HTML 400
("Bad Request"), which tells Lidarr's or a script's owner nothing. The first
middleware checks the host itself and answers such a request with the setting to
change: JSON of the API's error shape for the API, /health and /metrics, a line of
text for pages. Everything else goes on to Django as before.
"""

from __future__ import annotations

from django.core.exceptions import DisallowedHost
from django.http import HttpResponse, JsonResponse

# Addresses that machines call: they get JSON.
MACHINE_PREFIXES = ("/api/", "/health", "/metrics")
# A Host header is attacker-controlled: quote at most this much of it back.
QUOTED = 100


def refusal(host: str) -> str:
    """Why the request was refused and what to set, in one sentence."""
    shown = host if len(host) <= QUOTED else host[:QUOTED] + "..."
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    name = name[:QUOTED] or "the name"
    return (
        f"this server does not answer to the host name {shown!r}: add it to "
        f"NOMARR_ALLOWED_HOSTS (comma-separated, * for any), for example "
        f"NOMARR_ALLOWED_HOSTS={name}, and restart Nomarr"
    )


class AllowedHostMiddleware:
    """First in MIDDLEWARE: a disallowed Host is answered here, with the setting to change."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            request.get_host()
        except DisallowedHost:
            detail = refusal(request._get_raw_host())
            if request.path.startswith(MACHINE_PREFIXES):
                return JsonResponse({"error": "disallowed_host", "detail": detail}, status=400)
            return HttpResponse(
                f"Bad Request: {detail}\n", status=400, content_type="text/plain; charset=utf-8"
            )
        return self.get_response(request)
