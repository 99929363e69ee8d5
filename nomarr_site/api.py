"""What every API error looks like, and the pieces the API views share.

Every error answers JSON of one shape:

    {"error": "<code>", "detail": "<what is wrong, in words>", ...}

with `fields` added for a body that failed validation ({"path": ["This field is
required."]}) and whatever else the error carries (the queued jobs of a 503).
"""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from accounts.auth import REALM

log = logging.getLogger(__name__)

AUTHENTICATE = f'Bearer realm="{REALM}"'

# DRF's own codes, renamed where the API's word is clearer.
CODES = {
    exceptions.ParseError: "malformed_request",
    exceptions.ValidationError: "invalid_request",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
}


class APIError(exceptions.APIException):
    """An API error with its own code; `extra` is added to the JSON body."""

    code = "error"

    def __init__(self, detail: str | None = None, **extra):
        super().__init__(detail)
        self.extra = extra


class OutsideLibraryError(APIError):
    status_code = status.HTTP_403_FORBIDDEN
    default_detail = "path is outside the library roots"
    code = "outside_library"


class PathNotFound(APIError):
    status_code = status.HTTP_404_NOT_FOUND
    default_detail = "no such file or folder"
    code = "path_not_found"


class JobNotFound(APIError):
    status_code = status.HTTP_404_NOT_FOUND
    default_detail = "no such job"
    code = "job_not_found"


class Conflict(APIError):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "the operation does not fit the current state"
    code = "conflict"


class NoWorker(APIError):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "no worker available"
    code = "no_worker_available"


def _code(exc: exceptions.APIException) -> str:
    if isinstance(exc, APIError):
        return exc.code
    for cls in type(exc).__mro__:
        if cls in CODES:
            return CODES[cls]
    return str(getattr(exc, "default_code", "error"))


def _summary(fields) -> str:
    """Validation errors as one line: 'path: This field is required.; force: ...'."""
    if isinstance(fields, dict):
        parts = []
        for name, errors in fields.items():
            text = _summary(errors)
            parts.append(text if name == "non_field_errors" else f"{name}: {text}")
        return "; ".join(parts)
    if isinstance(fields, list):
        return "; ".join(_summary(item) for item in fields)
    return str(fields)


def exception_handler(exc, context):
    """DRF's handler, with every answer reshaped into {"error", "detail", ...}.

    Unexpected exceptions are logged and answered as a JSON 500, never an HTML page."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(*exc.args)
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args)
    response = drf_exception_handler(exc, context)
    if response is None:
        view = context.get("view")
        log.exception(
            "unexpected error in %s", type(view).__name__ if view else "API", exc_info=exc
        )
        return Response(
            {"error": "internal_error", "detail": "internal server error; see the server log"},
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        # DRF turns these into 403 when the view's first authenticator gives no header.
        response.status_code = status.HTTP_401_UNAUTHORIZED
        if not response.has_header("WWW-Authenticate"):
            response["WWW-Authenticate"] = AUTHENTICATE
    body = {"error": _code(exc)}
    if isinstance(exc, exceptions.ValidationError):
        body["detail"] = _summary(exc.detail) or "invalid request"
        body["fields"] = (
            exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        )
    else:
        body["detail"] = _summary(exc.detail)
    body.update(getattr(exc, "extra", {}))
    response.data = body
    return response


def not_found(request, *args, **kwargs):
    """JSON 404 for an address under the API that names no endpoint."""
    return JsonResponse(
        {"error": "not_found", "detail": f"no API endpoint at {request.path}"}, status=404
    )


# --- OpenAPI ----------------------------------------------------------------------


class ErrorSerializer(serializers.Serializer):
    """The body of every error answer."""

    error = serializers.CharField(help_text="A short code: outside_library, path_not_found, ...")
    detail = serializers.CharField(help_text="What is wrong, in words.")
    fields = serializers.DictField(
        required=False, help_text="Per-field messages, for a body that failed validation."
    )


class APIKeyScheme(OpenApiAuthenticationExtension):
    """Documents accounts.auth.APIKeyAuthentication in the schema."""

    target_class = "accounts.auth.APIKeyAuthentication"
    name = ["bearerAuth", "apiKeyHeader", "basicAuth"]

    def get_security_requirement(self, auto_schema):
        # Any one of them will do (a list means OR; one dict of several would mean AND).
        return [{name: []} for name in self.name]

    def get_security_definition(self, auto_schema):
        return [
            {
                "type": "http",
                "scheme": "bearer",
                "description": "`Authorization: Bearer <key>`, or `Token`/`Api-Key` for Bearer.",
            },
            {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
            {
                "type": "http",
                "scheme": "basic",
                "description": "Any user name; the API key as the password (Lidarr's fields).",
            },
        ]
