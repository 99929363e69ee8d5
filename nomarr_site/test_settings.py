"""Settings for the test suite: the real settings plus what tests need.

The nine Essentia heads in ../shared/fixtures/essentia-models are licensed for
testing only, so they are read from there and never copied into models/.
Worker tests start real `qcluster` processes; they must reach the test database,
so SQLite's test database is a file, not the in-memory default.
"""

import os

from nomarr_site.settings import *  # noqa: F403
from nomarr_site.settings import BASE_DIR, DATABASES, NOMARR_MODELS_DIRS, Q_CLUSTER

SHARED_DIR = BASE_DIR.parent / "shared"
FIXTURE_MODELS_DIR = SHARED_DIR / "fixtures" / "essentia-models"
NOMARR_MODELS_DIRS = [*NOMARR_MODELS_DIRS, FIXTURE_MODELS_DIR]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {
        "NAME": os.environ.get("NOMARR_TEST_DB", str(BASE_DIR / ".test-db.sqlite3"))
    }

# Q_CLUSTER is read once at import: the test values live here, not in fixtures.
Q_CLUSTER = {**Q_CLUSTER, "workers": 1, "poll": 0.1, "guard_cycle": 0.2, "sync": False}
