"""Fixtures of the web-shell tests: a browser-like client logged in as a named actor."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from audit.models import AuditEvent


@pytest.fixture
def login_as(client: Client, actors: Any) -> Callable[..., Client]:
    """``login_as("village")`` logs the test client in (English pages unless told otherwise)."""

    def _login(username: str, *, language: str = "en") -> Client:
        client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
        client.force_login(getattr(actors, username))
        return client

    return _login


@pytest.fixture
def audit_events() -> Callable[..., list[AuditEvent]]:
    """``audit_events(action="patient.view")``: the matching events, newest first."""

    def _events(**filters: Any) -> list[AuditEvent]:
        return list(AuditEvent.objects.filter(**filters).order_by("-id"))

    return _events
