"""The pre-call check in Chromium (fake camera and microphone) against the demo's media service.

Every line ends in a clear result: camera, microphone, TURN, connection to the media
service and upload bandwidth. The demo has no TURN relay, which the page says plainly; with
the ICE servers pointed at a real coturn (Debian's ``turnserver``) the relay check passes
with fresh TURN REST credentials and fails with stale ones.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

from tests.browser.conftest import login
from tests.consult.test_turn_coturn import SECRET, coturn  # noqa: F401  (the fixture)

TIMEOUT_MS = 40_000


def _in_english(page: Any) -> None:
    """Switch the interface to English (the account's own language wins over the browser's)."""
    with page.expect_navigation():
        page.click("form.lang-switch button[value=en]")


def _run_check(page: Any) -> dict[str, Any]:
    page.goto("/consults/precall/")
    page.wait_for_function("() => window.precall && window.precall.done", timeout=TIMEOUT_MS)
    results: dict[str, Any] = page.evaluate("() => window.precall.done")
    return results


def _line(page: Any, check: str) -> tuple[str, str]:
    row = page.locator(f"[data-check={check}]")
    return row.get_attribute("data-result") or "", row.locator(".check-message").inner_text()


def test_the_precall_check_passes_on_a_working_computer_and_says_there_is_no_turn(
    new_page: Any,
) -> None:
    page = new_page(locale="en-US")
    login(page, "township")
    _in_english(page)
    results = _run_check(page)
    assert results["camera"]["result"] == "pass", results
    assert "640×360" in results["camera"]["message"]
    assert results["microphone"]["result"] == "pass", results
    assert results["media"]["result"] == "pass", results
    assert results["bandwidth"]["result"] == "pass", results
    assert results["kbps"] >= 150
    assert _line(page, "turn") == (
        "info",
        "No TURN relay is configured on this platform: calls work only where this computer "
        "can reach the media service directly.",
    )
    assert page.locator("#precall-summary").inner_text() == (
        "Everything works. You can join the consult."
    )


def test_the_precall_check_speaks_chinese_by_default(new_page: Any) -> None:
    page = new_page(locale="zh-CN")
    login(page, "township")
    results = _run_check(page)
    assert page.locator("html").get_attribute("lang") == "zh-hans"
    assert "TURN" in results["turn"]["message"]
    assert not results["turn"]["message"].startswith("No TURN relay")  # in Chinese
    assert page.locator("[data-check=media]").get_attribute("data-result") == "pass"


def _turn_entry(port: int, *, expires_at: int) -> dict[str, Any]:
    username = f"{expires_at}:precall-test"
    digest = hmac.new(SECRET.encode(), username.encode(), hashlib.sha1).digest()
    return {
        "urls": [f"turn:127.0.0.1:{port}?transport=udp"],
        "username": username,
        "credential": base64.b64encode(digest).decode(),
    }


def _with_ice(page: Any, servers: list[dict[str, Any]]) -> None:
    """Answer the page's ICE request with ``servers`` (a coturn of the test's own)."""
    body = json.dumps({"ice_servers": servers, "turn_configured": True, "video_max_kbps": 400})
    page.route(
        "**/consults/precall/ice/",
        lambda route: route.fulfill(status=200, content_type="application/json", body=body),
    )


def test_the_turn_line_passes_through_a_real_coturn(new_page: Any, coturn: int) -> None:  # noqa: F811
    page = new_page(locale="en-US")
    login(page, "township")
    _in_english(page)
    _with_ice(page, [_turn_entry(coturn, expires_at=int(time.time()) + 600)])
    results = _run_check(page)
    assert results["turn"] == {"result": "pass", "message": "The TURN relay answers (UDP)."}


def test_the_turn_line_fails_with_a_stale_credential(new_page: Any, coturn: int) -> None:  # noqa: F811
    page = new_page(locale="en-US")
    login(page, "township")
    _in_english(page)
    _with_ice(page, [_turn_entry(coturn, expires_at=int(time.time()) - 600)])
    results = _run_check(page)
    assert results["turn"]["result"] == "fail"
    assert "could not be reached" in results["turn"]["message"]
    assert (
        page.locator("#precall-summary").inner_text() == "Some checks failed: see the lines above."
    )
