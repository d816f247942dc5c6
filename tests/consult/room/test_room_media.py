"""Signaling through the room to our real media service (in this process, on loopback).

The room relays offers and answers between the browser (here an aiortc client) and the
media service's control API; these tests check the relay end to end, down to a decoded
video frame, and that the service's refusals reach the client as ``error`` messages.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack
from aiortc.rtcrtpsender import RTCRtpSender
from django.conf import settings
from django.test import override_settings

from tests.consult.room.room_sockets import (
    audit_events,
    drain,
    join,
    new_consult,
    receive_until,
)

media = pytest.importorskip(
    "consult.media.server", reason="the media service (helper MEDIA) is not importable"
)
from consult import media_client  # noqa: E402
from consult.media import loopback  # noqa: E402
from consult.media.config import MediaConfig  # noqa: E402
from tests.consult.media.media_clients import Subscriber, SyntheticVideo, new_pc  # noqa: E402

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "room-test-media-secret"


@pytest.fixture
async def media_url(tmp_path: Path) -> AsyncIterator[str]:
    from aiohttp import web

    config = MediaConfig(
        secret=SECRET,
        host_addresses=("127.0.0.1",),
        faults=False,
        max_room_peers=8,
        spool_dir=tmp_path / "spool",
    )
    loopback.install_host_addresses(config.host_addresses)
    runner = web.AppRunner(media.create_app(config))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    url = f"http://{host}:{port}"
    try:
        with override_settings(
            MEDIA_SERVICE={**settings.MEDIA_SERVICE, "URL": url, "SECRET": SECRET}
        ):
            yield url
    finally:
        await runner.cleanup()
        loopback.uninstall()


async def admitted_pair(consult: Any) -> tuple[Any, dict[str, Any], Any, dict[str, Any]]:
    expert, expert_welcome = await join(consult.pk, "specialist")
    requester, requester_welcome = await join(consult.pk, "township")
    await expert.send_json_to({"type": "admit", "user_id": consult.requested_by_id})
    await receive_until(requester, "admitted")
    await drain(expert)
    await drain(requester)
    return expert, expert_welcome, requester, requester_welcome


async def offer(pc: RTCPeerConnection) -> str:
    await pc.setLocalDescription(await pc.createOffer())
    return pc.localDescription.sdp


async def test_publish_and_subscribe_are_relayed_and_video_flows(media_url: str) -> None:
    consult = await new_consult()
    expert, expert_welcome, requester, _ = await admitted_pair(consult)
    expert_peer = expert_welcome["you"]["peer"]

    sender = new_pc()
    sender.addTrack(AudioStreamTrack())
    sender.addTrack(SyntheticVideo())
    await expert.send_json_to({"type": "media.publish", "sdp": await offer(sender), "ref": "p"})
    answer = await receive_until(expert, "media.answer", timeout=10)
    assert answer["ref"] == "p"
    await sender.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
    published = await receive_until(requester, "media.published")
    assert published == {
        "type": "media.published",
        "peer": expert_peer,
        "user_id": expert_welcome["you"]["user_id"],
    }
    [event] = await audit_events("consult.media.publish")
    assert (event.outcome, event.detail) == ("allowed", {"record": False})

    receiver = new_pc()
    subscriber = Subscriber(receiver, started=time.monotonic())
    for kind in ("audio", "video"):
        receiver.addTransceiver(kind, direction="recvonly")

    @receiver.on("track")
    def on_track(track: Any) -> None:
        async def consume() -> None:
            while True:
                await track.recv()
                subscriber.frames[track.kind] += 1

        subscriber.tasks.append(asyncio.ensure_future(consume()))

    await requester.send_json_to(
        {"type": "media.subscribe", "source": expert_peer, "sdp": await offer(receiver)}
    )
    subscribed = await receive_until(requester, "media.subscribed", timeout=10)
    assert subscribed["source"] == expert_peer
    await receiver.setRemoteDescription(RTCSessionDescription(sdp=subscribed["sdp"], type="answer"))
    await subscriber.wait_video(count=1, timeout=10)

    # The expert's socket drops: the room leaves the media service for them and says so.
    await expert.disconnect()
    assert await receive_until(requester, "media.left") == {
        "type": "media.left",
        "peer": expert_peer,
    }
    state = await media_client.room_state(consult_id=consult.pk)
    assert expert_peer not in [p["peer"] for p in state["peers"]]
    await subscriber.close()
    await sender.close()
    await requester.disconnect()


async def test_offer_without_a_forwarded_codec_is_refused_with_the_services_code(
    media_url: str,
) -> None:
    consult = await new_consult()
    expert, _, requester, _ = await admitted_pair(consult)
    pc = new_pc()
    transceiver = pc.addTransceiver(SyntheticVideo(), direction="sendonly")
    h264 = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/H264"]
    transceiver.setCodecPreferences(h264)
    await expert.send_json_to({"type": "media.publish", "sdp": await offer(pc), "ref": "h"})
    error = await receive_until(expert, "error", timeout=10)
    assert (error["code"], error["ref"], error["about"]) == (
        "unsupported_codec",
        "h",
        "media.publish",
    )
    assert "VP8" in error["message"]
    [event] = await audit_events("consult.media.publish")
    assert (event.outcome, event.reason) == ("failed", "unsupported codec")
    assert all(m["type"] != "media.published" for m in await drain(requester))
    await pc.close()
    await expert.disconnect()
    await requester.disconnect()


async def test_media_service_down_is_an_unavailable_error_and_the_room_goes_on() -> None:
    consult = await new_consult()
    media_down = {**settings.MEDIA_SERVICE, "URL": "http://127.0.0.1:9"}
    with override_settings(MEDIA_SERVICE=media_down):
        expert, _ = await join(consult.pk, "specialist")
        await expert.send_json_to({"type": "media.publish", "sdp": "v=0\r\n"})
        assert (await receive_until(expert, "error", timeout=10))["code"] == "unavailable"
        await expert.send_json_to({"type": "ping"})
        await receive_until(expert, "pong")
        await expert.disconnect()


async def test_the_client_cannot_ask_for_recording() -> None:
    consult = await new_consult()
    expert, _ = await join(consult.pk, "specialist")
    await expert.send_json_to({"type": "media.publish", "sdp": "v=0\r\n", "record": True})
    assert (await receive_until(expert, "error"))["code"] == "invalid_message"
    await expert.disconnect()
