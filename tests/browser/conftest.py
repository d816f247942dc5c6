"""Browser tests: Debian's Chromium driven by Playwright against a real ``telemed demo``.

The server is the one a newcomer runs (Daphne, embedded defaults, the seeded demo
association) in a temporary data folder, started once per session.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REPO = Path(__file__).resolve().parents[2]
DEMO_PASSWORD = "telemed-demo"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser" in str(item.path):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not Path(CHROMIUM).exists():
        message = (
            "Debian's chromium is not installed (apt-get install chromium); .ci/run installs it"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class MediaService:
    """Where the demo's media service listens, and its control API's secret (contract C)."""

    port: int
    secret: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def call(self, method: str, path: str) -> tuple[int, Any]:
        """One control-API request, e.g. ``call("POST", "/rooms/consult-7/peers/u3/cut")``."""
        request = urllib.request.Request(  # noqa: S310  (loopback, a URL we built)
            self.url + path, method=method, headers={"Authorization": f"Bearer {self.secret}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                body = response.read()
                return response.status, json.loads(body) if body else None
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")


@pytest.fixture(scope="session")
def demo_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("demo-data")


@pytest.fixture(scope="session")
def media_service() -> MediaService:
    """The demo's media service: a free loopback port, a known secret, faults on (cut)."""
    return MediaService(port=_free_port(), secret=secrets.token_hex(24))


def _demo_env(data_dir: Path, media: MediaService) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(
        TELEMED_DATA_DIR=str(data_dir),
        TELEMED_DEBUG="1",
        TELEMED_MEDIA_URL=media.url,
        TELEMED_MEDIA_SECRET=media.secret,
        # The consult tests cut a participant's link through the media service.
        TELEMED_MEDIA_FAULTS="1",
        TELEMED_MEDIA_HOST_ADDRESSES="127.0.0.1",
    )
    return env


def _telemed() -> str:
    return shutil.which("telemed", path=str(Path(sys.executable).parent)) or "telemed"


@pytest.fixture(scope="session")
def demo_shell(demo_data_dir: Path, media_service: MediaService, demo_server: str) -> Any:
    """Run Python in the demo's database (``telemed manage shell -c``); returns its stdout.

    For test set-up the pages do not cover (a second specialist, an MDT consult); the
    server keeps running meanwhile (SQLite, short transactions).
    """

    def run(code: str) -> str:
        result = subprocess.run(
            [_telemed(), "manage", "shell", "-c", code],
            env=_demo_env(demo_data_dir, media_service),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            pytest.fail(f"demo shell failed:\n{result.stderr[-3000:]}")
        return result.stdout

    return run


@pytest.fixture(scope="session")
def demo_server(demo_data_dir: Path, media_service: MediaService) -> Iterator[str]:
    """``telemed demo`` on a free port; yields its base URL."""
    data_dir = demo_data_dir
    port = _free_port()
    telemed = _telemed()
    env = _demo_env(data_dir, media_service)
    log = (data_dir / "server.log").open("wb")
    process = subprocess.Popen(
        [
            telemed,
            "demo",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--media-port",
            str(media_service.port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=REPO,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{base}/health/ready", timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(
                "telemed demo did not start:\n" + (data_dir / "server.log").read_text()[-3000:]
            )
        time.sleep(0.3)
    while True:  # the media service starts alongside and takes a moment to import aiortc
        try:
            if media_service.call("GET", "/health")[0] == 200:
                break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(
                "the demo's media service did not start:\n"
                + (data_dir / "server.log").read_text()[-3000:]
            )
        time.sleep(0.3)
    yield base
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Any]:
    """Chromium per test module: Playwright's sync API keeps an event loop marked running
    in the main thread while it lives, which breaks asyncio tests that run after it."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def new_page(browser: Any, demo_server: str) -> Iterator[Any]:
    """Open pages in fresh contexts (one per person): ``new_page(locale="zh-CN")``."""
    contexts = []

    def make(locale: str = "zh-CN") -> Any:
        context = browser.new_context(base_url=demo_server, locale=locale)
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


def login(page: Any, username: str, password: str = DEMO_PASSWORD) -> None:
    page.goto("/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    with page.expect_navigation():
        page.click("form[data-form=login] button[type=submit]")
    assert "/accounts/login" not in page.url, f"{username} could not log in"
