"""The first start: a new installation gets an admin account to log in with."""

import logging
import secrets

from django.contrib.auth import get_user_model

log = logging.getLogger("nomarr")


def ensure_admin(username: str = "admin") -> str | None:
    """Create an admin with a random password when no user exists yet.

    Returns the password, which exists nowhere else (only its hash is stored): the
    caller prints it once. Returns None when there already is a user."""
    users = get_user_model()
    if users.objects.exists():
        return None
    password = secrets.token_urlsafe(12)
    users.objects.create_superuser(username=username, email="", password=password)
    return password


def announce_first_admin(**_kwargs) -> str | None:
    """serve_starting receiver: the line serve prints once when it created the admin."""
    password = ensure_admin()
    if password is None:
        return None
    # Shown once: only the hash is stored. Change it with `manage.py changepassword admin`.
    return f"Created the first user: admin / {password}"
