"""The media service's control API (contract C in docs/media.md), an aiohttp application.

Django (the room consumer) is the only client: every request carries
``Authorization: Bearer <MEDIA_SERVICE["SECRET"]>``. Errors are JSON
``{"error": code, "message": text}``; each refusal affects only its own request.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from aiohttp import web
from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext as _
from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from consult.media.config import MediaConfig
from consult.media.sfu import SFU, Refusal

logger = logging.getLogger(__name__)

MAX_BODY = 256 * 1024
MAX_SDP = 64 * 1024
SFU_KEY = web.AppKey("sfu", SFU)

Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Sdp = Annotated[str, StringConstraints(min_length=1, max_length=MAX_SDP)]


class PublishBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    peer: Name
    sdp: Sdp
    type: Literal["offer"]
    record: bool = False
    consult_id: int | None = None
    user_id: int | None = None


class SubscribeBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    peer: Name
    source: Name
    sdp: Sdp
    type: Literal["offer"]


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Language from Accept-Language, the shared secret, and JSON errors for every refusal."""
    with translation.override(_language(request)):
        try:
            if request.path != "/health" and not _authorized(request):
                return _error(401, "unauthorized", _("The media service secret is wrong."))
            return await handler(request)
        except Refusal as refusal:
            return _error(refusal.status, refusal.code, refusal.message)
        except web.HTTPRequestEntityTooLarge:
            return _error(413, "too_large", _("The request is too large."))
        except web.HTTPException as exc:
            if exc.status >= 400:
                return _error(
                    exc.status, "not_found" if exc.status == 404 else "bad_request", exc.reason
                )
            raise


def _language(request: web.Request) -> str:
    """The first supported language of Accept-Language, else the default (zh-hans)."""
    for item in request.headers.get("Accept-Language", "").split(","):
        tag = item.split(";")[0].strip()
        if tag and tag != "*":
            try:
                return translation.get_supported_language_variant(tag.lower())
            except LookupError:
                continue
    return settings.LANGUAGE_CODE


def _authorized(request: web.Request) -> bool:
    secret: str = request.app[SFU_KEY].config.secret
    header = request.headers.get("Authorization", "")
    scheme, _sep, token = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.encode(), secret.encode())


def _name(request: web.Request, key: str) -> str:
    value = request.match_info[key]
    if not (1 <= len(value) <= 64) or not all(
        c.isascii() and (c.isalnum() or c in "_-") for c in value
    ):
        raise Refusal(400, "bad_request", _("Malformed room or participant name."))
    return value


async def _body(request: web.Request, model: type[BaseModel]) -> Any:
    try:
        raw = await request.read()
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise Refusal(400, "bad_request", _("The request body is not JSON.")) from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise Refusal(
            400,
            "bad_request",
            _("Invalid field %(field)s: %(error)s") % {"field": where, "error": first["msg"]},
        ) from None


async def publish(request: web.Request) -> web.Response:
    room = _name(request, "room")
    body: PublishBody = await _body(request, PublishBody)
    if body.record and (body.consult_id is None or body.user_id is None):
        raise Refusal(400, "bad_request", _("Recording needs consult_id and user_id."))
    answer = await request.app[SFU_KEY].publish(
        room,
        body.peer,
        body.sdp,
        record=body.record,
        consult_id=body.consult_id,
        user_id=body.user_id,
    )
    return web.json_response({"sdp": answer, "type": "answer"})


async def subscribe(request: web.Request) -> web.Response:
    room = _name(request, "room")
    body: SubscribeBody = await _body(request, SubscribeBody)
    answer = await request.app[SFU_KEY].subscribe(room, body.peer, body.source, body.sdp)
    return web.json_response({"sdp": answer, "type": "answer"})


async def leave(request: web.Request) -> web.Response:
    await request.app[SFU_KEY].leave(_name(request, "room"), _name(request, "peer"))
    return web.Response(status=204)


async def keyframe(request: web.Request) -> web.Response:
    await request.app[SFU_KEY].request_keyframe(_name(request, "room"), _name(request, "peer"))
    return web.Response(status=204)


async def cut(request: web.Request) -> web.Response:
    await request.app[SFU_KEY].cut(_name(request, "room"), _name(request, "peer"))
    return web.Response(status=204)


async def room_state(request: web.Request) -> web.Response:
    return web.json_response(request.app[SFU_KEY].room_state(_name(request, "room")))


async def health(request: web.Request) -> web.Response:
    return web.json_response(request.app[SFU_KEY].health())


async def stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[SFU_KEY].stats())


def create_app(config: MediaConfig | None = None) -> web.Application:
    """The control API around a new :class:`SFU`; closing the app leaves every room."""
    app = web.Application(middlewares=[errors_middleware], client_max_size=MAX_BODY)
    app[SFU_KEY] = SFU(config or MediaConfig.from_settings())
    app.router.add_post("/rooms/{room}/publish", publish)
    app.router.add_post("/rooms/{room}/subscribe", subscribe)
    app.router.add_delete("/rooms/{room}/peers/{peer}", leave)
    app.router.add_post("/rooms/{room}/peers/{peer}/keyframe", keyframe)
    app.router.add_post("/rooms/{room}/peers/{peer}/cut", cut)
    app.router.add_get("/rooms/{room}", room_state)
    app.router.add_get("/health", health)
    app.router.add_get("/stats", stats)

    async def close_sfu(app: web.Application) -> None:
        await app[SFU_KEY].close()

    app.on_shutdown.append(close_sfu)
    return app
