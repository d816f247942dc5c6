"""The Origin rule is channels' AllowedHostsOriginValidator, read from settings per socket."""

from __future__ import annotations

import pytest

from realtime.security import AllowedHostsOriginValidator


async def app(scope, receive, send):  # pragma: no cover - never reached in these tests
    raise AssertionError


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://telemed.example.org", True),
        ("http://telemed.example.org:8443", True),  # a scheme-less pattern matches any port
        ("https://ward.telemed.example.org", True),  # leading-dot pattern: subdomains
        ("https://evil.example", False),
        ("http://127.0.0.1:8000", False),
        ("null", False),
        (None, False),
    ],
)
def test_origins_are_matched_against_allowed_hosts(settings, origin, allowed):
    settings.ALLOWED_HOSTS = ["telemed.example.org", ".telemed.example.org"]
    assert AllowedHostsOriginValidator(app)._is_allowed(origin) is allowed


def test_debug_without_allowed_hosts_allows_localhost_like_channels(settings):
    settings.DEBUG, settings.ALLOWED_HOSTS = True, []
    validator = AllowedHostsOriginValidator(app)
    assert validator._is_allowed("http://localhost:8000")
    assert not validator._is_allowed("http://example.com")


def test_production_without_allowed_hosts_allows_nothing(settings):
    settings.DEBUG, settings.ALLOWED_HOSTS = False, []
    assert not AllowedHostsOriginValidator(app)._is_allowed("http://localhost:8000")
