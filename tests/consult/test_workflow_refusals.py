"""Every refusal of the consult workflow: a clear message, an audit event, nothing half-stored."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.utils import timezone, translation

from accounts.models import User
from association.models import Association, Department, Institution, Membership, Role, Specialty
from audit.models import AuditEvent, Outcome
from consult.models import Attachment, Consult, ExpertStatus, Mode, Priority, Slot, Status
from consult.models import TargetKind as TK
from consult.selectors import consult_detail_for_user, consult_get_for_user, consult_list_for_user
from consult.services import (
    consult_attach_file,
    consult_book,
    consult_cancel,
    consult_no_show,
    consult_request,
    consult_respond,
    consult_resubmit,
    consult_review,
    consult_start,
    slot_create,
    slot_delete,
)
from records.models import Consent, PatientShare, TimelineEvent
from records.selectors import AccessDenied, NotFound
from records.services import InvalidRecord

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


@pytest.fixture
def liu(residents):
    return residents["刘桂兰"]


@pytest.fixture
def direct():
    Association.objects.filter(code="qingshan").update(consult_prereview=False)


@pytest.fixture
def ask(actors, liu):
    def _ask(patient=None, *, actor=None, **changes):
        fields = {
            "question": "Chest pain on exertion. Refer?",
            "priority": Priority.ROUTINE,
            "mode": Mode.VIDEO,
            "target_kind": TK.EXPERT,
            "expert_ids": [actors.specialist.pk],
        } | changes
        return consult_request(
            actor=actor or actors.township, patient_id=(patient or liu).pk, **fields
        )

    return _ask


@pytest.fixture
def accepted(actors, direct, ask):
    consult = ask()
    return consult_respond(actor=actors.specialist, consult_id=consult.pk, accept=True)


def slot(expert, *, hours=24, minutes=30):
    start = timezone.now() + dt.timedelta(hours=hours)
    return slot_create(actor=expert, start=start, end=start + dt.timedelta(minutes=minutes))


def last_audit(action):
    return AuditEvent.objects.filter(action=action).latest("id")


def nothing_stored():
    return (
        not Consult.objects.exists()
        and not PatientShare.objects.filter(reason="consult").exists()
        and not TimelineEvent.objects.filter(kind="consult.requested").exists()
    )


# --- Requests -------------------------------------------------------------------------------------


def test_a_resident_the_requester_may_not_see_is_denied_and_audited(actors, residents, ask):
    zhang = residents["张三"]  # the village's resident, not shared with the township
    with pytest.raises(AccessDenied, match="access to this resident"):
        ask(zhang)
    event = last_audit("consult.request")
    assert (event.outcome, event.patient_id) == (Outcome.DENIED, zhang.pk)
    assert nothing_stored()


def test_an_unknown_resident_is_not_found(actors):
    with pytest.raises(NotFound):
        consult_request(
            actor=actors.township,
            patient_id=999999,
            question="?",
            priority=Priority.ROUTINE,
            mode=Mode.VIDEO,
            target_kind=TK.EXPERT,
            expert_ids=[actors.specialist.pk],
        )
    assert last_audit("consult.request").outcome == Outcome.FAILED


@pytest.mark.parametrize("name", ["admin", "auditor", "radiologist", "outsider"])
def test_people_who_cannot_see_the_resident_cannot_ask(actors, ask, name):
    with pytest.raises(AccessDenied):
        ask(actor=getattr(actors, name))
    assert last_audit("consult.request").outcome == Outcome.DENIED
    assert nothing_stored()


def test_a_coordinator_is_no_requester(actors, residents, ask):
    with pytest.raises(AccessDenied, match="Only doctors"):
        ask(residents["周海"], actor=actors.coordinator)
    assert nothing_stored()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"question": "   "}, "Write the question"),
        ({"question": "x" * 4001}, "Write the question"),
        ({"history": "x" * 10001}, "history may be at most"),
        ({"priority": "whenever"}, "Unknown priority"),
        ({"mode": "telepathy"}, "live video or a written"),
        ({"target_kind": "anyone"}, "Choose a target"),
        ({"expert_ids": []}, "Name one expert"),
        ({"target_kind": TK.MDT}, "2 to 7 experts"),
        ({"expert_ids": ["abc"]}, "Unknown expert"),
        ({"expert_ids": [999999]}, "Unknown expert"),
        ({"target_kind": TK.SPECIALTY, "expert_ids": []}, "hospital and the specialty"),
        ({"lab_references": ["x" * 101]}, "at most 100 characters"),
        ({"study_ids": [999999]}, "No such study"),
    ],
)
def test_bad_fields_are_refused_with_a_message_and_audited(ask, changes, message):
    with pytest.raises(InvalidRecord, match=message):
        ask(**changes)
    event = last_audit("consult.request")
    assert event.outcome == Outcome.FAILED
    assert message.split()[0] in event.reason
    assert nothing_stored()


def test_an_mdt_of_eight_is_refused(actors, ask):
    ids = []
    dept = Department.objects.get(institution__code="county", name="心内科")
    for n in range(8):
        user = User.objects.create_user(username=f"cardio{n}")
        Membership.objects.create(
            user=user, institution=dept.institution, department=dept, role=Role.SPECIALIST
        )
        ids.append(user.pk)
    with pytest.raises(InvalidRecord, match="2 to 7 experts"):
        ask(target_kind=TK.MDT, expert_ids=ids)


def test_naming_an_expert_twice_or_oneself_is_refused(actors, ask, residents):
    other = User.objects.create_user(username="cardio-x")
    dept = Department.objects.get(institution__code="county", name="心内科")
    Membership.objects.create(
        user=other, institution=dept.institution, department=dept, role=Role.SPECIALIST
    )
    with pytest.raises(InvalidRecord, match="only once"):
        ask(target_kind=TK.MDT, expert_ids=[other.pk, other.pk])
    with pytest.raises(InvalidRecord, match="cannot also be one of the experts"):
        ask(residents["周海"], actor=actors.specialist, expert_ids=[actors.specialist.pk])


def test_an_expert_of_another_association_is_refused(actors, ask):
    hexi_doctor = User.objects.create_user(username="hexi-cardio", display_name="河西专家")
    Membership.objects.create(
        user=hexi_doctor,
        institution=Institution.objects.get(code="hexi-clinic"),
        role=Role.SPECIALIST,
    )
    with pytest.raises(InvalidRecord, match="not an active specialist of your association"):
        ask(expert_ids=[hexi_doctor.pk])
    assert nothing_stored()


def test_a_non_specialist_cannot_be_named_expert(actors, ask):
    with pytest.raises(InvalidRecord, match="not an active specialist"):
        ask(expert_ids=[actors.coordinator.pk])


def test_a_specialty_without_specialists_there_is_refused(ask):
    with pytest.raises(InvalidRecord, match="No specialist of"):
        ask(
            target_kind=TK.SPECIALTY,
            target_institution_id=Institution.objects.get(code="county").pk,
            target_specialty_id=Specialty.objects.get(code="general").pk,
            expert_ids=[],
        )


def test_a_hospital_of_another_association_is_refused(ask):
    with pytest.raises(InvalidRecord, match="must belong to your association"):
        ask(
            target_kind=TK.SPECIALTY,
            target_institution_id=Institution.objects.get(code="hexi-clinic").pk,
            target_specialty_id=Specialty.objects.get(code="cardiology").pk,
            expert_ids=[],
        )


def test_without_consent_the_request_is_refused_and_no_consent_appears(residents, ask):
    chen = residents["陈志强"]
    with pytest.raises(InvalidRecord, match="consent"):
        ask(chen)
    assert not Consent.objects.filter(patient=chen).exists()
    assert last_audit("consult.request").outcome == Outcome.FAILED
    assert nothing_stored()


def test_only_the_home_institution_records_the_consent(actors, residents, ask):
    """The specialist sees 陈志强 through a consent to the county hospital, which does not
    cover an expert at Shiqiao; only Xiba (the home clinic) could record a wider consent."""
    chen = residents["陈志强"]
    Consent.objects.create(
        patient=chen,
        scope="record",
        grantee_institution=Institution.objects.get(code="county"),
        recorded_by=actors.township,
    )
    shiqiao_expert = User.objects.create_user(username="shiqiao-gp")
    Membership.objects.create(
        user=shiqiao_expert,
        institution=Institution.objects.get(code="shiqiao"),
        role=Role.SPECIALIST,
    )
    with pytest.raises(InvalidRecord, match="only the resident's home institution"):
        ask(chen, actor=actors.specialist, expert_ids=[shiqiao_expert.pk], consent_given=True)
    assert Consent.objects.filter(patient=chen).count() == 1
    assert nothing_stored()


# --- Pre-review ---------------------------------------------------------------------------------


def test_only_coordinators_review(actors, ask):
    consult = ask()
    for name in ("township", "specialist"):
        with pytest.raises(AccessDenied):
            consult_review(actor=getattr(actors, name), consult_id=consult.pk, decision="route")
    assert last_audit("consult.review").outcome == Outcome.DENIED
    consult.refresh_from_db()
    assert consult.status == Status.PENDING_REVIEW


def test_returning_needs_a_note_and_a_pending_review(actors, ask, direct):
    consult = ask()  # direct: already with the experts
    with pytest.raises(InvalidRecord, match="waiting for pre-review"):
        consult_review(actor=actors.coordinator, consult_id=consult.pk, decision="return", note="x")
    Association.objects.filter(code="qingshan").update(consult_prereview=True)
    reviewed = ask()
    with pytest.raises(InvalidRecord, match="should complete"):
        consult_review(actor=actors.coordinator, consult_id=reviewed.pk, decision="return")
    assert last_audit("consult.review").outcome == Outcome.FAILED


def test_an_unknown_decision_is_refused(actors, ask):
    consult = ask()
    with pytest.raises(InvalidRecord, match="Route the consultation or return it"):
        consult_review(actor=actors.coordinator, consult_id=consult.pk, decision="shrug")


def test_routing_an_accepted_consult_is_refused(actors, accepted):
    with pytest.raises(InvalidRecord, match="can no longer be routed"):
        consult_review(actor=actors.coordinator, consult_id=accepted.pk, decision="route")


def test_routing_to_a_bad_expert_changes_nothing(actors, ask):
    consult = ask()
    with pytest.raises(InvalidRecord, match="not an active specialist"):
        consult_review(
            actor=actors.coordinator,
            consult_id=consult.pk,
            decision="route",
            expert_ids=[actors.coordinator.pk],
        )
    consult.refresh_from_db()
    assert consult.status == Status.PENDING_REVIEW
    assert not consult.experts.exists()


def test_only_the_requester_resubmits_and_only_a_returned_consult(actors, ask):
    consult = ask()
    with pytest.raises(InvalidRecord, match="Only a returned"):
        consult_resubmit(actor=actors.township, consult_id=consult.pk, question="Again")
    with pytest.raises(AccessDenied):
        consult_resubmit(actor=actors.coordinator, consult_id=consult.pk, question="Again")


# --- Answers -------------------------------------------------------------------------------------


def test_declining_needs_a_reason(actors, direct, ask):
    consult = ask()
    with pytest.raises(InvalidRecord, match="Say why you decline"):
        consult_respond(actor=actors.specialist, consult_id=consult.pk, accept=False)
    assert consult.experts.get().status == ExpertStatus.INVITED
    assert last_audit("consult.respond").outcome == Outcome.FAILED


def test_only_invited_experts_answer(actors, direct, ask):
    consult = ask()
    with pytest.raises(AccessDenied, match="Only the invited experts"):
        consult_respond(actor=actors.coordinator, consult_id=consult.pk, accept=True)
    with pytest.raises(AccessDenied):
        consult_respond(actor=actors.outsider, consult_id=consult.pk, accept=True)
    assert last_audit("consult.respond").outcome == Outcome.DENIED


def test_answering_twice_is_refused(actors, accepted):
    with pytest.raises(InvalidRecord, match="already accepted"):
        consult_respond(actor=actors.specialist, consult_id=accepted.pk, accept=True)


def test_an_expert_who_declined_loses_the_consult(actors, direct, ask):
    consult = ask()
    consult_respond(actor=actors.specialist, consult_id=consult.pk, accept=False, reason="Busy")
    with pytest.raises(AccessDenied):
        consult_respond(actor=actors.specialist, consult_id=consult.pk, accept=True)


# --- Slots and booking ---------------------------------------------------------------------------


def test_overlapping_slots_are_refused(actors):
    first = slot(actors.specialist, hours=24, minutes=60)
    start = first.start + dt.timedelta(minutes=30)
    with pytest.raises(InvalidRecord, match="overlaps"):
        slot_create(actor=actors.specialist, start=start, end=start + dt.timedelta(minutes=30))
    assert Slot.objects.count() == 1
    assert last_audit("consult.slot.create").outcome == Outcome.FAILED


@pytest.mark.parametrize(
    ("offset", "minutes", "message"),
    [
        (-1, 30, "in the future"),
        (24, 5, "10 minutes to 8 hours"),
        (24, 600, "10 minutes to 8 hours"),
        (24 * 100, 30, "90 days"),
        (24, -30, "end after it starts"),
    ],
)
def test_bad_slot_times_are_refused(actors, offset, minutes, message):
    start = timezone.now() + dt.timedelta(hours=offset)
    with pytest.raises(InvalidRecord, match=message):
        slot_create(actor=actors.specialist, start=start, end=start + dt.timedelta(minutes=minutes))
    assert not Slot.objects.exists()


def test_only_specialists_offer_slots(actors):
    with pytest.raises(AccessDenied):
        slot(actors.township)
    assert last_audit("consult.slot.create").outcome == Outcome.DENIED


def test_slots_are_withdrawn_only_by_their_expert_and_only_when_free(actors, accepted):
    own = slot(actors.specialist)
    with pytest.raises(AccessDenied):
        slot_delete(actor=actors.township, slot_id=own.pk)
    with pytest.raises(NotFound):
        slot_delete(actor=actors.specialist, slot_id=999999)
    consult_book(actor=actors.specialist, consult_id=accepted.pk, slot_id=own.pk)
    with pytest.raises(InvalidRecord, match="booked"):
        slot_delete(actor=actors.specialist, slot_id=own.pk)
    assert Slot.objects.filter(pk=own.pk).exists()


def test_only_the_lead_expert_books(actors, accepted):
    free = slot(actors.specialist)
    with pytest.raises(AccessDenied):
        consult_book(actor=actors.township, consult_id=accepted.pk, slot_id=free.pk)
    assert last_audit("consult.book").outcome == Outcome.DENIED


def test_booking_before_accepting_is_denied(actors, direct, ask):
    consult = ask()
    free = slot(actors.specialist)
    with pytest.raises(AccessDenied):
        consult_book(actor=actors.specialist, consult_id=consult.pk, slot_id=free.pk)


def test_booking_another_experts_or_a_taken_or_past_slot_is_refused(actors, accepted, ask):
    other = User.objects.create_user(username="cardio-z")
    dept = Department.objects.get(institution__code="county", name="心内科")
    Membership.objects.create(
        user=other, institution=dept.institution, department=dept, role=Role.SPECIALIST
    )
    foreign = slot(other)
    with pytest.raises(InvalidRecord, match="own free slots"):
        consult_book(actor=actors.specialist, consult_id=accepted.pk, slot_id=foreign.pk)

    taken = slot(actors.specialist, hours=30)
    second = consult_respond(actor=actors.specialist, consult_id=ask().pk, accept=True)
    consult_book(actor=actors.specialist, consult_id=second.pk, slot_id=taken.pk)
    with pytest.raises(InvalidRecord, match="already booked"):
        consult_book(actor=actors.specialist, consult_id=accepted.pk, slot_id=taken.pk)

    past = slot(actors.specialist, hours=40)
    Slot.objects.filter(pk=past.pk).update(
        start=timezone.now() - dt.timedelta(hours=1), end=timezone.now()
    )
    with pytest.raises(InvalidRecord, match="in the future"):
        consult_book(actor=actors.specialist, consult_id=accepted.pk, slot_id=past.pk)
    accepted.refresh_from_db()
    assert accepted.status == Status.ACCEPTED


def test_a_written_consult_cannot_be_booked(actors, direct, ask):
    consult = ask(mode=Mode.WRITTEN)
    consult_respond(actor=actors.specialist, consult_id=consult.pk, accept=True)
    with pytest.raises(InvalidRecord, match="needs no appointment"):
        consult_book(
            actor=actors.specialist, consult_id=consult.pk, slot_id=slot(actors.specialist).pk
        )


def test_the_requester_cannot_start_the_consult(actors, accepted):
    with pytest.raises(AccessDenied):
        consult_start(actor=actors.township, consult_id=accepted.pk)
    accepted.refresh_from_db()
    assert accepted.status == Status.ACCEPTED


# --- Cancel and no-show --------------------------------------------------------------------------


def test_cancelling_needs_a_reason(actors, accepted):
    with pytest.raises(InvalidRecord, match="Say why"):
        consult_cancel(actor=actors.township, consult_id=accepted.pk, reason="  ")
    accepted.refresh_from_db()
    assert accepted.status == Status.ACCEPTED
    assert last_audit("consult.cancel").outcome == Outcome.FAILED


def test_people_outside_the_consult_cannot_cancel(actors, accepted):
    for name in ("village2", "outsider", "admin"):
        with pytest.raises(AccessDenied):
            consult_cancel(actor=getattr(actors, name), consult_id=accepted.pk, reason="No")
    assert last_audit("consult.cancel").outcome == Outcome.DENIED


def test_an_invited_member_of_an_mdt_cannot_cancel(actors, direct, ask):
    other = User.objects.create_user(username="cardio-w")
    dept = Department.objects.get(institution__code="county", name="心内科")
    Membership.objects.create(
        user=other, institution=dept.institution, department=dept, role=Role.SPECIALIST
    )
    consult = ask(target_kind=TK.MDT, expert_ids=[actors.specialist.pk, other.pk])
    with pytest.raises(AccessDenied, match="cancel"):
        consult_cancel(actor=other, consult_id=consult.pk, reason="No")


def test_a_closed_consult_cannot_be_cancelled_again(actors, accepted):
    consult_cancel(actor=actors.township, consult_id=accepted.pk, reason="Moved.")
    with pytest.raises(InvalidRecord, match="Only an open consultation"):
        consult_cancel(actor=actors.township, consult_id=accepted.pk, reason="Again.")


def test_a_no_show_before_the_start_is_refused(actors, accepted):
    with pytest.raises(InvalidRecord, match="Only a booked"):
        consult_no_show(actor=actors.specialist, consult_id=accepted.pk)
    consult_book(
        actor=actors.specialist, consult_id=accepted.pk, slot_id=slot(actors.specialist).pk
    )
    with pytest.raises(InvalidRecord, match="after the appointment started"):
        consult_no_show(actor=actors.specialist, consult_id=accepted.pk)
    with pytest.raises(AccessDenied):
        consult_no_show(actor=actors.township, consult_id=accepted.pk)
    accepted.refresh_from_db()
    assert accepted.status == Status.SCHEDULED


# --- Attachments ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "size", "message"),
    [
        ("application/x-msdownload", 10, "cannot be attached"),
        ("application/pdf", 0, "empty"),
        ("application/pdf", 51 * 1024**2, "at most 50 MiB"),
    ],
)
def test_bad_files_are_refused_before_storing(actors, ask, content_type, size, message):
    consult = ask()
    with pytest.raises(InvalidRecord, match=message):
        consult_attach_file(
            actor=actors.township,
            consult_id=consult.pk,
            name="x.bin",
            fileobj=io.BytesIO(b"x" * 10),
            content_type=content_type,
            size=size,
        )
    assert not Attachment.objects.exists()
    assert last_audit("consult.attach").outcome == Outcome.FAILED


def test_a_file_shorter_than_announced_is_refused_and_not_kept(actors, ask):
    consult = ask()
    with pytest.raises(InvalidRecord, match="did not arrive whole"):
        consult_attach_file(
            actor=actors.township,
            consult_id=consult.pk,
            name="ecg.pdf",
            fileobj=io.BytesIO(b"short"),
            content_type="application/pdf",
            size=1000,
        )
    assert not Attachment.objects.exists()


def test_the_coordinator_does_not_add_files(actors, ask):
    consult = ask()
    with pytest.raises(AccessDenied):
        consult_attach_file(
            actor=actors.coordinator,
            consult_id=consult.pk,
            name="a.pdf",
            fileobj=io.BytesIO(b"%PDF"),
            content_type="application/pdf",
            size=4,
        )


# --- Reads ---------------------------------------------------------------------------------------


def test_reading_a_consult_one_may_not_see_is_denied_and_audited(actors, ask):
    consult = ask()
    with pytest.raises(AccessDenied):
        consult_get_for_user(actor=actors.village2, consult_id=consult.pk)
    event = last_audit("consult.view")
    assert (event.outcome, event.patient_id) == (Outcome.DENIED, consult.patient_id)
    with pytest.raises(NotFound):
        consult_detail_for_user(actor=actors.township, consult_id=999999)
    assert last_audit("consult.view").outcome == Outcome.FAILED


def test_unknown_lists_and_statuses_are_refused(actors):
    with pytest.raises(InvalidRecord):
        consult_list_for_user(actor=actors.township, scope="everything")  # type: ignore[arg-type]
    with pytest.raises(InvalidRecord):
        consult_list_for_user(actor=actors.township, status="lost")
