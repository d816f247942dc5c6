"""The media service's settings, read once from Django settings, and its ICE configuration."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from aiortc import RTCConfiguration, RTCIceServer
from django.conf import settings

from consult.ice import turn_credentials

SERVICE_TURN_USER = 0  # TURN REST username "<expiry>:0" for the media service itself


@dataclass(frozen=True)
class MediaConfig:
    secret: str
    host_addresses: tuple[str, ...]
    faults: bool
    max_room_peers: int
    spool_dir: Path
    keyframe_interval: float = 0.5  # seconds between PLIs relayed to one publisher

    @classmethod
    def from_settings(cls) -> MediaConfig:
        media = settings.MEDIA_SERVICE
        return cls(
            secret=str(media["SECRET"]),
            host_addresses=tuple(media["HOST_ADDRESSES"]),
            faults=bool(media["FAULTS"]),
            max_room_peers=int(media["MAX_ROOM_PEERS"]),
            spool_dir=Path(settings.DATA_DIR) / "media-spool",
        )


def rtc_configuration() -> RTCConfiguration:
    """Explicit ICE servers: TURN from settings when configured, never a public STUN server.

    aiortc uses one TURN URL (the first UDP/TCP/TLS one it understands); credentials are
    issued fresh for every peer connection.
    """
    urls = [url for url in settings.TURN["URLS"] if url.startswith(("turn:", "turns:"))]
    if not urls:
        return RTCConfiguration(iceServers=[])
    username, password, _expires = turn_credentials(user_id=SERVICE_TURN_USER, now=time.time())
    return RTCConfiguration(
        iceServers=[RTCIceServer(urls=urls, username=username, credential=password)]
    )
