"""Consult recordings: registered by the media service, played back by participants, purged.

The media service's part is played here as it happens: it puts the WebM bytes into object
storage, then calls ``recording_register`` with the key.
"""

from __future__ import annotations

import datetime as dt
import io
import os

import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone

from association.models import Institution
from audit.models import AuditEvent, Outcome
from consult.models import ConsultEvent, ConsultExpert, ExpertStatus, Recording, Status, TargetKind
from consult.numbering import consult_create_numbered
from consult.recordings import (
    RangeNotSatisfiable,
    parse_range,
    recording_open_for_user,
    recording_register,
    recordings_for_user,
    recordings_purge_expired,
)
from objectstore import ObjectNotFound, get_store
from records.selectors import AccessDenied, NotFound
from records.services import InvalidRecord

pytestmark = pytest.mark.django_db

VIDEO = os.urandom(3000)  # stands in for WebM bytes: only their order matters here


@pytest.fixture
def consult(actors, residents):
    """A live consult about 刘桂兰, with recording consent, the specialist accepted."""
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
    return consult


def _store(data: bytes = VIDEO):
    return get_store().put(io.BytesIO(data), prefix="consult/recordings", content_type="video/webm")


def _register(consult, user, stored=None):
    stored = stored or _store()
    started = timezone.now() - dt.timedelta(minutes=10)
    return recording_register(
        consult_id=consult.pk,
        user_id=user.pk if user else None,
        object_key=stored.key,
        size=stored.size,
        sha256=stored.sha256,
        started_at=started,
        ended_at=started + dt.timedelta(minutes=9),
    )


@pytest.fixture
def recording(consult, actors):
    return _register(consult, actors.specialist)


# --- Registration ---------------------------------------------------------------------------


@override_settings(CONSULT_RECORDING_RETENTION_DAYS=30)
def test_the_media_service_registers_a_recording(consult, actors):
    recording = _register(consult, actors.specialist)

    assert recording.consult == consult
    assert recording.participant == actors.specialist
    assert recording.retain_until == timezone.localdate() + dt.timedelta(days=30)
    assert recording.size == len(VIDEO)
    assert recording.content_type == "video/webm"
    assert ConsultEvent.objects.filter(consult=consult, kind="recording.stored").exists()
    event = AuditEvent.objects.get(action="consult.recording.store", resource_id=recording.pk)
    assert event.actor is None
    assert event.outcome == Outcome.ALLOWED
    assert event.patient_id == consult.patient_id


def test_registering_the_same_object_twice_keeps_one_row(consult, actors):
    stored = _store()
    first = _register(consult, actors.specialist, stored)
    assert _register(consult, actors.specialist, stored).pk == first.pk
    assert Recording.objects.filter(consult=consult).count() == 1


def test_a_recording_without_consent_is_refused_and_deleted(consult, actors):
    consult.recording_consent = False
    consult.save(update_fields=["recording_consent"])
    stored = _store()
    with pytest.raises(InvalidRecord, match="did not consent"):
        _register(consult, actors.specialist, stored)
    with pytest.raises(ObjectNotFound):
        get_store().stat(stored.key)
    assert AuditEvent.objects.filter(
        action="consult.recording.store", outcome=Outcome.FAILED
    ).exists()


def test_a_malformed_key_is_refused(consult, actors):
    with pytest.raises(InvalidRecord, match="malformed"):
        recording_register(
            consult_id=consult.pk,
            user_id=actors.specialist.pk,
            object_key="../../etc/passwd",
            size=1,
            sha256="0" * 64,
            started_at=timezone.now(),
            ended_at=None,
        )
    assert not Recording.objects.filter(consult=consult).exists()


def test_a_wrong_size_or_a_missing_object_is_refused(consult, actors):
    stored = _store()
    common = {"consult_id": consult.pk, "user_id": None, "sha256": stored.sha256}
    now = timezone.now()
    with pytest.raises(InvalidRecord, match="size differs"):
        recording_register(**common, object_key=stored.key, size=5, started_at=now, ended_at=None)
    get_store().delete(stored.key)
    with pytest.raises(InvalidRecord, match="not in object storage"):
        recording_register(
            **common, object_key=stored.key, size=stored.size, started_at=now, ended_at=None
        )


def test_a_recording_of_a_non_participant_is_refused(consult, actors):
    with pytest.raises(InvalidRecord, match="does not take part"):
        _register(consult, actors.outsider)


def test_a_recording_of_an_unknown_consult_is_not_found(actors):
    stored = _store()
    with pytest.raises(NotFound):
        recording_register(
            consult_id=999_999,
            user_id=None,
            object_key=stored.key,
            size=stored.size,
            sha256=stored.sha256,
            started_at=timezone.now(),
            ended_at=None,
        )


# --- Listing and playback ---------------------------------------------------------------------


def test_participants_list_the_recordings(consult, actors, recording):
    assert recordings_for_user(actor=actors.township, consult_id=consult.pk) == [recording]
    assert recordings_for_user(actor=actors.specialist, consult_id=consult.pk) == [recording]


def test_the_coordinator_sees_the_consult_but_not_its_recordings(consult, actors, recording):
    with pytest.raises(AccessDenied, match="requesting doctor and the experts"):
        recordings_for_user(actor=actors.coordinator, consult_id=consult.pk)
    assert AuditEvent.objects.filter(
        action="consult.recording.list", outcome=Outcome.DENIED, actor=actors.coordinator
    ).exists()


def test_the_township_doctor_plays_a_recording_and_it_is_audited(actors, recording):
    playback = recording_open_for_user(actor=actors.township, recording_id=recording.pk)

    assert b"".join(playback.chunks) == VIDEO
    assert (playback.start, playback.end, playback.total, playback.partial) == (
        0,
        len(VIDEO) - 1,
        len(VIDEO),
        False,
    )
    event = AuditEvent.objects.get(action="consult.recording.play", actor=actors.township)
    assert event.outcome == Outcome.ALLOWED
    assert event.resource_id == str(recording.pk)


def test_outsider_cannot_play_and_is_audited(actors, recording):
    with pytest.raises(AccessDenied):
        recording_open_for_user(actor=actors.outsider, recording_id=recording.pk)
    assert AuditEvent.objects.filter(
        action="consult.recording.play", outcome=Outcome.DENIED, actor=actors.outsider
    ).exists()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("", None),
        ("bytes=0-99", (0, 99)),
        ("bytes=100-", (100, 2999)),
        ("bytes=-500", (2500, 2999)),
        ("bytes=2990-5000", (2990, 2999)),
        ("bytes=-5000", (0, 2999)),
        ("bytes=5-1", None),  # malformed: ignored, the whole file
        ("bytes=0-1,5-9", None),  # several ranges: the whole file
        ("items=0-1", None),
    ],
)
def test_range_headers(header, expected):
    assert parse_range(header, 3000) == expected


@pytest.mark.parametrize("header", ["bytes=3000-", "bytes=-0"])
def test_unsatisfiable_ranges(header):
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, 3000)


# --- The playback endpoint --------------------------------------------------------------------


@pytest.fixture
def login_as(client, actors):
    def _login(username):
        client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
        client.force_login(getattr(actors, username))
        return client

    return _login


def test_the_player_gets_the_whole_recording(login_as, recording):
    response = login_as("township").get(f"/consults/recordings/{recording.pk}/")
    assert response.status_code == 200
    assert response["Content-Type"] == "video/webm"
    assert response["Accept-Ranges"] == "bytes"
    assert response["Content-Length"] == str(len(VIDEO))
    assert b"".join(response.streaming_content) == VIDEO


def test_the_player_seeks_with_a_range(login_as, recording):
    response = login_as("specialist").get(
        f"/consults/recordings/{recording.pk}/", headers={"Range": "bytes=1000-1099"}
    )
    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes 1000-1099/{len(VIDEO)}"
    assert response["Content-Length"] == "100"
    assert b"".join(response.streaming_content) == VIDEO[1000:1100]


def test_a_head_request_gets_the_size_without_the_bytes(login_as, recording):
    response = login_as("township").head(f"/consults/recordings/{recording.pk}/")
    assert response.status_code == 200
    assert response["Content-Length"] == str(len(VIDEO))
    assert b"".join(response.streaming_content) == b""


def test_a_range_past_the_end_is_a_416(login_as, recording):
    response = login_as("township").get(
        f"/consults/recordings/{recording.pk}/", headers={"Range": "bytes=9000-"}
    )
    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{len(VIDEO)}"


def test_outsider_gets_403_on_a_recording(login_as, recording):
    assert login_as("outsider").get(f"/consults/recordings/{recording.pk}/").status_code == 403


def test_an_unknown_recording_is_a_404(login_as):
    assert login_as("township").get("/consults/recordings/999999/").status_code == 404


def test_the_recordings_page_has_a_player_per_recording(login_as, consult, recording):
    html = login_as("township").get(f"/consults/{consult.pk}/recordings/").content.decode()
    assert f'src="/consults/recordings/{recording.pk}/"' in html


# --- Retention --------------------------------------------------------------------------------


def test_expired_recordings_are_purged(actors, consult, recording):
    kept = _register(consult, actors.township)
    Recording.objects.filter(pk=recording.pk).update(
        retain_until=timezone.localdate() - dt.timedelta(days=1)
    )

    assert recordings_purge_expired() == 1

    recording.refresh_from_db()
    assert recording.deleted_at is not None
    with pytest.raises(ObjectNotFound):
        get_store().stat(recording.object_key)
    get_store().stat(kept.object_key)  # still there
    assert AuditEvent.objects.filter(
        action="consult.recording.purge", resource_id=recording.pk, actor=None
    ).exists()
    assert recordings_purge_expired() == 0
    assert recordings_for_user(actor=actors.township, consult_id=consult.pk) == [kept]


def test_a_purged_recording_cannot_be_played(actors, recording):
    later = timezone.now() + dt.timedelta(days=settings.CONSULT_RECORDING_RETENTION_DAYS + 2)
    assert recordings_purge_expired(now=later) == 1
    with pytest.raises(NotFound, match="retention period"):
        recording_open_for_user(actor=actors.township, recording_id=recording.pk)
