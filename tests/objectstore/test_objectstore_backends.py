"""The object store behaves the same on the local folder and on S3 (SeaweedFS)."""

from __future__ import annotations

import hashlib
import io
import re
import time
from collections.abc import Callable

import pytest

from objectstore import IntegrityMismatch, ObjectNotFound, ObjectStore
from objectstore.s3 import PART_SIZE
from tests.objectstore.support import GeneratedStream, fetch, issued_seconds_ago

KEY_SHAPE = re.compile(r"[a-z0-9-]+(/[a-z0-9-]+)*/\d{4}/\d{2}/[0-9a-f]{32}")


def test_put_then_open_returns_the_same_bytes(store: ObjectStore, prefix: str) -> None:
    data = b"ECG strip \x00\xff" * 1000

    stored = store.put(io.BytesIO(data), prefix=prefix, content_type="application/pdf")

    assert b"".join(store.open(stored.key)) == data
    assert stored.size == len(data)
    assert stored.content_type == "application/pdf"


def test_put_generates_a_dated_key_under_the_prefix(store: ObjectStore, prefix: str) -> None:
    stored = store.put(io.BytesIO(b"x"), prefix=f"{prefix}/dicom")

    assert stored.key.startswith(f"{prefix}/dicom/{time.gmtime().tm_year}/")
    assert KEY_SHAPE.fullmatch(stored.key)


def test_put_returns_the_sha256_of_the_bytes(store: ObjectStore, prefix: str) -> None:
    data = b"lab result" * 333

    stored = store.put(io.BytesIO(data), prefix=prefix)

    assert stored.sha256 == hashlib.sha256(data).hexdigest()


def test_stat_reports_size_and_content_type(store: ObjectStore, prefix: str) -> None:
    stored = store.put(io.BytesIO(b"12345"), prefix=prefix, content_type="image/png")

    info = store.stat(stored.key)

    assert (info.key, info.size, info.content_type) == (stored.key, 5, "image/png")


def test_a_large_object_is_streamed_in_chunks(store: ObjectStore, prefix: str) -> None:
    size = PART_SIZE + 3 * 1024 * 1024 + 123  # multipart on S3
    stream = GeneratedStream(size)

    stored = store.put(stream, prefix=prefix, size=size)  # type: ignore[arg-type]

    assert stream.largest_read <= PART_SIZE + 1 < size
    assert stored.size == size
    assert stored.sha256 == stream.sha256()
    digest = hashlib.sha256()
    for chunk in store.open(stored.key, expected_sha256=stored.sha256):
        assert len(chunk) < size
        digest.update(chunk)
    assert digest.hexdigest() == stored.sha256


def test_a_matching_expected_sha256_is_accepted(store: ObjectStore, prefix: str) -> None:
    data = b"report"

    stored = store.put(
        io.BytesIO(data), prefix=prefix, expected_sha256=hashlib.sha256(data).hexdigest().upper()
    )

    assert stored.sha256 == hashlib.sha256(data).hexdigest()


def test_a_wrong_expected_sha256_keeps_nothing(
    store: ObjectStore, prefix: str, keys_under: Callable[[str], list[str]]
) -> None:
    with pytest.raises(IntegrityMismatch):
        store.put(io.BytesIO(b"tampered"), prefix=prefix, expected_sha256="0" * 64)

    assert keys_under(prefix) == []


def test_a_stream_shorter_than_declared_keeps_nothing(
    store: ObjectStore, prefix: str, keys_under: Callable[[str], list[str]]
) -> None:
    with pytest.raises(IntegrityMismatch):
        store.put(io.BytesIO(b"short"), prefix=prefix, size=6)

    assert keys_under(prefix) == []


def test_a_stream_longer_than_declared_keeps_nothing(
    store: ObjectStore, prefix: str, keys_under: Callable[[str], list[str]]
) -> None:
    with pytest.raises(IntegrityMismatch):
        store.put(io.BytesIO(b"too long"), prefix=prefix, size=3)

    assert keys_under(prefix) == []


def test_open_with_a_wrong_sha256_raises_after_the_last_chunk(
    store: ObjectStore, prefix: str
) -> None:
    stored = store.put(io.BytesIO(b"image"), prefix=prefix)
    chunks = store.open(stored.key, expected_sha256="f" * 64)

    assert next(chunks) == b"image"
    with pytest.raises(IntegrityMismatch):
        next(chunks)


def test_open_of_a_missing_object_raises_at_once(store: ObjectStore, prefix: str) -> None:
    with pytest.raises(ObjectNotFound):
        store.open(f"{prefix}/2025/01/{'a' * 32}")


def test_deleted_objects_are_gone(store: ObjectStore, prefix: str) -> None:
    stored = store.put(io.BytesIO(b"x"), prefix=prefix)

    store.delete(stored.key)

    with pytest.raises(ObjectNotFound):
        store.stat(stored.key)
    with pytest.raises(ObjectNotFound):
        store.open(stored.key)


def test_deleting_a_missing_object_is_not_an_error(store: ObjectStore, prefix: str) -> None:
    store.delete(f"{prefix}/2025/01/{'b' * 32}")


def test_a_presigned_url_downloads_the_object(store: ObjectStore, prefix: str) -> None:
    stored = store.put(io.BytesIO(b"opinion"), prefix=prefix, content_type="application/pdf")

    fetched = fetch(store.presigned_url(stored.key))

    assert (fetched.status, fetched.body) == (200, b"opinion")
    assert fetched.headers["Content-Type"] == "application/pdf"


def test_a_presigned_url_can_name_the_download(store: ObjectStore, prefix: str) -> None:
    stored = store.put(io.BytesIO(b"dicom"), prefix=prefix)

    fetched = fetch(store.presigned_url(stored.key, filename="头部CT.dcm"))

    disposition = fetched.headers["Content-Disposition"]
    assert disposition.startswith("attachment")
    assert "%E5%A4%B4%E9%83%A8CT.dcm" in disposition


def test_an_expired_presigned_url_is_refused(
    store: ObjectStore, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = store.put(io.BytesIO(b"old"), prefix=prefix)
    with issued_seconds_ago(10, monkeypatch):
        url = store.presigned_url(stored.key, seconds=5)

    fetched = fetch(url)

    assert fetched.status == 403
    assert b"old" not in fetched.body


def test_a_presigned_url_for_a_deleted_object_answers_404(store: ObjectStore, prefix: str) -> None:
    stored = store.put(io.BytesIO(b"gone"), prefix=prefix)
    url = store.presigned_url(stored.key)
    store.delete(stored.key)

    assert fetch(url).status == 404


def test_check_passes_on_a_working_store(store: ObjectStore) -> None:
    store.check()
