"""Build the configured store once per process (and again when tests change settings)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from objectstore.base import ObjectStore


def build_store(config: Mapping[str, Any]) -> ObjectStore:
    """Build a store from an ``OBJECT_STORE``-shaped mapping.

    Parameters
    ----------
    config
        ``BACKEND`` is ``"local"`` (with ``ROOT``) or ``"s3"`` (with ``ENDPOINT``,
        ``BUCKET``, ``ACCESS_KEY``, ``SECRET_KEY`` and optionally ``SECURE``, ``REGION``,
        ``CONNECT_TIMEOUT``, ``READ_TIMEOUT``, ``RETRIES``); ``PRESIGN_SECONDS`` for both.

    Returns
    -------
    ObjectStore
        A :class:`~objectstore.local.LocalStore` or :class:`~objectstore.s3.S3Store`.

    Raises
    ------
    django.core.exceptions.ImproperlyConfigured
        Unknown backend or a missing entry.
    """
    backend = config.get("BACKEND", "local")
    presign_seconds = int(config.get("PRESIGN_SECONDS", 300))
    try:
        if backend == "local":
            from objectstore.local import LocalStore

            return LocalStore(root=Path(config["ROOT"]), presign_seconds=presign_seconds)
        if backend == "s3":
            from objectstore.s3 import S3Store

            return S3Store(
                endpoint=config["ENDPOINT"],
                bucket=config["BUCKET"],
                access_key=config["ACCESS_KEY"],
                secret_key=config["SECRET_KEY"],
                secure=bool(config.get("SECURE", False)),
                region=config.get("REGION", "us-east-1"),
                presign_seconds=presign_seconds,
                connect_timeout=float(config.get("CONNECT_TIMEOUT", 5.0)),
                read_timeout=float(config.get("READ_TIMEOUT", 60.0)),
                retries=int(config.get("RETRIES", 2)),
                public_url=config.get("PUBLIC_URL"),
            )
    except KeyError as exc:
        raise ImproperlyConfigured(f"OBJECT_STORE[{exc.args[0]!r}] is required") from exc
    raise ImproperlyConfigured(f"OBJECT_STORE['BACKEND']={backend!r}: expected 'local' or 's3'")


@functools.cache
def get_store() -> ObjectStore:
    """Return the store configured by ``settings.OBJECT_STORE``, built on first call.

    ``get_store.cache_clear()`` forgets it; this happens automatically when a test
    overrides ``OBJECT_STORE`` (see :func:`reset_on_setting_change`).
    """
    return build_store(settings.OBJECT_STORE)


def reset_on_setting_change(*, setting: str, **kwargs: Any) -> None:
    """``setting_changed`` receiver: rebuild the store after ``OBJECT_STORE`` changes."""
    if setting == "OBJECT_STORE":
        get_store.cache_clear()
