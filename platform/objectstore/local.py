"""The local-folder backend: the embedded default, with the same behaviour as S3.

Objects are files under ``ROOT`` at their key's path; a sidecar ``<name>.json`` keeps
the content type, size and digest. Uploads go to a temporary file in the destination
folder and are moved into place with ``os.replace`` only after verification, so a
failed or mismatched upload leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Generator
from pathlib import Path
from typing import IO, BinaryIO

from django.urls import reverse

from objectstore.base import DEFAULT_CONTENT_TYPE, ObjectInfo, ObjectStore
from objectstore.errors import ObjectNotFound, StoreUnavailable
from objectstore.keys import validate_key
from objectstore.streams import CHUNK_SIZE, HashingReader
from objectstore.tokens import sign_download

_MISSING = (FileNotFoundError, NotADirectoryError, IsADirectoryError)


class LocalStore(ObjectStore):
    """Objects as files in a folder.

    Parameters
    ----------
    root
        The folder holding the objects; created on first use.
    presign_seconds
        Default lifetime of download links.
    """

    def __init__(self, *, root: Path, presign_seconds: int) -> None:
        super().__init__(presign_seconds=presign_seconds)
        self.root = Path(root)

    def open_file(self, key: str) -> tuple[BinaryIO, ObjectInfo]:
        """Open the object's file for reading (for ``FileResponse``); the caller closes it.

        Raises
        ------
        ValueError
            ``key`` is malformed.
        ObjectNotFound
            Nothing is stored under ``key``.
        """
        path = self._path(validate_key(key))
        try:
            handle = path.open("rb")
        except _MISSING as exc:
            raise ObjectNotFound(key) from exc
        except OSError as exc:
            raise StoreUnavailable(f"cannot read {key!r}: {exc.strerror}") from exc
        size = os.fstat(handle.fileno()).st_size
        return handle, ObjectInfo(key=key, size=size, content_type=self._content_type(path))

    def check(self) -> None:
        """Raise :class:`StoreUnavailable` unless the root folder exists and is writable."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(f"cannot create {self.root}: {exc.strerror}") from exc
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise StoreUnavailable(f"{self.root} is not writable")

    def _path(self, key: str) -> Path:
        return self.root / key

    @staticmethod
    def _meta_path(path: Path) -> Path:
        return path.with_name(f"{path.name}.json")

    def _write(
        self, key: str, reader: HashingReader, *, content_type: str, verify: Callable[[], None]
    ) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
        except OSError as exc:
            raise StoreUnavailable(f"cannot write under {self.root}: {exc.strerror}") from exc
        temp = Path(temp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                _copy(reader, out)
                verify()
                meta = {
                    "content_type": content_type,
                    "size": reader.size,
                    "sha256": reader.hexdigest(),
                }
                self._commit(temp, out, path, meta)
        finally:
            temp.unlink(missing_ok=True)

    def _commit(self, temp: Path, out: IO[bytes], path: Path, meta: dict[str, object]) -> None:
        """Write the sidecar, sync the data, then move it into place: the data appears last.

        One ``fsync`` per object, on the data, made after the sidecar is written (a lost
        sidecar only reads as the default content type; the digest is in the caller's index).
        """
        meta_path = self._meta_path(path)
        try:
            _write_atomically(meta_path, json.dumps(meta).encode())
            out.flush()
            os.fsync(out.fileno())
            os.replace(temp, path)
        except OSError as exc:
            meta_path.unlink(missing_ok=True)
            raise StoreUnavailable(f"cannot write {path.name}: {exc.strerror}") from exc

    def _open(self, key: str) -> Generator[bytes, None, None]:
        handle, _info = self.open_file(key)
        return _chunks(handle)

    def _stat(self, key: str) -> ObjectInfo:
        path = self._path(key)
        try:
            size = path.stat().st_size
        except _MISSING as exc:
            raise ObjectNotFound(key) from exc
        return ObjectInfo(key=key, size=size, content_type=self._content_type(path))

    def _presign(self, key: str, *, seconds: int, filename: str | None) -> str:
        token = sign_download(key, seconds=seconds, filename=filename)
        return reverse("objectstore:download", kwargs={"token": token})

    def _delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
            self._meta_path(path).unlink(missing_ok=True)
        except OSError as exc:
            raise StoreUnavailable(f"cannot delete {key!r}: {exc.strerror}") from exc

    def _content_type(self, path: Path) -> str:
        try:
            meta = json.loads(self._meta_path(path).read_bytes())
        except (OSError, ValueError):
            return DEFAULT_CONTENT_TYPE
        value = meta.get("content_type") if isinstance(meta, dict) else None
        return value if isinstance(value, str) else DEFAULT_CONTENT_TYPE


def _copy(reader: HashingReader, out: IO[bytes]) -> None:
    """Copy chunk by chunk; the caller's read errors propagate, write errors are the store's."""
    while chunk := reader.read(CHUNK_SIZE):
        try:
            out.write(chunk)
        except OSError as exc:
            raise StoreUnavailable(f"cannot write: {exc.strerror}") from exc


def _write_atomically(path: Path, data: bytes) -> None:
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(temp_name, path)
    finally:
        Path(temp_name).unlink(missing_ok=True)


def _chunks(handle: BinaryIO) -> Generator[bytes, None, None]:
    with handle:
        while chunk := handle.read(CHUNK_SIZE):
            yield chunk
