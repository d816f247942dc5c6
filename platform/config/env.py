"""Typed readers for environment variables.

Every reader fails loudly with :class:`ConfigError` naming the variable when a value
is present but wrong, so a misconfigured deployment stops at start instead of running
with a surprise. Secrets may also be given as ``NAME_FILE`` (Docker/Kubernetes secrets).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

from django.core.exceptions import ImproperlyConfigured


class ConfigError(ImproperlyConfigured):
    """A configuration variable has a value the platform cannot use."""


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _raw(name: str) -> str | None:
    """Return the variable's value, reading ``NAME_FILE`` when ``NAME`` is unset."""
    value = os.environ.get(name)
    if value is not None:
        return value
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{name}_FILE: cannot read {file_name!r} ({exc.strerror})") from exc
    return None


def env_str(name: str, default: str) -> str:
    value = _raw(name)
    return default if value is None else value.strip()


def env_optional(name: str) -> str | None:
    value = _raw(name)
    return value.strip() if value and value.strip() else None


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(f"{name}={value!r} is not a boolean; use 1/0, true/false, yes/no or on/off")


def env_int(name: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
    value = _raw(name)
    if value is None or not value.strip():
        return default
    try:
        number = int(value.strip())
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a whole number") from None
    if number < minimum or (maximum is not None and number > maximum):
        upper = "" if maximum is None else f" and at most {maximum}"
        raise ConfigError(f"{name}={number} must be at least {minimum}{upper}")
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    value = _raw(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def env_url(name: str, *, schemes: set[str]) -> str | None:
    """Return a URL whose scheme is one of ``schemes``, or ``None`` when unset."""
    value = env_optional(name)
    if value is None:
        return None
    parsed = urlparse(value)
    if parsed.scheme not in schemes:
        allowed = ", ".join(sorted(schemes))
        raise ConfigError(f"{name}: scheme {parsed.scheme or '(none)'!r} is not one of {allowed}")
    if parsed.scheme not in {"sqlite"} and not parsed.hostname:
        raise ConfigError(f"{name}: {value!r} has no host name")
    return value


def env_choice(name: str, default: str, choices: set[str]) -> str:
    value = env_str(name, default)
    if value not in choices:
        raise ConfigError(f"{name}={value!r} is not one of {', '.join(sorted(choices))}")
    return value
