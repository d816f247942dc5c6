"""The media service, in this process on a free loopback port, for the media tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from aiohttp import web

from consult.media import loopback
from consult.media.config import MediaConfig
from consult.media.server import SFU_KEY, create_app
from consult.media.sfu import SFU

SECRET = "media-test-secret"


@dataclass
class Service:
    base: str
    secret: str
    sfu: SFU


def service_config(tmp_path: Path, **changes: object) -> MediaConfig:
    config = MediaConfig(
        secret=SECRET,
        host_addresses=("127.0.0.1",),
        faults=True,
        max_room_peers=8,
        spool_dir=tmp_path / "spool",
    )
    return replace(config, **changes)  # type: ignore[arg-type]


async def start_service(config: MediaConfig) -> tuple[Service, web.AppRunner]:
    loopback.install_host_addresses(config.host_addresses)
    runner = web.AppRunner(create_app(config))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return Service(f"http://{host}:{port}", config.secret, runner.app[SFU_KEY]), runner


@pytest.fixture
async def media(tmp_path: Path) -> AsyncIterator[Service]:
    service, runner = await start_service(service_config(tmp_path))
    try:
        yield service
    finally:
        await runner.cleanup()
        loopback.uninstall()
