"""WebSocket edge security: the Origin rule, a socket's standing, audit events from a scope.

Every socket passes :class:`AllowedHostsOriginValidator` (in ``config/asgi.py``) before
authentication; consumers then use :func:`socket_user_standing` to re-check, per message,
that the session and account that opened the socket are still good.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from importlib import import_module
from typing import Any, ParamSpec, TypeVar, cast
from urllib.parse import ParseResult, urlparse

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.models import Session
from django.db.models import Subquery
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from accounts.models import User
from audit.context import reset_context, set_context
from audit.models import Outcome
from audit.services import audit_record

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

P = ParamSpec("P")
R = TypeVar("R")


def db_async(func: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """channels' ``database_sync_to_async``, keeping the signature (channels ships no hints)."""
    return cast(Callable[P, Awaitable[R]], database_sync_to_async(func))


# Same defaults as channels' AllowedHostsOriginValidator when DEBUG and ALLOWED_HOSTS is empty.
_DEBUG_HOSTS = ["localhost", "127.0.0.1", "[::1]"]


def scope_header(scope: Scope, name: bytes) -> str | None:
    """The first value of a request header of the handshake, or None."""
    for header_name, value in scope.get("headers", []):
        if header_name == name:
            return bytes(value).decode("latin1")
    return None


def scope_client_ip(scope: Scope) -> str | None:
    """The peer address Daphne reports (already the forwarded client behind the proxy)."""
    client = scope.get("client")
    if not client:
        return None
    try:
        return str(ipaddress.ip_address(str(client[0])))
    except ValueError:  # a unix socket path or a test scope: no address to record
        return None


def socket_audit(
    scope: Scope,
    *,
    actor: User | AnonymousUser | None,
    action: str,
    outcome: Outcome,
    reason: str = "",
    detail: dict[str, Any] | None = None,
) -> None:
    """Write one audit event with the request context bound from the socket's scope."""
    token = set_context(
        ip=scope_client_ip(scope),
        user_agent=scope_header(scope, b"user-agent") or "",
        channel="ws",
    )
    try:
        audit_record(
            actor=actor,
            action=action,
            outcome=outcome,
            resource_type="socket",
            resource_id=str(scope.get("path", "")),
            reason=reason,
            detail=detail,
        )
    finally:
        reset_context(token)


async def audit_socket_event(
    scope: Scope,
    *,
    actor: User | AnonymousUser | None,
    action: str,
    outcome: Outcome,
    reason: str = "",
    detail: dict[str, Any] | None = None,
) -> None:
    """:func:`socket_audit` from async code."""
    await db_async(socket_audit)(
        scope, actor=actor, action=action, outcome=outcome, reason=reason, detail=detail
    )


class SocketStanding(enum.Enum):
    OK = "ok"
    SESSION_ENDED = "session ended"
    ACCOUNT_INACTIVE = "account inactive"


def socket_user_standing(*, session_key: str | None, user_id: int) -> SocketStanding:
    """Whether the session that opened a socket is still live, for the same active user.

    Mirrors ``django.contrib.auth.get_user`` (session user id, session auth hash,
    including ``SECRET_KEY_FALLBACKS``) but never cycles or saves the session: the
    browser owns it, a socket only looks.
    """
    users = User.objects.filter(pk=user_id)
    database_sessions = settings.SESSION_ENGINE == _DB_SESSIONS and bool(session_key)
    if database_sessions:
        # The user and the session's data in one query: this runs for every socket message.
        live = Session.objects.filter(session_key=session_key, expire_date__gt=timezone.now())
        users = users.annotate(session_data=Subquery(live.values("session_data")[:1]))
    user = users.first()
    if user is None:
        return SocketStanding.SESSION_ENDED
    if not user.is_active:
        return SocketStanding.ACCOUNT_INACTIVE
    if not session_key:
        return SocketStanding.SESSION_ENDED
    engine = import_module(settings.SESSION_ENGINE)
    if database_sessions:
        data = getattr(user, "session_data", None)
        store = engine.SessionStore()
        session: Mapping[str, Any] = store.decode(data) if data else {}
    else:
        session = engine.SessionStore(session_key)
    if str(session.get(SESSION_KEY)) != str(user.pk):  # logged out, expired or someone else's
        return SocketStanding.SESSION_ENDED
    session_hash = str(session.get(HASH_SESSION_KEY, ""))
    hashes = [user.get_session_auth_hash(), *user.get_session_auth_fallback_hash()]
    if not session_hash or not any(constant_time_compare(session_hash, h) for h in hashes):
        return SocketStanding.SESSION_ENDED  # the password changed since login
    return SocketStanding.OK


_DB_SESSIONS = "django.contrib.sessions.backends.db"


class OriginDenier(AsyncWebsocketConsumer):
    """Refuses the handshake (HTTP 403, as channels does) and audits the origin."""

    async def connect(self) -> None:
        origin = scope_header(self.scope, b"origin")
        await audit_socket_event(
            self.scope,
            actor=None,
            action="socket.origin",
            outcome=Outcome.DENIED,
            reason=f"origin {origin!r} not allowed" if origin else "no Origin header",
            detail={"origin": (origin or "")[:200]},
        )
        await self.close()


class AllowedHostsOriginValidator(OriginValidator):
    """channels' ``AllowedHostsOriginValidator``, plus an audit event for a refused origin.

    ``settings.ALLOWED_HOSTS`` is read per connection rather than once at start-up, so
    ``override_settings`` works in tests; the rule itself is channels' own
    (``OriginValidator.valid_origin``): scheme-less patterns match any scheme and port,
    a leading dot matches subdomains, ``*`` matches anything, and a missing Origin is
    refused unless ``*`` is allowed.
    """

    def __init__(self, application: Callable[..., Awaitable[None]]) -> None:
        self.application = application

    @property
    def allowed_origins(self) -> list[str]:
        hosts = list(settings.ALLOWED_HOSTS)
        if settings.DEBUG and not hosts:
            hosts = list(_DEBUG_HOSTS)
        return hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            raise ValueError("You cannot use OriginValidator on a non-WebSocket connection")
        if self._is_allowed(scope_header(scope, b"origin")):
            return await self.application(scope, receive, send)
        return await OriginDenier.as_asgi()(scope, receive, send)

    def _is_allowed(self, origin: str | None) -> bool:
        parsed: ParseResult | None = None
        try:
            if origin is not None:
                parsed = urlparse(origin)
            return bool(self.valid_origin(parsed))
        except ValueError:  # e.g. a port out of range: not an origin we serve
            return False
