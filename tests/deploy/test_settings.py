"""The settings at start, each in a fresh process with a clean environment.

A wrong value stops the process with a message naming the variable; production values
switch every security setting on and pass Django's deployment checklist.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BOOT = (
    "import os, django;"
    " os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings');"
    " django.setup()"
)
PRODUCTION = {
    "TELEMED_DEBUG": "0",
    "TELEMED_SECRET_KEY": secrets.token_urlsafe(50),
    "TELEMED_ALLOWED_HOSTS": "telemed.example.org",
    "DATABASE_URL": "postgres://postgres@127.0.0.1/telemed",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
}


def run(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run python with only PATH, HOME, the platform on the path and ``env``."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO,
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(tmp_path),
            "PYTHONPATH": str(REPO / "platform"),
            "TELEMED_DATA_DIR": str(tmp_path / "data"),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )


# Each case: the environment, and the variable the refusal must name.
WRONG_VALUES = {
    "debug-not-a-boolean": ({"TELEMED_DEBUG": "maybe"}, "TELEMED_DEBUG"),
    "database-mysql": ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
    "redis-http": ({"REDIS_URL": "http://x"}, "REDIS_URL"),
    "s3-endpoint-with-scheme": (
        {
            "TELEMED_S3_ENDPOINT": "http://minio:9000",
            "TELEMED_S3_ACCESS_KEY": "telemed",
            "TELEMED_S3_SECRET_KEY": "telemed-secret",
        },
        "TELEMED_S3_ENDPOINT",
    ),
    "s3-without-keys": ({"TELEMED_S3_ENDPOINT": "minio:9000"}, "TELEMED_S3_ACCESS_KEY"),
    "turn-urls-without-secret": (
        {"TELEMED_TURN_URLS": "turn:turn.example.org:3478"},
        "TELEMED_TURN_SECRET",
    ),
    "turn-url-not-turn": (
        {"TELEMED_TURN_URLS": "https://turn.example.org", "TELEMED_TURN_SECRET": "s"},
        "TELEMED_TURN_URLS",
    ),
    "short-secret-in-production": (
        {"TELEMED_DEBUG": "0", "TELEMED_SECRET_KEY": "too-short"},
        "TELEMED_SECRET_KEY",
    ),
    "production-without-secret": ({"TELEMED_DEBUG": "0"}, "TELEMED_SECRET_KEY"),
    "session-not-a-number": ({"TELEMED_SESSION_SECONDS": "abc"}, "TELEMED_SESSION_SECONDS"),
    "unknown-task-backend": ({"TELEMED_TASK_BACKEND": "celery"}, "TELEMED_TASK_BACKEND"),
    "origin-without-scheme": (
        {"TELEMED_CSRF_TRUSTED_ORIGINS": "telemed.example.org"},
        "TELEMED_CSRF_TRUSTED_ORIGINS",
    ),
}
# Loads the settings afresh for each case in one process (one interpreter start for all).
LOAD_EACH = """
import importlib, json, os, sys
base, cases = json.load(sys.stdin)
results = {}
for case, env in cases.items():
    os.environ.clear()
    os.environ.update({**base, **env})
    sys.modules.pop("config.settings", None)
    try:
        importlib.import_module("config.settings")
    except Exception as exc:
        results[case] = f"{type(exc).__module__}.{type(exc).__name__}: {exc}"
    else:
        results[case] = None
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def refusals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str | None]:
    """The error each WRONG_VALUES case raises while the settings load (None: it loaded)."""
    tmp_path = tmp_path_factory.mktemp("settings")
    base = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "TELEMED_DATA_DIR": str(tmp_path / "data"),
    }
    cases = {case: env for case, (env, _) in WRONG_VALUES.items()}
    result = subprocess.run(
        [sys.executable, "-c", LOAD_EACH],
        cwd=REPO,
        env={**base, "PYTHONPATH": str(REPO / "platform")},
        input=json.dumps([base, cases]),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The exception's own message: the traceback's last line, not its quoted source."""
    assert result.returncode != 0, "the process started"
    return result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("case", WRONG_VALUES)
def test_a_wrong_value_stops_the_start_with_a_message_naming_it(
    refusals: dict[str, str | None], case: str
) -> None:
    _, named = WRONG_VALUES[case]
    message = refusals[case]
    assert message is not None, "the settings loaded"
    assert message.startswith("config.env.ConfigError: ")
    assert named in message


def test_telemed_command_refuses_to_start_on_a_wrong_value(tmp_path: Path) -> None:
    result = run(
        tmp_path, {"REDIS_URL": "http://redis:6379"}, "-m", "config.cli", "manage", "check"
    )
    assert "REDIS_URL" in error_line(result)


def test_secret_key_is_read_from_the_file_named_by_secret_key_file(tmp_path: Path) -> None:
    key = secrets.token_urlsafe(50)
    key_file = tmp_path / "secret_key"
    key_file.write_text(f"{key}\n", encoding="utf-8")
    env = {**PRODUCTION, "TELEMED_SECRET_KEY_FILE": str(key_file)}
    del env["TELEMED_SECRET_KEY"]
    script = "import config.settings as s; print(s.SECRET_KEY)"
    result = run(tmp_path, env, "-c", script)
    assert result.stdout.strip() == key, result.stderr


def test_a_short_key_in_the_secret_file_is_refused_too(tmp_path: Path) -> None:
    key_file = tmp_path / "secret_key"
    key_file.write_text("too-short", encoding="utf-8")
    env = {**PRODUCTION, "TELEMED_SECRET_KEY_FILE": str(key_file)}
    del env["TELEMED_SECRET_KEY"]
    assert "TELEMED_SECRET_KEY" in error_line(run(tmp_path, env, "-c", BOOT))


def test_an_unreadable_secret_file_is_named(tmp_path: Path) -> None:
    env = {**PRODUCTION, "TELEMED_SECRET_KEY_FILE": str(tmp_path / "missing")}
    del env["TELEMED_SECRET_KEY"]
    assert "TELEMED_SECRET_KEY_FILE" in error_line(run(tmp_path, env, "-c", BOOT))


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Security settings as loaded from PRODUCTION, and what the probes' paths get."""
    script = (
        f"{BOOT}; import json, re; from django.conf import settings;"
        " names = ['DEBUG', 'SECURE_SSL_REDIRECT', 'SESSION_COOKIE_SECURE',"
        " 'CSRF_COOKIE_SECURE', 'SECURE_HSTS_SECONDS', 'SECURE_PROXY_SSL_HEADER'];"
        " values = {n: getattr(settings, n) for n in names};"
        " values['redirect_exempt'] = [path for path in ('health/ready', 'health/live')"
        " if any(re.search(p, path) for p in settings.SECURE_REDIRECT_EXEMPT)];"
        " print(json.dumps(values))"
    )
    result = run(tmp_path_factory.mktemp("production"), PRODUCTION, "-c", script)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_production_settings_switch_every_security_setting_on(
    production: dict[str, object],
) -> None:
    assert production["DEBUG"] is False
    assert production["SECURE_SSL_REDIRECT"] is True
    assert production["SESSION_COOKIE_SECURE"] is True
    assert production["CSRF_COOKIE_SECURE"] is True
    assert production["SECURE_HSTS_SECONDS"] == 31536000


def test_production_settings_trust_the_tls_proxy_for_the_scheme(
    production: dict[str, object],
) -> None:
    assert production["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]


def test_health_endpoints_answer_plain_http_probes_in_production(
    production: dict[str, object],
) -> None:
    """Container healthchecks call Daphne directly, without the proxy's HTTPS."""
    assert production["redirect_exempt"] == ["health/ready", "health/live"]


def test_production_settings_pass_the_deployment_checklist(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        PRODUCTION,
        "-m",
        "config.cli",
        "manage",
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
