"""Production settings pass Django's deployment checklist."""

import os
import secrets
import subprocess
import sys

from django.conf import settings


def run_check(extra_env: dict[str, str]) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("NOMARR_", "DJANGO_", "DATABASE_URL"))
    }
    env.update({"DJANGO_SETTINGS_MODULE": "nomarr_site.settings", **extra_env})
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_for_production_settings():
    proc = run_check({"NOMARR_HTTPS": "true", "NOMARR_SECRET_KEY": secrets.token_urlsafe(50)})
    assert proc.returncode == 0, proc.stderr
    assert "no issues" in proc.stdout


def test_check_deploy_flags_plain_http():
    proc = run_check({"NOMARR_SECRET_KEY": secrets.token_urlsafe(50)})
    assert proc.returncode != 0
    assert "SECURE_SSL_REDIRECT" in proc.stderr
