"""One connection's relay to the media service (contract C, ``consult.media_client``).

Calls run in the user's language (the service answers in it) and give up after
:data:`MEDIA_TIMEOUT_SECONDS`; every failure becomes a :class:`MediaFailure` with the
service's code, or ``unavailable``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

from django.utils import translation
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from consult import media_client
from consult.media_client import MediaError

logger = logging.getLogger(__name__)
T = TypeVar("T")

MEDIA_TIMEOUT_SECONDS = 20.0
MEDIA_ERROR_OTHER = _("The media service refused the request.")
MEDIA_UNAVAILABLE = _("The media service cannot be reached. Please try again in a moment.")


class MediaFailure(Exception):
    """The media service refused, failed or did not answer; ``text`` is for people."""

    def __init__(self, code: str, text: str | Promise, status: int | None) -> None:
        super().__init__(code)
        self.code = code
        self.text = text
        self.status = status


@dataclass(frozen=True)
class MediaRelay:
    consult_id: int
    user_id: int
    language: str

    async def _call(self, call: Awaitable[T]) -> T:
        try:
            with translation.override(self.language):
                return await asyncio.wait_for(call, MEDIA_TIMEOUT_SECONDS)
        except MediaError as exc:
            raise MediaFailure(exc.code, exc.message or MEDIA_ERROR_OTHER, exc.status) from exc
        except (TimeoutError, OSError) as exc:  # no answer in time, or a socket error
            raise MediaFailure("unavailable", MEDIA_UNAVAILABLE, None) from exc

    async def publish(self, *, sdp: str, record: bool) -> str:
        """Our offer to the service; returns its answer."""
        return await self._call(
            media_client.publish(
                consult_id=self.consult_id, user_id=self.user_id, sdp=sdp, record=record
            )
        )

    async def subscribe(self, *, source: str, sdp: str) -> str:
        """A recvonly offer for ``source``'s tracks; returns the answer."""
        return await self._call(
            media_client.subscribe(
                consult_id=self.consult_id, user_id=self.user_id, source_peer=source, sdp=sdp
            )
        )

    async def leave(self) -> None:
        """End our publication and subscriptions; failures are logged, not raised."""
        try:
            await self._call(media_client.leave(consult_id=self.consult_id, user_id=self.user_id))
        except MediaFailure as exc:
            logger.warning("room %s: media leave failed: %s", self.consult_id, exc.code)
