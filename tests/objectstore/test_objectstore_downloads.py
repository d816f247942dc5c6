"""The local backend's download links, served by Django at /objects/<token>/."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from django.core import signing
from django.test import Client

from objectstore import ObjectStore, get_store
from objectstore.tokens import sign_download
from tests.objectstore.support import fetch, issued_seconds_ago


@pytest.fixture
def local_store(settings: Any, tmp_path: Path) -> ObjectStore:
    settings.OBJECT_STORE = {"BACKEND": "local", "ROOT": tmp_path, "PRESIGN_SECONDS": 300}
    return get_store()


def test_a_link_is_a_site_relative_url(local_store: ObjectStore) -> None:
    stored = local_store.put(io.BytesIO(b"x"), prefix="reports")

    url = local_store.presigned_url(stored.key)

    assert url.startswith("/objects/")
    assert url.endswith("/")


def test_a_tampered_link_is_refused_with_a_clear_message(local_store: ObjectStore) -> None:
    stored = local_store.put(io.BytesIO(b"secret"), prefix="reports")
    url = local_store.presigned_url(stored.key)
    tampered = url[:-3] + ("A" if url[-3] != "A" else "B") + url[-2:]

    response = Client(headers={"accept-language": "en"}).get(tampered)

    assert response.status_code == 403
    assert response.getvalue() == b"This download link is not valid."


def test_an_expired_link_says_so(local_store: ObjectStore, monkeypatch: pytest.MonkeyPatch) -> None:
    stored = local_store.put(io.BytesIO(b"secret"), prefix="reports")
    with issued_seconds_ago(61, monkeypatch):
        url = local_store.presigned_url(stored.key, seconds=60)

    response = Client(headers={"accept-language": "en"}).get(url)

    assert response.status_code == 403
    assert b"expired" in response.content


def test_each_link_keeps_its_own_lifetime(
    local_store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = local_store.put(io.BytesIO(b"fresh"), prefix="reports")
    with issued_seconds_ago(61, monkeypatch):
        url = local_store.presigned_url(stored.key, seconds=3600)

    assert fetch(url).body == b"fresh"


def test_a_link_for_a_key_signed_elsewhere_is_refused(local_store: ObjectStore) -> None:
    forged = signing.TimestampSigner(salt="another-salt").sign_object(
        {"k": "reports/2025/01/" + "a" * 32, "f": None, "s": 300}
    )

    assert fetch(f"/objects/{forged}/").status == 403


def test_a_signed_token_with_a_foreign_key_is_refused(local_store: ObjectStore) -> None:
    token = sign_download("../../etc/passwd", seconds=300, filename=None)

    assert fetch(f"/objects/{token}/").status == 403


def test_html_is_served_as_an_attachment_never_inline(local_store: ObjectStore) -> None:
    stored = local_store.put(
        io.BytesIO(b"<script>alert(1)</script>"), prefix="chat", content_type="text/html"
    )

    fetched = fetch(local_store.presigned_url(stored.key))

    assert fetched.headers["Content-Disposition"].startswith("attachment")


def test_a_pdf_is_shown_inline_and_never_cached(local_store: ObjectStore) -> None:
    stored = local_store.put(
        io.BytesIO(b"%PDF-1.4"), prefix="reports", content_type="application/pdf"
    )

    fetched = fetch(local_store.presigned_url(stored.key))

    assert fetched.headers["Content-Disposition"].startswith("inline")
    assert fetched.headers["Cache-Control"] == "private, no-store"


def test_links_only_answer_get_and_head(local_store: ObjectStore) -> None:
    stored = local_store.put(io.BytesIO(b"x"), prefix="reports")
    url = local_store.presigned_url(stored.key)

    assert Client().head(url).status_code == 200
    assert Client().post(url).status_code == 405
