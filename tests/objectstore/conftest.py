"""Object-store fixtures: every behaviour test runs against both backends.

``store`` is the configured store (through ``settings.OBJECT_STORE`` and ``get_store()``)
for the local folder and for SeaweedFS's S3 gateway; ``prefix`` is a key prefix no other
test uses, so tests sharing a module's bucket never see each other's objects.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from objectstore import ObjectStore, get_store
from objectstore.local import LocalStore
from objectstore.s3 import S3Store
from tests.s3 import S3Server, shared_s3_server, unique_bucket


@pytest.fixture(scope="session")
def s3_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> S3Server:
    """SeaweedFS on loopback, one per session: endpoint ``127.0.0.1:<port>`` and keys."""
    return shared_s3_server(request.config, tmp_path_factory)


@pytest.fixture(scope="module")
def s3_bucket(s3_server: S3Server) -> str:
    """A bucket name for this test module (created by the store on first write)."""
    return unique_bucket("objectstore")


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def store(request: pytest.FixtureRequest, settings: Any, tmp_path: Path) -> ObjectStore:
    """The configured store, once per backend."""
    if request.param == "local":
        settings.OBJECT_STORE = {
            "BACKEND": "local",
            "ROOT": tmp_path / "objects",
            "PRESIGN_SECONDS": 300,
        }
    else:
        server: S3Server = request.getfixturevalue("s3_server")
        settings.OBJECT_STORE = server.object_store_settings(
            bucket=request.getfixturevalue("s3_bucket")
        )
    return get_store()


@pytest.fixture
def prefix() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def keys_under(request: pytest.FixtureRequest, store: ObjectStore) -> Callable[[str], list[str]]:
    """List the keys stored under a prefix, looking behind the store's back."""
    if isinstance(store, LocalStore):
        root = store.root

        def local_keys(prefix: str) -> list[str]:
            files = (root / prefix).rglob("*")
            return sorted(
                str(p.relative_to(root)) for p in files if p.is_file() and p.suffix != ".json"
            )

        return local_keys
    assert isinstance(store, S3Store)
    client = request.getfixturevalue("s3_server").client()

    def s3_keys(prefix: str) -> list[str]:
        found = client.list_objects(store.bucket, prefix=f"{prefix}/", recursive=True)
        return sorted(str(obj.object_name) for obj in found)

    return s3_keys
