"""Client of the media service's control API (contract C), used by the consult room.

Room ``consult-<consult_id>``, peer ``u<user_id>``. Every call raises :class:`MediaError`
on a refusal (the service's code and message) or when the service cannot be reached
(code ``unavailable``, status 503).
"""

from __future__ import annotations

from typing import Any

import aiohttp
from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext as _

TIMEOUT_SECONDS = 20  # an answer waits for ICE gathering (TURN allocation included)


class MediaError(Exception):
    """The media service refused a request or could not be reached."""

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.code = code
        self.message = message
        self.status = status


def peer_id(user_id: int) -> str:
    return f"u{int(user_id)}"


def room_name(consult_id: int) -> str:
    return f"consult-{int(consult_id)}"


async def _call(method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
    base = str(settings.MEDIA_SERVICE["URL"]).rstrip("/")
    headers = {
        "Authorization": f"Bearer {settings.MEDIA_SERVICE['SECRET']}",
        "Accept-Language": translation.get_language() or settings.LANGUAGE_CODE,
    }
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_SECONDS)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.request(method, base + path, json=payload, headers=headers) as response,
        ):
            if response.status == 204:
                return None
            try:
                body = await response.json(content_type=None)
            except ValueError:
                body = None
            if response.status >= 400 or not isinstance(body, dict):
                body = body if isinstance(body, dict) else {}
                raise MediaError(
                    str(body.get("error", "error")),
                    str(body.get("message", response.reason or "")),
                    response.status,
                )
            return body
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise MediaError("unavailable", _("The media service cannot be reached."), 503) from exc


async def publish(*, consult_id: int, user_id: int, sdp: str, record: bool) -> str:
    """Send a participant's offer (audio and video); returns the answer SDP."""
    body = await _call(
        "POST",
        f"/rooms/{room_name(consult_id)}/publish",
        {
            "peer": peer_id(user_id),
            "sdp": sdp,
            "type": "offer",
            "record": bool(record),
            "consult_id": int(consult_id),
            "user_id": int(user_id),
        },
    )
    return str(body["sdp"])


async def subscribe(*, consult_id: int, user_id: int, source_peer: str, sdp: str) -> str:
    """Send a receive-only offer for ``source_peer``'s media; returns the answer SDP."""
    body = await _call(
        "POST",
        f"/rooms/{room_name(consult_id)}/subscribe",
        {"peer": peer_id(user_id), "source": source_peer, "sdp": sdp, "type": "offer"},
    )
    return str(body["sdp"])


async def leave(*, consult_id: int, user_id: int) -> None:
    """Remove the participant's connections; leaving twice is not an error."""
    try:
        await _call("DELETE", f"/rooms/{room_name(consult_id)}/peers/{peer_id(user_id)}")
    except MediaError as exc:
        if exc.status != 404:
            raise


def precall_room(user_id: int) -> str:
    """The room of a user's pre-call test (never a consult's room, never recorded)."""
    return f"precall-{int(user_id)}"


async def precall_publish(*, user_id: int, sdp: str) -> str:
    """Publish a pre-call test stream; returns the answer SDP."""
    body = await _call(
        "POST",
        f"/rooms/{precall_room(user_id)}/publish",
        {
            "peer": peer_id(user_id),
            "sdp": sdp,
            "type": "offer",
            "record": False,
            "user_id": int(user_id),
        },
    )
    return str(body["sdp"])


async def precall_leave(*, user_id: int) -> None:
    """End the pre-call test stream; one that is already gone is fine."""
    try:
        await _call("DELETE", f"/rooms/{precall_room(user_id)}/peers/{peer_id(user_id)}")
    except MediaError as exc:
        if exc.status != 404:
            raise


async def keyframe(*, consult_id: int, user_id: int) -> None:
    """Ask the participant's browser for a key frame."""
    await _call("POST", f"/rooms/{room_name(consult_id)}/peers/{peer_id(user_id)}/keyframe")


async def cut(*, consult_id: int, user_id: int) -> None:
    """Fault injection (only when the service runs with faults on): cut the participant."""
    await _call("POST", f"/rooms/{room_name(consult_id)}/peers/{peer_id(user_id)}/cut")


async def room_state(*, consult_id: int) -> dict[str, Any]:
    """``{"peers": [{"peer", "kinds", "subscriptions"}]}``; a room nobody is in is empty."""
    try:
        return dict(await _call("GET", f"/rooms/{room_name(consult_id)}"))
    except MediaError as exc:
        if exc.code == "unknown_room":
            return {"peers": []}
        raise


async def health() -> dict[str, Any]:
    return dict(await _call("GET", "/health"))
