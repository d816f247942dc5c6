"""Real aiortc peers through the media service on loopback: forwarding without decoding."""

from __future__ import annotations

import asyncio

import pytest

from tests.consult.media.media_clients import call, publish, subscribe, wait_for

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


async def test_two_subscribers_decode_the_publishers_video_within_two_seconds(media):
    publisher = await publish(media.base, media.secret, "consult-1", "u1")
    viewers = [
        await subscribe(media.base, media.secret, "consult-1", f"u{n}", "u1") for n in (2, 3)
    ]
    try:
        for viewer in viewers:
            await asyncio.wait_for(viewer.first_video.wait(), 2.0)
            assert viewer.first_frame_seconds < 2.0
            await viewer.wait_video(5)
            await wait_for(lambda v=viewer: v.frames["audio"] > 5, what="audio")
        peer = media.sfu.rooms["consult-1"].peers["u1"]
        assert peer.publication is not None
        taps = peer.publication.taps
        assert taps["video"].frames > 0
        assert taps["audio"].frames > 0
        # The service's receivers handed nothing to aiortc's decoder threads.
        assert taps["video"].decoder_items == taps["audio"].decoder_items == 0
    finally:
        for viewer in viewers:
            await viewer.close()
        await publisher.close()


async def test_three_participants_of_an_mdt_room_each_decode_the_other_two(media):
    peers = ("u11", "u12", "u13")
    publishers = [await publish(media.base, media.secret, "consult-2", p) for p in peers]
    viewers = [
        await subscribe(media.base, media.secret, "consult-2", me, other)
        for me in peers
        for other in peers
        if other != me
    ]
    try:
        for viewer in viewers:
            await viewer.wait_video(3, timeout=5.0)
        state = media.sfu.room_state("consult-2")
        assert {p["peer"]: p["subscriptions"] for p in state["peers"]} == {
            "u11": ["u12", "u13"],
            "u12": ["u11", "u13"],
            "u13": ["u11", "u12"],
        }
        assert all(p["kinds"] == ["audio", "video"] for p in state["peers"])
    finally:
        for client in [*viewers, *publishers]:
            await client.close()


async def test_a_subscribers_picture_loss_report_reaches_the_publisher(media):
    publisher = await publish(media.base, media.secret, "consult-3", "u1")
    viewer = await subscribe(media.base, media.secret, "consult-3", "u2", "u1")
    try:
        await viewer.wait_video(2)
        # The subscription itself asked for a key frame at once.
        assert publisher.keyframe_requests >= 1
        await asyncio.sleep(0.6)  # past the relay's rate limit
        before = publisher.keyframe_requests
        receiver = next(t.receiver for t in viewer.pc.getTransceivers() if t.kind == "video")
        ssrc = receiver.getSynchronizationSources()[0].source
        await receiver._send_rtcp_pli(ssrc)
        await wait_for(lambda: publisher.keyframe_requests > before, what="relayed PLI")
        relay = media.sfu.rooms["consult-3"].peers["u1"].source.relays["video"]
        assert relay.keyframe_requests >= 2
        # A burst of PLIs is relayed at most once per 500 ms.
        sent = relay.keyframe_requests
        for _ in range(5):
            await receiver._send_rtcp_pli(ssrc)
        await asyncio.sleep(0.1)
        assert relay.keyframe_requests <= sent + 1
    finally:
        await viewer.close()
        await publisher.close()


async def test_a_cut_drops_the_publishers_connection_and_a_new_publish_recovers(media, monkeypatch):
    import aioice.ice

    # Consent freshness every 0.2 s, two misses: the client notices the cut in about 0.5 s.
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", 0.2)
    monkeypatch.setattr(aioice.ice, "CONSENT_FAILURES", 2)
    publisher = await publish(media.base, media.secret, "consult-4", "u1")
    viewer = await subscribe(media.base, media.secret, "consult-4", "u2", "u1")
    try:
        await viewer.wait_video(2)
        failed = asyncio.Event()

        @publisher.pc.on("connectionstatechange")
        def changed() -> None:
            # aiortc ends in "closed" or "failed" depending on which layer notices first.
            if publisher.pc.connectionState in ("failed", "closed"):
                failed.set()

        status, _ = await call(media.base, media.secret, "POST", "/rooms/consult-4/peers/u1/cut")
        assert status == 204
        await asyncio.wait_for(failed.wait(), 5.0)
        state = media.sfu.room_state("consult-4")
        assert {p["peer"]: p["kinds"] for p in state["peers"]} == {"u1": [], "u2": []}

        await publisher.close()
        publisher = await publish(media.base, media.secret, "consult-4", "u1")
        # The subscriber kept its connection: the new publish feeds it again.
        before = viewer.frames["video"]
        await viewer.wait_video(before + 3, timeout=3.0)
    finally:
        await viewer.close()
        await publisher.close()


async def test_a_publisher_leaving_ends_its_subscriptions_and_the_room(media):
    publisher = await publish(media.base, media.secret, "consult-5", "u1")
    viewer = await subscribe(media.base, media.secret, "consult-5", "u2", "u1")
    try:
        await viewer.wait_video(1)
        status, _ = await call(media.base, media.secret, "DELETE", "/rooms/consult-5/peers/u1")
        assert status == 204
        assert media.sfu.room_state("consult-5") == {
            "peers": [{"peer": "u2", "kinds": [], "subscriptions": []}]
        }
        status, _ = await call(media.base, media.secret, "DELETE", "/rooms/consult-5/peers/u2")
        assert status == 204
        status, body = await call(media.base, media.secret, "GET", "/rooms/consult-5")
        assert (status, body["error"]) == (404, "unknown_room")
    finally:
        await viewer.close()
        await publisher.close()
