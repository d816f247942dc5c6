"""Shared fixtures: the named actors of the domain, defined once.

The test database is seeded with the demo county medical community (see
``demo/services.py``); the actors are its accounts:

* ``village``     – grassroots doctor, Dongshan village clinic (under Xiba township)
* ``village2``    – grassroots doctor, Nanwan village clinic (another clinic)
* ``township``    – grassroots doctor, Xiba township health centre
* ``specialist``  – cardiologist, Qingshan county hospital
* ``radiologist`` – county imaging centre (centre-scoped)
* ``labtech``     – county lab centre (centre-scoped)
* ``coordinator`` – remote-medicine centre at the county hospital
* ``admin``       – association admin (statistics, not records)
* ``auditor``     – auditor (audit trail, not records)
* ``outsider``    – doctor of a neighbouring association (Hexi)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings

from demo.services import DEFAULT_PASSWORD, demo_seed
from lab.demo import demo_seed_lab

PASSWORD = DEFAULT_PASSWORD


def pytest_configure(config: pytest.Config) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    _let_flush_empty_the_audit_table()


def _let_flush_empty_the_audit_table() -> None:
    """Transactional tests end with ``flush``; the append-only triggers would refuse it.

    Only the test suite lifts them, for the flush alone, and puts them back at once.
    """
    from django.core.management.commands import flush

    from audit import dbtriggers

    original = flush.Command.handle

    def handle(self: Any, **options: Any) -> Any:
        from django.db import connections

        conn = connections[options.get("database", "default")]
        dbtriggers.remove(conn)
        try:
            return original(self, **options)
        finally:
            dbtriggers.install(conn)

    flush.Command.handle = handle  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None, django_db_blocker: Any) -> None:
    with django_db_blocker.unblock():
        demo_seed()
        demo_seed_lab()


@pytest.fixture(scope="session", autouse=True)
def _session_object_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Every test's object store: SeaweedFS S3 when TELEMED_TEST_S3=1 (CI), else a temp folder.

    Tests never write into the checkout's data folder.
    """
    from objectstore import get_store

    if os.environ.get("TELEMED_TEST_S3") == "1":
        from tests.s3 import shared_s3_server

        server = shared_s3_server(request.config, tmp_path_factory)
        settings.OBJECT_STORE = server.object_store_settings(bucket="telemed-tests")
    else:
        settings.OBJECT_STORE = {
            "BACKEND": "local",
            "ROOT": tmp_path_factory.mktemp("objects"),
            "PRESIGN_SECONDS": 300,
        }
    get_store.cache_clear()


@pytest.fixture(scope="session", autouse=True)
def _channel_layer_of_this_worker(worker_id: str) -> None:
    """Under pytest-xdist each worker has its own test database, so the same row ids and
    group names: on a shared Redis, give each worker's channel layer its own prefix."""
    config = settings.CHANNEL_LAYERS["default"].get("CONFIG")
    if config is None or worker_id == "master":
        return
    config["prefix"] = f"{config.get('prefix', 'telemed')}-{worker_id}"
    from channels.layers import channel_layers

    channel_layers.backends.clear()


@pytest.fixture(autouse=True)
def _fresh_channel_layer() -> Iterator[None]:
    """Each test gets channel-layer instances of its own: a Redis layer keeps locks and
    connections bound to the event loop of the test that used it, and a receive a test
    left pending would break the next test's sockets on that layer."""
    yield
    from channels.layers import channel_layers

    channel_layers.backends.clear()


@pytest.fixture(autouse=True)
def _reseed_after_flush(request: pytest.FixtureRequest) -> None:
    """A transactional test starts after another one's flush emptied the tables: reseed."""
    marker = request.node.get_closest_marker("django_db")
    if {"transactional_db", "live_server"} & set(request.fixturenames) or (
        marker is not None and marker.kwargs.get("transaction")
    ):
        request.getfixturevalue("transactional_db")
        demo_seed()
        demo_seed_lab()


class Actors:
    """Look up the named actors lazily, by attribute: ``actors.village``."""

    def __getattr__(self, username: str) -> Any:
        from django.contrib.auth import get_user_model

        return get_user_model().objects.get(username=username)


@pytest.fixture
def actors(db: None) -> Actors:
    return Actors()


@pytest.fixture
def residents(db: None) -> Any:
    """The demo residents by name: ``residents["张三"]``."""
    from records.models import Patient

    return {p.name: p for p in Patient.objects.all()}
