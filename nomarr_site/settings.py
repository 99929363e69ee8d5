"""Nomarr settings: every knob comes from an environment variable with a safe default.

The embedded default (SQLite, django-q2's ORM broker, the in-memory channel layer)
needs no other server. Setting DATABASE_URL and NOMARR_REDIS_URL switches to the
scale-out path (PostgreSQL, Redis broker, channels-redis).
"""

from datetime import timedelta
from pathlib import Path

import dj_database_url

from nomarr_site.env import (
    SettingError,
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_pairs,
    env_path,
    env_str,
    secret_key_file,
    writable_dir,
)

BASE_DIR = Path(__file__).resolve().parent.parent

# Everything an installation writes and keeps: the SQLite database, the secret key,
# models added by hand or by install_models, the cache and the logs. /config in the
# Docker image; the project folder otherwise (where bare-metal installs keep theirs).
NOMARR_DATA_DIR = writable_dir("NOMARR_DATA_DIR", env_path("NOMARR_DATA_DIR", BASE_DIR))

DEBUG = env_bool("NOMARR_DEBUG", False)
# The installation's own key, made on first start (never shipped, never shared):
# it signs sessions and django-q2's task payloads.
SECRET_KEY = env_str("NOMARR_SECRET_KEY", "").strip() or secret_key_file(
    env_path("NOMARR_SECRET_KEY_FILE", NOMARR_DATA_DIR / ".secret_key")
)

# Where `serve` listens. In the Docker image 0.0.0.0, so Lidarr and Navidrome on the
# same compose network reach it as http://nomarr:8356.
NOMARR_HOST = env_str("NOMARR_HOST", "127.0.0.1").strip() or "127.0.0.1"
NOMARR_PORT = env_int("NOMARR_PORT", 8356, minimum=1, maximum=65535)
# Host names the server answers to (Django's ALLOWED_HOSTS; `*` for any, as in the
# Docker image). The loopback names are always allowed: the container's health check
# and `curl localhost` on the machine itself use them, and no other site can make a
# browser send them. A specific NOMARR_HOST address is allowed too.
LOOPBACK_HOSTS = ["localhost", "127.0.0.1", "[::1]"]
ALLOWED_HOSTS = [
    *LOOPBACK_HOSTS,
    *(
        [f"[{NOMARR_HOST}]" if ":" in NOMARR_HOST else NOMARR_HOST]
        if NOMARR_HOST not in {"0.0.0.0", "::", "::1", *LOOPBACK_HOSTS}  # noqa: S104
        else []
    ),
    *env_list("NOMARR_ALLOWED_HOSTS", []),
]
CSRF_TRUSTED_ORIGINS = env_list("NOMARR_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_api_key",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "django_htmx",
    "axes",
    "tagging",
    "library",
    "playlists",
    "accounts",
    "sonic",
    "teach",
]

MIDDLEWARE = [
    # First: a Host that is not allowed is told which setting to change.
    "nomarr_site.hosts.AllowedHostMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Who may see and do what, for every page (the table is nomarr_site/roles.py).
    "nomarr_site.roles.RoleMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last: turns a login refused for too many failures into the lockout page (429).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "nomarr_site.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "nomarr_site.roles.context",
            ],
        },
    },
]

WSGI_APPLICATION = "nomarr_site.wsgi.application"
ASGI_APPLICATION = "nomarr_site.asgi.application"

_database_url = env_str("DATABASE_URL", "").strip()
try:
    DATABASES = {
        "default": dj_database_url.parse(
            _database_url or f"sqlite:///{NOMARR_DATA_DIR / 'db.sqlite3'}",
            # Default 60 s: a web process's lanes keep theirs (a new SQLite connection
            # a request cost ~1.5 ms of CPU; benchmarks/bench_api.py).
            conn_max_age=env_int("NOMARR_DB_CONN_MAX_AGE", 60, minimum=0),
            # A kept connection is checked before a request reuses it (after a restart
            # of the database it is replaced, not an error).
            conn_health_checks=True,
        )
    }
except ValueError as exc:
    raise SettingError(
        f"DATABASE_URL must look like postgres://user:pass@host:5432/db or sqlite:///path ({exc})"
    ) from None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server read while a worker writes; the busy timeout makes a
    # writer wait for the lock instead of failing at once.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": env_int("NOMARR_SQLITE_TIMEOUT", 30, minimum=1),
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
# PostgreSQL: each web process keeps at most NOMARR_DB_POOL connections open in a pool
# (psycopg_pool) instead of opening one per request; 0 turns the pool off. Applied by
# nomarr_site.webserver to web processes only (the workers fork: a pool must not cross
# a fork). Without it, NOMARR_DB_CONN_MAX_AGE keeps one connection per request lane
# (nomarr_site/asgi.py) in a web process, and one per thread in the workers.
NOMARR_DB_POOL = env_int("NOMARR_DB_POOL", 20, minimum=0, maximum=1000)

# Web server (daphne) processes `serve` runs, sharing one listening socket. Live pages
# work in each with either channel layer (without Redis each socket watches the
# database; with it announcements reach every process). benchmarks/bench_api.py.
NOMARR_WEB_PROCESSES = env_int("NOMARR_WEB_PROCESSES", 2, minimum=1, maximum=64)
# HTTP requests a web process runs at once (each in its own thread, with its own
# database connection); more wait their turn, first come first served. Keeps the
# connections within PostgreSQL's max_connections (100) at any load.
NOMARR_WEB_CONCURRENCY = env_int("NOMARR_WEB_CONCURRENCY", 16, minimum=1, maximum=1000)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TZ", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env_path("NOMARR_STATIC_ROOT", BASE_DIR / "staticfiles")
# Served by WhiteNoise from the app itself: no web server or CDN needed in front.
WHITENOISE_USE_FINDERS = True

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

# Login throttling (django-axes): after NOMARR_LOGIN_ATTEMPTS failed logins for one
# user name from one address, logging in is refused (429) for
# NOMARR_LOGIN_COOLOFF_MINUTES. `manage.py axes_reset` lifts every lock at once.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("NOMARR_LOGIN_ATTEMPTS", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(
    minutes=env_float("NOMARR_LOGIN_COOLOFF_MINUTES", 15, minimum=0, maximum=525600)
)
AXES_RESET_ON_SUCCESS = True
# Locks a user name at one address, not the address: someone else's failures do not
# lock out everybody behind the same router or reverse proxy.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_LOCKOUT_TEMPLATE = "accounts/locked.html"

# Served over HTTPS (directly or behind a TLS proxy)? Then cookies are secure-only,
# plain HTTP redirects and HSTS is on: `manage.py check --deploy` is clean. Off by
# default because most home servers are reached over plain HTTP on the LAN, where
# secure-only cookies would make logging in impossible.
NOMARR_HTTPS = env_bool("NOMARR_HTTPS", False)
SESSION_COOKIE_SECURE = NOMARR_HTTPS
CSRF_COOKIE_SECURE = NOMARR_HTTPS
SECURE_SSL_REDIRECT = NOMARR_HTTPS and env_bool("NOMARR_SSL_REDIRECT", True)
# The container's health check calls plain http://localhost:8356/health.
SECURE_REDIRECT_EXEMPT = [r"^health$"]
SECURE_HSTS_SECONDS = env_int("NOMARR_HSTS_SECONDS", 31536000 if NOMARR_HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("NOMARR_HSTS_SUBDOMAINS", NOMARR_HTTPS)
SECURE_HSTS_PRELOAD = env_bool("NOMARR_HSTS_PRELOAD", NOMARR_HTTPS)
if env_bool("NOMARR_BEHIND_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

# The log goes to the console (`docker logs`) and, unless NOMARR_LOG_FILE is `off`,
# to a file in the data folder, rotated at 10 MB (five kept).
NOMARR_LOG_LEVEL = env_choice(
    "NOMARR_LOG_LEVEL", "INFO", ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
)
_log_file = env_str("NOMARR_LOG_FILE", "").strip()
NOMARR_LOG_FILE = (
    None
    if _log_file.lower() in {"off", "none", "false", "0"}
    else Path(_log_file).expanduser().resolve()
    if _log_file
    else NOMARR_DATA_DIR / "logs" / "nomarr.log"
)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": NOMARR_LOG_LEVEL},
    # Commands print only what they mean: not django-axes' start banner on every command,
    # nor django-q2's task numbers next to Nomarr's job numbers (Nomarr logs its jobs itself).
    # NOMARR_LOG_LEVEL=DEBUG shows both again.
    "loggers": {
        name: {"level": "DEBUG" if NOMARR_LOG_LEVEL == "DEBUG" else "WARNING"}
        for name in ("axes", "django-q")
    },
}
if NOMARR_LOG_FILE:
    writable_dir("NOMARR_LOG_FILE", NOMARR_LOG_FILE.parent)
    LOGGING["handlers"]["file"] = {
        "class": "logging.handlers.RotatingFileHandler",
        "filename": str(NOMARR_LOG_FILE),
        "maxBytes": 10 * 1024 * 1024,
        "backupCount": 5,
        "formatter": "plain",
        "delay": True,
    }
    LOGGING["root"]["handlers"].append("file")

# --- Nomarr -----------------------------------------------------------------

# Where model files live: Essentia model-zoo `.pb` files with their `.json` sidecars.
# Several folders may be given, separated by ':'; install_models writes into the first.
# By default the data folder's models/, then the project's (the same folder on bare
# metal; in the image /config/models for added models, then the ones built in).
NOMARR_MODELS_DIRS = list(
    dict.fromkeys(
        Path(p).expanduser().resolve()
        for p in env_list(
            "NOMARR_MODELS_DIR",
            [str(NOMARR_DATA_DIR / "models"), str(BASE_DIR / "models")],
            sep=":",
        )
    )
)
NOMARR_MODELS_DIR = NOMARR_MODELS_DIRS[0]
# Heads whose file stem starts with one of these give mood words (the rest only scores).
NOMARR_MOOD_HEADS = env_list(
    "NOMARR_MOOD_HEADS", ["mood_", "danceability", "voice_instrumental", "timbre"]
)
# Prefix of every tag key Nomarr owns in a file (`nom_...`).
NOMARR_NAMESPACE = env_str("NOMARR_NAMESPACE", "nom").strip().lower()
# Also write the standard multi-value MOOD tag (from mood-regular).
NOMARR_WRITE_MOOD = env_bool("NOMARR_WRITE_MOOD", True)
# What tiers and mood sets are decided on: the models' raw scores (Essentia's published
# semantics) or scores calibrated on the library (each label min-max between its p5 and
# p95 in the library's last calibration, as the original Nomarr did). `manage.py retier`
# re-decides the stored scores after a change.
NOMARR_TIER_SCORES = env_choice("NOMARR_TIER_SCORES", "raw", ["raw", "calibrated"])
# Tracks shorter than this many seconds are skipped.
NOMARR_MIN_DURATION = env_float("NOMARR_MIN_DURATION", 7.0, minimum=0)
# Tracks longer than this many seconds (by their header, before decoding) are skipped.
NOMARR_MAX_DURATION = env_float("NOMARR_MAX_DURATION", 3 * 3600.0, minimum=1)
# Hop between musicnn patches, in mel frames (a patch is 187 frames, 3 s). 93 is
# Essentia's default (half overlap): 99 % of tier decisions as Essentia's own models;
# 187 halves the work at ~96 % (benchmarks/bench_pipeline.py measures both).
NOMARR_PATCH_HOP = env_int("NOMARR_PATCH_HOP", 93, minimum=1)
# Decode the next file while this one's models run (`manage.py tag`'s next file, a
# worker's next queued job), so the cores never wait for ffprobe and ffmpeg at a
# file's start. Off: each file is opened only when its turn comes.
NOMARR_READ_AHEAD = env_bool("NOMARR_READ_AHEAD", True)
# Patches fed to a backbone in one call: small batches are ~10 % faster on a CPU
# (benchmarks/bench_pipeline.py --batch-sizes); a GPU wants larger ones.
NOMARR_BATCH_SIZE = env_int("NOMARR_BATCH_SIZE", 4, minimum=1)
# What runs the models: "onnx" (onnxruntime on each model's ONNX twin, made once per
# .pb by tf2onnx in a child process; ~2x Essentia's own TensorFlow on a CPU, and the
# GPU through onnxruntime-gpu) or "essentia" (Essentia's bundled TensorFlow). A model
# whose twin cannot be made runs on Essentia either way.
NOMARR_ENGINE = env_choice("NOMARR_ENGINE", "onnx", ["onnx", "essentia"])
# Intra-op threads of each backbone's onnxruntime session. 1: the musicnn backbones
# run side by side, one thread each (benchmarks/bench_pipeline.py --onnx-threads).
NOMARR_ONNX_THREADS = env_int("NOMARR_ONNX_THREADS", 1, minimum=1, maximum=64)
# Where the ONNX twins made at run time are kept (a cache: made again when missing).
NOMARR_ONNX_CACHE = env_path("NOMARR_ONNX_CACHE", NOMARR_DATA_DIR / ".cache" / "onnx")
# Library roots, separated by ':'.
NOMARR_LIBRARY_ROOTS = [
    Path(p).expanduser().resolve() for p in env_list("NOMARR_LIBRARY_ROOTS", [], sep=":")
]

# --- Model zoo (manage.py download_models, the Models page) -------------------------
# Where Essentia's classifier heads are fetched from: Essentia's site, a mirror with the
# same layout (https://...), or a local folder (a path or file://...) for offline installs,
# in that layout or flat. NOMARR_MODELS_MANIFEST: the list of heads with their sizes and
# sha256 (default: tagging/zoo_manifest.json; a mirror of other bytes brings its own).
NOMARR_MODELS_URL = env_str("NOMARR_MODELS_URL", "").strip() or "https://essentia.upf.edu/models/"
if not NOMARR_MODELS_URL.startswith(("http://", "https://", "file://", "/", "~", ".")):
    raise SettingError(
        "NOMARR_MODELS_URL must be an http(s):// URL or a folder (a path or file://...), "
        f"got {NOMARR_MODELS_URL!r}"
    )
NOMARR_MODELS_MANIFEST = env_path(
    "NOMARR_MODELS_MANIFEST", BASE_DIR / "tagging" / "zoo_manifest.json"
)

# --- Jobs (django-q2) ---------------------------------------------------------

# Redis for the django-q2 broker and the channel layer on the scale-out path;
# unset, both stay inside Nomarr (ORM broker, in-memory layer).
NOMARR_REDIS_URL = env_str("NOMARR_REDIS_URL", "")
# Seconds one tagging task may run before its worker is recycled. By default as long
# as the longest track Nomarr analyses lasts (at least 900 s): analysis runs faster
# than real time even on 2 busy cores (a 2-hour track: ~30 min of CPU), so a track
# Nomarr accepts never times out attempt after attempt.
NOMARR_JOB_TIMEOUT = env_int("NOMARR_JOB_TIMEOUT", max(900, int(NOMARR_MAX_DURATION)), minimum=1)
# Attempts a job gets: one that times out or loses its worker this often fails, with
# the reason ("timed out after 900 s, 3 attempts"), instead of running again forever.
NOMARR_MAX_ATTEMPTS = env_int("NOMARR_MAX_ATTEMPTS", 3, minimum=1)

# The tagging workers' CPU priority, as `nice` counts it (0: as the web server; 19:
# lowest). Analysis is batch work that takes every core it is given; at 10 the web
# server, the API (Lidarr's calls) and the machine's other services come first when
# the cores are taken, and the workers get whatever is left (all of it when the rest
# is idle: nice only matters while something else wants the CPU).
NOMARR_WORKER_NICE = env_int("NOMARR_WORKER_NICE", 10, minimum=0, maximum=19)

# Seconds `serve` waits on stop for a busy worker before killing it and putting its
# job back in the queue. With the hand-back and the exit it stays inside Docker's 10 s
# grace, so `docker stop` is clean (measured by bin/test-docker).
NOMARR_STOP_GRACE = env_float("NOMARR_STOP_GRACE", 4.0, minimum=0, maximum=3600)

Q_CLUSTER = {
    "name": env_str("NOMARR_Q_NAME", "nomarr"),
    "workers": env_int("NOMARR_WORKERS", 1, minimum=1),
    "timeout": NOMARR_JOB_TIMEOUT,
    # Must exceed the timeout, or django-q2 hands a slow job to a second worker.
    "retry": NOMARR_JOB_TIMEOUT + 60,
    "max_attempts": 1,
    "catch_up": False,
    "ack_failures": True,
    "save_limit": env_int("NOMARR_Q_SAVE_LIMIT", 250, minimum=0),
    "label": "Tasks",
}
if NOMARR_REDIS_URL:
    Q_CLUSTER["redis"] = NOMARR_REDIS_URL
else:
    # Without this django-q2 silently falls back to a Redis on localhost.
    Q_CLUSTER["orm"] = "default"

# django-q2 reports worker liveness through a cache; it must be shared by every
# process (web server and workers), so not the per-process memory cache.
if NOMARR_REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": NOMARR_REDIS_URL,
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # redis-py 8 times reads out after 5 s by default, exactly channels-redis's
            # blocking-pop wait: without a longer timeout every idle socket errors out.
            "CONFIG": {"hosts": [{"address": NOMARR_REDIS_URL, "socket_timeout": 30}]},
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(env_path("NOMARR_CACHE_DIR", NOMARR_DATA_DIR / ".cache")),
        }
    }
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- API ----------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.auth.APIKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "nomarr_site.api.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Nomarr API",
    "DESCRIPTION": "Queue audio files for tagging, follow jobs, and receive Lidarr's webhook.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI and Redoc served from the app itself: users may be offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}
# GET /metrics without an API key (for a Prometheus on a trusted network).
NOMARR_METRICS_PUBLIC = env_bool("NOMARR_METRICS_PUBLIC", False)
# Seconds POST /api/v1/tag waits for its jobs when the request does not say (0: don't wait).
NOMARR_TAG_WAIT = env_float("NOMARR_TAG_WAIT", 0.0, minimum=0)
# The most a request may ask to wait.
NOMARR_TAG_MAX_WAIT = env_float("NOMARR_TAG_MAX_WAIT", 300.0, minimum=0)
# Lidarr's paths to Nomarr's: "lidarr_prefix=nomarr_prefix" pairs, separated by ','.
NOMARR_PATH_MAP = env_pairs("NOMARR_PATH_MAP")
# The largest request body, in MB (Django's DATA_UPLOAD_MAX_MEMORY_SIZE; default 2.5,
# Django's own): a bigger one is answered 413. A Lidarr payload takes about 0.3 KB per
# track file.
NOMARR_MAX_BODY_MB = env_float("NOMARR_MAX_BODY_MB", 2.5, minimum=0.01, maximum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = int(NOMARR_MAX_BODY_MB * 1024 * 1024)
# The most track files one Lidarr webhook call may name; more are refused (413) with
# nothing queued. Below it, even a payload that large is queued in bulk in seconds.
NOMARR_LIDARR_MAX_FILES = env_int("NOMARR_LIDARR_MAX_FILES", 20000, minimum=1)

# --- Playlists and Navidrome ---------------------------------------------------

# Folder for .nsp/.m3u8 playlists; must lie inside a library root (Navidrome imports
# playlists only from its music folder, on its next scan).
NOMARR_PLAYLIST_DIR = env_str("NOMARR_PLAYLIST_DIR", "")
# Navidrome's Subsonic API, for pushing static playlists.
NOMARR_NAVIDROME_URL = env_str("NOMARR_NAVIDROME_URL", "")
NOMARR_NAVIDROME_USER = env_str("NOMARR_NAVIDROME_USER", "")
NOMARR_NAVIDROME_PASSWORD = env_str("NOMARR_NAVIDROME_PASSWORD", "")

# --- Sonic similarity ------------------------------------------------------------------

# The backbone whose embeddings are searched (benchmarks/bench_retrieval.py compares them).
NOMARR_SIMILAR_BACKBONE = env_str("NOMARR_SIMILAR_BACKBONE", "mtt-musicnn-1")
# Where each process's search index and the library map are saved (a cache: any process
# rebuilds them from the database).
NOMARR_SONIC_CACHE = env_path("NOMARR_SONIC_CACHE", NOMARR_DATA_DIR / ".cache" / "sonic")
