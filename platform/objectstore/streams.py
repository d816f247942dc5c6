"""Streaming helpers: hash while reading, verify while yielding; nothing held whole."""

from __future__ import annotations

import hashlib
from collections.abc import Generator, Iterator
from typing import BinaryIO

from objectstore.errors import IntegrityMismatch

CHUNK_SIZE = 1024 * 1024
"""Bytes read or yielded at a time by the store's own loops."""


class HashingReader:
    """A read-only file-like that hashes (SHA-256) and counts what is read through it.

    Parameters
    ----------
    stream
        The binary stream to read from; it is read only as far as callers ask.
    limit
        The declared size, if known. Reading past it raises :class:`IntegrityMismatch`
        at once, so an over-long stream is refused before it is all uploaded.
    """

    def __init__(self, stream: BinaryIO, *, limit: int | None = None) -> None:
        if limit is not None and limit < 0:
            raise ValueError(f"size must not be negative, got {limit}")
        self._stream = stream
        self._limit = limit
        self._hash = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        """Read at most ``size`` bytes (at most :data:`CHUNK_SIZE` when ``size`` < 0)."""
        data = self._stream.read(size if size >= 0 else CHUNK_SIZE)
        if not data:
            return b""
        self.size += len(data)
        if self._limit is not None and self.size > self._limit:
            raise IntegrityMismatch(f"stream is longer than the declared {self._limit} bytes")
        self._hash.update(data)
        return data

    def hexdigest(self) -> str:
        """The SHA-256 hex digest of everything read so far."""
        return self._hash.hexdigest()

    def verify(self, *, expected_sha256: str | None) -> None:
        """Check the bytes read so far against the declared size and expected digest.

        Raises
        ------
        IntegrityMismatch
            Fewer bytes than declared, or a different SHA-256 digest.
        """
        if self._limit is not None and self.size != self._limit:
            raise IntegrityMismatch(f"received {self.size} bytes, declared {self._limit}")
        actual = self.hexdigest()
        if expected_sha256 is not None and actual != expected_sha256:
            raise IntegrityMismatch(f"SHA-256 is {actual}, expected {expected_sha256}")


def verified(chunks: Iterator[bytes], expected_sha256: str) -> Generator[bytes, None, None]:
    """Yield ``chunks`` unchanged, then raise :class:`IntegrityMismatch` if the digest differs.

    The check happens after the last chunk has been yielded, so the consumer must treat
    everything it received as invalid when the exception arrives.
    """
    digest = hashlib.sha256()
    try:
        for chunk in chunks:
            digest.update(chunk)
            yield chunk
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    actual = digest.hexdigest()
    if actual != expected_sha256:
        raise IntegrityMismatch(f"SHA-256 is {actual}, expected {expected_sha256}")
