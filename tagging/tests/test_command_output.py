"""Commands print only what they mean: no library's start banner, no django-q2 task numbers."""

import subprocess
import sys

from django.conf import settings


def test_queue_prints_the_job_and_nothing_else(make_audio, tmp_path):
    song = make_audio("flac")
    env = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "NOMARR_SECRET_KEY": "test-only-secret",
        "NOMARR_DATA_DIR": str(tmp_path),
        "NOMARR_LIBRARY_ROOTS": str(song.parent),
    }
    manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
    subprocess.run([*manage, "migrate", "-v", "0"], env=env, check=True, timeout=120)
    done = subprocess.run(
        [*manage, "queue", str(song)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.splitlines() == [f"job 1 pending {song}"]
    assert "AXES" not in done.stderr and "Enqueued" not in done.stderr
    assert done.stderr == ""
