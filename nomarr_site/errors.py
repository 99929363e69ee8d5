"""The answers to errors no view handled: Django's handler400/403/404/500.

Views answer their own errors (a page with a message, or the API's JSON through
nomarr_site.api.exception_handler). What reaches Django's handlers is what no view
could answer: an exception, a request refused before any view ran (a form body over
NOMARR_MAX_BODY_MB, a malformed upload), an address that names nothing. Each is
answered in the shape the caller reads: under /api/ the API's JSON error
({"error", "detail"}), anywhere else a plain page that says what happened.

A body over the limit is a 413 (Django calls it a bad request, 400). The 500 page
is drawn from a template that needs neither the database nor the request (the
failure may be either of them), and the exception has been logged by Django
(the django.request logger) before the handler runs.
"""

from __future__ import annotations

from http import HTTPStatus

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.template import loader

from nomarr_site.api import body_limit_text, json_error

API_PREFIX = "/api/"

# Status -> (the API's error code, what the page says).
MEANINGS = {
    400: ("malformed_request", "The request could not be understood."),
    403: ("permission_denied", "You are not allowed to do that."),
    404: ("not_found", "There is nothing at this address."),
    413: ("request_too_large", ""),
    500: ("internal_error", "Something went wrong on the server; the server log says what."),
}


def answer(request: HttpRequest, status: int, detail: str = "") -> HttpResponse:
    """The error answer for request: JSON under /api/, a page elsewhere."""
    error, meaning = MEANINGS[status]
    detail = detail or meaning
    if request.path.startswith(API_PREFIX):
        return json_error(status, error, detail)
    page = loader.render_to_string(
        "error.html",
        {"status": status, "title": HTTPStatus(status).phrase, "detail": detail},
    )
    return HttpResponse(page, status=status)


def _message(exception) -> str:
    """The message an exception was raised with, if it carries one meant for the user."""
    if exception is None or not exception.args:
        return ""
    first = exception.args[0]
    return first if isinstance(first, str) else ""


def bad_request(request: HttpRequest, exception=None) -> HttpResponse:
    if isinstance(exception, RequestDataTooBig):
        return answer(request, 413, f"The request body is larger than {body_limit_text()}.")
    return answer(request, 400)


def permission_denied(request: HttpRequest, exception=None) -> HttpResponse:
    return answer(request, 403, _message(exception))


def page_not_found(request: HttpRequest, exception=None) -> HttpResponse:
    return answer(request, 404)


def server_error(request: HttpRequest) -> HttpResponse:
    return answer(request, 500)
