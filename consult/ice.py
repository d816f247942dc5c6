"""ICE servers handed to browsers and to the media service: always an explicit list.

TURN credentials follow the TURN REST scheme coturn understands with ``use-auth-secret``:
the username is ``<expiry unix time>:<user id>`` and the password is
base64(HMAC-SHA1(shared secret, username)). They expire after ``TELEMED_TURN_TTL``
seconds; coturn refuses a stale one by itself. Never a public STUN server: with no TURN
configured the list is empty and peers use host candidates only (loopback, LAN).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

from django.conf import settings


def turn_credentials(*, user_id: int, now: float | None = None) -> tuple[str, str, int]:
    """Return ``(username, password, expires_at)`` for ``user_id``."""
    expires_at = int(now if now is not None else time.time()) + int(settings.TURN["TTL_SECONDS"])
    username = f"{expires_at}:{user_id}"
    secret = str(settings.TURN["SECRET"] or "").encode()
    digest = hmac.new(secret, username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode(), expires_at


def ice_servers_for(user_id: int, *, now: float | None = None) -> list[dict[str, Any]]:
    """The ``RTCConfiguration.iceServers`` list for a browser of ``user_id``."""
    urls = list(settings.TURN["URLS"])
    if not urls:
        return []
    username, password, _expires = turn_credentials(user_id=user_id, now=now)
    return [{"urls": urls, "username": username, "credential": password}]
