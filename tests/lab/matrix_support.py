"""A lab order taken all the way through the real services, for the access matrix and the API.

``reported_order(actors, residents)``: the village doctor orders K and Na for 张三 (recording
the resident's consent), collects, packs and ships the box; the lab technician receives the
box and the tube, enters K 6.8 (critical: an open alert to the village doctor) and Na 140,
validates and signs the report (version 1, with its PDF).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from association.models import DiagnosticCentre
from lab.demo import LAB_CENTRE_CODE
from lab.models import Box, CriticalAlert, LabOrder, LabTest, OrderItem, Priority, Specimen
from lab.ordering import order_create, specimens_collect
from lab.receipt import box_receive, specimen_receive
from lab.reports import report_sign
from lab.results import result_save, results_validate_technical
from lab.shipping import box_add, box_open, box_ship
from records.models import Patient


class Named:
    """The demo's named actors by attribute (``named.village``), outside a test's fixtures."""

    def __getattr__(self, username: str) -> Any:
        from django.contrib.auth import get_user_model

        return get_user_model().objects.get(username=username)


def residents_by_name() -> dict[str, Patient]:
    return {p.name: p for p in Patient.objects.all()}


@dataclass(frozen=True)
class LabWorld:
    centre: DiagnosticCentre
    order: LabOrder
    specimen: Specimen
    box: Box
    potassium: OrderItem
    sodium: OrderItem
    alert: CriticalAlert


def lab_centre() -> DiagnosticCentre:
    return DiagnosticCentre.objects.get(code=LAB_CENTRE_CODE)


def ids_of(centre: DiagnosticCentre, *codes: str) -> list[int]:
    by_code = dict(LabTest.objects.filter(centre=centre).values_list("code", "pk"))
    return [by_code[code] for code in codes]


def ordered(actors: Any, residents: Any, *codes: str) -> LabOrder:
    """An order of the village doctor for 张三 (consent recorded with it)."""
    centre = lab_centre()
    return order_create(
        actor=actors.village,
        patient_id=residents["张三"].pk,
        centre=centre,
        test_ids=ids_of(centre, *codes),
        panel_ids=[],
        priority=Priority.URGENT,
        clinical_note="乏力三天",
        record_consent=True,
    )


def received(actors: Any, residents: Any, *codes: str) -> tuple[LabOrder, Specimen, Box]:
    """An order whose one tube was collected, shipped in a box and received at the lab."""
    order = ordered(actors, residents, *codes)
    (specimen,) = specimens_collect(actor=actors.village, order_id=order.pk)
    box = box_open(actor=actors.village, centre_id=order.centre_id)
    box_add(actor=actors.village, box_id=box.pk, barcode=specimen.barcode)
    box_ship(actor=actors.village, box_id=box.pk, scanned_number=box.number, courier="县医院班车")
    box_receive(actor=actors.labtech, scanned_number=box.number)
    specimen_receive(actor=actors.labtech, barcode=specimen.barcode)
    return order, specimen, box


def reported_order(actors: Any, residents: Any) -> LabWorld:
    order, specimen, box = received(actors, residents, "K", "NA")
    items = {i.test.code: i for i in OrderItem.objects.filter(order=order).select_related("test")}
    result_save(actor=actors.labtech, item_id=items["K"].pk, value="6.8")
    result_save(actor=actors.labtech, item_id=items["NA"].pk, value="140")
    results_validate_technical(actor=actors.labtech, order_id=order.pk)
    report_sign(actor=actors.labtech, order_id=order.pk)
    return LabWorld(
        centre=lab_centre(),
        order=LabOrder.objects.get(pk=order.pk),
        specimen=Specimen.objects.get(pk=specimen.pk),
        box=Box.objects.get(pk=box.pk),
        potassium=items["K"],
        sodium=items["NA"],
        alert=CriticalAlert.objects.get(order=order),
    )
