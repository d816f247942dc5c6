"""The consult room socket: who may join, the waiting room, chat, presence, viewer sync."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.signals import user_logged_out
from django.contrib.sessions.models import Session

from accounts.models import User
from association.models import Institution
from consult.models import ChatMessage, Consult, ConsultEvent, ConsultExpert, ExpertStatus, Status
from consult.room import consumer as consumer_module
from consult.room.services import room_recheck
from tests.consult.room.room_sockets import (
    audit_events,
    drain,
    expect_closed,
    join,
    login,
    new_consult,
    receive_until,
    room_socket,
)

pytestmark = pytest.mark.django_db(transaction=True)


async def refused_with(consult_id: int, username: str) -> dict[str, Any]:
    socket = room_socket(consult_id, await login(username))
    connected, _ = await socket.connect()
    assert connected  # accepted only so that the browser sees the close code
    closed = await socket.receive_json_from()
    await expect_closed(socket, 4403)
    await socket.disconnect()
    return closed


async def admitted_pair(consult: Consult) -> tuple[Any, Any]:
    """The specialist and the township doctor in the room, the doctor let in."""
    expert, _ = await join(consult.pk, "specialist")
    requester, _ = await join(consult.pk, "township")
    await expert.send_json_to({"type": "admit", "user_id": consult.requested_by_id})
    await receive_until(requester, "admitted")
    await receive_until(expert, "admitted")
    await drain(expert)
    await drain(requester)
    return expert, requester


# --- who may join ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("username", "expert_status"),
    [
        ("outsider", ExpertStatus.ACCEPTED),
        ("village2", ExpertStatus.ACCEPTED),
        ("coordinator", ExpertStatus.ACCEPTED),
        ("specialist", ExpertStatus.DECLINED),
        ("specialist", ExpertStatus.INVITED),
    ],
    ids=["outsider", "other-clinic", "coordinator", "declined-expert", "invited-not-accepted"],
)
async def test_non_member_is_refused_with_4403_and_audited(
    username: str, expert_status: str
) -> None:
    consult = await new_consult(expert_status=expert_status)
    closed = await refused_with(consult.pk, username)
    assert (closed["type"], closed["reason"]) == ("closed", "forbidden")
    [event] = await audit_events("consult.room.join")
    assert (event.outcome, event.actor_username) == ("denied", username)
    assert event.patient_id == consult.patient_id


async def test_room_of_a_consult_not_yet_accepted_is_closed_even_to_the_requester() -> None:
    consult = await new_consult(status=Status.PENDING_EXPERT)
    assert (await refused_with(consult.pk, "township"))["reason"] == "forbidden"


async def test_anonymous_socket_is_closed_with_4401() -> None:
    consult = await new_consult()
    socket = room_socket(consult.pk)
    assert (await socket.connect())[0]
    await expect_closed(socket, 4401)
    [event] = await audit_events("socket.connect")
    assert event.outcome == "denied"


async def test_expert_gets_a_welcome_with_ice_servers_and_the_institutions_video_cap() -> None:
    await database_sync_to_async(Institution.objects.filter(code="county").update)(
        video_max_kbps=350
    )
    consult = await new_consult(recording=True)
    socket, welcome = await join(consult.pk, "specialist")
    you = welcome["you"]
    assert (you["role"], you["admitted"], you["peer"]) == ("expert", True, f"u{you['user_id']}")
    assert welcome["consult"] == {
        "id": consult.pk,
        "number": consult.number,
        "status": "scheduled",
        "mode": "video",
    }
    assert welcome["ice_servers"] == []  # no TURN configured in tests, never a public STUN
    assert welcome["video_max_kbps"] == 350
    assert welcome["recording"] is True
    assert welcome["last_seq"] == 0
    roles = {p["role"]: p for p in welcome["participants"]}
    assert roles["expert"]["online"] is True
    assert (roles["requester"]["online"], roles["requester"]["admitted"]) == (False, False)
    [event] = await audit_events("consult.room.join")
    assert (event.outcome, event.patient_id) == ("allowed", consult.patient_id)
    await socket.disconnect()


async def test_requester_gets_the_requesting_institutions_video_cap() -> None:
    await database_sync_to_async(Institution.objects.filter(code="xiba").update)(video_max_kbps=300)
    consult = await new_consult()
    socket, welcome = await join(consult.pk, "township")
    assert welcome["video_max_kbps"] == 300
    await socket.disconnect()


# --- waiting room ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        {"type": "chat", "text": "您好"},
        {"type": "resume", "after_seq": 0},
        {"type": "viewer.state", "state": {"zoom": 2}},
        {"type": "media.publish", "sdp": "v=0"},
        {"type": "media.subscribe", "source": "u1", "sdp": "v=0"},
        {"type": "media.leave"},
    ],
)
async def test_waiting_requester_may_not_chat_or_use_media(message: dict[str, Any]) -> None:
    consult = await new_consult()
    socket, welcome = await join(consult.pk, "township")
    assert welcome["you"]["admitted"] is False
    await socket.send_json_to({**message, "ref": "r1"})
    error = await receive_until(socket, "error")
    assert (error["code"], error["ref"], error["about"]) == ("not_admitted", "r1", message["type"])
    assert error["message"] == "Please wait until the expert lets you in."
    [event] = await audit_events("consult.room.refused")
    assert (event.outcome, event.reason) == ("denied", "not admitted")
    await socket.send_json_to({"type": "ping", "t": 1.5})
    assert await receive_until(socket, "pong") == {"type": "pong", "t": 1.5}
    await socket.disconnect()


async def test_waiting_requester_sees_presence_but_not_the_chat() -> None:
    consult = await new_consult()
    expert, _ = await join(consult.pk, "specialist")
    requester, _ = await join(consult.pk, "township")
    await expert.send_json_to({"type": "chat", "text": "稍等，我先看一下心电图"})
    await receive_until(expert, "chat")
    seen = await drain(requester, timeout=0.2)
    assert {m["type"] for m in seen} <= {"presence"}
    await expert.disconnect()
    await requester.disconnect()


async def test_expert_admits_the_requester_persistently_and_starts_the_consult() -> None:
    consult = await new_consult()
    expert, _ = await join(consult.pk, "specialist")
    requester, _ = await join(consult.pk, "township")
    waiting = await receive_until(expert, "presence")
    [me] = [p for p in waiting["participants"] if p["role"] == "requester"]
    assert (me["online"], me["admitted"]) == (True, False)

    await expert.send_json_to({"type": "admit", "user_id": consult.requested_by_id})
    assert await receive_until(requester, "admitted") == {
        "type": "admitted",
        "user_id": consult.requested_by_id,
    }
    assert (await receive_until(expert, "admitted"))["user_id"] == consult.requested_by_id
    [event] = await database_sync_to_async(list)(ConsultEvent.objects.filter(kind="room.admitted"))
    assert event.detail == {"user_id": consult.requested_by_id}
    status = await database_sync_to_async(
        lambda: Consult.objects.values_list("status", flat=True).get(pk=consult.pk)
    )()
    assert status == Status.IN_PROGRESS

    await requester.send_json_to({"type": "chat", "text": "谢谢主任"})
    assert (await receive_until(expert, "chat"))["text"] == "谢谢主任"
    await requester.disconnect()
    again, welcome = await join(consult.pk, "township")
    assert welcome["you"]["admitted"] is True
    await again.disconnect()
    await expert.disconnect()


async def test_requester_cannot_admit_anyone() -> None:
    consult = await new_consult()
    socket, _ = await join(consult.pk, "township")
    await socket.send_json_to({"type": "admit", "user_id": consult.requested_by_id})
    assert (await receive_until(socket, "error"))["code"] == "not_allowed"
    assert not await database_sync_to_async(ConsultEvent.objects.exists)()
    await socket.disconnect()


async def test_expert_can_only_admit_the_requester() -> None:
    consult = await new_consult()
    socket, welcome = await join(consult.pk, "specialist")
    await socket.send_json_to({"type": "admit", "user_id": welcome["you"]["user_id"] + 1000})
    error = await receive_until(socket, "error")
    assert error["code"] == "refused"
    assert "requesting doctor" in error["message"]
    await socket.disconnect()


# --- chat -----------------------------------------------------------------------------


async def test_chat_is_stored_numbered_broadcast_and_echoes_the_senders_ref() -> None:
    consult = await new_consult()
    expert, requester = await admitted_pair(consult)
    await requester.send_json_to({"type": "chat", "text": "  血压 150/95  ", "ref": "c-1"})
    mine = await receive_until(requester, "chat")
    theirs = await receive_until(expert, "chat")
    assert mine["ref"] == "c-1"
    assert "ref" not in theirs
    assert (theirs["seq"], theirs["kind"], theirs["text"]) == (1, "text", "血压 150/95")
    assert theirs["author"]["user_id"] == consult.requested_by_id
    stored = await database_sync_to_async(list)(ChatMessage.objects.filter(consult=consult))
    assert [(m.seq, m.body) for m in stored] == [(1, "血压 150/95")]
    [event] = await audit_events("consult.chat.post")
    assert event.patient_id == consult.patient_id
    await expert.disconnect()
    await requester.disconnect()


async def test_dropped_socket_resumes_with_the_messages_it_missed() -> None:
    consult = await new_consult()
    expert, requester = await admitted_pair(consult)
    await expert.send_json_to({"type": "chat", "text": "第一条"})
    seen = await receive_until(requester, "chat")
    await requester.disconnect()
    for text in ("第二条", "第三条"):
        await expert.send_json_to({"type": "chat", "text": text})
        await receive_until(expert, "chat")
    back, welcome = await join(consult.pk, "township")
    assert welcome["last_seq"] == 3
    await back.send_json_to({"type": "resume", "after_seq": seen["seq"]})
    missed = [await receive_until(back, "chat") for _ in range(2)]
    assert [(m["seq"], m["text"]) for m in missed] == [(2, "第二条"), (3, "第三条")]
    assert await receive_until(back, "resumed") == {
        "type": "resumed",
        "after_seq": 1,
        "count": 2,
        "more": False,
    }
    await back.disconnect()
    await expert.disconnect()


# --- bad input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "invalid_json"),
        (json.dumps({"type": "dance"}), "unknown_type"),
        (json.dumps({"text": "no type"}), "invalid_message"),
        (json.dumps({"type": "chat", "text": 5}), "invalid_message"),
        (json.dumps({"type": "chat", "text": "   "}), "invalid_message"),
        (json.dumps({"type": "chat", "text": "x", "extra": 1}), "invalid_message"),
        (json.dumps({"type": "resume", "after_seq": "3"}), "invalid_message"),
        (json.dumps({"type": "media.state", "audio_only": 1, "muted": False}), "invalid_message"),
        (
            json.dumps({"type": "media.subscribe", "source": "../x", "sdp": "v=0"}),
            "invalid_message",
        ),
        (json.dumps({"type": "chat", "text": "长" * 2001}), "chat_too_long"),
        (
            json.dumps({"type": "viewer.state", "state": {"x": "y" * 9000}}),
            "viewer_state_too_large",
        ),
        (json.dumps([1, 2]), "invalid_message"),
    ],
)
async def test_messages_outside_the_protocol_get_an_error_and_the_socket_survives(
    frame: str, code: str
) -> None:
    consult = await new_consult()
    socket, _ = await join(consult.pk, "specialist")
    await socket.send_to(text_data=frame)
    error = await receive_until(socket, "error")
    assert error["code"] == code
    assert error["message"]
    await socket.send_json_to({"type": "ping"})
    assert (await receive_until(socket, "pong"))["type"] == "pong"
    await socket.disconnect()


async def test_oversized_frame_is_refused_and_audited_once_per_code() -> None:
    consult = await new_consult()
    socket, _ = await join(consult.pk, "specialist")
    big = json.dumps({"type": "media.publish", "sdp": "a" * (65 * 1024)})
    for _ in range(3):
        await socket.send_to(text_data=big)
        error = await receive_until(socket, "error")
        assert error["code"] == "too_large"
        assert "65536" in error["message"]
    [event] = await audit_events("socket.invalid")
    assert event.detail["code"] == "too_large"
    assert event.detail["bytes"] > 65536
    await socket.send_json_to({"type": "ping"})
    await receive_until(socket, "pong")
    await socket.disconnect()


async def test_binary_frames_are_refused() -> None:
    consult = await new_consult()
    socket, _ = await join(consult.pk, "specialist")
    await socket.send_to(bytes_data=b"\x00\x01")
    assert (await receive_until(socket, "error"))["code"] == "binary"
    await socket.disconnect()


async def test_errors_speak_the_language_of_the_page() -> None:
    consult = await new_consult()
    chinese, _ = await join(consult.pk, "specialist", language=None, cookie_language="zh-hans")
    english, _ = await join(consult.pk, "specialist", language="en")
    for socket in (chinese, english):
        await socket.send_json_to({"text": "no type"})
    english_text = "The message was not understood and was ignored."
    assert (await receive_until(english, "error"))["message"] == english_text
    chinese_text = (await receive_until(chinese, "error"))["message"]
    assert chinese_text != english_text
    assert any("\u4e00" <= ch <= "\u9fff" for ch in chinese_text)
    await chinese.disconnect()
    await english.disconnect()


async def test_twenty_bad_messages_close_the_connection_with_4400_and_only_that_one() -> None:
    consult = await new_consult()
    bad, _ = await join(consult.pk, "specialist")
    other, _ = await join(consult.pk, "township")
    for _ in range(20):
        await bad.send_to(text_data="nope")
    await expect_closed(bad, 4400)
    events = await audit_events("socket.invalid")
    assert [e.detail["closed"] for e in events] == [False, True]  # first, and the closing one
    await other.send_json_to({"type": "ping"})
    await receive_until(other, "pong")
    await other.disconnect()


async def test_flooding_client_is_rate_limited_then_served_again() -> None:
    consult = await new_consult()
    socket, _ = await join(consult.pk, "specialist")
    for n in range(60):
        await socket.send_json_to({"type": "ping", "t": n})
    answers = await drain(socket, timeout=0.3)
    pongs = [m for m in answers if m["type"] == "pong"]
    errors = [m for m in answers if m["type"] == "error"]
    assert 40 <= len(pongs) < 60
    assert [e["code"] for e in errors] == ["rate_limited"]  # one error per episode
    [event] = await audit_events("consult.room.refused")
    assert event.reason == "rate limited"
    await socket.send_json_to({"type": "ping", "t": 99})
    assert (await receive_until(socket, "pong"))["t"] == 99
    await socket.disconnect()


# --- membership re-checked on every message ---------------------------------------------


@pytest.fixture
def every_message_rereads(monkeypatch: pytest.MonkeyPatch) -> None:
    """A change made behind the services' back (no push) is seen once the bounded interval
    has passed; here the interval is 0, so at the very next message."""
    monkeypatch.setattr(consumer_module, "MESSAGE_RECHECK_SECONDS", 0.0)


@pytest.mark.usefixtures("every_message_rereads")
async def test_cancelled_consult_closes_the_room_at_the_next_message() -> None:
    consult = await new_consult()
    expert, requester = await admitted_pair(consult)
    await database_sync_to_async(Consult.objects.filter(pk=consult.pk).update)(
        status=Status.CANCELLED
    )
    await requester.send_json_to({"type": "chat", "text": "还在吗"})
    closed = await receive_until(requester, "closed")
    assert closed["reason"] == "consult_ended"
    assert closed["message"]
    await expect_closed(requester, 4403)
    [event] = await audit_events("consult.room.access")
    assert (event.outcome, event.reason, event.actor_username) == (
        "denied",
        "consult ended",
        "township",
    )
    assert not await database_sync_to_async(ChatMessage.objects.exists)()
    await expert.disconnect()


@pytest.mark.usefixtures("every_message_rereads")
async def test_withdrawn_expert_loses_the_room_at_the_next_message() -> None:
    consult = await new_consult()
    socket, _ = await join(consult.pk, "specialist")
    await database_sync_to_async(ConsultExpert.objects.filter(consult=consult).update)(
        status=ExpertStatus.WITHDRAWN
    )
    await socket.send_json_to({"type": "ping"})
    assert (await receive_until(socket, "closed"))["reason"] == "access_lost"
    await expect_closed(socket, 4403)


async def test_room_recheck_closes_every_connection_at_once() -> None:
    consult = await new_consult()
    expert, requester = await admitted_pair(consult)

    def cancel() -> None:
        Consult.objects.filter(pk=consult.pk).update(status=Status.CANCELLED)
        room_recheck(consult.pk)

    await database_sync_to_async(cancel)()
    for socket in (expert, requester):
        assert (await receive_until(socket, "closed"))["reason"] == "consult_ended"
        await expect_closed(socket, 4403)


async def test_a_direct_change_is_seen_within_the_bounded_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without a push, a standing read from the database serves messages for a bounded time
    (5 s in the platform; 2 s here, so that no socket idles long enough for a layer timeout)."""
    monkeypatch.setattr(consumer_module, "MESSAGE_RECHECK_SECONDS", 2.0)
    consult = await new_consult()
    socket, _ = await join(consult.pk, "specialist")
    await database_sync_to_async(ConsultExpert.objects.filter(consult=consult).update)(
        status=ExpertStatus.WITHDRAWN
    )
    await socket.send_json_to({"type": "ping", "t": 1})
    assert (await receive_until(socket, "pong"))["t"] == 1  # within the interval
    await asyncio.sleep(consumer_module.MESSAGE_RECHECK_SECONDS + 0.1)
    await socket.send_json_to({"type": "ping", "t": 2})
    assert (await receive_until(socket, "closed"))["reason"] == "access_lost"
    await expect_closed(socket, 4403)


async def test_a_busy_socket_renews_its_standing_in_the_background(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Messages keep flowing while the reading is renewed behind them; a loss found by the
    background read closes the socket before the bound (2 s here) is reached."""
    monkeypatch.setattr(consumer_module, "MESSAGE_RECHECK_SECONDS", 2.0)
    consult = await new_consult()
    socket, _ = await join(consult.pk, "specialist")
    await database_sync_to_async(ConsultExpert.objects.filter(consult=consult).update)(
        status=ExpertStatus.WITHDRAWN
    )
    started = asyncio.get_running_loop().time()
    closed = None
    for n in range(20):
        await socket.send_json_to({"type": "ping", "t": n})
        message = await socket.receive_json_from(timeout=2)
        if message["type"] == "closed":
            closed = message
            break
        assert message == {"type": "pong", "t": n}
        await asyncio.sleep(0.25)
    assert closed is not None
    assert closed["reason"] == "access_lost"
    assert asyncio.get_running_loop().time() - started < 2.0  # found before the bound
    await expect_closed(socket, 4403)


async def test_deactivating_the_account_closes_its_room_sockets_at_once() -> None:
    consult = await new_consult()
    expert, requester = await admitted_pair(consult)

    def deactivate() -> None:
        user = User.objects.get(username="township")
        user.is_active = False
        user.save(update_fields=["is_active"])  # post_save pushes standing.changed

    await database_sync_to_async(deactivate)()
    try:
        assert (await receive_until(requester, "closed"))["reason"] == "account_inactive"
        await expect_closed(requester, 4403)
    finally:
        await database_sync_to_async(User.objects.filter(username="township").update)(
            is_active=True
        )
    await expert.disconnect()


async def test_logging_out_closes_the_room_sockets_of_that_session_at_once() -> None:
    consult = await new_consult()
    expert, requester = await admitted_pair(consult)

    def log_out() -> None:
        user = User.objects.get(username="township")
        Session.objects.all().delete()  # what logout does to this user's sessions
        user_logged_out.send(sender=User, request=None, user=user)

    await database_sync_to_async(log_out)()
    assert (await receive_until(requester, "closed"))["reason"] == "session_ended"
    await expect_closed(requester, 4401)
    await expert.disconnect()


# --- presence and viewer sync -----------------------------------------------------------


def by_role(presence: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["role"]: p for p in presence["participants"]}


async def test_presence_shows_joins_leaves_and_media_state_to_everyone() -> None:
    consult = await new_consult()
    expert, _ = await join(consult.pk, "specialist")
    requester, _ = await join(consult.pk, "township")
    # The joiner learns who was there from their announcement.
    seen = by_role(await receive_until(requester, "presence"))
    assert seen["expert"]["online"] is True
    assert by_role(await receive_until(expert, "presence"))["requester"]["online"] is True

    await requester.send_json_to({"type": "media.state", "audio_only": True, "muted": True})
    now = by_role(await receive_until(expert, "presence"))["requester"]
    assert (now["audio_only"], now["muted"], now["publishing"]) == (True, True, False)

    await requester.disconnect()
    left = by_role(await receive_until(expert, "presence"))["requester"]
    assert left["online"] is False
    await expert.disconnect()


async def test_viewer_state_reaches_the_others_but_not_the_sender() -> None:
    consult = await new_consult()
    expert, requester = await admitted_pair(consult)
    state = {"imageIndex": 12, "voi": {"windowCenter": 40, "windowWidth": 400}, "zoom": 1.5}
    await expert.send_json_to({"type": "viewer.state", "state": state})
    got = await receive_until(requester, "viewer.state")
    expert_id = await database_sync_to_async(
        lambda: ConsultExpert.objects.get(consult=consult).user_id
    )()
    assert got == {"type": "viewer.state", "from": expert_id, "state": state}
    assert all(m["type"] != "viewer.state" for m in await drain(expert))
    await expert.disconnect()
    await requester.disconnect()
