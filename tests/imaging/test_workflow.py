"""The reading workflow through its services: request, images, worklist, claim, report, amend."""

from __future__ import annotations

import datetime as dt
import re

import pydicom
import pytest
from django.utils import timezone, translation
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from accounts.models import User
from association.models import DiagnosticCentre, Institution, Membership, Role
from audit.models import AuditEvent, Outcome
from imaging.ingest import Origin, instance_ingest
from imaging.models import ImagingRequest, Priority, ReportVersion, RequestStatus, Study
from imaging.services import (
    imaging_request_attach_study,
    imaging_request_cancel,
    imaging_request_create,
    report_amend,
    report_save_draft,
    report_sign,
    worklist_claim,
    worklist_release,
)
from imaging.workflow_selectors import (
    reading_case_for_user,
    request_get_for_user,
    requests_for_clinic,
    worklist_for_user,
)
from realtime.models import Notification, Severity
from records.models import Consent, ConsentScope, TimelineEvent
from records.selectors import AccessDenied, patient_get_for_user
from records.services import InvalidRecord

pytestmark = pytest.mark.django_db


# --- Fixtures -------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _english():
    """Messages are matched in English (the default language is Chinese)."""
    with translation.override("en"):
        yield


@pytest.fixture
def centre():
    return DiagnosticCentre.objects.get(code="qingshan-imaging")


@pytest.fixture
def liu(residents):
    """A Xiba resident who consented to association-wide sharing."""
    return residents["刘桂兰"]


@pytest.fixture
def chen(residents):
    """A Xiba resident without any consent yet."""
    return residents["陈志强"]


@pytest.fixture
def radiologist2(centre):
    user = User.objects.create_user(username="radiologist2", display_name="周医师")
    Membership.objects.create(
        user=user, institution=centre.host, centre=centre, role=Role.RADIOLOGIST
    )
    return user


@pytest.fixture
def make_request(actors, centre):
    def _make(patient, *, priority=Priority.ROUTINE, record_consent=False, actor=None, **extra):
        fields = {
            "modality": "CT",
            "exam": "Head CT without contrast",
            "clinical_question": "Sudden headache since this morning.",
        } | extra
        return imaging_request_create(
            actor=actor or actors.township,
            patient_id=patient.pk,
            centre=centre,
            priority=priority,
            record_consent=record_consent,
            **fields,
        )

    return _make


@pytest.fixture
def send_images(actors, tmp_path):
    """Ingest CT_small.dcm as the modality would send it, with the request's accession number."""

    def _send(imaging_request, *, accession=None):
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        ds.AccessionNumber = (
            accession if accession is not None else imaging_request.accession_number
        )
        ds.StudyInstanceUID = generate_uid()
        ds.SeriesInstanceUID = generate_uid()
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        path = tmp_path / f"{ds.SOPInstanceUID}.dcm"
        ds.save_as(path)
        origin = Origin(
            institution=Institution.objects.get(code="xiba"), channel="upload", user=actors.township
        )
        with open(path, "rb") as f:
            result = instance_ingest(f, origin=origin)
        return result.instance.series.study

    return _send


@pytest.fixture
def read_request(actors, liu, make_request, send_images):
    """A request with images, claimed by the radiologist."""
    imaging_request = make_request(liu)
    send_images(imaging_request)
    worklist_claim(actor=actors.radiologist, request_id=imaging_request.pk)
    return imaging_request


def _draft(actor, imaging_request, **changes):
    fields = {
        "template": "ct-head",
        "findings": "No abnormal density in the brain parenchyma.",
        "impression": "Unremarkable non-contrast CT of the head.",
        "critical": False,
        "mutual_recognition": True,
        "valid_until": timezone.localdate() + dt.timedelta(days=30),
        "measurements": [
            {"uid": "m1", "type": "length", "seriesUid": "1.2", "stats": {"length": 12.5}}
        ],
        "key_images": [{"studyUid": "1.1", "seriesUid": "1.2", "sopUid": "1.3", "frame": 1}],
    } | changes
    return report_save_draft(actor=actor, request_id=imaging_request.pk, **fields)


# --- Requesting -----------------------------------------------------------------------------


def test_township_doctor_requests_imaging_with_an_accession_number_and_a_share(
    actors, liu, centre, make_request
):
    imaging_request = make_request(liu, priority=Priority.URGENT)

    assert re.fullmatch(r"IR\d{6}\d{4}", imaging_request.accession_number)
    assert len(imaging_request.accession_number) <= 16
    assert imaging_request.status == RequestStatus.REQUESTED
    assert imaging_request.requesting_institution.code == "xiba"
    assert imaging_request.share is not None
    assert imaging_request.share.grantee_centre == centre
    assert imaging_request.share.reference == imaging_request.accession_number
    assert TimelineEvent.objects.filter(patient=liu, kind="imaging.requested").exists()


def test_accession_numbers_are_unique_and_follow_each_other(liu, make_request):
    first = make_request(liu)
    second = make_request(liu)
    assert first.accession_number != second.accession_number
    assert int(second.accession_number[-4:]) == int(first.accession_number[-4:]) + 1


def test_the_centres_radiologists_are_notified_with_severity_by_priority(actors, liu, make_request):
    make_request(liu, priority=Priority.EMERGENCY)
    note = Notification.objects.get(recipient=actors.radiologist, kind="imaging.requested")
    assert note.severity == Severity.CRITICAL
    assert note.patient_id == liu.pk
    assert "刘桂兰" in note.title


def test_notification_titles_are_in_the_recipients_language(actors, liu, make_request):
    radiologist = actors.radiologist
    radiologist.preferred_language = "en"
    radiologist.save(update_fields=["preferred_language"])
    make_request(liu, priority=Priority.URGENT)
    note = Notification.objects.get(recipient=radiologist, kind="imaging.requested")
    assert note.title.startswith("Urgent imaging request")


def test_without_consent_the_request_is_refused_and_audited(actors, chen, make_request):
    with pytest.raises(InvalidRecord, match="consent"):
        make_request(chen)
    assert not ImagingRequest.objects.filter(patient=chen).exists()
    assert AuditEvent.objects.filter(
        action="imaging.request.create", outcome=Outcome.FAILED, patient_id=chen.pk
    ).exists()


def test_the_imaging_consent_is_recorded_in_the_same_step(chen, centre, make_request):
    imaging_request = make_request(chen, record_consent=True)

    consent = Consent.objects.get(patient=chen)
    assert consent.scope == ConsentScope.IMAGING
    assert consent.grantee_institution == centre.host
    assert imaging_request.share.consent == consent


def test_a_bad_priority_or_empty_exam_is_refused(liu, make_request):
    with pytest.raises(InvalidRecord):
        make_request(liu, priority="whenever")
    with pytest.raises(InvalidRecord):
        make_request(liu, exam="   ")
    assert not ImagingRequest.objects.exists()


def test_a_radiologist_cannot_request_imaging(actors, liu, make_request):
    with pytest.raises(AccessDenied):
        make_request(liu, actor=actors.radiologist)


# --- Images arrive ----------------------------------------------------------------------------


def test_a_study_sent_with_the_accession_number_answers_the_request(liu, make_request, send_images):
    imaging_request = make_request(liu)
    study = send_images(imaging_request)

    imaging_request.refresh_from_db()
    assert study.request_id == imaging_request.pk
    assert study.patient_id == liu.pk
    assert imaging_request.status == RequestStatus.IMAGES_RECEIVED
    assert imaging_request.images_received_at is not None


def test_the_clinic_attaches_a_study_sent_without_accession_number(
    actors, liu, make_request, send_images
):
    imaging_request = make_request(liu)
    study = send_images(imaging_request, accession="")
    assert study.request_id is None

    imaging_request_attach_study(
        actor=actors.township, request_id=imaging_request.pk, study_uid=study.study_uid
    )

    study.refresh_from_db()
    imaging_request.refresh_from_db()
    assert study.request_id == imaging_request.pk
    assert study.patient_id == liu.pk
    assert imaging_request.status == RequestStatus.IMAGES_RECEIVED


def test_a_study_of_another_resident_cannot_be_attached(
    actors, liu, residents, make_request, send_images
):
    other = make_request(residents["杨丽"], record_consent=True)
    study = send_images(other)
    imaging_request = make_request(liu)
    with pytest.raises(InvalidRecord, match="another resident"):
        imaging_request_attach_study(
            actor=actors.township, request_id=imaging_request.pk, study_uid=study.study_uid
        )


# --- The worklist -------------------------------------------------------------------------------


def test_worklist_puts_emergencies_first_then_the_longest_waiting(actors, liu, make_request):
    now = timezone.now()
    routine_old = make_request(liu, priority=Priority.ROUTINE)
    urgent_new = make_request(liu, priority=Priority.URGENT)
    urgent_old = make_request(liu, priority=Priority.URGENT)
    emergency = make_request(liu, priority=Priority.EMERGENCY)
    for imaging_request, minutes in [
        (routine_old, 600),
        (urgent_new, 10),
        (urgent_old, 300),
        (emergency, 1),
    ]:
        ImagingRequest.objects.filter(pk=imaging_request.pk).update(
            created_at=now - dt.timedelta(minutes=minutes)
        )

    items = worklist_for_user(actor=actors.radiologist)

    assert [i.request.pk for i in items] == [
        emergency.pk,
        urgent_old.pk,
        urgent_new.pk,
        routine_old.pk,
    ]
    by_pk = {i.request.pk: i for i in items}
    assert by_pk[urgent_old.pk].overdue  # 5 h against a 4 h target
    assert not by_pk[urgent_new.pk].overdue
    assert by_pk[emergency.pk].target_minutes == 30
    assert by_pk[routine_old.pk].target_minutes == 24 * 60
    assert by_pk[routine_old.pk].waiting_minutes >= 600


def test_a_clinic_doctor_has_no_worklist(actors):
    with pytest.raises(AccessDenied):
        worklist_for_user(actor=actors.township)
    assert AuditEvent.objects.filter(
        action="imaging.worklist", outcome=Outcome.DENIED, actor_username="township"
    ).exists()


def test_only_one_radiologist_reads_a_study_at_a_time(actors, radiologist2, read_request):
    with pytest.raises(InvalidRecord, match="already reading"):
        worklist_claim(actor=radiologist2, request_id=read_request.pk)
    with pytest.raises(InvalidRecord, match="release"):
        worklist_release(actor=radiologist2, request_id=read_request.pk)
    read_request.refresh_from_db()
    assert read_request.claimed_by == actors.radiologist
    assert read_request.status == RequestStatus.IN_PROGRESS


def test_a_released_study_can_be_claimed_by_a_colleague(actors, radiologist2, read_request):
    worklist_release(actor=actors.radiologist, request_id=read_request.pk)
    claimed = worklist_claim(actor=radiologist2, request_id=read_request.pk)
    assert claimed.claimed_by == radiologist2


def test_a_stale_claim_can_be_taken_over(actors, radiologist2, read_request):
    ImagingRequest.objects.filter(pk=read_request.pk).update(
        claimed_at=timezone.now() - dt.timedelta(hours=2)
    )
    worklist_release(actor=radiologist2, request_id=read_request.pk)
    assert worklist_claim(actor=radiologist2, request_id=read_request.pk).claimed_by == radiologist2


def test_a_request_without_images_cannot_be_claimed(actors, liu, make_request):
    imaging_request = make_request(liu)
    with pytest.raises(InvalidRecord, match="No images"):
        worklist_claim(actor=actors.radiologist, request_id=imaging_request.pk)


# --- Reporting --------------------------------------------------------------------------------


def test_sign_freezes_a_version_reports_the_request_and_notifies_the_requester(
    actors, liu, read_request
):
    _draft(actors.radiologist, read_request)
    version = report_sign(actor=actors.radiologist, request_id=read_request.pk)

    read_request.refresh_from_db()
    assert version.version == 1
    assert read_request.status == RequestStatus.REPORTED
    assert read_request.reported_at is not None
    report = read_request.report
    assert report.measurements[0]["uid"] == "m1"
    assert report.key_images[0]["sopUid"] == "1.3"
    note = Notification.objects.get(recipient=actors.township, kind="imaging.report_ready")
    assert note.severity == Severity.INFO
    assert note.link == f"/imaging/requests/{read_request.pk}/"
    event = TimelineEvent.objects.get(patient=liu, kind="imaging.report_signed")
    assert event.title == "Imaging report signed"
    assert event.link == f"/imaging/requests/{read_request.pk}/"
    assert AuditEvent.objects.filter(
        action="imaging.report.sign", outcome=Outcome.ALLOWED, patient_id=liu.pk
    ).exists()


def test_a_critical_finding_is_a_critical_notification(actors, read_request):
    _draft(actors.radiologist, read_request, critical=True)
    report_sign(actor=actors.radiologist, request_id=read_request.pk)
    note = Notification.objects.get(recipient=actors.township, kind="imaging.report_ready")
    assert note.severity == Severity.CRITICAL


def test_only_the_claiming_radiologist_writes_the_report(actors, radiologist2, read_request):
    with pytest.raises(InvalidRecord, match="Claim"):
        _draft(radiologist2, read_request)
    with pytest.raises(AccessDenied):
        _draft(actors.township, read_request)


def test_an_empty_impression_cannot_be_signed(actors, read_request):
    _draft(actors.radiologist, read_request, impression="")
    with pytest.raises(InvalidRecord, match="impression"):
        report_sign(actor=actors.radiologist, request_id=read_request.pk)


def test_a_past_validity_and_unreadable_viewer_data_are_refused(actors, read_request):
    with pytest.raises(InvalidRecord, match="validity"):
        _draft(actors.radiologist, read_request, valid_until=dt.date(2000, 1, 1))
    with pytest.raises(InvalidRecord, match="viewer"):
        _draft(actors.radiologist, read_request, measurements=["not an object"])


def test_amending_adds_version_two_and_keeps_version_one(actors, radiologist2, read_request):
    _draft(actors.radiologist, read_request)
    report_sign(actor=actors.radiologist, request_id=read_request.pk)

    version = report_amend(
        actor=radiologist2,
        request_id=read_request.pk,
        reason="Small subdural haematoma missed on first reading.",
        impression="Small left subdural haematoma.",
        critical=True,
    )

    versions = list(ReportVersion.objects.filter(report__request=read_request))
    assert [v.version for v in versions] == [1, 2]
    assert versions[0].impression == "Unremarkable non-contrast CT of the head."
    assert versions[0].critical is False
    assert version.impression == "Small left subdural haematoma."
    assert version.author == radiologist2
    assert version.amendment_reason.startswith("Small subdural")
    note = Notification.objects.get(recipient=actors.township, kind="imaging.report_amended")
    assert note.severity == Severity.CRITICAL


def test_an_amendment_needs_a_reason_and_a_change(actors, read_request):
    _draft(actors.radiologist, read_request)
    report_sign(actor=actors.radiologist, request_id=read_request.pk)
    with pytest.raises(InvalidRecord, match="why"):
        report_amend(actor=actors.radiologist, request_id=read_request.pk, reason="", critical=True)
    with pytest.raises(InvalidRecord, match="Nothing"):
        report_amend(actor=actors.radiologist, request_id=read_request.pk, reason="Typo")
    with pytest.raises(InvalidRecord, match="cannot be amended"):
        report_amend(
            actor=actors.radiologist, request_id=read_request.pk, reason="x", author="someone"
        )


# --- Who sees what --------------------------------------------------------------------------


def test_outsider_cannot_see_the_request_and_it_is_audited(actors, read_request):
    with pytest.raises(AccessDenied):
        request_get_for_user(actor=actors.outsider, request_id=read_request.pk)
    assert AuditEvent.objects.filter(
        action="imaging.request.view",
        outcome=Outcome.DENIED,
        actor_username="outsider",
        resource_id=str(read_request.pk),
    ).exists()


def test_another_clinic_cannot_see_a_request_for_a_resident_not_shared_with_it(
    actors, chen, make_request
):
    imaging_request = make_request(chen, record_consent=True)
    with pytest.raises(AccessDenied):
        request_get_for_user(actor=actors.village2, request_id=imaging_request.pk)
    assert imaging_request not in requests_for_clinic(actor=actors.village2)


def test_another_clinic_cannot_cancel_or_attach(actors, liu, make_request):
    imaging_request = make_request(liu)
    # 刘桂兰's record is shared association-wide, so Dongshan sees the request, but it is
    # not theirs to change.
    request_get_for_user(actor=actors.village, request_id=imaging_request.pk)
    with pytest.raises(AccessDenied):
        imaging_request_cancel(actor=actors.village, request_id=imaging_request.pk, reason="x")
    with pytest.raises(AccessDenied):
        imaging_request_attach_study(
            actor=actors.village, request_id=imaging_request.pk, study_uid="1.2.3"
        )
    assert AuditEvent.objects.filter(
        action="imaging.request.cancel", outcome=Outcome.DENIED, actor_username="village"
    ).exists()


def test_a_clinic_doctor_cannot_claim_or_open_the_reading_page(actors, read_request):
    with pytest.raises(AccessDenied):
        worklist_claim(actor=actors.township, request_id=read_request.pk)
    with pytest.raises(AccessDenied):
        reading_case_for_user(actor=actors.township, request_id=read_request.pk)


def test_the_radiologist_sees_the_resident_only_through_the_share(actors, chen, make_request):
    with pytest.raises(AccessDenied):
        patient_get_for_user(actor=actors.radiologist, patient_id=chen.pk)

    imaging_request = make_request(chen, record_consent=True)
    assert patient_get_for_user(actor=actors.radiologist, patient_id=chen.pk) == chen

    imaging_request_cancel(
        actor=actors.township, request_id=imaging_request.pk, reason="Patient went to the county"
    )
    with pytest.raises(AccessDenied):
        patient_get_for_user(actor=actors.radiologist, patient_id=chen.pk)
    imaging_request.refresh_from_db()
    assert imaging_request.status == RequestStatus.CANCELLED


def test_priors_of_the_resident_are_listed_beside_the_current_study(
    actors, liu, make_request, send_images
):
    earlier = make_request(liu, modality="DX", exam="Chest PA")
    prior = send_images(earlier)
    current = make_request(liu)
    send_images(current)
    worklist_claim(actor=actors.radiologist, request_id=current.pk)

    case = reading_case_for_user(actor=actors.radiologist, request_id=current.pk)

    assert case.study is not None
    assert [p.study_uid for p in case.priors] == [prior.study_uid]
    assert case.editable


def test_a_cancelled_request_cannot_be_cancelled_again(actors, liu, make_request):
    imaging_request = make_request(liu)
    imaging_request_cancel(actor=actors.township, request_id=imaging_request.pk, reason="Moved")
    with pytest.raises(InvalidRecord, match="open request"):
        imaging_request_cancel(actor=actors.township, request_id=imaging_request.pk, reason="x")
    assert Study.objects.filter(request=imaging_request).count() == 0
