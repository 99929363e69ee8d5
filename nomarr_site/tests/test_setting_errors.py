"""A setting Nomarr cannot use stops it with a sentence naming the variable."""

import subprocess
import sys

import pytest
from django.conf import settings

from nomarr_site.tests.test_secret_key import fresh_env


def check(tmp_path, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=settings.BASE_DIR,
        env=fresh_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("NOMARR_PORT", "abc", "NOMARR_PORT must be an integer, got 'abc'"),
        ("NOMARR_PORT", "70000", "NOMARR_PORT must be at most 65535, got '70000'"),
        ("NOMARR_HTTPS", "ture", "NOMARR_HTTPS must be true or false"),
        ("NOMARR_WORKERS", "0", "NOMARR_WORKERS must be at least 1, got '0'"),
        ("NOMARR_JOB_TIMEOUT", "15m", "NOMARR_JOB_TIMEOUT must be an integer, got '15m'"),
        ("NOMARR_MIN_DURATION", "nan", "NOMARR_MIN_DURATION must be a finite number"),
        ("NOMARR_LOG_LEVEL", "loud", "NOMARR_LOG_LEVEL must be one of DEBUG, INFO"),
        ("NOMARR_PATH_MAP", "/music", "NOMARR_PATH_MAP must be pairs like"),
        ("DATABASE_URL", "mysqll://x", "DATABASE_URL must look like"),
    ],
)
def test_a_bad_value_is_refused_naming_its_variable(tmp_path, name, value, message):
    proc = check(tmp_path, **{name: value})
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_data_folder_that_cannot_be_written_is_named(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    proc = check(tmp_path, NOMARR_DATA_DIR=str(blocked / "data"))
    assert proc.returncode != 0
    assert "NOMARR_DATA_DIR" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_good_values_start_cleanly(tmp_path):
    proc = check(tmp_path, NOMARR_PORT="8400", NOMARR_HTTPS="off", NOMARR_WORKERS="2")
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("Yes", True), ("1", True), ("on", True), ("false", False), ("OFF", False)],
)
def test_the_usual_spellings_of_yes_and_no_are_understood(monkeypatch, value, expected):
    from nomarr_site.env import env_bool

    monkeypatch.setenv("NOMARR_SOMETHING", value)
    assert env_bool("NOMARR_SOMETHING", not expected) is expected


def test_an_unset_or_empty_variable_takes_the_default(monkeypatch):
    from nomarr_site.env import env_bool, env_int

    monkeypatch.delenv("NOMARR_SOMETHING", raising=False)
    assert env_int("NOMARR_SOMETHING", 7) == 7
    monkeypatch.setenv("NOMARR_SOMETHING", "  ")
    assert env_bool("NOMARR_SOMETHING", True) is True
