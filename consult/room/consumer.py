"""The consult room socket at ``/ws/consults/<consult_id>/`` (docs/protocols.md, "Consult room").

Thin: client messages are validated by ``consult.room.schemas`` and routed to
``client_<type>`` methods; database work runs in ``consult.room.services`` through
``db_async``; group events (``room.*``) from the room's other connections arrive at the
``room_*`` methods. Every client message is checked against the connection's standing
(session, account, room role), never older than :data:`MESSAGE_RECHECK_SECONDS` (renewed in
the background before then, so a message rarely waits for the database) and re-read at once
when anything that can change it happens:
``room.recheck`` (the consult was cancelled, declined, re-routed, completed...) and
``standing.changed`` (logout, password change, deactivation, sent to the user's group).
Pushes re-read it at most every :data:`PUSH_RECHECK_SECONDS`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from typing import Any

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.utils import translation
from django.utils.functional import Promise

from accounts.models import User
from audit.models import Outcome
from consult.access import RoomRole
from consult.room import services
from consult.room.errors import (
    CLOSED,
    DROP_BURST,
    DROPS_PER_SECOND,
    ERRORS,
    LIMITS,
    MAX_ERRORS,
    CloseCode,
)
from consult.room.presence import Presence, Roster, peer_id
from consult.room.ratelimit import BURST, RATE_PER_SECOND, TokenBucket
from consult.room.schemas import (
    MAX_CHAT_CHARS,
    MAX_FRAME_BYTES,
    MAX_VIEWER_STATE_BYTES,
    AdmitMessage,
    ChatPostMessage,
    InvalidRoomMessage,
    MediaLeaveMessage,
    MediaPublishMessage,
    MediaStateMessage,
    MediaSubscribeMessage,
    PingMessage,
    ResumeMessage,
    RoomClientMessage,
    ViewerStateMessage,
    parse_room_message,
)
from consult.room.signaling import MediaFailure, MediaRelay
from realtime.consumers import socket_language
from realtime.security import SocketStanding, audit_socket_event, db_async, scope_header
from realtime.services import standing_group
from records.selectors import AccessDenied
from records.services import InvalidRecord

logger = logging.getLogger(__name__)

# Re-reading session and membership for every message halved the room's throughput
# (docs/benchmarks.md); changes are pushed, and this bounds what no push announces.
MESSAGE_RECHECK_SECONDS = 5.0
PUSH_RECHECK_SECONDS = 30.0
# A reading older than this share of its (per-connection) age is renewed in the background
# while messages go on; only a reading past the bound makes a message wait for the database.
# Waiting messages were the whole tail of the signaling latency (docs/benchmarks.md).
REFRESH_AHEAD = 0.5


def room_language(scope: Any, user: User) -> str:
    """The page's language (cookie, then Accept-Language), else the user's preference."""
    cookies = scope.get("cookies") or {}
    if settings.LANGUAGE_COOKIE_NAME in cookies or scope_header(scope, b"accept-language"):
        return socket_language(scope)
    preferred = getattr(user, "preferred_language", "")
    return preferred if preferred in dict(settings.LANGUAGES) else settings.LANGUAGE_CODE


_enter = db_async(services.room_enter)
_standing = db_async(services.room_standing)
_audit = db_async(services.room_audit)
_admitted = db_async(services.room_admitted)
_admit = db_async(services.room_admit)
_chat_post = db_async(services.chat_post)
_chat_since = db_async(services.chat_since)
_recording = db_async(services.room_recording)


class ConsultRoomConsumer(AsyncJsonWebsocketConsumer):
    """One connection to a consult room: presence, waiting room, chat, signaling, viewer."""

    user: User
    consult_id: int
    role: RoomRole
    roster: Roster
    media: MediaRelay
    presence: Presence
    group: str | None = None
    closing: bool = False
    language: str = ""
    publishing: bool = False
    errors: int = 0
    throttled: bool = False
    last_check: float = 0.0
    age_factor: float = 1.0
    refreshing: asyncio.Future[bool] | None = None

    async def dispatch(self, message: dict[str, Any]) -> None:
        """channels' dispatch without its ``aclose_old_connections`` per message.

        Channels 4.2+ hops to the database thread before every handler, group events
        included (four hops for one relayed ``viewer.state``). Here every database call
        already goes through ``db_async`` (channels' ``database_sync_to_async``), which
        closes old connections before and after itself, so the extra hop only costs.
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self) -> None:
        self.audited: set[str] = set()
        self.bucket = TokenBucket()
        self.drops = TokenBucket(rate=DROPS_PER_SECOND, burst=DROP_BURST)
        self.consult_id = int(self.scope["url_route"]["kwargs"]["consult_id"])
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_active:
            self.language = socket_language(self.scope)
            await audit_socket_event(
                self.scope,
                actor=None,
                action="socket.connect",
                outcome=Outcome.DENIED,
                reason="not logged in",
            )
            await self.accept()  # so that the browser sees the close code
            await self._close(CloseCode.NOT_LOGGED_IN)
            return
        self.user = user
        self.language = room_language(self.scope, user)
        try:
            entry = await _enter(actor=user, consult_id=self.consult_id)
        except AccessDenied:
            await self.accept()
            await self._send_closed("forbidden", CloseCode.FORBIDDEN)
            return
        self.role = entry.role
        self.media = MediaRelay(consult_id=self.consult_id, user_id=user.pk, language=self.language)
        self.presence = Presence(
            user_id=user.pk, name=entry.name, role=str(entry.role), admitted=entry.admitted
        )
        self.roster = Roster(entry.members)
        self.roster.connect(self.channel_name, self.presence)
        self.last_check = time.monotonic()
        self.age_factor = random.uniform(0.5, 1.0)  # noqa: S311  (spreading load, not security)
        # Join before the welcome: nothing said in the room after it is missed.
        self.group = services.room_group(self.consult_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.channel_layer.group_add(standing_group(user.pk), self.channel_name)
        await self.accept()
        await self.send_json(
            {
                "type": "welcome",
                **entry.welcome(user.pk),
                "participants": self.roster.as_message(),
                "limits": {
                    "frame_bytes": MAX_FRAME_BYTES,
                    "chat_chars": MAX_CHAT_CHARS,
                    "viewer_state_bytes": MAX_VIEWER_STATE_BYTES,
                    "messages_per_second": RATE_PER_SECOND,
                    "burst": BURST,
                },
            }
        )
        await self._group({"type": "room.join", "presence": self.presence.as_event()})

    async def disconnect(self, code: int) -> None:
        if self.refreshing is not None:
            self.refreshing.cancel()
            self.refreshing = None
        if self.group is None:
            return
        if self.publishing:
            await self.media.leave()
            await self._group({"type": "room.media_left", "presence": self._unpublished()})
        await self._group({"type": "room.leave", "user_id": self.user.pk})
        await self.channel_layer.group_discard(self.group, self.channel_name)
        await self.channel_layer.group_discard(standing_group(self.user.pk), self.channel_name)
        self.group = None

    # --- client messages --------------------------------------------------------------

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        if self.closing or self.group is None:
            return
        if not self.bucket.take():
            await self._rate_limited()
            return
        self.throttled = False
        if not await self._still_allowed(max_age=MESSAGE_RECHECK_SECONDS):
            return
        if text_data is None:
            await self._refuse("binary", detail={"binary_bytes": len(bytes_data or b"")})
            return
        size = len(text_data.encode("utf-8"))
        if size > MAX_FRAME_BYTES:
            await self._refuse("too_large", detail={"bytes": size})
            return
        try:
            message = parse_room_message(text_data)
        except InvalidRoomMessage as exc:
            await self._refuse(exc.code, ref=exc.ref, detail={"errors": exc.errors})
            return
        await self._dispatch(message)

    async def _dispatch(self, message: RoomClientMessage) -> None:
        match message:
            case PingMessage():
                pong: dict[str, Any] = {"type": "pong"}
                if message.t is not None:
                    pong["t"] = message.t
                await self.send_json(self._with_ref(pong, message))
            case MediaStateMessage():
                await self.client_media_state(message)
            case AdmitMessage():
                await self.client_admit(message)
            case _ if not await self._admitted_or_refuse(message):
                return
            case ResumeMessage():
                await self.client_resume(message)
            case ChatPostMessage():
                await self.client_chat(message)
            case ViewerStateMessage():
                await self._group(
                    {"type": "room.viewer", "from": self.user.pk, "state": message.state}
                )
            case MediaPublishMessage():
                await self.client_media_publish(message)
            case MediaSubscribeMessage():
                await self.client_media_subscribe(message)
            case MediaLeaveMessage():
                await self.client_media_leave(message)

    async def client_media_state(self, message: MediaStateMessage) -> None:
        self.presence.audio_only = message.audio_only
        self.presence.muted = message.muted
        await self._group({"type": "room.state", "presence": self.presence.as_event()})

    async def client_admit(self, message: AdmitMessage) -> None:
        if self.role is not RoomRole.EXPERT:
            await self._refuse("not_allowed", ref=message.ref, about=message.type, denied=True)
            return
        try:
            with translation.override(self.language):
                await _admit(actor=self.user, consult_id=self.consult_id, user_id=message.user_id)
        except AccessDenied:
            await self._refuse("not_allowed", ref=message.ref, about=message.type, denied=True)
            return
        except InvalidRecord as exc:
            await self._error("refused", exc.args[0], ref=message.ref, about=message.type)
            return
        await self._group({"type": "room.admitted", "user_id": message.user_id, "by": self.user.pk})

    async def client_resume(self, message: ResumeMessage) -> None:
        found, more = await _chat_since(
            actor=self.user, consult_id=self.consult_id, after_seq=message.after_seq
        )
        for item in found:
            await self.send_json({"type": "chat", **item})
        await self.send_json(
            self._with_ref(
                {
                    "type": "resumed",
                    "after_seq": message.after_seq,
                    "count": len(found),
                    "more": more,
                },
                message,
            )
        )

    async def client_chat(self, message: ChatPostMessage) -> None:
        try:
            with translation.override(self.language):
                stored = await _chat_post(
                    actor=self.user, consult_id=self.consult_id, text=message.text
                )
        except (AccessDenied, InvalidRecord) as exc:
            await self._error("refused", exc.args[0], ref=message.ref, about=message.type)
            return
        await self._group(
            {"type": "room.chat", "message": services.chat_payload(stored), "ref": message.ref}
        )

    async def client_media_publish(self, message: MediaPublishMessage) -> None:
        record = await _recording(consult_id=self.consult_id)
        try:
            answer = await self.media.publish(sdp=message.sdp, record=record)
        except MediaFailure as exc:
            await self._media_error(exc, message)
            return
        self.publishing = True
        self.presence.publishing = True
        await _audit(
            actor=self.user,
            consult_id=self.consult_id,
            action="consult.media.publish",
            outcome=Outcome.ALLOWED,
            detail={"record": record},
        )
        await self.send_json(self._with_ref({"type": "media.answer", "sdp": answer}, message))
        await self._group({"type": "room.published", "presence": self.presence.as_event()})

    async def client_media_subscribe(self, message: MediaSubscribeMessage) -> None:
        try:
            answer = await self.media.subscribe(source=message.source, sdp=message.sdp)
        except MediaFailure as exc:
            await self._media_error(exc, message)
            return
        reply = {"type": "media.subscribed", "source": message.source, "sdp": answer}
        await self.send_json(self._with_ref(reply, message))

    async def client_media_leave(self, message: MediaLeaveMessage) -> None:
        await self.media.leave()
        if self.publishing:
            await self._group({"type": "room.media_left", "presence": self._unpublished()})

    # --- group events from the room ---------------------------------------------------

    async def room_join(self, event: dict[str, Any]) -> None:
        if event["channel"] == self.channel_name or not await self._push_allowed():
            return
        self.roster.connect(event["channel"], Presence.from_event(event["presence"]))
        announce = {
            "type": "room.announce",
            "channel": self.channel_name,
            "presence": self.presence.as_event(),
        }
        await self.channel_layer.send(event["channel"], announce)
        await self._send_presence()

    async def room_announce(self, event: dict[str, Any]) -> None:
        await self._presence_event(event)

    async def room_state(self, event: dict[str, Any]) -> None:
        await self._presence_event(event)

    async def room_leave(self, event: dict[str, Any]) -> None:
        if event["channel"] == self.channel_name or not await self._push_allowed():
            return
        self.roster.disconnect(event["channel"], int(event["user_id"]))
        await self._send_presence()

    async def room_admitted(self, event: dict[str, Any]) -> None:
        if not await self._push_allowed():
            return
        user_id = int(event["user_id"])
        self.roster.admit(user_id)
        if user_id == self.user.pk:
            self.presence.admitted = True
        await self.send_json({"type": "admitted", "user_id": user_id})
        await self._send_presence()

    async def room_chat(self, event: dict[str, Any]) -> None:
        if not self.presence.admitted or not await self._push_allowed():
            return
        message: dict[str, Any] = {"type": "chat", **event["message"]}
        if event.get("ref") and event.get("channel") == self.channel_name:
            message["ref"] = event["ref"]
        await self.send_json(message)

    async def room_viewer(self, event: dict[str, Any]) -> None:
        if event["channel"] == self.channel_name or not self.presence.admitted:
            return
        if await self._push_allowed():
            await self.send_json(
                {"type": "viewer.state", "from": event["from"], "state": event["state"]}
            )

    async def room_published(self, event: dict[str, Any]) -> None:
        presence = Presence.from_event(event["presence"])
        if presence.user_id == self.user.pk and event["channel"] != self.channel_name:
            # The same user published from another tab: the media service replaced ours.
            self.publishing = self.presence.publishing = False
        self.roster.stop_publishing(presence.user_id, except_channel=event["channel"])
        if not await self._presence_event(event):
            return
        if self.presence.admitted:
            peer = peer_id(presence.user_id)
            await self.send_json(
                {"type": "media.published", "peer": peer, "user_id": presence.user_id}
            )

    async def room_media_left(self, event: dict[str, Any]) -> None:
        if not await self._presence_event(event):
            return
        if self.presence.admitted:
            await self.send_json(
                {"type": "media.left", "peer": peer_id(int(event["presence"]["user_id"]))}
            )

    async def room_recheck(self, event: dict[str, Any]) -> None:
        if not self.closing:
            await self._still_allowed(max_age=0.0)

    async def standing_changed(self, event: dict[str, Any]) -> None:
        """The user logged out, changed password or was deactivated (``standing_changed``)."""
        if not self.closing:
            await self._still_allowed(max_age=0.0)

    @classmethod
    async def encode_json(cls, content: Any) -> str:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":"))

    # --- helpers ----------------------------------------------------------------------

    async def _group(self, event: dict[str, Any]) -> None:
        """Send a ``room.*`` event to every connection of the room, this one included."""
        if self.group is not None:
            await self.channel_layer.group_send(self.group, {**event, "channel": self.channel_name})

    async def _presence_event(self, event: dict[str, Any]) -> bool:
        """Apply a participant's new state and tell the client; False if we are closing."""
        if not await self._push_allowed():
            return False
        if event["channel"] != self.channel_name:
            self.roster.connect(event["channel"], Presence.from_event(event["presence"]))
        await self._send_presence()
        return True

    async def _send_presence(self) -> None:
        await self.send_json({"type": "presence", "participants": self.roster.as_message()})

    def _unpublished(self) -> dict[str, Any]:
        self.publishing = self.presence.publishing = False
        return self.presence.as_event()

    async def _admitted_or_refuse(self, message: RoomClientMessage) -> bool:
        if self.presence.admitted:
            return True
        # Admitted in a moment we did not hear about (a layer hiccup): the database decides.
        if await _admitted(consult_id=self.consult_id, user_id=self.user.pk):
            self.presence.admitted = True
            self.roster.admit(self.user.pk)
            return True
        await self._refuse("not_admitted", ref=message.ref, about=message.type, denied=True)
        return False

    async def _still_allowed(self, *, max_age: float) -> bool:
        """Whether the connection may go on: its standing read at most ``max_age`` ago.

        A reading younger than ``max_age`` serves at once; past ``REFRESH_AHEAD`` of its
        connection's share of ``max_age`` it is renewed in the background (each
        connection's reading ages at its own pace, between half and all of ``max_age``, so
        sockets opened together do not all re-read at the same moment). A reading past
        ``max_age`` (an idle socket) or ``max_age=0`` (a push said something changed) is
        re-read before the message is handled. On loss, say ``closed`` and close.
        """
        age = time.monotonic() - self.last_check
        if max_age and age < max_age:
            if age >= max_age * self.age_factor * REFRESH_AHEAD and self.refreshing is None:
                self.refreshing = asyncio.ensure_future(self._recheck())
                self.refreshing.add_done_callback(self._refreshed)
            return True
        if self.refreshing is not None and max_age:
            return await asyncio.shield(self.refreshing)  # the read already under way
        return await self._recheck()

    def _refreshed(self, task: asyncio.Future[bool]) -> None:
        if self.refreshing is task:
            self.refreshing = None
        if not task.cancelled() and task.exception() is not None:
            # The old reading serves until the bound; then a message re-reads and fails.
            logger.warning("background standing read failed", exc_info=task.exception())

    async def _recheck(self) -> bool:
        """Re-read session, account and room role now; on loss say ``closed`` and close."""
        now = time.monotonic()
        session = self.scope.get("session")
        standing = await _standing(
            session_key=getattr(session, "session_key", None),
            user_id=self.user.pk,
            consult_id=self.consult_id,
        )
        if standing.ok and standing.role is not None:
            if now >= self.last_check:  # not a background read older than a pushed one
                self.role = standing.role
                self.last_check = now
            return True
        if standing.session is SocketStanding.SESSION_ENDED:
            reason, code = "session_ended", CloseCode.NOT_LOGGED_IN
        elif standing.session is SocketStanding.ACCOUNT_INACTIVE:
            reason, code = "account_inactive", CloseCode.FORBIDDEN
        elif not standing.consult_open:
            reason, code = "consult_ended", CloseCode.FORBIDDEN
        else:
            reason, code = "access_lost", CloseCode.FORBIDDEN
        await _audit(
            actor=self.user,
            consult_id=self.consult_id,
            action="consult.room.access",
            outcome=Outcome.DENIED,
            reason=reason.replace("_", " "),
        )
        await self._send_closed(reason, code)
        return False

    async def _push_allowed(self) -> bool:
        return not self.closing and await self._still_allowed(max_age=PUSH_RECHECK_SECONDS)

    async def _rate_limited(self) -> None:
        if not self.drops.take():
            await self._audit_refusal("rate_limited", closing=True, denied=True)
            await self._close(CloseCode.TOO_MANY_MESSAGES)
            return
        if self.throttled:
            return  # one error per episode, not one per dropped message
        self.throttled = True
        await self._audit_refusal("rate_limited", closing=False, denied=True)
        await self._error("rate_limited", ERRORS["rate_limited"])

    async def _refuse(
        self,
        code: str,
        *,
        ref: str | None = None,
        about: str | None = None,
        detail: dict[str, Any] | None = None,
        denied: bool = False,
    ) -> None:
        """Answer a bad or refused message with an error; audit; close after too many."""
        self.errors += 1
        closing = self.errors >= MAX_ERRORS
        await self._audit_refusal(code, closing=closing, denied=denied, detail=detail)
        params = {"limit": LIMITS[code]} if code in LIMITS else None
        await self._error(code, ERRORS[code], params=params, ref=ref, about=about)
        if closing:
            await self._close(CloseCode.BAD_CLIENT)

    async def _audit_refusal(
        self, code: str, *, closing: bool, denied: bool, detail: dict[str, Any] | None = None
    ) -> None:
        """Audited once per code per connection, and when the connection is closed for it."""
        if code in self.audited and not closing:
            return
        self.audited.add(code)
        full = {**(detail or {}), "code": code, "errors": self.errors, "closed": closing}
        if denied:
            await _audit(
                actor=self.user,
                consult_id=self.consult_id,
                action="consult.room.refused",
                outcome=Outcome.DENIED,
                reason=code.replace("_", " "),
                detail=full,
            )
        else:
            await audit_socket_event(
                self.scope,
                actor=self.user,
                action="socket.invalid",
                outcome=Outcome.FAILED,
                reason=code.replace("_", " "),
                detail={**full, "consult_id": self.consult_id},
            )

    async def _media_error(self, exc: MediaFailure, message: RoomClientMessage) -> None:
        code = exc.code
        await _audit(
            actor=self.user,
            consult_id=self.consult_id,
            action=f"consult.{message.type}",
            outcome=Outcome.FAILED,
            reason=code.replace("_", " "),
            detail={"code": code, "status": exc.status},
        )
        await self._error(code, exc.text, ref=message.ref, about=message.type)

    async def _error(
        self,
        code: str,
        text: Promise | str,
        *,
        params: dict[str, Any] | None = None,
        ref: str | None = None,
        about: str | None = None,
    ) -> None:
        with translation.override(self.language):
            message = str(text) % params if params else str(text)
        error: dict[str, Any] = {"type": "error", "code": code, "message": message}
        if ref is not None:
            error["ref"] = ref
        if about is not None:
            error["about"] = about
        await self.send_json(error)

    async def _send_closed(self, reason: str, code: CloseCode) -> None:
        with translation.override(self.language):
            text = str(CLOSED[reason])
        await self.send_json({"type": "closed", "reason": reason, "message": text})
        await self._close(code)

    async def _close(self, code: CloseCode) -> None:
        self.closing = True
        await self.close(code=int(code))

    @staticmethod
    def _with_ref(reply: dict[str, Any], message: RoomClientMessage) -> dict[str, Any]:
        return {**reply, "ref": message.ref} if message.ref is not None else reply
