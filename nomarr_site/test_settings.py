"""Settings for the test suite: the real settings plus what tests need.

The nine Essentia heads in ../shared/fixtures/essentia-models are licensed for
testing only, so they are read from there and never copied into models/.
Worker tests start real `qcluster` processes; they must reach the test database,
so SQLite's test database is a file, not the in-memory default.
"""

import os
import tempfile
from pathlib import Path

from nomarr_site.settings import *  # noqa: F403
from nomarr_site.settings import (
    BASE_DIR,
    CACHES,
    CHANNEL_LAYERS,
    DATABASES,
    LOGGING,
    NOMARR_MODELS_DIRS,
    Q_CLUSTER,
)

SHARED_DIR = BASE_DIR.parent / "shared"
FIXTURE_MODELS_DIR = SHARED_DIR / "fixtures" / "essentia-models"
NOMARR_MODELS_DIRS = [*NOMARR_MODELS_DIRS, FIXTURE_MODELS_DIR]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {
        # One per test run, so two runs at once never share (and corrupt) a database.
        "NAME": os.environ.get(
            "NOMARR_TEST_DB",
            str(Path(tempfile.gettempdir()) / f"nomarr-test-{os.getpid()}.sqlite3"),
        )
    }

# Q_CLUSTER is read once at import: the test values live here, not in fixtures.
# A queue name per test run: two runs sharing one Redis must not take each other's tasks.
Q_CLUSTER = {
    **Q_CLUSTER,
    "name": os.environ.get("NOMARR_Q_NAME", f"nomarr-test-{os.getpid()}"),
    "workers": 1,
    "poll": 0.1,
    "guard_cycle": 0.2,
    "sync": False,
}

# The suite's workers run as the tests do: two pytest-xdist processes on two cores
# would leave a worker at nice 10 seconds behind a test waiting for its job. Its own
# test (test_worker_priority) sets the value it checks.
NOMARR_WORKER_NICE = int(os.environ.get("NOMARR_WORKER_NICE", "0"))

# Everything else two runs at once (two pytest-xdist workers, two checkouts) could share
# is kept apart by the run's name, which the worker processes a test starts inherit
# (NOMARR_Q_NAME): cache keys, channel-layer groups, the similarity index's files.
RUN_NAME = Q_CLUSTER["name"]
CACHES = {name: {**cache, "KEY_PREFIX": RUN_NAME} for name, cache in CACHES.items()}
CHANNEL_LAYERS = {
    name: (
        {**layer, "CONFIG": {**layer["CONFIG"], "prefix": RUN_NAME}} if "CONFIG" in layer else layer
    )
    for name, layer in CHANNEL_LAYERS.items()
}
NOMARR_SONIC_CACHE = Path(tempfile.gettempdir()) / RUN_NAME / "sonic"

# The console only: test runs leave nothing in the data folder's logs/.
NOMARR_LOG_FILE = None
LOGGING = {
    **LOGGING,
    "handlers": {"console": LOGGING["handlers"]["console"]},
    "root": {**LOGGING["root"], "handlers": ["console"]},
}
