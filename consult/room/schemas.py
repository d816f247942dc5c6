"""Typed client messages of the consult room socket (docs/protocols.md, "Consult room").

Strict, like ``realtime.schemas``: numbers must be JSON numbers, booleans JSON booleans,
unknown fields and unknown ``type`` values are refused. The consumer checks the frame
size before parsing; :func:`parse_room_message` then classifies what was wrong so the
client gets a precise error code.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
)

MAX_FRAME_BYTES = 64 * 1024  # a whole text frame, UTF-8 (an SDP offer fits with room to spare)
MAX_CHAT_CHARS = 2000
MAX_VIEWER_STATE_BYTES = 8 * 1024
MAX_REF_CHARS = 64
MAX_SDP_CHARS = 60 * 1024
MAX_ID = 2**63 - 1

PEER_RE = re.compile(r"u[1-9][0-9]{0,18}")

Ref = Annotated[str, StringConstraints(min_length=1, max_length=MAX_REF_CHARS)]
Sdp = Annotated[str, StringConstraints(min_length=1, max_length=MAX_SDP_CHARS)]
Peer = Annotated[str, StringConstraints(pattern=PEER_RE.pattern, max_length=20)]


class ClientMessage(BaseModel):
    """Every client message may carry ``ref``; an ``error`` it causes echoes it."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    ref: Ref | None = None


class ResumeMessage(ClientMessage):
    """Replay the chat messages with a ``seq`` above ``after_seq``."""

    type: Literal["resume"]
    after_seq: Annotated[int, Field(ge=0, le=MAX_ID)]


class ChatPostMessage(ClientMessage):
    """Post a chat message (stored, then sent to everyone admitted)."""

    type: Literal["chat"]
    text: Annotated[str, StringConstraints(min_length=1, max_length=MAX_CHAT_CHARS)]

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("blank")
        return value


class AdmitMessage(ClientMessage):
    """An expert lets the waiting requester in."""

    type: Literal["admit"]
    user_id: Annotated[int, Field(ge=1, le=MAX_ID)]


class MediaPublishMessage(ClientMessage):
    """Send our audio and video to the media service (an SDP offer)."""

    type: Literal["media.publish"]
    sdp: Sdp


class MediaSubscribeMessage(ClientMessage):
    """Receive another participant's published tracks (a recvonly SDP offer)."""

    type: Literal["media.subscribe"]
    source: Peer
    sdp: Sdp


class MediaLeaveMessage(ClientMessage):
    """Stop publishing and receiving."""

    type: Literal["media.leave"]


class MediaStateMessage(ClientMessage):
    """Audio-only and mute switches, shown to the others in ``presence``."""

    type: Literal["media.state"]
    audio_only: bool
    muted: bool


class ViewerStateMessage(ClientMessage):
    """The viewer's viewport (docs/viewer.md ``getState()``), sent to the others."""

    type: Literal["viewer.state"]
    state: dict[str, Any]

    @field_validator("state")
    @classmethod
    def _small(cls, value: dict[str, Any]) -> dict[str, Any]:
        size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
        if size > MAX_VIEWER_STATE_BYTES:
            raise ValueError("viewer_state_too_large")
        return value


class PingMessage(ClientMessage):
    """Keep-alive and round-trip probe; answered with ``pong`` echoing ``t``."""

    type: Literal["ping"]
    t: Annotated[float, Field(allow_inf_nan=False)] | None = None


RoomClientMessage = (
    ResumeMessage
    | ChatPostMessage
    | AdmitMessage
    | MediaPublishMessage
    | MediaSubscribeMessage
    | MediaLeaveMessage
    | MediaStateMessage
    | ViewerStateMessage
    | PingMessage
)

AnnotatedRoomClientMessage = Annotated[RoomClientMessage, Field(discriminator="type")]

_adapter: TypeAdapter[RoomClientMessage] = TypeAdapter(AnnotatedRoomClientMessage)


class InvalidRoomMessage(Exception):
    """A frame outside the protocol; ``code`` says how (see docs/protocols.md)."""

    def __init__(
        self, code: str, *, ref: str | None = None, errors: list[dict[str, str]] | None = None
    ) -> None:
        super().__init__(code)
        self.code = code
        self.ref = ref
        self.errors = errors or []


def _error_detail(exc: ValidationError) -> list[dict[str, str]]:
    """What was wrong, without the client's values (for the audit trail)."""
    return [
        {"type": e["type"], "loc": ".".join(str(p) for p in e["loc"])[:100]}
        for e in exc.errors(include_url=False, include_input=False)[:5]
    ]


def _classify(exc: ValidationError) -> str:
    kinds = {(e["type"], e["loc"][-1] if e["loc"] else "") for e in exc.errors()}
    types = {kind for kind, _loc in kinds}
    if "json_invalid" in types:
        return "invalid_json"
    if "union_tag_invalid" in types:
        return "unknown_type"
    if ("string_too_long", "text") in kinds:
        return "chat_too_long"
    if any(
        e["type"] == "value_error" and "viewer_state_too_large" in e["msg"] for e in exc.errors()
    ):
        return "viewer_state_too_large"
    return "invalid_message"


def _ref_of(text: str) -> str | None:
    """The ``ref`` of a frame that failed validation, if it is a usable one."""
    try:
        raw = json.loads(text)
    except ValueError:
        return None
    ref = raw.get("ref") if isinstance(raw, dict) else None
    return ref if isinstance(ref, str) and 0 < len(ref) <= MAX_REF_CHARS else None


def parse_room_message(text: str) -> RoomClientMessage:
    """Parse one text frame; raises :class:`InvalidRoomMessage` with a precise code."""
    try:
        return _adapter.validate_json(text)
    except ValidationError as exc:
        raise InvalidRoomMessage(
            _classify(exc), ref=_ref_of(text), errors=_error_detail(exc)
        ) from None
