"""The per-user notification socket at ``/ws/notifications/`` (protocol: docs/protocols.md).

Thin: message handling here, database work in the small helpers below, which call
``realtime.selectors`` and ``realtime.services``.
"""

from __future__ import annotations

import enum
import json
from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.http import HttpRequest
from django.utils import translation
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from pydantic import ValidationError

from accounts.models import User
from audit.models import Outcome
from realtime.schemas import (
    AckMessage,
    PingMessage,
    ResumeMessage,
    parse_notification_message,
)
from realtime.security import (
    Scope,
    SocketStanding,
    audit_socket_event,
    db_async,
    scope_header,
    socket_user_standing,
)
from realtime.selectors import notification_list_for_user, unread_count
from realtime.services import notification_mark_read, user_group

MAX_MESSAGE_BYTES = 4096
MAX_INVALID_MESSAGES = 20
BACKLOG_LIMIT = 100

TOO_LARGE = _("The message is larger than %(limit)d bytes and was ignored.")
NOT_TEXT = _("Only text messages are accepted; the binary message was ignored.")
NOT_UNDERSTOOD = _("The message was not understood and was ignored.")


class CloseCode(enum.IntEnum):
    BAD_CLIENT = 4400
    NOT_LOGGED_IN = 4401
    FORBIDDEN = 4403


# --- database helpers -----------------------------------------------------------------


@db_async
def _hello(user: User) -> tuple[int, list[dict[str, Any]]]:
    """The unread count and the newest unread notifications, oldest first."""
    backlog = notification_list_for_user(user=user, unread_only=True, limit=BACKLOG_LIMIT)
    return unread_count(user=user), [n.as_message() for n in reversed(backlog)]


@db_async
def _since(user: User, after: int) -> tuple[list[dict[str, Any]], bool]:
    """Notifications with an id above ``after``, oldest first, and whether more were left."""
    found = notification_list_for_user(user=user, after_id=after, limit=BACKLOG_LIMIT + 1)
    return [n.as_message() for n in found[:BACKLOG_LIMIT]], len(found) > BACKLOG_LIMIT


@db_async
def _mark_read(user: User, ids: list[int]) -> int:
    """Mark read; returns the unread count after."""
    notification_mark_read(user=user, notification_ids=ids)
    return unread_count(user=user)


_standing = db_async(socket_user_standing)


def socket_language(scope: Scope) -> str:
    """The language of the page that opened the socket: cookie, then Accept-Language."""
    request = HttpRequest()
    request.COOKIES = dict(scope.get("cookies") or {})
    request.META["HTTP_ACCEPT_LANGUAGE"] = scope_header(scope, b"accept-language") or ""
    return translation.get_language_from_request(request)


def _validation_detail(exc: ValidationError) -> list[dict[str, str]]:
    """What was wrong, without echoing the client's values into the audit trail."""
    return [
        {"type": e["type"], "loc": ".".join(str(p) for p in e["loc"])[:100]}
        for e in exc.errors(include_url=False, include_input=False)[:5]
    ]


# --- the consumer ---------------------------------------------------------------------


class NotificationConsumer(AsyncJsonWebsocketConsumer):
    """One user's notifications: backlog on connect, pushes after commit, acks."""

    user: User
    group: str | None = None
    closing: bool = False
    invalid_messages: int = 0
    language: str = ""

    async def connect(self) -> None:
        self.language = socket_language(self.scope)
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_active:
            cookies = self.scope.get("cookies") or {}
            # An expired or logged-out session reaches here as AnonymousUser too.
            await audit_socket_event(
                self.scope,
                actor=None,
                action="socket.connect",
                outcome=Outcome.DENIED,
                reason="not logged in",
                detail={"session_cookie": settings.SESSION_COOKIE_NAME in cookies},
            )
            # Accept first so the browser sees the close code (a refused handshake is 1006).
            await self.accept()
            await self._close(CloseCode.NOT_LOGGED_IN)
            return
        self.user = user
        self.group = user_group(user.pk)
        # Join before reading the backlog: a notification committed in between is then
        # pushed (perhaps twice; clients dedupe by id) rather than lost.
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        unread, backlog = await _hello(user)
        await self.send_json({"type": "hello", "unread": unread, "backlog": len(backlog)})
        for message in backlog:
            await self.send_json({"type": "notification", "notification": message})

    async def disconnect(self, code: int) -> None:
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)
            self.group = None

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        if self.closing or not await self._still_allowed():
            return
        if text_data is None:
            await self._refuse(
                "invalid_message", NOT_TEXT, {"binary_bytes": len(bytes_data or b"")}
            )
            return
        size = len(text_data.encode("utf-8"))
        if size > MAX_MESSAGE_BYTES:
            await self._refuse(
                "too_large", TOO_LARGE, {"bytes": size}, {"limit": MAX_MESSAGE_BYTES}
            )
            return
        try:
            message = parse_notification_message(text_data)
        except ValidationError as exc:
            await self._refuse(
                "invalid_message", NOT_UNDERSTOOD, {"errors": _validation_detail(exc)}
            )
            return
        match message:
            case AckMessage():
                await self.client_ack(message)
            case ResumeMessage():
                await self.client_resume(message)
            case PingMessage():
                await self.send_json({"type": "pong"})

    async def client_ack(self, message: AckMessage) -> None:
        ids = sorted(set(message.ids))
        unread = await _mark_read(self.user, ids)
        await self.send_json({"type": "acked", "ids": ids, "unread": unread})

    async def client_resume(self, message: ResumeMessage) -> None:
        found, more = await _since(self.user, message.after)
        for notification in found:
            await self.send_json({"type": "notification", "notification": notification})
        await self.send_json(
            {"type": "resumed", "after": message.after, "count": len(found), "more": more}
        )

    async def notification_push(self, event: dict[str, Any]) -> None:
        """Group event ``notification.push`` from ``realtime.services.notification_push``."""
        if self.closing or not await self._still_allowed():
            return
        await self.send_json({"type": "notification", "notification": event["notification"]})

    async def standing_changed(self, event: dict[str, Any]) -> None:
        """Group event ``standing.changed`` (logout, password change, deactivation)."""
        if not self.closing:
            await self._still_allowed()

    @classmethod
    async def encode_json(cls, content: Any) -> str:
        # UTF-8 rather than \u escapes: Chinese text is half the bytes on a slow link.
        return json.dumps(content, ensure_ascii=False, separators=(",", ":"))

    # --- helpers ----------------------------------------------------------------------

    async def _still_allowed(self) -> bool:
        """Re-check the session and account on every message; close the socket if gone."""
        session = self.scope.get("session")
        standing = await _standing(
            session_key=getattr(session, "session_key", None), user_id=self.user.pk
        )
        if standing is SocketStanding.OK:
            return True
        await audit_socket_event(
            self.scope,
            actor=self.user,
            action="socket.session",
            outcome=Outcome.DENIED,
            reason=standing.value,
        )
        await self._close(
            CloseCode.FORBIDDEN
            if standing is SocketStanding.ACCOUNT_INACTIVE
            else CloseCode.NOT_LOGGED_IN
        )
        return False

    async def _refuse(
        self,
        code: str,
        text: Promise,
        detail: dict[str, Any],
        params: dict[str, Any] | None = None,
    ) -> None:
        """Answer an invalid message with an error, audit it, close after too many."""
        self.invalid_messages += 1
        closing = self.invalid_messages >= MAX_INVALID_MESSAGES
        await audit_socket_event(
            self.scope,
            actor=self.user,
            action="socket.invalid",
            outcome=Outcome.FAILED,
            reason=code.replace("_", " "),
            detail={**detail, "count": self.invalid_messages, "closed": closing},
        )
        with translation.override(self.language):
            message = str(text) % params if params else str(text)
        await self.send_json({"type": "error", "code": code, "message": message})
        if closing:
            await self._close(CloseCode.BAD_CLIENT)

    async def _close(self, code: CloseCode) -> None:
        self.closing = True
        await self.close(code=int(code))
