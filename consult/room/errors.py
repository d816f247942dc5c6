"""What the room says when it refuses or closes: codes, texts for people, close codes.

Texts are lazy (translated when sent, in the connection's language); ``%(limit)d`` is
filled from :data:`LIMITS`. docs/protocols.md ("Consult room") lists every code.
"""

from __future__ import annotations

import enum

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from consult.room import services
from consult.room.schemas import MAX_CHAT_CHARS, MAX_FRAME_BYTES, MAX_VIEWER_STATE_BYTES

MAX_ERRORS = 20  # invalid or refused messages on one connection before it is closed
DROPS_PER_SECOND = 10.0  # after a burst of DROP_BURST dropped messages, a sustained flood closes
DROP_BURST = 100


class CloseCode(enum.IntEnum):
    BAD_CLIENT = 4400
    NOT_LOGGED_IN = 4401
    FORBIDDEN = 4403
    TOO_MANY_MESSAGES = 4429


ERRORS: dict[str, Promise] = {
    "invalid_json": _("The message is not valid JSON and was ignored."),
    "unknown_type": _("The message type is not known and the message was ignored."),
    "invalid_message": _("The message was not understood and was ignored."),
    "binary": _("Only text messages are accepted; the binary message was ignored."),
    "too_large": _("The message is larger than %(limit)d bytes and was ignored."),
    "chat_too_long": _("A chat message can have at most %(limit)d characters."),
    "viewer_state_too_large": _("The viewer state is larger than %(limit)d bytes."),
    "rate_limited": _("Too many messages at once; some were dropped. Please slow down."),
    "not_admitted": services.NOT_ADMITTED,
    "not_allowed": _("Only an expert of this consult can do that."),
    "refused": _("That was refused."),
}
LIMITS: dict[str, int] = {
    "too_large": MAX_FRAME_BYTES,
    "chat_too_long": MAX_CHAT_CHARS,
    "viewer_state_too_large": MAX_VIEWER_STATE_BYTES,
}
CLOSED: dict[str, Promise] = {
    "consult_ended": _("The consult has ended or was cancelled; the room is closed."),
    "access_lost": _("You are no longer a participant of this consult."),
    "session_ended": _("Your session has ended. Please log in again."),
    "account_inactive": _("Your account has been disabled."),
    "forbidden": services.NOT_A_MEMBER,
}
