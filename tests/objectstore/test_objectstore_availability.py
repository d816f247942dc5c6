"""check() and the configured store: what /health/ready relies on."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from objectstore import ObjectStore, StoreUnavailable, build_store, get_store
from objectstore.local import LocalStore
from objectstore.s3 import S3Store
from tests.s3 import S3Server, free_ports, unique_bucket


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def broken_store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    """A store whose backing service is missing: a file as root, or a port nobody serves."""
    if request.param == "local":
        root = tmp_path / "not-a-folder"
        root.write_bytes(b"")
        return build_store({"BACKEND": "local", "ROOT": root})
    server: S3Server = request.getfixturevalue("s3_server")
    config = server.object_store_settings(bucket=unique_bucket())
    config["ENDPOINT"] = f"127.0.0.1:{free_ports(1)[0]}"
    return build_store(config)


def test_check_raises_store_unavailable_when_the_store_is_down(broken_store: ObjectStore) -> None:
    started = time.monotonic()

    with pytest.raises(StoreUnavailable):
        broken_store.check()

    assert time.monotonic() - started < 5


def test_put_raises_store_unavailable_when_the_store_is_down(broken_store: ObjectStore) -> None:
    with pytest.raises(StoreUnavailable):
        broken_store.put(io.BytesIO(b"x"), prefix="imaging")


@pytest.mark.s3
def test_check_refuses_wrong_credentials(s3_server: S3Server) -> None:
    config = s3_server.object_store_settings(bucket=unique_bucket())
    config["SECRET_KEY"] = "wrong-secret"

    with pytest.raises(StoreUnavailable):
        build_store(config).check()


@pytest.mark.s3
def test_check_creates_a_missing_bucket(s3_server: S3Server) -> None:
    bucket = unique_bucket()

    build_store(s3_server.object_store_settings(bucket=bucket)).check()

    assert s3_server.client().bucket_exists(bucket)


def test_get_store_builds_the_configured_backend(settings: Any, tmp_path: Path) -> None:
    settings.OBJECT_STORE = {"BACKEND": "local", "ROOT": tmp_path, "PRESIGN_SECONDS": 60}

    store = get_store()

    assert isinstance(store, LocalStore)
    assert store.root == tmp_path
    assert store.presign_seconds == 60
    assert get_store() is store


@pytest.mark.s3
def test_get_store_follows_a_settings_change(settings: Any, s3_server: S3Server) -> None:
    settings.OBJECT_STORE = {"BACKEND": "local", "ROOT": "/nonexistent"}
    get_store()

    settings.OBJECT_STORE = s3_server.object_store_settings(bucket=unique_bucket())

    assert isinstance(get_store(), S3Store)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"BACKEND": "ftp"}, "expected 'local' or 's3'"),
        ({"BACKEND": "local"}, "ROOT"),
        ({"BACKEND": "s3", "ENDPOINT": "127.0.0.1:9000"}, "BUCKET"),
    ],
)
def test_build_store_refuses_an_incomplete_configuration(
    config: dict[str, Any], message: str
) -> None:
    with pytest.raises(ImproperlyConfigured, match=message):
        build_store(config)
