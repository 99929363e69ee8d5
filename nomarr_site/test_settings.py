"""Settings for the test suite: the real settings plus the fixture model heads.

The nine Essentia heads in ../shared/fixtures/essentia-models are licensed for
testing only, so they are read from there and never copied into models/.
"""

from nomarr_site.settings import *  # noqa: F403
from nomarr_site.settings import BASE_DIR, NOMARR_MODELS_DIRS

SHARED_DIR = BASE_DIR.parent / "shared"
FIXTURE_MODELS_DIR = SHARED_DIR / "fixtures" / "essentia-models"
NOMARR_MODELS_DIRS = [*NOMARR_MODELS_DIRS, FIXTURE_MODELS_DIR]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
