"""The object-store interface shared by the S3 and local-folder backends.

Public methods validate their arguments here, once, and delegate to a few ``_``-prefixed
methods each backend implements; both backends therefore accept and refuse exactly the
same inputs.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import BinaryIO

from objectstore.keys import new_key, normalize_sha256, validate_key
from objectstore.streams import HashingReader, verified

DEFAULT_CONTENT_TYPE = "application/octet-stream"
MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # the S3 limit for presigned URLs

# RFC 6838 type/subtype, then optional parameters; no control characters anywhere.
_CONTENT_TYPE_RE = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
    r"(?:\s*;\s*[A-Za-z0-9!#$&^_.+-]+=(?:[\x21-\x7e]+|\"[\x20-\x7e]*\"))*"
)
_UNSAFE_FILENAME_RE = re.compile(r"[\x00-\x1f\x7f/\\]")


@dataclass(frozen=True, slots=True)
class StoredObject:
    """What :meth:`ObjectStore.put` stored; the caller records it in its own database.

    Attributes
    ----------
    key
        The server-generated key, ``<prefix>/<YYYY>/<MM>/<uuid4 hex>``.
    size
        Size in bytes.
    sha256
        Lowercase SHA-256 hex digest of the stored bytes.
    content_type
        The media type given at upload.
    """

    key: str
    size: int
    sha256: str
    content_type: str


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What :meth:`ObjectStore.stat` reports about a stored object."""

    key: str
    size: int
    content_type: str


class ObjectStore(ABC):
    """A bucket of immutable objects under server-generated keys.

    Parameters
    ----------
    presign_seconds
        Default lifetime of :meth:`presigned_url` links.
    """

    def __init__(self, *, presign_seconds: int) -> None:
        self.presign_seconds = _check_seconds(presign_seconds)

    def put(
        self,
        stream: BinaryIO,
        *,
        prefix: str,
        content_type: str = DEFAULT_CONTENT_TYPE,
        expected_sha256: str | None = None,
        size: int | None = None,
    ) -> StoredObject:
        """Store the bytes read from ``stream`` under a new key and return what was stored.

        The stream is read in chunks (never whole into memory) and hashed on the way.

        Parameters
        ----------
        stream
            A binary file-like; only ``read(n)`` is used. It is read to its end.
        prefix
            The key's prefix, 1-4 segments of ``[a-z0-9-]`` such as ``"imaging/dicom"``.
        content_type
            The media type served back on download.
        expected_sha256
            If given, the stored bytes must have this SHA-256 hex digest.
        size
            If given, the stream must yield exactly this many bytes.

        Returns
        -------
        StoredObject
            The generated key, size, SHA-256 digest and content type.

        Raises
        ------
        ValueError
            Invalid ``prefix``, ``content_type``, ``expected_sha256`` or ``size``.
        IntegrityMismatch
            The digest or size differs from the expected one; nothing is kept.
        StoreUnavailable
            The store cannot be reached or written.
        """
        key = new_key(prefix)
        content_type = _check_content_type(content_type)
        expected = normalize_sha256(expected_sha256)
        reader = HashingReader(stream, limit=size)
        self._write(
            key,
            reader,
            content_type=content_type,
            verify=lambda: reader.verify(expected_sha256=expected),
        )
        return StoredObject(
            key=key, size=reader.size, sha256=reader.hexdigest(), content_type=content_type
        )

    def open(self, key: str, *, expected_sha256: str | None = None) -> Generator[bytes, None, None]:
        """Stream an object's bytes in chunks.

        The object is looked up at once; its bytes are read as the generator is consumed.
        Close the generator (or exhaust it) to release the file or connection.

        Parameters
        ----------
        key
            A key returned by :meth:`put`.
        expected_sha256
            If given, the digest is checked after the last chunk.

        Returns
        -------
        Generator[bytes, None, None]
            The object's bytes, chunk by chunk.

        Raises
        ------
        ValueError
            ``key`` or ``expected_sha256`` is malformed.
        ObjectNotFound
            Nothing is stored under ``key`` (raised by this call, not by iteration).
        IntegrityMismatch
            Raised by the generator after the last chunk when the digest differs.
        StoreUnavailable
            The store cannot be reached, now or while streaming.
        """
        validate_key(key)
        expected = normalize_sha256(expected_sha256)
        chunks = self._open(key)
        return chunks if expected is None else verified(chunks, expected)

    def stat(self, key: str) -> ObjectInfo:
        """Return an object's size and content type.

        Raises
        ------
        ValueError
            ``key`` is malformed.
        ObjectNotFound
            Nothing is stored under ``key``.
        StoreUnavailable
            The store cannot be reached.
        """
        return self._stat(validate_key(key))

    def presigned_url(
        self, key: str, *, seconds: int | None = None, filename: str | None = None
    ) -> str:
        """Return a short-lived URL that downloads the object without further authentication.

        Existence is not checked; a URL for a missing object answers 404.

        Parameters
        ----------
        key
            A key returned by :meth:`put`.
        seconds
            Lifetime of the URL; defaults to the store's ``presign_seconds``.
        filename
            If given, the download is offered as an attachment with this file name.

        Returns
        -------
        str
            An absolute URL (S3) or a site-relative path ``/objects/<token>/`` (local).

        Raises
        ------
        ValueError
            ``key`` is malformed or ``seconds`` is outside 1 s to 7 days.
        """
        validate_key(key)
        lifetime = self.presign_seconds if seconds is None else _check_seconds(seconds)
        return self._presign(key, seconds=lifetime, filename=_clean_filename(filename))

    def delete(self, key: str) -> None:
        """Delete an object; deleting a missing object is not an error.

        Raises
        ------
        ValueError
            ``key`` is malformed.
        StoreUnavailable
            The store cannot be reached.
        """
        self._delete(validate_key(key))

    @abstractmethod
    def check(self) -> None:
        """Return if the store can be read and written, otherwise raise.

        Raises
        ------
        StoreUnavailable
            The store cannot be reached or used.
        """

    @abstractmethod
    def _write(
        self, key: str, reader: HashingReader, *, content_type: str, verify: Callable[[], None]
    ) -> None:
        """Store the reader's bytes under ``key``.

        ``verify()`` must be called once the reader is exhausted; if it raises, nothing
        may remain stored under ``key`` and the exception propagates.
        """

    @abstractmethod
    def _open(self, key: str) -> Generator[bytes, None, None]:
        """Look the object up now (raising :class:`ObjectNotFound`), stream it lazily."""

    @abstractmethod
    def _stat(self, key: str) -> ObjectInfo: ...

    @abstractmethod
    def _presign(self, key: str, *, seconds: int, filename: str | None) -> str: ...

    @abstractmethod
    def _delete(self, key: str) -> None: ...


def _check_seconds(seconds: int) -> int:
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise ValueError(f"seconds must be an integer, got {seconds!r}")
    if not 1 <= seconds <= MAX_PRESIGN_SECONDS:
        raise ValueError(f"seconds must be between 1 and {MAX_PRESIGN_SECONDS}, got {seconds}")
    return seconds


def _check_content_type(content_type: str) -> str:
    if not isinstance(content_type, str) or _CONTENT_TYPE_RE.fullmatch(content_type) is None:
        raise ValueError(f"invalid content type {content_type!r}")
    return content_type


def _clean_filename(filename: str | None) -> str | None:
    """Keep a download name displayable: no path separators or control characters."""
    if filename is None:
        return None
    cleaned = _UNSAFE_FILENAME_RE.sub("_", filename).strip(" .")[:200]
    return cleaned or None
