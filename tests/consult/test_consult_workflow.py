"""The consult workflow through its services, with the demo's named actors.

The demo association pre-reviews consults (a coordinator routes them); tests of the
direct path switch that policy off. Residents: 刘桂兰 (Xiba, consented to association-wide
sharing), 陈志强 (Xiba, no consent yet), 张三 (Dongshan, the village doctor's).
"""

from __future__ import annotations

import datetime as dt
import io
import re

import pydicom
import pytest
from django.utils import timezone, translation
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from accounts.models import User
from association.models import Association, Department, Institution, Membership, Role, Specialty
from association.selectors import actor_scope
from audit.models import AuditEvent, Outcome
from consult.access import RoomRole, room_role
from consult.demo import demo_seed_consults
from consult.models import (
    Attachment,
    AttachmentKind,
    Consult,
    ConsultEvent,
    ExpertStatus,
    Mode,
    Priority,
    Slot,
    Status,
    TargetKind,
)
from consult.selectors import (
    consult_detail_for_user,
    consult_list_for_user,
    expert_candidates,
    slots_for_expert,
)
from consult.services import (
    consult_attach_file,
    consult_attach_study,
    consult_book,
    consult_cancel,
    consult_no_show,
    consult_request,
    consult_respond,
    consult_resubmit,
    consult_review,
    consult_start,
    slot_create,
)
from imaging.ingest import Origin, instance_ingest
from imaging.selectors import studies_visible_to
from objectstore import get_store
from realtime.models import Notification, Severity
from records.models import Consent, ConsentScope, PatientShare, ShareReason, TimelineEvent
from records.selectors import AccessDenied, patient_get_for_user
from records.services import InvalidRecord

pytestmark = pytest.mark.django_db


# --- Fixtures -------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


@pytest.fixture
def liu(residents):
    return residents["刘桂兰"]


@pytest.fixture
def chen(residents):
    return residents["陈志强"]


@pytest.fixture
def direct():
    """The association sends consults straight to the experts (no pre-review)."""
    Association.objects.filter(code="qingshan").update(consult_prereview=False)


@pytest.fixture
def cardio2():
    """A second cardiologist of the county hospital's cardiology department."""
    user = User.objects.create_user(username="cardio2", display_name="钱主任")
    dept = Department.objects.get(institution__code="county", name="心内科")
    Membership.objects.create(
        user=user, institution=dept.institution, department=dept, role=Role.SPECIALIST
    )
    return user


@pytest.fixture
def generalist():
    """A general practitioner of the county hospital (another department)."""
    county = Institution.objects.get(code="county")
    dept = Department.objects.create(
        institution=county, name="全科医学科", specialty=Specialty.objects.get(code="general")
    )
    user = User.objects.create_user(username="gp-county", display_name="李主任")
    Membership.objects.create(user=user, institution=county, department=dept, role=Role.SPECIALIST)
    return user


@pytest.fixture
def ask(actors, liu):
    def _ask(patient=None, *, actor=None, **changes):
        fields = {
            "question": "Chest tightness for two weeks; ST depression on the ECG. Refer?",
            "history": "Hypertension for 5 years.",
            "priority": Priority.URGENT,
            "mode": Mode.VIDEO,
            "target_kind": TargetKind.EXPERT,
            "expert_ids": [actors.specialist.pk],
        } | changes
        return consult_request(
            actor=actor or actors.township, patient_id=(patient or liu).pk, **fields
        )

    return _ask


def future_slot(expert, *, hours=24, minutes=30):
    start = timezone.now() + dt.timedelta(hours=hours)
    return slot_create(actor=expert, start=start, end=start + dt.timedelta(minutes=minutes))


def notes(user, kind):
    return Notification.objects.filter(recipient=user, kind=kind)


def kinds(consult):
    return list(ConsultEvent.objects.filter(consult=consult).values_list("kind", flat=True))


# --- Requesting and pre-review ----------------------------------------------------------------


def test_township_doctor_requests_a_consult_that_waits_for_pre_review(actors, liu, ask):
    before = timezone.now()
    consult = ask()

    assert re.fullmatch(r"HZ\d{6}\d{4}", consult.number)
    assert consult.status == Status.PENDING_REVIEW
    assert consult.requesting_institution.code == "xiba"
    assert consult.requested_by == actors.township
    assert not consult.experts.exists()  # nobody is asked before the coordinator routes
    assert before + dt.timedelta(hours=4) <= consult.respond_due_at
    assert consult.respond_due_at <= timezone.now() + dt.timedelta(hours=4)
    assert consult.complete_due_at - consult.created_at == dt.timedelta(hours=24)
    assert kinds(consult) == ["requested"]
    assert TimelineEvent.objects.filter(patient=liu, kind="consult.requested").exists()
    review = notes(actors.coordinator, "consult.review").get()
    assert review.severity == Severity.URGENT
    assert review.link == f"/consults/{consult.pk}/" or review.link.endswith(f"/{consult.pk}/")
    assert not notes(actors.specialist, "consult.invited").exists()
    assert AuditEvent.objects.filter(
        action="consult.request", outcome=Outcome.ALLOWED, resource_id=str(consult.pk)
    ).exists()


def test_consult_numbers_are_unique_and_follow_each_other(ask):
    first, second = ask(), ask()
    assert first.number != second.number
    assert int(second.number[-4:]) == int(first.number[-4:]) + 1


def test_the_coordinator_routes_and_the_expert_is_invited_with_a_share(actors, chen, ask):
    consult = ask(chen, consent_given=True)
    with pytest.raises(AccessDenied):
        patient_get_for_user(actor=actors.specialist, patient_id=chen.pk)

    consult = consult_review(
        actor=actors.coordinator, consult_id=consult.pk, decision="route", note="Complete."
    )

    assert consult.status == Status.PENDING_EXPERT
    assert consult.reviewed_by == actors.coordinator
    assert consult.escalation_level == 0
    expert = consult.experts.get()
    assert (expert.user, expert.status, expert.lead) == (
        actors.specialist,
        ExpertStatus.INVITED,
        True,
    )
    share = PatientShare.objects.get(patient=chen, reason=ShareReason.CONSULT)
    assert share.reference == consult.number
    assert share.grantee_user == actors.specialist
    assert patient_get_for_user(actor=actors.specialist, patient_id=chen.pk) == chen
    assert notes(actors.specialist, "consult.invited").exists()
    assert notes(actors.township, "consult.routed").exists()
    assert kinds(consult) == ["requested", "routed"]


def test_the_consent_is_recorded_in_the_same_step(actors, chen, ask):
    ask(chen, consent_given=True)
    consent = Consent.objects.get(patient=chen)
    assert consent.scope == ConsentScope.CONSULT
    assert consent.grantee_association.code == "qingshan"
    assert consent.recorded_by == actors.township


def test_without_pre_review_the_experts_are_invited_at_once(actors, direct, ask):
    consult = ask()
    assert consult.status == Status.PENDING_EXPERT
    assert consult.experts.get().user == actors.specialist
    assert notes(actors.specialist, "consult.invited").get().severity == Severity.URGENT
    assert not notes(actors.coordinator, "consult.review").exists()


def test_the_coordinator_returns_a_request_and_the_requester_resubmits(actors, ask):
    consult = ask()
    consult = consult_review(
        actor=actors.coordinator,
        consult_id=consult.pk,
        decision="return",
        note="Attach the ECG please.",
    )
    assert consult.status == Status.RETURNED
    assert consult.review_note == "Attach the ECG please."
    assert "Attach the ECG" in notes(actors.township, "consult.returned").get().body

    consult = consult_resubmit(
        actor=actors.township, consult_id=consult.pk, question="Same question, ECG attached."
    )
    assert consult.status == Status.PENDING_REVIEW
    assert notes(actors.coordinator, "consult.review").count() == 2

    consult = consult_review(actor=actors.coordinator, consult_id=consult.pk, decision="route")
    assert consult.experts.get().user == actors.specialist  # the requester's proposal kept
    assert kinds(consult) == ["requested", "returned", "resubmitted", "routed"]


def test_the_coordinator_may_route_to_other_experts(actors, cardio2, ask):
    consult = ask()
    consult = consult_review(
        actor=actors.coordinator,
        consult_id=consult.pk,
        decision="route",
        expert_ids=[cardio2.pk, actors.specialist.pk],
    )
    assert consult.target_kind == TargetKind.MDT
    lead = consult.experts.get(lead=True)
    assert lead.user == cardio2


def test_a_stalled_consult_is_rerouted_and_the_first_expert_stands_down(
    actors, direct, cardio2, ask
):
    consult = ask()
    consult = consult_review(
        actor=actors.coordinator, consult_id=consult.pk, decision="route", expert_ids=[cardio2.pk]
    )
    old = consult.experts.get(user=actors.specialist)
    assert old.status == ExpertStatus.WITHDRAWN
    assert notes(actors.specialist, "consult.withdrawn").exists()
    assert not PatientShare.objects.filter(
        reference=consult.number, grantee_user=actors.specialist, revoked_at__isnull=True
    ).exists()
    assert consult.experts.get(user=cardio2).status == ExpertStatus.INVITED


# --- Targets ------------------------------------------------------------------------------------


def test_a_specialty_target_invites_that_departments_specialists(actors, direct, cardio2, ask):
    county = Institution.objects.get(code="county")
    cardiology = Specialty.objects.get(code="cardiology")
    consult = ask(
        target_kind=TargetKind.SPECIALTY,
        target_institution_id=county.pk,
        target_specialty_id=cardiology.pk,
        expert_ids=[],
    )
    invited = set(consult.experts.values_list("user__username", flat=True))
    assert invited == {"specialist", "cardio2"}
    assert not consult.experts.filter(lead=True).exists()


def test_the_first_specialist_to_accept_takes_a_specialty_consult(actors, direct, cardio2, ask):
    consult = ask(
        target_kind=TargetKind.SPECIALTY,
        target_institution_id=Institution.objects.get(code="county").pk,
        target_specialty_id=Specialty.objects.get(code="cardiology").pk,
        expert_ids=[],
    )
    consult = consult_respond(actor=cardio2, consult_id=consult.pk, accept=True)

    assert consult.status == Status.ACCEPTED
    assert consult.experts.get(user=cardio2).lead
    assert consult.experts.get(user=actors.specialist).status == ExpertStatus.WITHDRAWN
    assert notes(actors.specialist, "consult.withdrawn").exists()
    live = PatientShare.objects.filter(reference=consult.number, revoked_at__isnull=True)
    assert set(live.values_list("grantee_user__username", flat=True)) == {"cardio2"}


def test_an_mdt_is_accepted_when_the_lead_accepts(actors, direct, cardio2, generalist, ask):
    consult = ask(
        target_kind=TargetKind.MDT, expert_ids=[actors.specialist.pk, cardio2.pk, generalist.pk]
    )
    assert consult.experts.get(lead=True).user == actors.specialist

    consult = consult_respond(actor=cardio2, consult_id=consult.pk, accept=True)
    assert consult.status == Status.PENDING_EXPERT  # not the lead

    consult = consult_respond(actor=actors.specialist, consult_id=consult.pk, accept=True)
    assert consult.status == Status.ACCEPTED

    consult = consult_respond(actor=generalist, consult_id=consult.pk, accept=True)  # later
    assert consult.experts.filter(status=ExpertStatus.ACCEPTED).count() == 3
    assert room_role(user_id=generalist.pk, consult_id=consult.pk) == RoomRole.EXPERT


def test_when_the_mdt_lead_declines_the_next_expert_leads(actors, direct, cardio2, ask):
    consult = ask(target_kind=TargetKind.MDT, expert_ids=[actors.specialist.pk, cardio2.pk])
    consult_respond(actor=cardio2, consult_id=consult.pk, accept=True)
    consult = consult_respond(
        actor=actors.specialist, consult_id=consult.pk, accept=False, reason="On leave."
    )
    assert consult.experts.get(lead=True).user == cardio2
    assert consult.status == Status.ACCEPTED


# --- The expert's answer ------------------------------------------------------------------------


def test_the_expert_accepts_and_the_requester_is_told(actors, direct, ask):
    consult = ask()
    consult = consult_respond(actor=actors.specialist, consult_id=consult.pk, accept=True)

    assert consult.status == Status.ACCEPTED
    row = consult.experts.get()
    assert row.status == ExpertStatus.ACCEPTED
    assert row.responded_at is not None
    assert notes(actors.township, "consult.accepted").exists()
    assert room_role(user_id=actors.specialist.pk, consult_id=consult.pk) == RoomRole.EXPERT
    assert room_role(user_id=actors.township.pk, consult_id=consult.pk) == RoomRole.REQUESTER


def test_when_every_expert_declines_the_consult_is_declined(actors, direct, chen, ask):
    consult = ask(chen, consent_given=True)
    consult = consult_respond(
        actor=actors.specialist, consult_id=consult.pk, accept=False, reason="Not my field."
    )

    assert consult.status == Status.DECLINED
    assert consult.experts.get().decline_reason == "Not my field."
    note = notes(actors.township, "consult.declined").get()
    assert "Not my field." in note.body
    assert not PatientShare.objects.filter(
        reference=consult.number, revoked_at__isnull=True
    ).exists()
    with pytest.raises(AccessDenied):
        patient_get_for_user(actor=actors.specialist, patient_id=chen.pk)


# --- Slots, booking, the live consult ------------------------------------------------------------


@pytest.fixture
def accepted(actors, direct, ask):
    consult = ask()
    return consult_respond(actor=actors.specialist, consult_id=consult.pk, accept=True)


def test_the_expert_books_a_slot_and_reschedules(actors, accepted):
    first = future_slot(actors.specialist, hours=24)
    second = future_slot(actors.specialist, hours=48)

    consult = consult_book(actor=actors.specialist, consult_id=accepted.pk, slot_id=first.pk)
    assert consult.status == Status.SCHEDULED
    assert consult.scheduled_start == first.start
    assert notes(actors.township, "consult.booked").exists()

    consult = consult_book(actor=actors.specialist, consult_id=accepted.pk, slot_id=second.pk)
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.consult is None  # freed
    assert second.consult == consult
    assert consult.scheduled_start == second.start
    assert notes(actors.township, "consult.rescheduled").get().severity == Severity.URGENT
    assert kinds(consult)[-2:] == ["booked", "rescheduled"]


def test_the_expert_starts_the_consult_once(actors, accepted):
    slot = future_slot(actors.specialist)
    consult_book(actor=actors.specialist, consult_id=accepted.pk, slot_id=slot.pk)
    consult = consult_start(actor=actors.specialist, consult_id=accepted.pk)
    again = consult_start(actor=actors.specialist, consult_id=accepted.pk)

    assert consult.status == again.status == Status.IN_PROGRESS
    assert consult.started_at == again.started_at
    assert kinds(consult).count("started") == 1
    assert notes(actors.township, "consult.started").count() == 1


def test_a_written_consult_needs_no_slot(actors, direct, ask):
    consult = ask(mode=Mode.WRITTEN)
    consult = consult_respond(actor=actors.specialist, consult_id=consult.pk, accept=True)
    detail = consult_detail_for_user(actor=actors.specialist, consult_id=consult.pk)
    assert detail.can_sign
    assert not detail.can_book


def test_the_requester_cancels_and_everything_is_undone(actors, chen, direct, ask):
    consult = ask(chen, consent_given=True)
    consult_respond(actor=actors.specialist, consult_id=consult.pk, accept=True)
    slot = future_slot(actors.specialist)
    consult_book(actor=actors.specialist, consult_id=consult.pk, slot_id=slot.pk)

    consult = consult_cancel(
        actor=actors.township, consult_id=consult.pk, reason="Patient went to the county."
    )

    assert consult.status == Status.CANCELLED
    assert consult.closed_by == actors.township
    slot.refresh_from_db()
    assert slot.consult is None
    assert not PatientShare.objects.filter(
        reference=consult.number, revoked_at__isnull=True
    ).exists()
    with pytest.raises(AccessDenied):
        patient_get_for_user(actor=actors.specialist, patient_id=chen.pk)
    assert notes(actors.specialist, "consult.cancelled").exists()
    assert notes(actors.coordinator, "consult.cancelled").exists()
    assert not notes(actors.township, "consult.cancelled").exists()
    assert TimelineEvent.objects.filter(patient=chen, kind="consult.cancelled").exists()
    assert room_role(user_id=actors.township.pk, consult_id=consult.pk) is None


def test_the_coordinator_may_cancel_a_consult_in_pre_review(actors, ask):
    consult = ask()
    consult = consult_cancel(actor=actors.coordinator, consult_id=consult.pk, reason="Duplicate.")
    assert consult.status == Status.CANCELLED
    assert notes(actors.township, "consult.cancelled").exists()


def test_the_expert_records_a_no_show_after_the_start(actors, accepted):
    slot = future_slot(actors.specialist)
    consult_book(actor=actors.specialist, consult_id=accepted.pk, slot_id=slot.pk)
    past = timezone.now() - dt.timedelta(minutes=5)
    Consult.objects.filter(pk=accepted.pk).update(scheduled_start=past)

    consult = consult_no_show(actor=actors.specialist, consult_id=accepted.pk, reason="No answer.")

    assert consult.status == Status.NO_SHOW
    assert notes(actors.township, "consult.no_show").exists()
    assert kinds(consult)[-1] == "no_show"


# --- Attachments ---------------------------------------------------------------------------------


def test_the_requester_attaches_a_file_kept_in_object_storage(actors, ask):
    consult = ask()
    data = b"%PDF-1.4 ECG report"
    attachment = consult_attach_file(
        actor=actors.township,
        consult_id=consult.pk,
        name="C:\\scans\\ecg.pdf",
        fileobj=io.BytesIO(data),
        content_type="application/pdf",
        size=len(data),
    )
    assert attachment.kind == AttachmentKind.FILE
    assert attachment.title == "ecg.pdf"
    assert b"".join(get_store().open(attachment.object_key)) == data
    assert kinds(consult)[-1] == "attached"


def test_lab_references_are_attached_with_the_request(ask):
    consult = ask(lab_references=["LAB-2024-0001", " "])
    lab = Attachment.objects.get(consult=consult)
    assert (lab.kind, lab.lab_reference) == (AttachmentKind.LAB, "LAB-2024-0001")


# --- What each side sees -------------------------------------------------------------------------


def test_the_detail_tells_each_side_what_it_may_do(actors, accepted):
    slot = future_slot(actors.specialist)
    expert = consult_detail_for_user(actor=actors.specialist, consult_id=accepted.pk)
    assert expert.role == "expert"
    flags = ("can_book", "can_sign", "can_join_room", "can_cancel", "can_respond", "can_review")
    assert {f: getattr(expert, f) for f in flags} == {
        "can_book": True,
        "can_sign": True,
        "can_join_room": True,
        "can_cancel": True,
        "can_respond": False,
        "can_review": False,
    }
    assert slot in expert.slots_free

    requester = consult_detail_for_user(actor=actors.township, consult_id=accepted.pk)
    assert requester.role == "requester"
    assert {f: getattr(requester, f) for f in flags} == {
        "can_book": False,
        "can_sign": False,
        "can_join_room": True,
        "can_cancel": True,
        "can_respond": False,
        "can_review": False,
    }
    assert requester.slots_free == []
    assert requester.opinion_clock.running
    assert not requester.respond_clock.running

    coordinator = consult_detail_for_user(actor=actors.coordinator, consult_id=accepted.pk)
    assert coordinator.role == "coordinator"
    assert coordinator.can_cancel
    assert not coordinator.can_join_room


def test_the_lists_split_mine_review_and_invited(actors, ask, direct):
    consult = ask()
    assert [c.pk for c in consult_list_for_user(actor=actors.township, scope="mine")] == [
        consult.pk
    ]
    assert consult_list_for_user(actor=actors.specialist, scope="invited")[0] == consult
    assert consult_list_for_user(actor=actors.specialist, scope="mine") == []
    assert consult_list_for_user(actor=actors.coordinator, scope="review") == []  # direct
    assert consult_list_for_user(actor=actors.coordinator, scope="all", status="open") == [consult]


def test_expert_candidates_are_the_associations_specialists(actors, cardio2):
    names = set(expert_candidates(actor=actors.township).values_list("username", flat=True))
    assert names == {"specialist", "cardio2"}
    cardiology = Specialty.objects.get(code="cardiology")
    assert expert_candidates(actor=actors.outsider, specialty_id=cardiology.pk).count() == 0


def test_the_requesters_side_sees_only_free_slots(actors, accepted):
    free = future_slot(actors.specialist, hours=24)
    booked = future_slot(actors.specialist, hours=48)
    consult_book(actor=actors.specialist, consult_id=accepted.pk, slot_id=booked.pk)

    assert list(slots_for_expert(actor=actors.township, expert_id=actors.specialist.pk)) == [free]
    own = slots_for_expert(
        actor=actors.specialist, expert_id=actors.specialist.pk, include_booked=True
    )
    assert list(own) == [free, booked]
    assert not slots_for_expert(actor=actors.outsider, expert_id=actors.specialist.pk).exists()
    assert Slot.objects.count() == 2


# --- The demo ------------------------------------------------------------------------------------


def test_the_demo_consults_are_seeded_once(actors):

    assert demo_seed_consults() is True
    routed = Consult.objects.get(requested_by=actors.township)
    assert (routed.status, routed.mode) == (Status.PENDING_EXPERT, Mode.VIDEO)
    assert routed.experts.get().user == actors.specialist
    waiting = Consult.objects.get(requested_by=actors.village)
    assert (waiting.status, waiting.mode) == (Status.PENDING_REVIEW, Mode.WRITTEN)
    slots = Slot.objects.filter(expert=actors.specialist).count()
    assert slots > 0

    assert demo_seed_consults() is False
    assert Consult.objects.count() == 2
    assert Slot.objects.filter(expert=actors.specialist).count() == slots


def _study_of(patient, township):
    """Ingest CT_small.dcm for ``patient`` as the township's modality would send it."""

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientID = patient.resident_id
    ds.PatientName = patient.name
    ds.AccessionNumber = ""
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    buffer = io.BytesIO()
    ds.save_as(buffer)
    buffer.seek(0)
    origin = Origin(
        institution=Institution.objects.get(code="xiba"), channel="upload", user=township
    )
    return instance_ingest(buffer, origin=origin).instance.series.study


def test_a_study_of_the_resident_is_attached_and_the_expert_sees_it(actors, liu, direct, ask):

    study = _study_of(liu, actors.township)
    assert study.patient_id == liu.pk
    consult = ask(study_ids=[study.pk])
    attached = consult.attachments.get()
    assert (attached.kind, attached.study) == (AttachmentKind.STUDY, study)
    assert studies_visible_to(actor_scope(actors.specialist)).filter(pk=study.pk).exists()

    with pytest.raises(InvalidRecord, match="already attached"):
        consult_attach_study(actor=actors.township, consult_id=consult.pk, study_id=study.pk)
    with pytest.raises(InvalidRecord, match="No such study"):
        consult_attach_study(actor=actors.township, consult_id=consult.pk, study_id="1; drop")


def test_a_study_of_another_resident_is_refused(actors, chen, liu, ask):

    study = _study_of(chen, actors.township)
    with pytest.raises(InvalidRecord, match="another resident"):
        ask(liu, study_ids=[study.pk])
    assert not Consult.objects.exists()
