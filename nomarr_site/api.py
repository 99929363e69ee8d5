"""What every API error looks like, and the pieces the API views share.

Every error answers JSON of one shape:

    {"error": "<code>", "detail": "<what is wrong, in words>", ...}

with `fields` added for a body that failed validation ({"path": ["This field is
required."]}) and whatever else the error carries (the queued jobs of a 503).

The views build on the same few pieces: `NomarrView` (JSON in through
`SafeJSONParser`, and the role nomarr_site/roles.py gives the endpoint: a logged-in
user or an API key) and `AdminView` (the roles give it to staff and keys); request
bodies are checked by serializers made of the strict fields below (a JSON string is
a string, a JSON number a number: nothing is coerced) through `validated()`;
`errors()` documents the error answers of an endpoint. This module
imports no app of the project: the apps build their APIs on it.

No request is answered with a bare 500. What Django refuses while a view reads the
request gets the same JSON shape (a body over NOMARR_MAX_BODY_MB: 413, a malformed
upload: 400); a string with a lone surrogate ("\\ud800", which no text or file name
can hold) is refused as the body is parsed; the HTML documentation pages answer
OPTIONS and their errors in JSON. An unexpected exception is logged and answered as
a JSON 500; nomarr_site.errors answers the errors no view handles the same way.
"""

from __future__ import annotations

import importlib.metadata
import logging
import re
import tomllib
from functools import cache
from pathlib import Path

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.http import Http404, JsonResponse, UnreadablePostError
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework import exceptions, serializers, status
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.utils.serializer_helpers import BindingDict
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from nomarr_site.roles import HasRole

log = logging.getLogger(__name__)

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


class TooLarge(APIError):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "the request is too large"
    code = "request_too_large"


def body_limit_text() -> str:
    """The request body limit, in words, with the setting that raises it."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return f"{limit / 2**20:g} MB (NOMARR_MAX_BODY_MB)" if limit else "no limit"


def _django_refusal(exc: Exception) -> exceptions.APIException | None:
    """The API error for what Django refuses while a view reads the request, if any."""
    if isinstance(exc, RequestDataTooBig):
        return TooLarge(f"the request body is larger than {body_limit_text()}")
    if isinstance(exc, UnreadablePostError):
        return exceptions.ParseError("the request body could not be read to its end")
    if isinstance(exc, SuspiciousOperation):
        return exceptions.ParseError(str(exc) or "malformed request")
    return None


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


def _challenge(request) -> str | None:
    """The WWW-Authenticate value a 401 carries: from the first authenticator that
    has one, the view's own first, then the project's defaults (the API key's)."""
    authenticators = list(getattr(request, "authenticators", None) or ())
    authenticators += [cls() for cls in api_settings.DEFAULT_AUTHENTICATION_CLASSES]
    for authenticator in authenticators:
        challenge = authenticator.authenticate_header(request)
        if challenge:
            return challenge
    return None


def exception_handler(exc, context):
    """DRF's handler, with every answer reshaped into {"error", "detail", ...}.

    Unexpected exceptions are logged and answered as a JSON 500, never an HTML page."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(*exc.args)
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args)
    else:
        exc = _django_refusal(exc) or exc
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
            challenge = _challenge(context.get("request"))
            if challenge:
                response["WWW-Authenticate"] = challenge
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


def json_error(status_code: int, error: str, detail: str, **extra) -> JsonResponse:
    """An error answer of the API's shape, for code that answers outside DRF's views."""
    return JsonResponse({"error": error, "detail": detail, **extra}, status=status_code)


def not_found(request, *args, **kwargs):
    """JSON 404 for an address under the API that names no endpoint."""
    return json_error(404, "not_found", f"no API endpoint at {request.path}")


# --- parsing and fields -------------------------------------------------------------


# What is left of a surrogate pair once JSON is decoded: half of one.
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _lone_surrogate(data) -> bool:
    """Whether any string in parsed JSON (keys included) holds a lone surrogate."""
    pending = [data]
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            if LONE_SURROGATE.search(value):
                return True
        elif isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return False


class SafeJSONParser(JSONParser):
    """JSON only. A body nested too deep for Python's parser, or a string holding a
    lone surrogate ("\\ud800": JSON allows the escape, but no text or file name can
    hold it), is a 400, not a 500."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - nested too deeply") from None
        if _lone_surrogate(data):
            raise exceptions.ParseError(
                "JSON parse error - a string holds a lone surrogate (\\ud800-\\udfff), "
                "which is not text"
            )
        return data


class StrictCharField(serializers.CharField):
    """A JSON string, and only that (DRF's CharField would take 12 as "12")."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """true or false, not "yes" or 1."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class StrictFloatField(serializers.FloatField):
    """A JSON number (not a string, not a boolean)."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer (not a string, a boolean or 1.5)."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


def validated(serializer_class: type[serializers.Serializer], data) -> dict:
    """The serializer's validated data; ValidationError (400) otherwise."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class AnswerSerializer:
    # Mixed into a serializer that only writes answers: its fields are built once per
    # class instead of once per answer. Building a ModelSerializer's fields means
    # introspecting the model, which costs far more than writing an object with them
    # (about a millisecond against tens of microseconds), and an answer is written on
    # every request. An answer's fields hold no per-request state, so one set, bound
    # to a bare instance, serves every instance; a serializer that reads a request
    # must not use this. (A comment, not a docstring: the schema would publish it.)

    def __init__(self, *args, **kwargs):
        if "data" in kwargs:
            raise TypeError(f"{type(self).__name__} only writes answers; it reads no data")
        super().__init__(*args, **kwargs)

    @property
    def fields(self) -> BindingDict:
        cls = type(self)
        built = cls.__dict__.get("_built_fields")
        if built is None:
            template = cls()  # bound to a bare instance, which holds no request's data
            built = BindingDict(template)
            for name, field in template.get_fields().items():
                built[name] = field
            cls._built_fields = built
        return built


# --- permissions and base views -------------------------------------------------------


class NomarrView(APIView):
    # An API endpoint: a JSON body, and the role nomarr_site/roles.py's table gives it
    # (a logged-in user or an API key; staff or a key for the admin endpoints). (Views
    # and serializers have no docstrings: drf-spectacular would publish them.)
    parser_classes = [SafeJSONParser]
    permission_classes = [HasRole]


class AdminView(NomarrView):
    # An admin endpoint: the roles table gives it to staff and API keys.
    pass


@cache
def version() -> str:
    """Nomarr's version: the installed package's, else pyproject.toml's, else "unknown"."""
    try:
        return importlib.metadata.version("nomarr")
    except importlib.metadata.PackageNotFoundError:
        pass
    try:
        with open(Path(settings.BASE_DIR) / "pyproject.toml", "rb") as handle:
            return str(tomllib.load(handle)["project"]["version"])
    except (OSError, KeyError, ValueError):
        return "unknown"


# --- OpenAPI ----------------------------------------------------------------------


class ErrorSerializer(serializers.Serializer):
    """The body of every error answer."""

    error = serializers.CharField(help_text="A short code: outside_library, path_not_found, ...")
    detail = serializers.CharField(help_text="What is wrong, in words.")
    fields = serializers.DictField(
        required=False, help_text="Per-field messages, for a body that failed validation."
    )


ERRORS = {
    400: OpenApiResponse(ErrorSerializer, description="Malformed body or parameters."),
    401: OpenApiResponse(ErrorSerializer, description="No key, or a wrong one."),
    403: OpenApiResponse(ErrorSerializer, description="Not allowed."),
    413: OpenApiResponse(
        ErrorSerializer, description="Body over NOMARR_MAX_BODY_MB (request_too_large)."
    ),
}


def errors(*codes: int) -> dict:
    """The schema's answers for these common error codes (400, 401, 403, 413)."""
    return {code: ERRORS[code] for code in codes}


class JSONErrorsPage:
    # Mixed into a page under the API that is not JSON (the schema, the documentation
    # pages): OPTIONS and every error are answered in JSON, as anywhere else under
    # /api/. The pages' HTML renderer can only draw the page: an OPTIONS request to
    # /api/v1/docs/ failed with TemplateDoesNotExist, a 500.

    def finalize_response(self, request, response, *args, **kwargs):
        if isinstance(response, Response) and (response.exception or request.method == "OPTIONS"):
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)


class SchemaPage(JSONErrorsPage, SpectacularAPIView):
    pass


class SwaggerPage(JSONErrorsPage, SpectacularSwaggerView):
    pass


class RedocPage(JSONErrorsPage, SpectacularRedocView):
    pass


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
