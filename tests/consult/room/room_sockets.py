"""Consult-room sockets through the full ASGI stack, and the consults they open.

Consults are made directly in the database (the room is what is under test, not the
request workflow): the township doctor asks about 刘桂兰 (Xiba) and the county
specialist is the accepted lead expert, unless a test says otherwise.
"""

from __future__ import annotations

import uuid
from typing import Any

from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings

from accounts.models import User
from association.models import Institution
from audit.models import AuditEvent
from config.asgi import application
from consult.models import Consult, ConsultExpert, ExpertStatus, Mode, Status, TargetKind
from records.models import Patient
from tests.realtime.sockets import CLIENT_IP, HOST, ORIGIN, USER_AGENT, session_cookie

__all__ = ["session_cookie"]


def make_consult(
    *,
    status: str = Status.SCHEDULED,
    expert_status: str = ExpertStatus.ACCEPTED,
    recording: bool = False,
) -> Consult:
    township = User.objects.get(username="township")
    consult = Consult.objects.create(
        number=f"RT{uuid.uuid4().hex[:12]}",
        patient=Patient.objects.get(name="刘桂兰"),
        requesting_institution=Institution.objects.get(code="xiba"),
        requested_by=township,
        question="胸痛两天，心电图ST段改变，请会诊",
        mode=Mode.VIDEO,
        target_kind=TargetKind.EXPERT,
        status=status,
        recording_consent=recording,
    )
    ConsultExpert.objects.create(
        consult=consult,
        user=User.objects.get(username="specialist"),
        institution=Institution.objects.get(code="county"),
        status=expert_status,
        lead=True,
    )
    return consult


new_consult = database_sync_to_async(make_consult)


@database_sync_to_async
def login(username: str) -> str:
    return session_cookie(User.objects.get(username=username))


@database_sync_to_async
def audit_events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


def room_socket(
    consult_id: int,
    session: str | None = None,
    *,
    language: str | None = "en",
    cookie_language: str | None = None,
) -> WebsocketCommunicator:
    headers = [(b"host", HOST), (b"user-agent", USER_AGENT), (b"origin", ORIGIN)]
    if language is not None:
        headers.append((b"accept-language", language.encode()))
    cookies = []
    if session is not None:
        cookies.append(f"{settings.SESSION_COOKIE_NAME}={session}")
    if cookie_language is not None:
        cookies.append(f"{settings.LANGUAGE_COOKIE_NAME}={cookie_language}")
    if cookies:
        headers.append((b"cookie", "; ".join(cookies).encode()))
    socket = WebsocketCommunicator(application, f"/ws/consults/{consult_id}/", headers=headers)
    socket.scope["client"] = [CLIENT_IP, 50000]
    return socket


async def receive_until(
    socket: WebsocketCommunicator, kind: str, timeout: float = 2
) -> dict[str, Any]:
    """The next message of type ``kind``, skipping others (presence and the like)."""
    while True:
        message = await socket.receive_json_from(timeout=timeout)
        if message["type"] == kind:
            return message


async def drain(socket: WebsocketCommunicator, timeout: float = 0.1) -> list[dict[str, Any]]:
    """Everything the socket has to say right now."""
    found = []
    while not await socket.receive_nothing(timeout=timeout):
        found.append(await socket.receive_json_from())
    return found


async def join(
    consult_id: int, username: str, **kwargs: Any
) -> tuple[WebsocketCommunicator, dict[str, Any]]:
    """Open the room as ``username``; returns the socket and its welcome."""
    socket = room_socket(consult_id, await login(username), **kwargs)
    connected, _ = await socket.connect()
    assert connected
    welcome = await socket.receive_json_from()
    assert welcome["type"] == "welcome", welcome
    return socket, welcome


async def expect_closed(socket: WebsocketCommunicator, code: int) -> None:
    while True:
        output = await socket.receive_output(timeout=2)
        if output["type"] == "websocket.close":
            assert output.get("code") == code, output
            return
