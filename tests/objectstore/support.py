"""Helpers for object-store tests: fetching presigned URLs, clocks, generated streams."""

from __future__ import annotations

import hashlib
import random
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import minio.time
import pytest
from django.core import signing
from django.test import Client


@dataclass
class Fetched:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def fetch(url: str) -> Fetched:
    """GET a presigned URL: over HTTP for S3, through Django for the local backend."""
    if url.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310
                return Fetched(response.status, response.read(), dict(response.headers))
        except urllib.error.HTTPError as exc:
            return Fetched(exc.code, exc.read(), dict(exc.headers))
    response = Client().get(url)
    return Fetched(response.status_code, response.getvalue(), dict(response.headers))


@contextmanager
def issued_seconds_ago(seconds: int, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Presigned URLs made inside the block look issued ``seconds`` ago (both backends)."""
    past = datetime.now(UTC) - timedelta(seconds=seconds)
    with monkeypatch.context() as patch:
        patch.setattr(signing, "time", SimpleNamespace(time=past.timestamp))
        patch.setattr(minio.time, "utcnow", lambda: past)
        yield


class GeneratedStream:
    """A file-like producing ``size`` pseudo-random bytes on demand, never all at once.

    Records the largest single read so tests can check the store reads in chunks.
    """

    def __init__(self, size: int, *, seed: int = 7) -> None:
        self._left = size
        self._random = random.Random(seed)
        self._hash = hashlib.sha256()
        self.largest_read = 0

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            raise AssertionError("the store asked for the whole stream at once")
        self.largest_read = max(self.largest_read, size)
        data = self._random.randbytes(min(size, self._left))
        self._left -= len(data)
        self._hash.update(data)
        return data

    def sha256(self) -> str:
        """Digest of everything produced so far."""
        return self._hash.hexdigest()
