"""Shipment at the clinic: open a box, scan specimens in and out, hand it to the courier."""

from __future__ import annotations

import pytest
from django.utils import translation

from audit.models import AuditEvent, Outcome
from lab.manifest import manifest_pdf_render
from lab.models import (
    Box,
    BoxStatus,
    OrderStatus,
    Specimen,
    SpecimenEvent,
    SpecimenStatus,
)
from lab.numbering import luhn_digit
from lab.shipping import box_add, box_open, box_remove, box_ship
from lab.shipping_selectors import box_specimens, masked_name, name_initials
from realtime.models import Notification
from records.selectors import AccessDenied
from records.services import InvalidRecord
from tests.lab.shipping_support import (
    collected_order,
    empty_box,
    lab_centre,
    other_lab_centre,
    wrong_check_digit,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def zhang(residents):
    return residents["张三"]


@pytest.fixture
def order(actors, zhang):
    """张三's order at the village clinic: a serum tube (K, NA) and an EDTA tube (HGB)."""
    return collected_order(doctor=actors.village, patient=zhang, clinic="dongshan")


@pytest.fixture
def box(actors):
    return box_open(actor=actors.village, centre_id=lab_centre().pk)


def refused(callable_, **kwargs) -> str:
    """The refusal's message, in English (messages are lazy: read inside the override)."""
    with translation.override("en"):
        with pytest.raises(InvalidRecord) as caught:
            callable_(**kwargs)
        return str(caught.value)


# --- Opening a box ------------------------------------------------------------------------------


def test_village_doctor_opens_a_box_for_the_lab_centre_of_the_association(actors, box):
    assert box.status == BoxStatus.PACKING
    assert box.number.startswith("BX")
    assert box.from_institution.code == "dongshan"
    assert AuditEvent.objects.filter(
        action="lab.box.open", outcome=Outcome.ALLOWED, resource_id=str(box.pk)
    ).exists()


def test_doctor_of_another_association_cannot_open_a_box_for_the_centre(actors):
    with pytest.raises(AccessDenied):
        box_open(actor=actors.outsider, centre_id=lab_centre().pk)
    assert AuditEvent.objects.filter(
        action="lab.box.open", outcome=Outcome.DENIED, actor_username="outsider"
    ).exists()


@pytest.mark.parametrize("username", ["auditor", "labtech", "radiologist"])
def test_people_who_treat_no_one_at_a_clinic_cannot_open_a_box(actors, username):
    with pytest.raises(AccessDenied):
        box_open(actor=getattr(actors, username), centre_id=lab_centre().pk)


# --- Scanning specimens in -----------------------------------------------------------------------


def test_a_collected_specimen_scanned_into_the_box_is_packed(actors, order, box):
    _order, specimens = order
    packed = box_add(actor=actors.village, box_id=box.pk, barcode=f" {specimens[0].barcode}\n")
    assert packed.status == SpecimenStatus.PACKED
    assert packed.box_id == box.pk
    assert SpecimenEvent.objects.filter(specimen=packed, kind="packed", box=box).exists()
    assert AuditEvent.objects.filter(
        action="lab.box.add", outcome=Outcome.ALLOWED, patient_id=_order.patient_id
    ).exists()


def test_a_mistyped_barcode_is_told_apart_from_an_unknown_one(actors, order, box):
    _order, specimens = order
    message = refused(
        box_add,
        actor=actors.village,
        box_id=box.pk,
        barcode=wrong_check_digit(specimens[0].barcode),
    )
    assert message.startswith("This is not a specimen barcode of ours, or it was mistyped")
    assert refused(box_add, actor=actors.village, box_id=box.pk, barcode="12345") == message
    unknown = "99010100001" + luhn_digit("99010100001")
    assert "No specimen has the barcode" in refused(
        box_add, actor=actors.village, box_id=box.pk, barcode=unknown
    )
    assert AuditEvent.objects.filter(action="lab.box.add", outcome=Outcome.FAILED).count() == 3


def test_a_specimen_scanned_twice_into_the_same_box_is_said_so(actors, order, box):
    barcode = order[1][0].barcode
    box_add(actor=actors.village, box_id=box.pk, barcode=barcode)
    assert refused(box_add, actor=actors.village, box_id=box.pk, barcode=barcode) == (
        f"Specimen {barcode} is already in this box."
    )


def test_a_specimen_already_in_another_box_must_be_taken_out_first(actors, order, box):
    barcode = order[1][0].barcode
    first = box_open(actor=actors.village, centre_id=lab_centre().pk)
    box_add(actor=actors.village, box_id=first.pk, barcode=barcode)
    message = refused(box_add, actor=actors.village, box_id=box.pk, barcode=barcode)
    assert f"already in box {first.number}" in message
    assert Specimen.objects.get(barcode=barcode).box_id == first.pk


def test_a_shipped_specimen_cannot_be_packed_again(actors, order, box):
    barcode = order[1][0].barcode
    box_add(actor=actors.village, box_id=box.pk, barcode=barcode)
    box_ship(actor=actors.village, box_id=box.pk, scanned_number=box.number, courier="张师傅")
    second = box_open(actor=actors.village, centre_id=lab_centre().pk)
    message = refused(box_add, actor=actors.village, box_id=second.pk, barcode=barcode)
    assert message == f"Specimen {barcode} was already shipped in box {box.number}."


def test_a_specimen_of_a_cancelled_order_is_not_packed(actors, order, box):
    lab_order, specimens = order
    lab_order.status = OrderStatus.CANCELLED
    lab_order.save()
    message = refused(box_add, actor=actors.village, box_id=box.pk, barcode=specimens[0].barcode)
    assert "was cancelled; do not ship it" in message


def test_a_specimen_for_another_lab_centre_goes_in_another_box(actors, zhang, box):
    _order, specimens = collected_order(
        doctor=actors.village, patient=zhang, clinic="dongshan", centre=other_lab_centre()
    )
    message = refused(box_add, actor=actors.village, box_id=box.pk, barcode=specimens[0].barcode)
    assert "goes to 青山县第二检验中心" in message


def test_another_clinics_specimen_is_refused_and_audited_as_denied(actors, residents, box):
    _order, specimens = collected_order(
        doctor=actors.village2, patient=residents["赵明"], clinic="nanwan"
    )
    message = refused(box_add, actor=actors.village, box_id=box.pk, barcode=specimens[0].barcode)
    assert "belongs to another clinic's order" in message
    assert Specimen.objects.get(pk=specimens[0].pk).status == SpecimenStatus.COLLECTED
    assert AuditEvent.objects.filter(
        action="lab.box.add", outcome=Outcome.DENIED, actor_username="village"
    ).exists()


def test_another_clinic_cannot_scan_into_the_box(actors, order, box):
    with pytest.raises(AccessDenied):
        box_add(actor=actors.village2, box_id=box.pk, barcode=order[1][0].barcode)
    with pytest.raises(AccessDenied):
        box_add(actor=actors.labtech, box_id=box.pk, barcode=order[1][0].barcode)


def test_a_specimen_is_taken_out_while_the_box_is_packed(actors, order, box):
    barcode = order[1][0].barcode
    box_add(actor=actors.village, box_id=box.pk, barcode=barcode)
    removed = box_remove(actor=actors.village, box_id=box.pk, barcode=barcode)
    assert removed.status == SpecimenStatus.COLLECTED
    assert removed.box_id is None
    assert SpecimenEvent.objects.filter(specimen=removed, kind="unpacked").exists()
    assert refused(box_remove, actor=actors.village, box_id=box.pk, barcode=barcode) == (
        f"Specimen {barcode} is not in this box."
    )


# --- Handing over --------------------------------------------------------------------------------


def test_handing_over_ships_the_box_its_specimens_and_complete_orders(actors, order, box):
    lab_order, specimens = order
    for specimen in specimens:
        box_add(actor=actors.village, box_id=box.pk, barcode=specimen.barcode)
    before = Notification.objects.filter(recipient=actors.labtech).count()
    shipped = box_ship(
        actor=actors.village, box_id=box.pk, scanned_number=box.number.lower(), courier=" 张师傅 "
    )
    assert shipped.status == BoxStatus.SHIPPED
    assert shipped.courier == "张师傅"
    assert shipped.shipped_by == actors.village
    assert {s.status for s in box_specimens(shipped)} == {SpecimenStatus.SHIPPED}
    lab_order.refresh_from_db()
    assert lab_order.status == OrderStatus.SHIPPED
    assert SpecimenEvent.objects.filter(box=box, specimen__isnull=True, kind="shipped").exists()
    assert SpecimenEvent.objects.filter(specimen__in=specimens, kind="shipped").count() == 2
    notes = Notification.objects.filter(recipient=actors.labtech).order_by("-id")
    assert notes.count() == before + 1
    assert notes[0].kind == "lab.box_shipped"
    assert notes[0].payload["count"] == 2
    assert AuditEvent.objects.filter(action="lab.order.shipped", resource_id=str(lab_order.pk))


def test_the_box_is_shipped_in_the_language_of_each_lab_technician(actors, order, box):
    labtech = actors.labtech  # each attribute lookup reads the user afresh
    labtech.preferred_language = "en"
    labtech.save()
    box_add(actor=actors.village, box_id=box.pk, barcode=order[1][0].barcode)
    box_ship(actor=actors.village, box_id=box.pk, scanned_number=box.number, courier="李")
    note = Notification.objects.filter(recipient=actors.labtech).latest("id")
    assert note.title == "A box of 1 specimen is on its way"


def test_an_order_with_a_specimen_left_behind_stays_collected(actors, order, box):
    lab_order, specimens = order
    box_add(actor=actors.village, box_id=box.pk, barcode=specimens[0].barcode)
    box_ship(actor=actors.village, box_id=box.pk, scanned_number=box.number, courier="张师傅")
    lab_order.refresh_from_db()
    assert lab_order.status == OrderStatus.COLLECTED


def test_the_scanned_number_must_be_this_boxs_own(actors, order, box):
    box_add(actor=actors.village, box_id=box.pk, barcode=order[1][0].barcode)
    other = box_open(actor=actors.village, centre_id=lab_centre().pk)
    message = refused(
        box_ship, actor=actors.village, box_id=box.pk, scanned_number=other.number, courier="张"
    )
    assert message.startswith(f"You scanned {other.number}, but this is box {box.number}")
    assert Box.objects.get(pk=box.pk).status == BoxStatus.PACKING
    assert AuditEvent.objects.filter(
        action="lab.box.ship", outcome=Outcome.FAILED, resource_id=str(box.pk)
    ).exists()


def test_a_courier_is_named_and_the_box_is_not_empty(actors, order, box):
    assert refused(
        box_ship, actor=actors.village, box_id=box.pk, scanned_number=box.number, courier="张"
    ) == (f"Box {box.number} is empty: scan its specimens into it first.")
    box_add(actor=actors.village, box_id=box.pk, barcode=order[1][0].barcode)
    assert refused(
        box_ship, actor=actors.village, box_id=box.pk, scanned_number=box.number, courier="  "
    ) == ("Name the courier who takes the box.")


def test_a_box_is_handed_over_once_and_then_closed(actors, order, box):
    _lab_order, specimens = order
    box_add(actor=actors.village, box_id=box.pk, barcode=specimens[0].barcode)
    box_ship(actor=actors.village, box_id=box.pk, scanned_number=box.number, courier="张")
    assert "was already handed to the courier" in refused(
        box_ship, actor=actors.village, box_id=box.pk, scanned_number=box.number, courier="张"
    )
    assert "was handed to the courier" in refused(
        box_add, actor=actors.village, box_id=box.pk, barcode=specimens[1].barcode
    )
    assert "nothing can be taken out" in refused(
        box_remove, actor=actors.village, box_id=box.pk, barcode=specimens[0].barcode
    )


def _cancel(lab_order):
    """The clinic cancels the order after its tubes went into the box (row set directly)."""
    lab_order.status = OrderStatus.CANCELLED
    lab_order.save()


def test_a_box_holding_specimens_of_a_cancelled_order_is_not_handed_over(actors, zhang, box):
    lab_order, specimens = collected_order(doctor=actors.village, patient=zhang, clinic="dongshan")
    _kept_order, kept = collected_order(
        doctor=actors.village, patient=zhang, clinic="dongshan", codes=("K",)
    )
    for specimen in [*specimens, *kept]:
        box_add(actor=actors.village, box_id=box.pk, barcode=specimen.barcode)
    _cancel(lab_order)
    message = refused(
        box_ship, actor=actors.village, box_id=box.pk, scanned_number=box.number, courier="张"
    )
    barcodes = ", ".join(sorted(s.barcode for s in specimens))
    assert message == (f"Take out the specimens of cancelled orders before shipping: {barcodes}")
    assert Box.objects.get(pk=box.pk).status == BoxStatus.PACKING
    assert {s.status for s in box_specimens(box)} == {SpecimenStatus.PACKED}
    assert not SpecimenEvent.objects.filter(box=box, kind="shipped").exists()
    assert AuditEvent.objects.filter(
        action="lab.box.ship", outcome=Outcome.FAILED, resource_id=str(box.pk)
    ).exists()
    for specimen in specimens:
        box_remove(actor=actors.village, box_id=box.pk, barcode=specimen.barcode)
    shipped = box_ship(actor=actors.village, box_id=box.pk, scanned_number=box.number, courier="张")
    assert shipped.status == BoxStatus.SHIPPED
    assert [s.barcode for s in box_specimens(shipped)] == [kept[0].barcode]


def test_an_order_cancelled_during_the_hand_over_keeps_the_box_at_the_clinic(
    actors, order, box, monkeypatch
):
    from lab import shipping

    lab_order, specimens = order
    box_add(actor=actors.village, box_id=box.pk, barcode=specimens[0].barcode)
    checks = shipping._ship_problem

    def cancelled_after_the_check(**kwargs):
        problem = checks(**kwargs)
        _cancel(lab_order)
        return problem

    monkeypatch.setattr(shipping, "_ship_problem", cancelled_after_the_check)
    message = refused(
        box_ship, actor=actors.village, box_id=box.pk, scanned_number=box.number, courier="张"
    )
    assert message.endswith(f"before shipping: {specimens[0].barcode}")
    assert Box.objects.get(pk=box.pk).status == BoxStatus.PACKING
    assert Specimen.objects.get(pk=specimens[0].pk).status == SpecimenStatus.PACKED
    assert not Notification.objects.filter(kind="lab.box_shipped").exists()


# --- The manifest --------------------------------------------------------------------------------


def test_the_manifest_is_a_pdf_with_the_box_number(actors, order, box):
    for specimen in order[1]:
        box_add(actor=actors.village, box_id=box.pk, barcode=specimen.barcode)
    with translation.override("zh-hans"):
        pdf = manifest_pdf_render(box=box, specimens=box_specimens(box))
    assert pdf.startswith(b"%PDF")
    assert box.number.encode() in pdf


def test_the_manifest_of_an_empty_box_still_prints(actors):
    box = empty_box(clinic="dongshan", centre=lab_centre(), by=actors.village)
    with translation.override("en"):
        assert manifest_pdf_render(box=box, specimens=[]).startswith(b"%PDF")


def test_residents_are_masked_with_their_initials_on_the_manifest():
    assert masked_name("张三") == "张*"
    assert masked_name("欧阳娜娜") == "欧***"
    assert name_initials("张三") == "ZS"
