"""``telemed media``: run the media service (Django settings must be set up first)."""

from __future__ import annotations

import logging

from aiohttp import web

from consult.media import loopback
from consult.media.config import MediaConfig
from consult.media.server import create_app

logger = logging.getLogger(__name__)


def run(*, host: str, port: int) -> None:
    """Serve the control API on ``host:port`` until interrupted (SIGINT/SIGTERM)."""
    config = MediaConfig.from_settings()
    if config.host_addresses:
        loopback.install_host_addresses(config.host_addresses)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("aioice").setLevel(logging.WARNING)
    logging.getLogger("aiortc").setLevel(logging.WARNING)
    logger.info(
        "media service on %s:%d (ICE host addresses: %s, faults %s)",
        host,
        port,
        ", ".join(config.host_addresses) or "discovered",
        "on" if config.faults else "off",
    )
    web.run_app(create_app(config), host=host, port=port, print=None, access_log=None)
