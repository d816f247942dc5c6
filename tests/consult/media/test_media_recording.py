"""Recording with consent: the forwarded Opus and VP8 muxed into WebM, never decoded."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import aiortc.rtcrtpreceiver
import av
import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.utils import timezone

from association.models import Institution
from consult.models import ConsultExpert, ExpertStatus, Recording, Status, TargetKind
from consult.numbering import consult_create_numbered
from objectstore import get_store
from tests.consult.media.media_clients import call, publish, wait_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]


@pytest.fixture
def live_consult(actors, residents):
    county = Institution.objects.get(code="county")
    consult = consult_create_numbered(
        patient=residents["刘桂兰"],
        requesting_institution=Institution.objects.get(code="xiba"),
        requested_by=actors.township,
        question="请会诊。",
        mode="video",
        target_kind=TargetKind.EXPERT,
        target_institution=county,
        status=Status.IN_PROGRESS,
        recording_consent=True,
    )
    ConsultExpert.objects.create(
        consult=consult,
        user=actors.specialist,
        institution=county,
        status=ExpertStatus.ACCEPTED,
        lead=True,
    )
    return consult, actors.township.pk


async def test_a_recorded_publication_becomes_a_webm_with_both_streams_and_no_decoder_ran(
    media, live_consult, monkeypatch, tmp_path: Path
):
    consult, user_id = live_consult
    decoders: list[object] = []
    original = aiortc.rtcrtpreceiver.get_decoder

    def spy(codec):  # every aiortc decoder in this process is created here
        decoders.append(codec)
        return original(codec)

    monkeypatch.setattr(aiortc.rtcrtpreceiver, "get_decoder", spy)
    room = f"consult-{consult.pk}"
    publisher = await publish(
        media.base,
        media.secret,
        room,
        f"u{user_id}",
        record=True,
        consult_id=consult.pk,
        user_id=user_id,
    )
    try:
        publication = media.sfu.rooms[room].peers[f"u{user_id}"].publication
        assert publication.recorder is not None
        await wait_for(
            lambda: (
                publication.recorder.packets["video"] >= 15
                and publication.recorder.packets["audio"] >= 40
            ),
            timeout=5.0,
            what="recorded packets",
        )
        spool = publication.recorder.path
        status, _ = await call(
            media.base, media.secret, "DELETE", f"/rooms/{room}/peers/u{user_id}"
        )
        assert status == 204
        await media.sfu.drain()
    finally:
        await publisher.close()
    assert decoders == []
    assert not spool.exists()

    recording = await sync_to_async(Recording.objects.get)(consult_id=consult.pk)
    assert recording.participant_id == user_id
    assert recording.object_key.startswith("recordings/")
    assert recording.content_type == "video/webm"
    retention = dt.timedelta(days=settings.CONSULT_RECORDING_RETENTION_DAYS)
    assert recording.retain_until == timezone.localdate() + retention
    assert recording.ended_at > recording.started_at

    path = tmp_path / "recording.webm"
    path.write_bytes(b"".join(get_store().open(recording.object_key)))
    assert path.stat().st_size == recording.size
    with av.open(str(path)) as container:
        assert container.format.name.startswith("matroska")
        kinds = {s.type: s.codec_context.name for s in container.streams}
        assert kinds == {"video": "vp8", "audio": "opus"}
        counts = {"video": 0, "audio": 0}
        for packet in container.demux():
            if packet.size:
                counts[packet.stream.type] += 1
        assert counts["video"] >= 15
        assert counts["audio"] >= 40
        video = container.streams.video[0]
        assert (video.codec_context.width, video.codec_context.height) == (320, 240)
    with av.open(str(path)) as container:  # and it plays: the first picture decodes
        frame = next(container.decode(video=0))
        assert (frame.width, frame.height) == (320, 240)
