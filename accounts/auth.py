"""API keys for machines (Lidarr, scripts): how a request proves it holds one.

Keys are made by `manage.py create_api_key` and stored hashed by
djangorestframework-api-key; the key itself is shown once. A request may carry
its key as any of

    Authorization: Bearer <key>
    Authorization: Token <key>
    Authorization: Api-Key <key>
    X-Api-Key: <key>
    Authorization: Basic base64(<anything>:<key>)    (Lidarr's username/password)

A request with no key is left to the next authenticator (Django's session login);
a request with a wrong, revoked or expired key is refused at once (401), without
falling back to the session. The secret part is checked by the library's hasher,
which compares in constant time.
"""

from __future__ import annotations

import base64
import binascii

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework_api_key.models import APIKey

REALM = "nomarr"
KEY_SCHEMES = {"bearer", "token", "api-key"}
KEY_HEADER = "HTTP_X_API_KEY"
# Keys made by the library are "<8-char prefix>.<32-char secret>"; anything much
# longer is not one of ours and is refused before it reaches the database.
MAX_KEY_LENGTH = 200


class APIKeyUser:
    """The caller of a request authenticated by an API key: not a database user.

    It answers the questions Django and DRF ask of `request.user`."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    def __init__(self, api_key: APIKey):
        self.api_key = api_key
        self.username = f"api-key:{api_key.name}"

    def __str__(self) -> str:
        return self.username

    def has_perm(self, perm: str, obj: object = None) -> bool:
        return False

    def has_perms(self, perms: list[str], obj: object = None) -> bool:
        return False

    def has_module_perms(self, app_label: str) -> bool:
        return False


def key_from_request(request) -> str | None:
    """The API key the request carries, or None when it carries none.

    Raises AuthenticationFailed for a header that tries and fails to carry one
    (malformed Basic credentials, an empty key)."""
    header = request.META.get("HTTP_AUTHORIZATION", "").strip()
    if header:
        scheme, _, credentials = header.partition(" ")
        scheme = scheme.lower()
        credentials = credentials.strip()
        if scheme in KEY_SCHEMES:
            if not credentials:
                raise exceptions.AuthenticationFailed(f"no key after '{scheme}' in Authorization")
            return credentials
        if scheme == "basic":
            return _key_from_basic(credentials)
        # Another scheme: not ours; the X-Api-Key header may still carry a key.
    key = request.META.get(KEY_HEADER, "").strip()
    return key or None


def _key_from_basic(credentials: str) -> str:
    try:
        decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise exceptions.AuthenticationFailed("malformed Basic credentials") from exc
    _username, sep, password = decoded.partition(":")
    if not sep or not password:
        raise exceptions.AuthenticationFailed(
            "Basic credentials need the API key as the password (any user name)"
        )
    return password


def check_key(key: str) -> APIKey:
    """The usable APIKey that key belongs to; AuthenticationFailed if none."""
    if len(key) > MAX_KEY_LENGTH or "." not in key:
        raise exceptions.AuthenticationFailed("invalid API key")
    try:
        api_key = APIKey.objects.get_from_key(key)
    except APIKey.DoesNotExist:
        # Unknown, revoked or wrong secret: the caller is not told which.
        raise exceptions.AuthenticationFailed("invalid or revoked API key") from None
    if api_key.has_expired:
        raise exceptions.AuthenticationFailed("API key has expired")
    return api_key


class APIKeyAuthentication(BaseAuthentication):
    """DRF authentication by API key; request.user is an APIKeyUser, request.auth the APIKey."""

    def authenticate(self, request):
        key = key_from_request(request)
        if key is None:
            return None
        api_key = check_key(key)
        return APIKeyUser(api_key), api_key

    def authenticate_header(self, request) -> str:
        # A WWW-Authenticate value makes DRF answer 401 (not 403) to a missing key.
        return f'Bearer realm="{REALM}"'
