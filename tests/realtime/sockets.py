"""Opening notification sockets through the full ASGI stack (Origin check, session auth)."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from config.asgi import application

HOST = b"127.0.0.1:8000"
ORIGIN = b"http://127.0.0.1:8000"
CLIENT_IP = "203.0.113.7"
USER_AGENT = b"pytest-browser/1.0"


def session_cookie(user: Any) -> str:
    """Log ``user`` in the way a browser would end up, and return the session key."""
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


async def login(user: Any) -> str:
    """:func:`session_cookie` from an async test."""
    return await database_sync_to_async(session_cookie)(user)


def notification_socket(
    session: str | None = None, *, origin: bytes | None = ORIGIN
) -> WebsocketCommunicator:
    headers = [(b"host", HOST), (b"user-agent", USER_AGENT)]
    if origin is not None:
        headers.append((b"origin", origin))
    if session is not None:
        headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={session}".encode()))
    socket = WebsocketCommunicator(application, "/ws/notifications/", headers=headers)
    # What Daphne puts in every scope; the application has not started reading it yet.
    socket.scope["client"] = [CLIENT_IP, 50000]
    return socket
