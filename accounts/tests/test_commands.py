"""create_api_key, rotate_api_key and revoke_api_key."""

from __future__ import annotations

import subprocess
import sys
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework_api_key.models import APIKey

pytestmark = pytest.mark.django_db


def run(command: str, *args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(command, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def last_line(text: str) -> str:
    return text.rstrip("\n").splitlines()[-1]


def test_create_prints_the_key_alone_on_the_last_line():
    out, err = run("create_api_key", "lidarr")
    key = last_line(out)
    assert APIKey.objects.is_valid(key)
    stored = APIKey.objects.get()
    assert stored.name == "lidarr" and key.startswith(stored.prefix + ".")
    assert "shown only now" in err


def test_create_prints_the_key_on_the_last_line_of_a_real_run(tmp_path):
    """Through manage.py, as a shell script would: `KEY=$(... | tail -1)`."""
    db = tmp_path / "keys.sqlite3"
    env = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": f"sqlite:///{db}",
        "NOMARR_SECRET_KEY": "test-only-secret",
        "NOMARR_CACHE_DIR": str(tmp_path / "cache"),
    }
    manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
    subprocess.run([*manage, "migrate", "-v", "0"], env=env, check=True, timeout=120)
    result = subprocess.run(
        [*manage, "create_api_key", "script"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    key = last_line(result.stdout)
    prefix, dot, secret = key.partition(".")
    assert dot and len(prefix) == 8 and len(secret) == 32
    assert key not in result.stderr


@pytest.mark.parametrize("name", ["", "   ", "x" * 51])
def test_create_refuses_a_bad_name(name):
    with pytest.raises(CommandError):
        run("create_api_key", name)
    assert not APIKey.objects.exists()


def test_create_refuses_a_name_a_usable_key_has_already():
    _, first = APIKey.objects.create_key(name="lidarr")
    with pytest.raises(CommandError, match="exists already: rotate it"):
        run("create_api_key", " lidarr ")
    assert APIKey.objects.count() == 1 and APIKey.objects.is_valid(first)
    # Once revoked, the name is free again.
    run("revoke_api_key", "lidarr")
    out, _ = run("create_api_key", "lidarr")
    assert APIKey.objects.is_valid(last_line(out))


def test_rotate_revokes_every_key_of_the_name_and_prints_a_new_one():
    _, first = APIKey.objects.create_key(name="lidarr")
    _, second = APIKey.objects.create_key(name="lidarr")
    _, other = APIKey.objects.create_key(name="beets")
    out, err = run("rotate_api_key", "lidarr")
    new = last_line(out)
    assert not APIKey.objects.is_valid(first) and not APIKey.objects.is_valid(second)
    assert APIKey.objects.is_valid(new) and APIKey.objects.is_valid(other)
    assert APIKey.objects.get_from_key(new).name == "lidarr"
    assert "revoked 2" in err


def test_rotate_by_prefix_replaces_that_key_only():
    old_key, old = APIKey.objects.create_key(name="lidarr")
    _, twin = APIKey.objects.create_key(name="lidarr")
    out, _ = run("rotate_api_key", old_key.prefix)
    new = last_line(out)
    assert not APIKey.objects.is_valid(old)
    assert APIKey.objects.is_valid(twin) and APIKey.objects.is_valid(new)
    assert APIKey.objects.get_from_key(new).name == "lidarr"


def test_rotate_and_revoke_refuse_an_unknown_name():
    _, key = APIKey.objects.create_key(name="lidarr")
    for command in ("rotate_api_key", "revoke_api_key"):
        with pytest.raises(CommandError, match="no usable API key"):
            run(command, "nobody")
    assert APIKey.objects.is_valid(key) and APIKey.objects.count() == 1


def test_revoke_by_name_or_prefix():
    _, first = APIKey.objects.create_key(name="lidarr")
    _, second = APIKey.objects.create_key(name="lidarr")
    third_key, third = APIKey.objects.create_key(name="beets")
    out, _ = run("revoke_api_key", "lidarr")
    assert "revoked 2" in out
    assert not APIKey.objects.is_valid(first) and not APIKey.objects.is_valid(second)
    assert APIKey.objects.is_valid(third)
    run("revoke_api_key", third_key.prefix)
    assert not APIKey.objects.is_valid(third)
    # Revoked keys are kept (revocation cannot be undone), not deleted.
    assert APIKey.objects.filter(revoked=True).count() == 3
    with pytest.raises(CommandError):
        run("revoke_api_key", "lidarr")
