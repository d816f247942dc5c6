"""The consult room page and the pre-call check (consult/views_room.py).

Who may open the room page is the socket's rule (requester or accepted expert of an open
consult); refusals are 403 and audited. The pre-call endpoints hand out the ICE servers
and publish a real aiortc test stream through the media service (started in this process).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiortc import RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack
from django.test import AsyncClient, Client, override_settings
from django.urls import reverse

from accounts.models import User
from association.models import Institution
from audit.models import AuditEvent
from consult.media_client import precall_room
from consult.models import Attachment, AttachmentKind, ExpertStatus, Status
from imaging.models import Study
from tests.consult.media.conftest import service_config, start_service
from tests.consult.media.media_clients import SyntheticVideo, new_pc, wait_for
from tests.consult.room.room_sockets import make_consult


def _client(username: str) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(User.objects.get(username=username))
    return client


def _config(response: Any) -> dict[str, Any]:
    html = response.content.decode()
    start = html.index('<script id="room-config" type="application/json">') + len(
        '<script id="room-config" type="application/json">'
    )
    return json.loads(html[start : html.index("</script>", start)])


def _room_audit(consult_id: int) -> list[AuditEvent]:
    return list(
        AuditEvent.objects.filter(action="consult.room.open", resource_id=str(consult_id)).order_by(
            "id"
        )
    )


# --- The room page ------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("username", "role"), [("township", "requester"), ("specialist", "expert")]
)
def test_the_requester_and_the_accepted_expert_open_the_room(username: str, role: str) -> None:
    consult = make_consult()
    response = _client(username).get(reverse("consult:room", args=[consult.pk]))
    assert response.status_code == 200
    config = _config(response)
    assert config["wsPath"] == f"/ws/consults/{consult.pk}/"
    assert config["me"]["role"] == role
    assert config["isExpert"] is (role == "expert")
    assert config["urls"]["file"] == f"/consults/{consult.pk}/room/files/"
    assert "consult/room.js" in response.content.decode()
    [event] = _room_audit(consult.pk)
    assert (event.outcome, event.patient_id) == ("allowed", consult.patient_id)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("username", "expert_status"),
    [
        ("outsider", ExpertStatus.ACCEPTED),
        ("village2", ExpertStatus.ACCEPTED),
        ("coordinator", ExpertStatus.ACCEPTED),
        ("specialist", ExpertStatus.INVITED),
        ("specialist", ExpertStatus.DECLINED),
    ],
    ids=["outsider", "other-clinic", "coordinator", "invited-expert", "declined-expert"],
)
def test_anyone_else_is_refused_with_403_and_audited(username: str, expert_status: str) -> None:
    consult = make_consult(expert_status=expert_status)
    response = _client(username).get(reverse("consult:room", args=[consult.pk]))
    assert response.status_code == 403
    assert "room" in response.content.decode()
    [event] = _room_audit(consult.pk)
    assert (event.outcome, event.actor_username) == ("denied", username)
    assert event.patient_id == consult.patient_id


@pytest.mark.django_db
@pytest.mark.parametrize("status", [Status.PENDING_EXPERT, Status.COMPLETED, Status.CANCELLED])
def test_the_room_of_a_consult_that_is_not_live_is_closed_to_everyone(status: str) -> None:
    consult = make_consult(status=status)
    assert _client("township").get(reverse("consult:room", args=[consult.pk])).status_code == 403


@pytest.mark.django_db
def test_an_unknown_consult_is_refused_the_same_way() -> None:
    response = _client("township").get(reverse("consult:room", args=[987654]))
    assert response.status_code == 403
    assert _room_audit(987654)[0].outcome == "denied"


@pytest.mark.django_db
def test_a_visitor_who_is_not_logged_in_is_sent_to_the_login_page() -> None:
    consult = make_consult()
    response = Client().get(reverse("consult:room", args=[consult.pk]))
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


@pytest.mark.django_db
def test_the_consults_studies_are_offered_in_the_viewer_panel() -> None:
    consult = make_consult()
    study = Study.objects.create(
        study_uid=f"1.2.826.0.1.{uuid.uuid4().int % 10**12}",
        patient=consult.patient,
        source_institution=Institution.objects.get(code="xiba"),
        study_description="头颅CT平扫",
        modalities="CT",
    )
    Attachment.objects.create(
        consult=consult,
        kind=AttachmentKind.STUDY,
        title="头颅CT平扫",
        study=study,
        uploaded_by=consult.requested_by,
    )
    response = _client("specialist").get(reverse("consult:room", args=[consult.pk]))
    [entry] = _config(response)["studies"]
    assert entry["studyUid"] == study.study_uid
    assert entry["options"]["studyUid"] == study.study_uid
    assert entry["options"]["readOnly"] is True
    html = response.content.decode()
    assert f'data-study-uid="{study.study_uid}"' in html
    assert "viewer/viewer.js" in html


@pytest.mark.django_db
def test_without_studies_the_viewer_bundle_is_not_loaded() -> None:
    consult = make_consult()
    response = _client("township").get(reverse("consult:room", args=[consult.pk]))
    assert _config(response)["studies"] == []
    assert "viewer/viewer.js" not in response.content.decode()


# --- The pre-call check ----------------------------------------------------------------------


@pytest.mark.django_db
def test_the_precall_page_lists_its_checks_in_the_users_language() -> None:
    response = _client("township").get(reverse("consult:precall"), {"next": "/consults/1/room/"})
    html = response.content.decode()
    assert response.status_code == 200
    assert "TURN relay" in html
    assert 'href="/consults/1/room/"' in html
    assert "consult/precall.js" in html


@pytest.mark.django_db
def test_the_precall_page_ignores_a_next_address_on_another_site() -> None:
    response = _client("township").get(reverse("consult:precall"), {"next": "//evil.example/"})
    assert 'href="//evil.example/"' not in response.content.decode()


@pytest.mark.django_db
@override_settings(TURN={"SECRET": None, "URLS": [], "TTL_SECONDS": 600})
def test_without_turn_the_precall_check_gets_an_empty_list_and_says_so() -> None:
    body = _client("township").get(reverse("consult:precall-ice")).json()
    assert body == {"ice_servers": [], "turn_configured": False, "video_max_kbps": 400}


@pytest.mark.django_db
@override_settings(
    TURN={"SECRET": "s", "URLS": ["turn:turn.example.cn:3478?transport=udp"], "TTL_SECONDS": 600}
)
def test_with_turn_the_precall_check_gets_short_lived_credentials() -> None:
    township = User.objects.get(username="township")
    body = _client("township").get(reverse("consult:precall-ice")).json()
    [server] = body["ice_servers"]
    assert body["turn_configured"] is True
    assert server["urls"] == ["turn:turn.example.cn:3478?transport=udp"]
    assert server["username"].endswith(f":{township.pk}")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        json.dumps({"type": "answer", "sdp": "v=0\r\n"}).encode(),
        json.dumps({"type": "offer", "sdp": 5}).encode(),
        json.dumps({"type": "offer", "sdp": "hello"}).encode(),
        json.dumps({"type": "offer", "sdp": "v=0\r\n" + "a" * 70_000}).encode(),
    ],
    ids=["not-json", "not-an-object", "not-an-offer", "sdp-not-text", "not-sdp", "too-large"],
)
def test_a_malformed_precall_offer_is_a_clear_400(body: bytes) -> None:
    response = _client("township").post(
        reverse("consult:precall-offer"), body, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_offer"
    assert response.json()["message"]


@pytest.mark.django_db
@override_settings(MEDIA_SERVICE={"URL": "http://127.0.0.1:9", "SECRET": "x"})
def test_a_precall_offer_when_the_media_service_is_down_is_a_502_with_a_message() -> None:
    offer = {"type": "offer", "sdp": "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n"}
    response = _client("township").post(
        reverse("consult:precall-offer"), offer, content_type="application/json"
    )
    assert response.status_code == 502
    assert response.json()["message"] == "The media service is not answering."


@pytest.mark.django_db
def test_precall_endpoints_need_a_session() -> None:
    response = Client().post(
        reverse("consult:precall-offer"), {"type": "offer"}, content_type="application/json"
    )
    assert response.status_code in {302, 401}


@pytest.mark.django_db(transaction=True)
async def test_the_precall_offer_publishes_a_test_stream_to_the_media_service(
    tmp_path: Path,
) -> None:
    service, runner = await start_service(service_config(tmp_path, faults=False))
    township = await User.objects.aget(username="township")
    client = AsyncClient()
    await client.aforce_login(township)
    pc = new_pc()
    try:
        pc.addTrack(AudioStreamTrack())
        pc.addTrack(SyntheticVideo())
        await pc.setLocalDescription(await pc.createOffer())
        with override_settings(MEDIA_SERVICE={"URL": service.base, "SECRET": service.secret}):
            response = await client.post(
                reverse("consult:precall-offer"),
                {"type": "offer", "sdp": pc.localDescription.sdp},
                content_type="application/json",
            )
            assert response.status_code == 200, response.content
            answer = response.json()
            assert answer["type"] == "answer"
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
            await wait_for(lambda: pc.connectionState == "connected", what="connected")
            room = service.sfu.room_state(precall_room(township.pk))
            assert [p["peer"] for p in room["peers"]] == [f"u{township.pk}"]

            left = await client.post(reverse("consult:precall-leave"))
            assert left.status_code == 204
            await asyncio.sleep(0)
            assert service.sfu.health()["peers"] == 0  # the empty room is gone too
            # leaving twice, or with nothing published, is fine
            assert (await client.post(reverse("consult:precall-leave"))).status_code == 204
    finally:
        await pc.close()
        await runner.cleanup()
        from consult.media import loopback

        loopback.uninstall()
