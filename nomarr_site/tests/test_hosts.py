"""A caller using a host name Nomarr does not answer to is told which setting to change."""

import pytest
import requests

pytestmark = pytest.mark.django_db


def test_the_api_answers_a_disallowed_host_with_json_naming_the_setting(live_server):
    response = requests.get(
        f"{live_server.url}/api/v1/info", headers={"Host": "nomarr:8356"}, timeout=10
    )
    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error"] == "disallowed_host"
    assert "NOMARR_ALLOWED_HOSTS" in body["detail"]
    assert "NOMARR_ALLOWED_HOSTS=nomarr" in body["detail"]


def test_the_lidarr_webhook_gets_the_same_answer(live_server):
    response = requests.post(
        f"{live_server.url}/api/v1/lidarr",
        json={"eventType": "Test"},
        headers={"Host": "nomarr"},
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json()["error"] == "disallowed_host"


def test_a_page_for_a_disallowed_host_says_the_same_in_words(live_server):
    response = requests.get(f"{live_server.url}/", headers={"Host": "nomarr"}, timeout=10)
    assert response.status_code == 400
    assert "NOMARR_ALLOWED_HOSTS" in response.text


def test_an_allowed_host_name_reaches_the_api(live_server, settings):
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "nomarr"]
    response = requests.get(
        f"{live_server.url}/api/v1/info", headers={"Host": "nomarr:8356"}, timeout=10
    )
    # Past the host check: the API now asks for its key.
    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"


def test_the_loopback_names_are_always_allowed(live_server):
    response = requests.get(f"{live_server.url}/health", headers={"Host": "localhost"}, timeout=10)
    assert response.status_code in (200, 503)
    assert "workers_alive" in response.json()


def test_the_allowed_names_come_from_the_settings_beside_the_loopback_names(tmp_path):
    import subprocess
    import sys

    from django.conf import settings as django_settings

    from nomarr_site.tests.test_secret_key import fresh_env

    proc = subprocess.run(
        [sys.executable, "-c", "from django.conf import settings; print(settings.ALLOWED_HOSTS)"],
        cwd=django_settings.BASE_DIR,
        env=fresh_env(tmp_path, NOMARR_ALLOWED_HOSTS="nomarr, music.lan", NOMARR_HOST="10.0.0.5"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(
        ["localhost", "127.0.0.1", "[::1]", "10.0.0.5", "nomarr", "music.lan"]
    )
