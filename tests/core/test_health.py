"""/health/ready answers 200 only when the database, channel layer and object store answer."""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings

from objectstore import get_store


def test_ready_when_every_part_answers(client, db):
    response = client.get("/health/ready")
    assert response.status_code == 200, response.json()
    checks = response.json()["checks"]
    assert set(checks) == {"database", "channel_layer", "object_store"}
    assert all(c["ok"] for c in checks.values())


def test_not_ready_when_the_object_store_is_down(client, db, settings: Any):
    settings.OBJECT_STORE = {
        "BACKEND": "s3",
        "ENDPOINT": "127.0.0.1:9",
        "BUCKET": "x",
        "ACCESS_KEY": "k",
        "SECRET_KEY": "s",
        "SECURE": False,
        "REGION": "us-east-1",
        "PRESIGN_SECONDS": 60,
    }
    get_store.cache_clear()
    response = client.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["object_store"]["ok"] is False
    assert response.json()["checks"]["database"]["ok"] is True


def test_not_ready_when_the_channel_layer_is_down(client, db, settings: Any):
    from channels.layers import channel_layers

    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": ["redis://127.0.0.1:9/0"]},
        }
    }
    channel_layers.backends.clear()
    try:
        response = client.get("/health/ready")
    finally:
        channel_layers.backends.clear()
    assert response.status_code == 503
    assert response.json()["checks"]["channel_layer"]["ok"] is False


def test_live_needs_nothing(client):
    assert client.get("/health/live").status_code == 200


def test_health_is_reachable_without_login_and_without_https_redirect():
    assert r"^health/" in django_settings.SECURE_REDIRECT_EXEMPT


def test_a_stale_form_gets_a_403_that_says_what_to_do(db, actors):
    from django.test import Client

    client = Client(enforce_csrf_checks=True, HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(actors.village)
    response = client.post("/patients/register/", {"name": "x"})
    assert response.status_code == 403
    assert b"reload the page" in response.content
