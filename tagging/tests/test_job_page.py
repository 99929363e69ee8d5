"""A job's page lists the scores as a file's page does: models by name, each model's
labels highest score first."""

import re

import pytest

from tagging.models import Job

pytestmark = pytest.mark.django_db


def test_the_job_page_sorts_scores_highest_first(admin_client):
    scores = [
        {"model": "mood_sad-msd-musicnn-1", "label": "sad", "score": 0.2, "tier": ""},
        {"model": "genre-msd-musicnn-1", "label": "rock", "score": 0.1, "tier": ""},
        {"model": "genre-msd-musicnn-1", "label": "jazz", "score": 0.7, "tier": "high"},
        {"model": "genre-msd-musicnn-1", "label": "pop", "score": 0.4, "tier": ""},
    ]
    job = Job.objects.create(
        path="/music/a.flac", status="done", result={"scores": scores, "tags": {}}
    )
    page = admin_client.get(f"/jobs/{job.pk}/").content.decode()
    models = re.findall(r"<h3>([^<]+)</h3>", page)
    labels = re.findall(r"<tr><td>(\w+)</td>", page.split('id="scores"', 1)[1])
    assert models == ["genre-msd-musicnn-1", "mood_sad-msd-musicnn-1"]
    assert labels == ["jazz", "pop", "rock", "sad"]
