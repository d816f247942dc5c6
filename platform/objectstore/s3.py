"""The S3 backend over the ``minio`` SDK (MinIO in production, SeaweedFS in tests)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import BinaryIO, cast
from urllib.parse import urlparse

import urllib3
from django.utils.http import content_disposition_header
from minio import Minio
from minio.error import InvalidResponseError, S3Error, ServerError

from objectstore.base import DEFAULT_CONTENT_TYPE, ObjectInfo, ObjectStore
from objectstore.errors import ObjectNotFound, ObjectStoreError, StoreUnavailable
from objectstore.streams import CHUNK_SIZE, HashingReader

logger = logging.getLogger(__name__)

PART_SIZE = 16 * 1024 * 1024
"""Multipart part size; an upload holds about one part in memory at a time."""

_NOT_FOUND = {"NoSuchKey", "NoSuchObject", "NoSuchBucket"}
_REFUSED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"}
_BUCKET_EXISTS = {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}


@contextmanager
def _translated(key: str | None = None) -> Iterator[None]:
    """Turn SDK and transport errors into the store's exceptions."""
    try:
        yield
    except S3Error as exc:
        if key is not None and exc.code in _NOT_FOUND:
            raise ObjectNotFound(key) from exc
        if exc.code in _REFUSED:
            raise StoreUnavailable(f"S3 refused the credentials: {exc.code}") from exc
        raise ObjectStoreError(f"S3 error {exc.code}: {exc.message}") from exc
    except (ServerError, InvalidResponseError, urllib3.exceptions.HTTPError) as exc:
        raise StoreUnavailable(f"S3 unavailable: {exc}") from exc


class S3Store(ObjectStore):
    """Objects in one S3 bucket, created on first use.

    Parameters
    ----------
    endpoint
        ``host:port`` of the S3 server, without scheme.
    bucket
        The bucket holding every object.
    access_key, secret_key
        Credentials.
    secure
        Use HTTPS (certificates verified against the system's CA store).
    region
        Given explicitly so that presigning never needs a network round trip.
    presign_seconds
        Default lifetime of presigned URLs.
    connect_timeout, read_timeout
        Seconds to connect, and to wait for each read from the server.
    retries
        Retries on connection errors and 5xx answers (bodies are in memory, so safe).
    public_url
        ``https://host[:port]`` browsers use to reach the S3 server when it differs from
        ``endpoint`` (MinIO behind the proxy); presigned URLs are signed for that host.
    """

    def __init__(
        self,
        *,
        endpoint: str,
        bucket: str,
        access_key: str,
        secret_key: str,
        secure: bool = False,
        region: str = "us-east-1",
        presign_seconds: int,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        retries: int = 2,
        public_url: str | None = None,
    ) -> None:
        super().__init__(presign_seconds=presign_seconds)
        self.bucket = bucket
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            maxsize=10,
            retries=urllib3.Retry(
                total=retries, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]
            ),
        )
        self._client = Minio(
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region,
            http_client=http,
        )
        self._presigner = self._client
        if public_url:
            public = urlparse(public_url)
            # Presigning is local (the region is given), so this client never connects.
            self._presigner = Minio(
                public.netloc,
                access_key=access_key,
                secret_key=secret_key,
                secure=public.scheme == "https",
                region=region,
            )
        self._bucket_ready = False

    def check(self) -> None:
        """Raise :class:`StoreUnavailable` unless the bucket answers (creating it if missing)."""
        self._bucket_ready = False
        try:
            self._ensure_bucket()
        except StoreUnavailable:
            raise
        except ObjectStoreError as exc:
            raise StoreUnavailable(str(exc)) from exc

    def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        with _translated():
            if not self._client.bucket_exists(self.bucket):
                try:
                    self._client.make_bucket(self.bucket)
                except S3Error as exc:  # another process created it meanwhile
                    if exc.code not in _BUCKET_EXISTS:
                        raise
        self._bucket_ready = True

    def _write(
        self, key: str, reader: HashingReader, *, content_type: str, verify: Callable[[], None]
    ) -> None:
        self._ensure_bucket()
        with _translated():
            # length=-1: minio reads one part at a time and switches to a multipart upload
            # past PART_SIZE. One upload thread, because minio queues parts for its thread
            # pool without limit and a fast reader would fill memory with the whole object.
            self._client.put_object(
                self.bucket,
                key,
                cast(BinaryIO, reader),
                length=-1,
                content_type=content_type,
                part_size=PART_SIZE,
                num_parallel_uploads=1,
            )
        try:
            verify()
        except Exception:
            self._discard(key)
            raise

    def _discard(self, key: str) -> None:
        """Remove a just-uploaded object that failed verification; log if that fails too."""
        try:
            self._delete(key)
        except ObjectStoreError:
            logger.exception("could not remove unverified object %s", key)

    def _open(self, key: str) -> Generator[bytes, None, None]:
        with _translated(key):
            response = self._client.get_object(self.bucket, key)
        return _stream(response)

    def _stat(self, key: str) -> ObjectInfo:
        with _translated(key):
            found = self._client.stat_object(self.bucket, key)
        return ObjectInfo(
            key=key, size=found.size or 0, content_type=found.content_type or DEFAULT_CONTENT_TYPE
        )

    def _presign(self, key: str, *, seconds: int, filename: str | None) -> str:
        headers: dict[str, str | list[str] | tuple[str]] | None = None
        if filename is not None:
            disposition = content_disposition_header(as_attachment=True, filename=filename)
            headers = {"response-content-disposition": disposition or "attachment"}
        with _translated(key):
            return self._presigner.presigned_get_object(
                self.bucket, key, expires=timedelta(seconds=seconds), response_headers=headers
            )

    def _delete(self, key: str) -> None:
        with _translated():
            try:
                self._client.remove_object(self.bucket, key)
            except S3Error as exc:
                if exc.code != "NoSuchBucket":  # no bucket, no object: already deleted
                    raise


def _stream(response: urllib3.BaseHTTPResponse) -> Generator[bytes, None, None]:
    """Yield the body in chunks, then hand the connection back to the pool."""
    try:
        with _translated():
            yield from response.stream(CHUNK_SIZE)
    finally:
        response.close()
        response.release_conn()
