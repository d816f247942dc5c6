"""Receipt at the lab centre: boxes and specimens scanned, rejections, discrepancies."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone, translation

from audit.models import AuditEvent, Outcome
from lab.discrepancies import discrepancies_for_centre, discrepancy_counts
from lab.models import (
    Box,
    BoxStatus,
    ItemStatus,
    LabOrder,
    OrderStatus,
    RejectionReason,
    Specimen,
    SpecimenEvent,
    SpecimenStatus,
)
from lab.numbering import luhn_digit
from lab.receipt import box_receive, specimen_receive, specimen_reject
from lab.shipping import box_add, box_open, box_ship
from realtime.models import Notification, Severity
from records.models import TimelineEvent
from records.selectors import AccessDenied, NotFound
from records.services import InvalidRecord
from tests.lab.shipping_support import (
    collected_order,
    empty_box,
    lab_centre,
    other_lab_centre,
    shipped_box,
    wrong_check_digit,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def zhang(residents):
    return residents["张三"]


@pytest.fixture
def order(actors, zhang):
    return collected_order(doctor=actors.village, patient=zhang, clinic="dongshan")


@pytest.fixture
def box(actors, order):
    """The order's two specimens shipped in one box an hour ago."""
    return shipped_box(clinic="dongshan", by=actors.village, specimens=order[1])


def refused(callable_, **kwargs) -> str:
    """The refusal's message, in English (messages are lazy: read inside the override)."""
    with translation.override("en"):
        with pytest.raises(InvalidRecord) as caught:
            callable_(**kwargs)
        return str(caught.value)


# --- The whole path ------------------------------------------------------------------------------


def test_a_box_travels_from_the_village_clinic_to_the_lab_and_is_checked(actors, order):
    lab_order, specimens = order
    box = box_open(actor=actors.village, centre_id=lab_centre().pk)
    for specimen in specimens:
        box_add(actor=actors.village, box_id=box.pk, barcode=specimen.barcode)
    box_ship(actor=actors.village, box_id=box.pk, scanned_number=box.number, courier="张师傅")
    assert Notification.objects.filter(recipient=actors.labtech, kind="lab.box_shipped").exists()

    received = box_receive(
        actor=actors.labtech, scanned_number=box.number, condition_note="冰袋完好 4°C"
    )
    assert received.status == BoxStatus.RECEIVED
    assert received.received_by == actors.labtech
    assert received.temperature_note == "冰袋完好 4°C"

    first = specimen_receive(actor=actors.labtech, barcode=specimens[0].barcode)
    assert not first.unshipped
    assert first.warnings == []
    lab_order.refresh_from_db()
    assert lab_order.status == OrderStatus.RECEIVED
    assert lab_order.received_at is not None
    specimen_receive(actor=actors.labtech, barcode=specimens[1].barcode)

    kinds = list(SpecimenEvent.objects.filter(specimen=specimens[0]).values_list("kind", flat=True))
    assert kinds == ["packed", "shipped", "received"]
    assert SpecimenEvent.objects.filter(box=box, kind="box_received").exists()
    assert discrepancy_counts(lab_centre().pk)["total"] == 0
    for action in ("lab.box.open", "lab.box.ship", "lab.box.receive", "lab.specimen.receive"):
        assert AuditEvent.objects.filter(action=action, outcome=Outcome.ALLOWED).exists()


# --- Boxes at the desk ---------------------------------------------------------------------------


def test_a_box_received_twice_says_when_and_by_whom_and_changes_nothing(actors, box):
    box_receive(actor=actors.labtech, scanned_number=box.number)
    first = Box.objects.get(pk=box.pk)
    message = refused(
        box_receive, actor=actors.labtech, scanned_number=box.number, condition_note="x"
    )
    at = timezone.localtime(first.received_at).strftime("%H:%M")
    assert message == f"Box {box.number} was already received at {at} by 周技师."
    again = Box.objects.get(pk=box.pk)
    assert (again.received_at, again.temperature_note) == (first.received_at, "")
    assert AuditEvent.objects.filter(
        action="lab.box.receive", outcome=Outcome.FAILED, resource_id=str(box.pk)
    ).exists()


def test_another_centres_box_scanned_at_the_desk_is_denied(actors, zhang):
    _order, specimens = collected_order(
        doctor=actors.village, patient=zhang, clinic="dongshan", centre=other_lab_centre()
    )
    box = shipped_box(clinic="dongshan", by=actors.village, specimens=specimens)
    with pytest.raises(AccessDenied):
        box_receive(actor=actors.labtech, scanned_number=box.number)
    assert Box.objects.get(pk=box.pk).status == BoxStatus.SHIPPED
    assert AuditEvent.objects.filter(
        action="lab.box.receive", outcome=Outcome.DENIED, resource_id=str(box.pk)
    ).exists()


def test_an_unknown_box_number_is_refused(actors):
    assert "No box has the number BX0000000000" in refused(
        box_receive, actor=actors.labtech, scanned_number="bx0000000000"
    )


def test_a_box_still_being_packed_is_not_received(actors):
    box = empty_box(clinic="dongshan", centre=lab_centre(), by=actors.village)
    assert "was never handed to the courier" in refused(
        box_receive, actor=actors.labtech, scanned_number=box.number
    )


@pytest.mark.parametrize("username", ["village", "auditor", "outsider"])
def test_only_lab_staff_receive(actors, box, username):
    with pytest.raises(AccessDenied):
        box_receive(actor=getattr(actors, username), scanned_number=box.number)


# --- Specimens at the desk -----------------------------------------------------------------------


def test_a_specimen_scanned_twice_is_said_so_and_nothing_changes(actors, order, box):
    barcode = order[1][0].barcode
    specimen_receive(actor=actors.labtech, barcode=barcode)
    received_at = Specimen.objects.get(barcode=barcode).received_at
    message = refused(specimen_receive, actor=actors.labtech, barcode=barcode)
    assert message.startswith(f"Specimen {barcode} was already received at ")
    assert message.endswith("by 周技师.")
    assert Specimen.objects.get(barcode=barcode).received_at == received_at
    assert AuditEvent.objects.filter(
        action="lab.specimen.receive", outcome=Outcome.FAILED, reason__contains="already"
    ).exists()


def test_malformed_and_unknown_barcodes_at_the_desk(actors, order, box):
    barcode = order[1][0].barcode
    assert refused(
        specimen_receive, actor=actors.labtech, barcode=wrong_check_digit(barcode)
    ).startswith("This is not a specimen barcode of ours, or it was mistyped")
    unknown = "99010100001" + luhn_digit("99010100001")
    assert "No specimen has the barcode" in refused(
        specimen_receive, actor=actors.labtech, barcode=unknown
    )


def test_a_specimen_of_another_centre_is_denied(actors, zhang):
    _order, specimens = collected_order(
        doctor=actors.village, patient=zhang, clinic="dongshan", centre=other_lab_centre()
    )
    with pytest.raises(AccessDenied):
        specimen_receive(actor=actors.labtech, barcode=specimens[0].barcode)
    assert Specimen.objects.get(pk=specimens[0].pk).status == SpecimenStatus.COLLECTED


def test_a_specimen_received_without_shipment_is_a_discrepancy(actors, order):
    lab_order, specimens = order
    with translation.override("en"):  # the warnings are worded in the active language
        outcome = specimen_receive(actor=actors.labtech, barcode=specimens[0].barcode)
    assert outcome.unshipped
    assert outcome.specimen.received_unshipped
    assert outcome.specimen.status == SpecimenStatus.RECEIVED
    assert any("was never shipped" in w for w in outcome.warnings)
    assert SpecimenEvent.objects.filter(specimen=specimens[0], kind="received_unshipped").exists()
    lab_order.refresh_from_db()
    assert lab_order.status == OrderStatus.RECEIVED
    result = discrepancies_for_centre(actor=actors.labtech, centre_id=lab_centre().pk)
    assert [row.specimen.pk for row in result.received_unshipped] == [specimens[0].pk]
    assert discrepancy_counts(lab_centre().pk)["received_unshipped"] == 1


def test_an_old_specimen_is_received_with_a_warning_to_consider_rejecting(actors, zhang):
    collected = timezone.now() - dt.timedelta(hours=60)
    _order, specimens = collected_order(
        doctor=actors.village, patient=zhang, clinic="dongshan", collected_at=collected
    )
    shipped_box(clinic="dongshan", by=actors.village, specimens=specimens)
    with translation.override("en"):
        outcome = specimen_receive(actor=actors.labtech, barcode=specimens[0].barcode)
    assert outcome.specimen.status == SpecimenStatus.RECEIVED
    assert not outcome.unshipped
    assert outcome.warnings == [
        "Collected 60 hours ago (the limit is 48 hours): consider rejecting it as too old."
    ]


# --- Rejection -----------------------------------------------------------------------------------


def test_rejecting_a_specimen_notifies_the_clinic_and_records_it(actors, order, box):
    lab_order, specimens = order
    serum = next(s for s in specimens if s.specimen_type == "serum")
    specimen_receive(actor=actors.labtech, barcode=serum.barcode)
    rejected = specimen_reject(
        actor=actors.labtech, barcode=serum.barcode, reason=RejectionReason.HAEMOLYSED
    )
    assert rejected.status == SpecimenStatus.REJECTED
    assert set(rejected.items.values_list("status", flat=True)) == {ItemStatus.REJECTED}
    lab_order.refresh_from_db()
    assert lab_order.status == OrderStatus.RECEIVED  # the EDTA tube is still good
    note = Notification.objects.filter(recipient=actors.village, kind="lab.specimen_rejected")
    assert note.count() == 1
    assert note[0].severity == Severity.URGENT
    assert note[0].link == f"/lab/orders/{lab_order.pk}/"
    assert serum.barcode in note[0].body
    event = TimelineEvent.objects.get(patient=lab_order.patient, kind="lab.rejected")
    assert "Haemolysed" in event.summary
    assert AuditEvent.objects.filter(
        action="lab.specimen.reject", outcome=Outcome.ALLOWED, patient_id=lab_order.patient_id
    ).exists()


def test_the_order_is_rejected_when_all_its_specimens_are(actors, order, box):
    lab_order, specimens = order
    for specimen in specimens:
        specimen_reject(
            actor=actors.labtech,
            barcode=specimen.barcode,
            reason=RejectionReason.OTHER,
            note="标签与申请单不符",
        )
    lab_order.refresh_from_db()
    assert lab_order.status == OrderStatus.REJECTED
    assert not LabOrder.objects.get(pk=lab_order.pk).items.exclude(status=ItemStatus.REJECTED)
    assert (
        Notification.objects.filter(recipient=actors.village, kind="lab.specimen_rejected").count()
        == 2
    )


def test_the_clinics_other_doctors_are_told_of_a_rejection(actors, order, box):
    from accounts.models import User
    from association.models import Membership, Role
    from tests.lab.shipping_support import institution

    colleague = User.objects.create(username="village-colleague", display_name="钱村医")
    Membership.objects.create(
        user=colleague, institution=institution("dongshan"), role=Role.GRASSROOTS_DOCTOR
    )
    specimen_reject(
        actor=actors.labtech, barcode=order[1][0].barcode, reason=RejectionReason.INSUFFICIENT
    )
    for doctor in (actors.village, colleague):
        assert Notification.objects.filter(recipient=doctor, kind="lab.specimen_rejected").exists()
    assert not Notification.objects.filter(
        recipient=actors.village2, kind="lab.specimen_rejected"
    ).exists()


def test_a_rejected_specimen_cannot_be_rejected_again(actors, order, box):
    barcode = order[1][0].barcode
    specimen_reject(actor=actors.labtech, barcode=barcode, reason=RejectionReason.CLOTTED)
    message = refused(
        specimen_reject, actor=actors.labtech, barcode=barcode, reason=RejectionReason.LEAKED
    )
    assert message == f"Specimen {barcode} was already rejected: Clotted."
    assert Specimen.objects.get(barcode=barcode).rejection_reason == RejectionReason.CLOTTED


def test_other_as_a_reason_needs_a_note(actors, order, box):
    barcode = order[1][0].barcode
    assert refused(
        specimen_reject, actor=actors.labtech, barcode=barcode, reason=RejectionReason.OTHER
    ) == ("Describe the reason in the note when you choose “Other”.")
    assert refused(specimen_reject, actor=actors.labtech, barcode=barcode, reason="bad") == (
        "Choose why the specimen is rejected."
    )
    assert Specimen.objects.get(barcode=barcode).status == SpecimenStatus.SHIPPED


def test_a_clinic_cannot_reject_specimens(actors, order, box):
    with pytest.raises(AccessDenied):
        specimen_reject(
            actor=actors.village, barcode=order[1][0].barcode, reason=RejectionReason.TOO_OLD
        )


# --- Discrepancies -------------------------------------------------------------------------------


def test_shipped_specimens_not_received_in_time_are_missing(actors, order):
    shipped_box(clinic="dongshan", by=actors.village, specimens=order[1], hours_ago=2)
    centre = lab_centre().pk
    assert discrepancy_counts(centre)["missing"] == 0
    later = timezone.now() + dt.timedelta(hours=23)
    result = discrepancies_for_centre(actor=actors.labtech, centre_id=centre, now=later)
    assert len(result.missing) == 2
    assert result.missing[0].hours == 25
    assert discrepancy_counts(centre, now=later) == {
        "received_unshipped": 0,
        "not_scanned": 0,
        "missing": 2,
        "total": 2,
    }


def test_specimens_in_a_received_box_never_scanned_are_listed(actors, order, box):
    box_receive(actor=actors.labtech, scanned_number=box.number)
    specimen_receive(actor=actors.labtech, barcode=order[1][0].barcode)
    result = discrepancies_for_centre(actor=actors.labtech, centre_id=lab_centre().pk)
    assert [row.specimen.pk for row in result.not_scanned] == [order[1][1].pk]
    assert result.missing == []


def test_a_clinic_sees_only_its_own_discrepancies(actors, order, residents):
    shipped_box(clinic="dongshan", by=actors.village, specimens=order[1], hours_ago=30)
    _other, nanwan = collected_order(
        doctor=actors.village2, patient=residents["赵明"], clinic="nanwan"
    )
    shipped_box(clinic="nanwan", by=actors.village2, specimens=nanwan, hours_ago=30)
    centre = lab_centre().pk
    assert len(discrepancies_for_centre(actor=actors.labtech, centre_id=centre).missing) == 4
    own = discrepancies_for_centre(actor=actors.village, centre_id=centre).missing
    assert {row.specimen.order.requesting_institution.code for row in own} == {"dongshan"}


def test_outsiders_and_auditors_do_not_see_discrepancies(actors):
    for username in ("outsider", "auditor"):
        with pytest.raises(AccessDenied):
            discrepancies_for_centre(actor=getattr(actors, username), centre_id=lab_centre().pk)
    with pytest.raises(NotFound):
        discrepancies_for_centre(actor=actors.labtech, centre_id=999999)


def test_a_specimen_received_at_another_desk_meanwhile_is_received_once(
    actors, order, box, monkeypatch
):
    from lab import receipt

    barcode = order[1][0].barcode
    checks = receipt._receive_warnings

    def other_desk_first(specimen, **kwargs):
        Specimen.objects.filter(pk=specimen.pk).update(
            status=SpecimenStatus.RECEIVED,
            received_by=actors.labtech,
            received_at=timezone.now(),
        )
        return checks(specimen, **kwargs)

    monkeypatch.setattr(receipt, "_receive_warnings", other_desk_first)
    assert "was already received at" in refused(
        specimen_receive, actor=actors.labtech, barcode=barcode
    )
    assert not SpecimenEvent.objects.filter(specimen__barcode=barcode, kind="received").exists()
