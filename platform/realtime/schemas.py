"""Typed client messages of the notification socket (see docs/protocols.md).

Strict: numbers must be JSON integers, unknown fields and unknown ``type`` values are
refused. The consumer checks the frame size before parsing.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

MAX_ACK_IDS = 100
MAX_ID = 2**63 - 1  # the range of a BigAutoField

NotificationId = Annotated[int, Field(ge=1, le=MAX_ID)]


class ClientMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class AckMessage(ClientMessage):
    """Mark these notifications read."""

    type: Literal["ack"]
    ids: Annotated[list[NotificationId], Field(min_length=1, max_length=MAX_ACK_IDS)]


class ResumeMessage(ClientMessage):
    """Send every notification with an id above ``after``, read or not."""

    type: Literal["resume"]
    after: Annotated[int, Field(ge=0, le=MAX_ID)]


class PingMessage(ClientMessage):
    """Keep-alive; answered with ``pong``."""

    type: Literal["ping"]


NotificationClientMessage = Annotated[
    AckMessage | ResumeMessage | PingMessage, Field(discriminator="type")
]

_notification_client_message: TypeAdapter[AckMessage | ResumeMessage | PingMessage] = TypeAdapter(
    NotificationClientMessage
)


def parse_notification_message(text: str) -> AckMessage | ResumeMessage | PingMessage:
    """Parse one text frame; raises ``pydantic.ValidationError`` (bad JSON included)."""
    return _notification_client_message.validate_json(text)
