"""GET /health tells Docker and monitors whether the web server, the database and a worker live."""

import pytest

from tagging.models import WorkerState
from tagging.tests.support import ManageProcess

pytestmark = pytest.mark.django_db(transaction=True)


def test_health_is_unavailable_without_a_worker(client):
    response = client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["web"] is True
    assert body["database"] is True
    assert body["workers_alive"] == 0
    assert "no worker" in body["detail"]
    assert "no-cache" in response["Cache-Control"]


def test_health_is_ok_while_a_worker_runs_and_needs_no_login(client, tmp_path):
    worker = ManageProcess(["qcluster"], tmp_path, tmp_path / "qcluster.log").start(
        ready=lambda: WorkerState.objects.workers_alive() > 0
    )
    try:
        response = client.get("/health")
        assert response.status_code == 200, response.content
        assert response.json() == {
            "status": "ok",
            "web": True,
            "database": True,
            "workers_alive": 1,
        }
    finally:
        worker.stop()


def test_health_refuses_to_change_anything(client):
    assert client.post("/health").status_code == 405
