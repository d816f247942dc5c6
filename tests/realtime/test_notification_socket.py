"""The per-user notification socket, through Origin check, session auth and the consumer."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.sessions.models import Session
from django.db import transaction
from django.utils import timezone

from audit.models import AuditEvent
from realtime.models import Notification
from realtime.services import notification_send
from tests.realtime.sockets import CLIENT_IP, login, notification_socket

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def send(user: Any, title: str = "会诊申请") -> int:
    return notification_send(recipient=user, kind="consult.requested", title=title).pk


@database_sync_to_async
def audit_events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


@database_sync_to_async
def is_read(notification_id: int) -> bool:
    return Notification.objects.get(pk=notification_id).read_at is not None


async def open_as(session: str) -> Any:
    socket = notification_socket(session)
    connected, _ = await socket.connect()
    assert connected
    hello = await socket.receive_json_from()
    assert hello["type"] == "hello"
    for _ in range(hello["backlog"]):
        await socket.receive_json_from()
    return socket


async def expect_closed(socket: Any, code: int) -> None:
    assert await socket.receive_output() == {"type": "websocket.close", "code": code}


# --- who may open one -----------------------------------------------------------------


async def test_anonymous_socket_is_closed_with_4401_and_audited() -> None:
    socket = notification_socket()
    connected, _ = await socket.connect()
    assert connected  # accepted only so the browser sees the close code
    await expect_closed(socket, 4401)
    [event] = await audit_events("socket.connect")
    assert (event.outcome, event.reason, event.actor_id) == ("denied", "not logged in", None)
    assert (event.channel, event.ip, event.user_agent) == ("ws", CLIENT_IP, "pytest-browser/1.0")
    assert event.detail == {"session_cookie": False}
    await socket.disconnect()


async def test_expired_session_is_closed_with_4401_like_an_anonymous_one(village: Any) -> None:
    session = await login(village)
    await database_sync_to_async(Session.objects.filter(session_key=session).update)(
        expire_date=timezone.now() - timezone.timedelta(seconds=1)
    )
    socket = notification_socket(session)
    await socket.connect()
    await expect_closed(socket, 4401)
    [event] = await audit_events("socket.connect")
    assert event.detail == {"session_cookie": True}
    await socket.disconnect()


async def test_foreign_origin_is_refused_and_audited(village: Any) -> None:
    socket = notification_socket(await login(village), origin=b"https://evil.example")
    connected, _ = await socket.connect()
    assert not connected
    [event] = await audit_events("socket.origin")
    assert event.outcome == "denied"
    assert "evil.example" in event.reason
    assert (event.channel, event.ip) == ("ws", CLIENT_IP)
    assert await audit_events("socket.connect") == []  # refused before authentication


async def test_socket_without_origin_is_refused_and_audited() -> None:
    connected, _ = await notification_socket(origin=None).connect()
    assert not connected
    [event] = await audit_events("socket.origin")
    assert event.reason == "no Origin header"


# --- what a logged-in user receives ---------------------------------------------------


async def test_logged_in_user_gets_hello_then_unread_backlog_oldest_first(village: Any) -> None:
    first, second, read = await send(village, "一"), await send(village, "二"), await send(village)
    await database_sync_to_async(Notification.objects.filter(pk=read).update)(
        read_at=timezone.now()
    )
    socket = notification_socket(await login(village))
    assert (await socket.connect())[0]
    assert await socket.receive_json_from() == {"type": "hello", "unread": 2, "backlog": 2}
    backlog = [await socket.receive_json_from() for _ in range(2)]
    assert [m["notification"]["id"] for m in backlog] == [first, second]
    assert backlog[0]["type"] == "notification"
    assert backlog[0]["notification"]["title"] == "一"
    assert await socket.receive_nothing(timeout=0.05)
    await socket.disconnect()


async def test_notification_is_pushed_only_after_the_transaction_commits(village: Any) -> None:
    socket = await open_as(await login(village))
    in_transaction, release = threading.Event(), threading.Event()

    def send_in_transaction() -> None:
        with transaction.atomic():
            notification_send(recipient=village, kind="report.ready", title="报告已出")
            in_transaction.set()
            release.wait(timeout=5)

    sending = asyncio.ensure_future(database_sync_to_async(send_in_transaction)())
    await asyncio.to_thread(in_transaction.wait, 5)
    assert await socket.receive_nothing(timeout=0.1)
    release.set()
    await sending
    pushed = await socket.receive_json_from()
    assert pushed["type"] == "notification"
    assert pushed["notification"]["title"] == "报告已出"
    await socket.disconnect()


async def test_rolled_back_notification_is_neither_stored_nor_pushed(village: Any) -> None:
    socket = await open_as(await login(village))

    def send_then_roll_back() -> None:
        with transaction.atomic():
            notification_send(recipient=village, kind="report.ready", title="作废")
            transaction.set_rollback(True)

    await database_sync_to_async(send_then_roll_back)()
    assert await socket.receive_nothing(timeout=0.1)
    assert not await database_sync_to_async(Notification.objects.exists)()
    await socket.disconnect()


async def test_notification_sent_while_offline_arrives_on_reconnect(village: Any) -> None:
    session = await login(village)
    socket = await open_as(session)
    await socket.disconnect()
    missed = await send(village, "危急值")
    socket = notification_socket(session)
    await socket.connect()
    assert await socket.receive_json_from() == {"type": "hello", "unread": 1, "backlog": 1}
    assert (await socket.receive_json_from())["notification"]["id"] == missed
    await socket.disconnect()


async def test_resume_sends_everything_after_the_given_id_read_or_not(village: Any) -> None:
    seen, missed_read, missed_unread = await send(village), await send(village), await send(village)
    await database_sync_to_async(Notification.objects.filter(pk=missed_read).update)(
        read_at=timezone.now()
    )
    socket = await open_as(await login(village))
    await socket.send_json_to({"type": "resume", "after": seen})
    resent = [await socket.receive_json_from() for _ in range(2)]
    assert [(m["notification"]["id"], m["notification"]["read"]) for m in resent] == [
        (missed_read, True),
        (missed_unread, False),
    ]
    assert await socket.receive_json_from() == {
        "type": "resumed",
        "after": seen,
        "count": 2,
        "more": False,
    }
    await socket.disconnect()


async def test_ack_marks_the_notifications_read(village: Any) -> None:
    first, second = await send(village), await send(village)
    socket = await open_as(await login(village))
    await socket.send_json_to({"type": "ack", "ids": [second, first, second]})
    assert await socket.receive_json_from() == {
        "type": "acked",
        "ids": [first, second],
        "unread": 0,
    }
    assert await is_read(first)
    assert await is_read(second)
    await socket.disconnect()


async def test_ping_is_answered_with_pong(village: Any) -> None:
    socket = await open_as(await login(village))
    await socket.send_json_to({"type": "ping"})
    assert await socket.receive_json_from() == {"type": "pong"}
    await socket.disconnect()


async def test_user_never_receives_another_users_notifications(village: Any, village2: Any) -> None:
    mine = await open_as(await login(village))
    theirs_socket = await open_as(await login(village2))
    theirs = await send(village2, "南湾的会诊")
    assert (await theirs_socket.receive_json_from())["notification"]["id"] == theirs
    assert await mine.receive_nothing(timeout=0.1)
    await mine.send_json_to({"type": "resume", "after": 0})
    assert (await mine.receive_json_from())["count"] == 0
    await mine.send_json_to({"type": "ack", "ids": [theirs]})
    assert (await mine.receive_json_from())["type"] == "acked"
    assert not await is_read(theirs)
    await mine.disconnect()
    await theirs_socket.disconnect()


# --- bad input ------------------------------------------------------------------------


async def test_invalid_json_gets_an_error_and_an_audit_event_and_the_socket_stays_open(
    village: Any,
) -> None:
    socket = await open_as(await login(village))
    await socket.send_to(text_data="{not json")
    error = await socket.receive_json_from()
    assert error["type"] == "error"
    assert error["code"] == "invalid_message"
    assert error["message"]
    [event] = await audit_events("socket.invalid")
    assert (event.outcome, event.actor_username, event.channel) == ("failed", "village", "ws")
    await socket.send_json_to({"type": "ping"})
    assert await socket.receive_json_from() == {"type": "pong"}
    await socket.disconnect()


async def test_oversized_message_gets_too_large_and_the_socket_stays_open(village: Any) -> None:
    socket = await open_as(await login(village))
    await socket.send_json_to({"type": "ping", "padding": "x" * 5000})
    error = await socket.receive_json_from()
    assert (error["type"], error["code"]) == ("error", "too_large")
    assert "4096" in error["message"]
    [event] = await audit_events("socket.invalid")
    assert event.detail["bytes"] > 4096
    await socket.send_json_to({"type": "ping"})
    assert await socket.receive_json_from() == {"type": "pong"}
    await socket.disconnect()


@pytest.mark.parametrize(
    "message",
    [
        {"type": "subscribe"},
        {"kind": "ping"},
        {"type": "ack", "ids": []},
        {"type": "ack", "ids": ["1"]},
        {"type": "ack", "ids": list(range(1, 102))},
        {"type": "resume", "after": -1},
        {"type": "ping", "extra": 1},
        [1, 2],
    ],
)
async def test_messages_outside_the_protocol_are_invalid(village: Any, message: Any) -> None:
    socket = await open_as(await login(village))
    await socket.send_to(text_data=json.dumps(message))
    assert (await socket.receive_json_from())["code"] == "invalid_message"
    await socket.disconnect()


async def test_binary_frames_are_refused(village: Any) -> None:
    socket = await open_as(await login(village))
    await socket.send_to(bytes_data=b"\x00\x01")
    assert (await socket.receive_json_from())["code"] == "invalid_message"
    await socket.disconnect()


async def test_twenty_invalid_messages_close_the_socket_with_4400(village: Any) -> None:
    socket = await open_as(await login(village))
    for _ in range(20):
        await socket.send_to(text_data="nope")
        assert (await socket.receive_json_from())["type"] == "error"
    await expect_closed(socket, 4400)
    events = await audit_events("socket.invalid")
    assert len(events) == 20
    assert events[-1].detail["closed"] is True
    await socket.disconnect()


# --- standing re-checked on every message ---------------------------------------------


async def test_deactivated_account_is_closed_with_4403_on_its_next_message(village: Any) -> None:
    socket = await open_as(await login(village))
    village.is_active = False
    await database_sync_to_async(village.save)(update_fields=["is_active"])
    await socket.send_json_to({"type": "ping"})
    await expect_closed(socket, 4403)
    [event] = await audit_events("socket.session")
    assert (event.outcome, event.reason) == ("denied", "account inactive")
    await socket.disconnect()


async def test_ended_session_is_closed_with_4401_on_the_next_message(village: Any) -> None:
    session = await login(village)
    socket = await open_as(session)
    await database_sync_to_async(Session.objects.filter(session_key=session).delete)()
    await socket.send_json_to({"type": "ping"})
    await expect_closed(socket, 4401)
    [event] = await audit_events("socket.session")
    assert event.reason == "session ended"
    await socket.disconnect()


async def test_ended_session_receives_no_more_pushes(village: Any) -> None:
    session = await login(village)
    socket = await open_as(session)
    await database_sync_to_async(Session.objects.filter(session_key=session).delete)()
    await send(village, "不应送达")
    await expect_closed(socket, 4401)
    await socket.disconnect()
