"""Every installation signs with its own secret key, made on its first start."""

import os
import stat
import subprocess
import sys

from django.conf import settings

ENV_PREFIXES = ("NOMARR_", "DJANGO_", "DATABASE_URL")


def fresh_env(data_dir, **extra) -> dict[str, str]:
    """An environment as a new installation has it: nothing of ours set but the data folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIXES)}
    env.update(DJANGO_SETTINGS_MODULE="nomarr_site.settings", NOMARR_DATA_DIR=str(data_dir))
    env.update(extra)
    return env


def key_of_a_fresh_start(data_dir) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", "from django.conf import settings; print(settings.SECRET_KEY)"],
        cwd=settings.BASE_DIR,
        env=fresh_env(data_dir),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_no_secret_file_is_tracked_by_git():
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=settings.BASE_DIR, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    secret_like = [
        path
        for path in tracked
        if "secret" in path.rsplit("/", 1)[-1].lower() and not path.endswith(".py")
    ]
    assert ".secret_key" not in tracked
    assert secret_like == []


def test_two_fresh_installations_get_different_keys(tmp_path):
    first = key_of_a_fresh_start(tmp_path / "one")
    second = key_of_a_fresh_start(tmp_path / "two")
    assert len(first) >= 50
    assert first != second


def test_the_key_is_made_private_and_kept_across_restarts(tmp_path):
    key = key_of_a_fresh_start(tmp_path)
    key_file = tmp_path / ".secret_key"
    assert key_file.read_text().strip() == key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_of_a_fresh_start(tmp_path) == key
    assert key_file.read_text().strip() == key


def test_a_damaged_key_file_stops_the_start_instead_of_being_replaced(tmp_path):
    key_file = tmp_path / ".secret_key"
    key_file.write_text("short")
    proc = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=settings.BASE_DIR,
        env=fresh_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "too short" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert key_file.read_text() == "short"


def test_the_data_folder_holds_the_database_and_the_log(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from django.conf import settings as s; "
            "print(s.DATABASES['default']['NAME']); print(s.NOMARR_LOG_FILE); "
            "print(s.NOMARR_MODELS_DIR); print(s.CACHES['default']['LOCATION'])",
        ],
        cwd=settings.BASE_DIR,
        env=fresh_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    database, log, models, cache = proc.stdout.split()
    assert database == str(tmp_path / "db.sqlite3")
    assert log == str(tmp_path / "logs" / "nomarr.log")
    assert models == str(tmp_path / "models")
    assert cache == str(tmp_path / ".cache")
