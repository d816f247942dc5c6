"""Each refused request gets its own clear 4xx and leaves the room as it was."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiortc import RTCRtpSender

from tests.consult.media.conftest import service_config, start_service
from tests.consult.media.media_clients import call, new_pc, post, publish, subscribe

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


async def offer(audio: str | None = "audio/opus", video: str | None = "video/VP8") -> str:
    """An aiortc offer restricted to the given codecs (None leaves the kind out)."""
    pc = new_pc()
    for kind, mime in (("audio", audio), ("video", video)):
        if mime is None:
            continue
        transceiver = pc.addTransceiver(kind, direction="sendonly")
        capabilities = RTCRtpSender.getCapabilities(kind).codecs
        transceiver.setCodecPreferences([c for c in capabilities if c.mimeType == mime])
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


def body(sdp: str, peer: str = "u1") -> dict[str, object]:
    return {"peer": peer, "sdp": sdp, "type": "offer", "record": False}


async def test_a_wrong_secret_is_refused_with_401(media):
    status, answer = await post(media.base, "not-the-secret", "/rooms/consult-1/publish", {})
    assert (status, answer["error"]) == (401, "unauthorized")
    assert media.sfu.rooms == {}


async def test_health_needs_no_secret(media):
    status, answer = await call(media.base, "", "GET", "/health")
    assert (status, answer) == (200, {"status": "ok", "rooms": 0, "peers": 0})


async def test_an_h264_only_offer_is_refused_as_an_unsupported_codec(media):
    status, answer = await post(
        media.base, media.secret, "/rooms/consult-1/publish", body(await offer(video="video/H264"))
    )
    assert (status, answer["error"]) == (415, "unsupported_codec")
    assert "video/h264" in answer["message"]
    assert media.sfu.rooms == {}


async def test_an_offer_without_opus_audio_is_refused(media):
    sdp = await offer(audio="audio/PCMU", video=None)
    status, answer = await post(media.base, media.secret, "/rooms/consult-1/publish", body(sdp))
    assert (status, answer["error"]) == (415, "unsupported_codec")


async def test_malformed_sdp_is_refused_with_422(media):
    for sdp in ("hello", "v=0\r\nm=audio x\r\n"):
        status, answer = await post(media.base, media.secret, "/rooms/consult-1/publish", body(sdp))
        assert (status, answer["error"]) == (422, "bad_sdp")
    # Parsable, but without ICE credentials: aiortc refuses it, so do we.
    sdp = "".join(
        line for line in (await offer()).splitlines(keepends=True) if "ice-ufrag" not in line
    )
    status, answer = await post(media.base, media.secret, "/rooms/consult-1/publish", body(sdp))
    assert (status, answer["error"]) == (422, "bad_sdp")
    assert media.sfu.rooms == {}


async def test_bad_json_and_fields_are_refused_with_400(media):
    status, answer = await post(
        media.base, media.secret, "/rooms/consult-1/publish", {"peer": "u1", "sdp": 3}
    )
    assert (status, answer["error"]) == (400, "bad_request")
    status, answer = await post(
        media.base,
        media.secret,
        "/rooms/consult-1/publish",
        {**body("x"), "record": True},
    )
    assert (status, answer["error"]) == (400, "bad_request")  # recording needs consult and user
    status, answer = await post(media.base, media.secret, "/rooms/bad room!/publish", body("x"))
    assert status in (400, 404)


async def test_subscribing_to_someone_not_publishing_is_404(media):
    publisher = await publish(media.base, media.secret, "consult-1", "u1")
    try:
        sdp = await offer()
        status, answer = await post(
            media.base,
            media.secret,
            "/rooms/consult-1/subscribe",
            {"peer": "u2", "source": "u9", "sdp": sdp, "type": "offer"},
        )
        assert (status, answer["error"]) == (404, "unknown_source")
        status, answer = await post(
            media.base,
            media.secret,
            "/rooms/consult-9/subscribe",
            {"peer": "u2", "source": "u1", "sdp": sdp, "type": "offer"},
        )
        assert (status, answer["error"]) == (404, "unknown_room")
    finally:
        await publisher.close()


async def test_the_ninth_participant_is_refused_while_the_eight_keep_their_place(tmp_path: Path):
    service, runner = await start_service(service_config(tmp_path, max_room_peers=2))
    publishers = []
    try:
        for peer in ("u1", "u2"):
            publishers.append(await publish(service.base, service.secret, "consult-1", peer))
        status, answer = await post(
            service.base, service.secret, "/rooms/consult-1/publish", body(await offer(), "u3")
        )
        assert (status, answer["error"]) == (409, "room_full")
        # The same peer publishing again replaces its publication: not a new participant.
        publishers.append(await publish(service.base, service.secret, "consult-1", "u2"))
        state = service.sfu.room_state("consult-1")
        assert [p["peer"] for p in state["peers"]] == ["u1", "u2"]
    finally:
        for publisher in publishers:
            await publisher.close()
        await runner.cleanup()


async def test_cut_is_not_found_unless_faults_are_on(tmp_path: Path):
    service, runner = await start_service(service_config(tmp_path, faults=False))
    publisher = await publish(service.base, service.secret, "consult-1", "u1")
    try:
        status, answer = await call(
            service.base, service.secret, "POST", "/rooms/consult-1/peers/u1/cut"
        )
        assert (status, answer["error"]) == (404, "not_found")
        assert service.sfu.room_state("consult-1")["peers"][0]["kinds"] == ["audio", "video"]
    finally:
        await publisher.close()
        await runner.cleanup()


async def test_a_refused_new_publish_leaves_the_running_one_forwarding(media):
    publisher = await publish(media.base, media.secret, "consult-1", "u1")
    viewer = await subscribe(media.base, media.secret, "consult-1", "u2", "u1")
    try:
        await viewer.wait_video(2)
        sdp = "".join(
            line for line in (await offer()).splitlines(keepends=True) if "fingerprint" not in line
        )
        status, answer = await post(media.base, media.secret, "/rooms/consult-1/publish", body(sdp))
        assert (status, answer["error"]) == (422, "bad_sdp")
        before = viewer.frames["video"]
        await viewer.wait_video(before + 3)
    finally:
        await viewer.close()
        await publisher.close()
