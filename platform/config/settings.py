"""All settings, read from the environment in this one file.

Embedded defaults run the whole platform on one machine (SQLite, in-memory channel
layer, a local folder as object store). Production values come from environment
variables; see docs/configuration.md for the table. A wrong value stops the process at
start with a message naming the variable.
"""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path
from typing import Any

import dj_database_url

from config.env import (
    ConfigError,
    env_bool,
    env_choice,
    env_int,
    env_list,
    env_optional,
    env_str,
    env_url,
)

REPO_DIR = Path(__file__).resolve().parents[2]
PLATFORM_DIR = REPO_DIR / "platform"
FRONTEND_DIR = REPO_DIR / "frontend"

DEBUG = env_bool("TELEMED_DEBUG", True)
DATA_DIR = Path(env_str("TELEMED_DATA_DIR", str(REPO_DIR / "data"))).expanduser().resolve()

_secret = env_optional("TELEMED_SECRET_KEY")
if _secret is None:
    if not DEBUG:
        raise ConfigError("TELEMED_SECRET_KEY must be set when TELEMED_DEBUG=0")
    # One-machine default: a random key kept in the data folder so sessions survive restarts.
    _key_file = DATA_DIR / "secret_key"
    if _key_file.exists():
        _secret = _key_file.read_text(encoding="utf-8").strip()
    else:
        _secret = secrets.token_urlsafe(50)
        try:
            DATA_DIR.mkdir(parents=True, exist_ok=True)
            _key_file.write_text(_secret, encoding="utf-8")
            _key_file.chmod(0o600)
        except OSError:
            pass  # read-only checkout: a per-process key still works
elif len(_secret) < 50:
    raise ConfigError("TELEMED_SECRET_KEY must be at least 50 characters long")
SECRET_KEY = _secret

ALLOWED_HOSTS = env_list("TELEMED_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("TELEMED_CSRF_TRUSTED_ORIGINS", [])
for _origin in CSRF_TRUSTED_ORIGINS:
    if not _origin.startswith(("http://", "https://")):
        raise ConfigError(
            f"TELEMED_CSRF_TRUSTED_ORIGINS: {_origin!r} must start with https://"
            " (or http:// for a local test)"
        )

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "django_tasks",
    "django_tasks_db",
    "core",
    "accounts",
    "association",
    "records",
    "audit",
    "objectstore",
    "realtime",
    "imaging",
    "consult",
    "lab",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "audit.middleware.RequestContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "core:home"
LOGOUT_REDIRECT_URL = "accounts:login"
CSRF_FAILURE_VIEW = "core.views.csrf_failure"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [FRONTEND_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "core.context_processors.shell",
                "lab.context_processors.critical_alerts",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------
_database_url = env_url("DATABASE_URL", schemes={"postgres", "postgresql", "sqlite"})
if _database_url is None:
    DATABASES: dict[str, Any] = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "telemed.sqlite3",
            # Kept open: Django's sync code under Daphne runs in one thread, and a consult
            # room checks membership on every message (reconnecting per call cost ~3 s p50
            # at 200 rooms, see docs/benchmarks.md).
            "CONN_MAX_AGE": env_int("TELEMED_DB_CONN_MAX_AGE", 600, maximum=3600),
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                # WAL with synchronous=NORMAL, as Orthanc runs its SQLite index: a commit
                # is durable once the WAL is synced at a checkpoint, not at every commit
                # (an fsync per audit event and per stored instance otherwise). A crash
                # of the process loses nothing; a power cut may lose the last commits,
                # never the database. TELEMED_SQLITE_SYNCHRONOUS=FULL syncs every commit.
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous="
                + env_choice("TELEMED_SQLITE_SYNCHRONOUS", "NORMAL", {"NORMAL", "FULL"})
                + ";",
            },
        }
    }
else:
    DATABASES = {
        "default": dj_database_url.parse(
            _database_url,
            conn_max_age=env_int("TELEMED_DB_CONN_MAX_AGE", 0, maximum=3600),
            conn_health_checks=True,
        )
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Daphne processes of `telemed serve` sharing its port (config/web_workers.py); more
# than one needs REDIS_URL.
WEB_WORKERS = env_int("TELEMED_WEB_WORKERS", 1, minimum=1, maximum=64)

# --- Channel layer --------------------------------------------------------------------
_redis_url = env_url("REDIS_URL", schemes={"redis", "rediss"})
if _redis_url is None:
    CHANNEL_LAYERS: dict[str, Any] = {
        "default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [_redis_url],
                "prefix": env_str("TELEMED_REDIS_PREFIX", "telemed"),
            },
        }
    }

# --- Object storage -------------------------------------------------------------------
_s3_endpoint = env_optional("TELEMED_S3_ENDPOINT")
OBJECT_STORE: dict[str, Any]
if _s3_endpoint is None:
    OBJECT_STORE = {
        "BACKEND": "local",
        "ROOT": Path(env_str("TELEMED_OBJECT_ROOT", str(DATA_DIR / "objects"))).resolve(),
    }
else:
    if "://" in _s3_endpoint or "/" in _s3_endpoint:
        raise ConfigError(
            f"TELEMED_S3_ENDPOINT={_s3_endpoint!r} must be host:port without scheme or path;"
            " use TELEMED_S3_SECURE for https"
        )
    _s3_access = env_optional("TELEMED_S3_ACCESS_KEY")
    _s3_secret = env_optional("TELEMED_S3_SECRET_KEY")
    if not _s3_access or not _s3_secret:
        raise ConfigError(
            "TELEMED_S3_ACCESS_KEY and TELEMED_S3_SECRET_KEY must be set with TELEMED_S3_ENDPOINT"
        )
    OBJECT_STORE = {
        "BACKEND": "s3",
        "ENDPOINT": _s3_endpoint,
        "BUCKET": env_str("TELEMED_S3_BUCKET", "telemed"),
        "ACCESS_KEY": _s3_access,
        "SECRET_KEY": _s3_secret,
        "SECURE": env_bool("TELEMED_S3_SECURE", False),
        "REGION": env_str("TELEMED_S3_REGION", "us-east-1"),
        "PUBLIC_URL": env_url("TELEMED_S3_PUBLIC_URL", schemes={"http", "https"}),
    }
OBJECT_STORE["PRESIGN_SECONDS"] = env_int(
    "TELEMED_S3_PRESIGN_SECONDS", 300, minimum=10, maximum=7 * 24 * 3600
)

# --- TURN (media relay) ---------------------------------------------------------------
_turn_urls = env_list("TELEMED_TURN_URLS", [])
TURN: dict[str, Any] = {
    "SECRET": env_optional("TELEMED_TURN_SECRET"),
    "URLS": _turn_urls,
    "TTL_SECONDS": env_int("TELEMED_TURN_TTL", 3600, minimum=60, maximum=86400),
}
if _turn_urls and not TURN["SECRET"]:
    raise ConfigError("TELEMED_TURN_SECRET must be set when TELEMED_TURN_URLS is")
for _turn_url in _turn_urls:
    if not _turn_url.startswith(("turn:", "turns:", "stun:")):
        raise ConfigError(
            f"TELEMED_TURN_URLS: {_turn_url!r} must start with turn:, turns: or stun:"
        )

# --- Media service (aiortc, `telemed media`) and consults -------------------------------
MEDIA_SERVICE: dict[str, Any] = {
    # Where Django reaches the media service's control API (loopback or the compose network).
    "URL": env_url("TELEMED_MEDIA_URL", schemes={"http", "https"}) or "http://127.0.0.1:8001",
    # Shared between Django and the media service; derived from the secret key when unset.
    "SECRET": env_optional("TELEMED_MEDIA_SECRET")
    or hashlib.sha256(b"telemed-media:" + SECRET_KEY.encode()).hexdigest(),
    # Addresses the media service offers as ICE host candidates; empty = the machine's own.
    # 127.0.0.1 is needed on a loopback-only machine (aioice skips loopback by itself).
    "HOST_ADDRESSES": env_list("TELEMED_MEDIA_HOST_ADDRESSES", []),
    # Fault injection for tests and benchmarks (cut a peer's link); never on in production.
    "FAULTS": env_bool("TELEMED_MEDIA_FAULTS", False),
    "MAX_ROOM_PEERS": env_int("TELEMED_MEDIA_MAX_ROOM_PEERS", 8, minimum=2, maximum=64),
}
# Consult recordings and chat are kept at least three years (Chinese remote-medicine rules).
CONSULT_RECORDING_RETENTION_DAYS = env_int(
    "TELEMED_CONSULT_RECORDING_RETENTION_DAYS", 1095, minimum=1, maximum=36500
)

# Lab centre (issue 5): defaults for a centre without its own policy (lab.models.LabPolicy).
LAB: dict[str, int] = {
    "CRITICAL_ACK_MINUTES": env_int(
        "TELEMED_LAB_CRITICAL_ACK_MINUTES", 10, minimum=1, maximum=1440
    ),
    "CRITICAL_ESCALATE_MINUTES": env_int(
        "TELEMED_LAB_CRITICAL_ESCALATE_MINUTES", 10, minimum=1, maximum=1440
    ),
    "SPECIMEN_MAX_AGE_HOURS": env_int(
        "TELEMED_LAB_SPECIMEN_MAX_AGE_HOURS", 48, minimum=1, maximum=720
    ),
    "MISSING_AFTER_HOURS": env_int("TELEMED_LAB_MISSING_AFTER_HOURS", 24, minimum=1, maximum=720),
}

# --- Imaging (DICOM) -------------------------------------------------------------------
DICOM_AE_TITLE = env_str("TELEMED_DICOM_AE_TITLE", "TELEMED")
if not 0 < len(DICOM_AE_TITLE) <= 16 or not DICOM_AE_TITLE.isascii() or "\\" in DICOM_AE_TITLE:
    raise ConfigError("TELEMED_DICOM_AE_TITLE must be 1 to 16 ASCII characters without a backslash")
DICOM_PORT = env_int("TELEMED_DICOM_PORT", 11112, minimum=1, maximum=65535)
DICOMWEB_CORS_ORIGINS = env_list("TELEMED_DICOMWEB_CORS_ORIGINS", [])
# A granted study is remembered per user this long, so a viewer's hundreds of frame
# requests skip the visibility query; denials are never remembered. 0 turns it off.
DICOMWEB_ACCESS_CACHE_SECONDS = env_int("TELEMED_DICOMWEB_ACCESS_CACHE_SECONDS", 60, maximum=600)
for _origin in DICOMWEB_CORS_ORIGINS:
    if not _origin.startswith(("http://", "https://")):
        raise ConfigError(f"TELEMED_DICOMWEB_CORS_ORIGINS: {_origin!r} must start with https://")

# --- Background work ------------------------------------------------------------------
_task_backend = env_choice("TELEMED_TASK_BACKEND", "immediate", {"immediate", "database"})
TASKS = {
    "default": {
        "BACKEND": (
            "django_tasks.backends.immediate.ImmediateBackend"
            if _task_backend == "immediate"
            else "django_tasks_db.DatabaseBackend"
        )
    }
}

# --- Authentication -------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
SESSION_COOKIE_AGE = env_int("TELEMED_SESSION_SECONDS", 8 * 3600, minimum=300)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True

# --- Internationalisation -------------------------------------------------------------
LANGUAGE_CODE = env_choice("TELEMED_LANGUAGE_CODE", "zh-hans", {"zh-hans", "en"})
LANGUAGES = [("zh-hans", "简体中文"), ("en", "English")]
LOCALE_PATHS = [PLATFORM_DIR / "locale"]
TIME_ZONE = env_str("TELEMED_TIME_ZONE", "Asia/Shanghai")
USE_I18N = True
USE_TZ = True

# --- Static files ---------------------------------------------------------------------
STATIC_URL = "static/"
# Collected files are served in production; on one machine WhiteNoise serves from the finders.
_static_root = env_optional("TELEMED_STATIC_ROOT")
STATIC_ROOT = Path(_static_root) if _static_root else (None if DEBUG else REPO_DIR / "staticfiles")
STATICFILES_DIRS = [FRONTEND_DIR / "static"]
WHITENOISE_USE_FINDERS = DEBUG
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# --- API ------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.BasicAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "core.api.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["rest_framework.throttling.UserRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"user": env_str("TELEMED_API_RATE", "600/minute")},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Telemed API",
    "DESCRIPTION": "Association, residents' records, consent, notifications and audit.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- Security (every production setting on when TELEMED_DEBUG=0) ------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = not DEBUG and env_bool("TELEMED_SSL_REDIRECT", True)
SECURE_REDIRECT_EXEMPT = [r"^health/"]
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_HTTPONLY = True
SECURE_HSTS_SECONDS = 0 if DEBUG else env_int("TELEMED_HSTS_SECONDS", 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("TELEMED_LOG_LEVEL", "INFO")},
    "loggers": {"django.channels.server": {"level": "INFO"}},
}
