"""S3 specifics: multipart uploads and where objects land in the bucket."""

from __future__ import annotations

import io
from typing import Any

import pytest

from objectstore import ObjectStore, get_store
from objectstore.s3 import PART_SIZE, S3Store
from tests.objectstore.support import GeneratedStream
from tests.s3 import S3Server, unique_bucket

pytestmark = pytest.mark.s3


@pytest.fixture
def s3_store(settings: Any, s3_server: S3Server, s3_bucket: str) -> S3Store:
    settings.OBJECT_STORE = s3_server.object_store_settings(bucket=s3_bucket)
    store = get_store()
    assert isinstance(store, S3Store)
    return store


def test_an_object_larger_than_a_part_is_uploaded_in_parts(
    s3_store: S3Store, s3_server: S3Server
) -> None:
    stream = GeneratedStream(PART_SIZE + 1024)

    stored = s3_store.put(stream, prefix="imaging")  # type: ignore[arg-type]

    etag = s3_server.client().stat_object(s3_store.bucket, stored.key).etag
    assert str(etag).endswith("-2")


def test_a_small_object_is_uploaded_in_one_request(s3_store: S3Store, s3_server: S3Server) -> None:
    stored = s3_store.put(io.BytesIO(b"small"), prefix="imaging")

    etag = s3_server.client().stat_object(s3_store.bucket, stored.key).etag
    assert "-" not in str(etag)


def test_objects_are_stored_under_their_key_in_the_configured_bucket(
    s3_store: S3Store, s3_server: S3Server
) -> None:
    stored = s3_store.put(io.BytesIO(b"where"), prefix="records/consent")

    response = s3_server.client().get_object(s3_store.bucket, stored.key)
    try:
        assert response.read() == b"where"
    finally:
        response.close()
        response.release_conn()


def test_the_bucket_is_created_on_first_put(settings: Any, s3_server: S3Server) -> None:
    bucket = unique_bucket()
    settings.OBJECT_STORE = s3_server.object_store_settings(bucket=bucket)
    store: ObjectStore = get_store()

    store.put(io.BytesIO(b"first"), prefix="imaging")

    assert s3_server.client().bucket_exists(bucket)


def test_presigned_urls_name_the_public_host_when_one_is_set():
    from objectstore.s3 import S3Store

    store = S3Store(
        endpoint="minio:9000",
        bucket="telemed",
        access_key="k",
        secret_key="s",
        presign_seconds=60,
        public_url="https://files.example.org",
    )
    key = "reports/2026/11/" + "a" * 32
    url = store.presigned_url(key, seconds=60)
    assert url.startswith("https://files.example.org/telemed/reports/2026/11/")
