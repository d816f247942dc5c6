"""Helpers for part 2's tests (shipment): collected orders made directly through the models.

Orders and specimens are created as rows with ``lab.numbering``, so these tests do not
depend on the ordering services; a specimen per specimen type and container, as
collection makes them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.test import Client
from django.utils import timezone

from association.models import CentreKind, DiagnosticCentre, Institution
from lab.models import (
    Box,
    BoxStatus,
    LabOrder,
    LabTest,
    OrderItem,
    OrderStatus,
    Priority,
    Specimen,
    SpecimenStatus,
)
from lab.numbering import next_barcode, next_box_number, next_order_number

LAB_CENTRE = "qingshan-lab"


def lab_centre() -> DiagnosticCentre:
    return DiagnosticCentre.objects.get(code=LAB_CENTRE)


def institution(code: str) -> Institution:
    return Institution.objects.get(code=code)


def other_lab_centre() -> DiagnosticCentre:
    """A second lab centre of the same association, where ``labtech`` does not work."""
    home = lab_centre()
    centre, _created = DiagnosticCentre.objects.get_or_create(
        code="qingshan-lab-2",
        defaults={
            "name": "青山县第二检验中心",
            "kind": CentreKind.LAB,
            "host": home.host,
            "association": home.association,
        },
    )
    return centre


def collected_order(
    *,
    doctor: Any,
    patient: Any,
    clinic: str,
    codes: tuple[str, ...] = ("K", "NA", "HGB"),
    centre: DiagnosticCentre | None = None,
    priority: str = Priority.ROUTINE,
    collected_at: dt.datetime | None = None,
) -> tuple[LabOrder, list[Specimen]]:
    """An order of ``codes`` with its specimens collected (one per type and container)."""
    centre = centre or lab_centre()
    at = collected_at or timezone.now()
    order = LabOrder.objects.create(
        number=next_order_number(),
        patient=patient,
        requesting_institution=institution(clinic),
        requested_by=doctor,
        centre=centre,
        priority=priority,
        status=OrderStatus.COLLECTED,
        collected_at=at,
    )
    tests = {t.code: t for t in LabTest.objects.filter(centre=lab_centre(), code__in=codes)}
    specimens: dict[tuple[str, str], Specimen] = {}
    for code in codes:
        test = tests[code]
        key = (test.specimen_type, test.container)
        if key not in specimens:
            specimens[key] = Specimen.objects.create(
                barcode=next_barcode(),
                order=order,
                specimen_type=test.specimen_type,
                container=test.container,
                collected_by=doctor,
                collected_at=at,
            )
        OrderItem.objects.create(order=order, test=test, specimen=specimens[key])
    return order, list(specimens.values())


def empty_box(*, clinic: str, centre: DiagnosticCentre, by: Any) -> Box:
    return Box.objects.create(
        number=next_box_number(), from_institution=institution(clinic), centre=centre, created_by=by
    )


def shipped_box(*, clinic: str, by: Any, specimens: list[Specimen], hours_ago: float = 1) -> Box:
    """A box handed over ``hours_ago`` with ``specimens`` in it (rows set directly)."""
    box = empty_box(clinic=clinic, centre=specimens[0].order.centre, by=by)
    shipped_at = timezone.now() - dt.timedelta(hours=hours_ago)
    Box.objects.filter(pk=box.pk).update(
        status=BoxStatus.SHIPPED, courier="顺丰 张师傅", shipped_by=by, shipped_at=shipped_at
    )
    Specimen.objects.filter(pk__in=[s.pk for s in specimens]).update(
        status=SpecimenStatus.SHIPPED, box=box
    )
    box.refresh_from_db()
    return box


def wrong_check_digit(barcode: str) -> str:
    """The same barcode with its Luhn check digit changed (a mistyped scan)."""
    return barcode[:-1] + str((int(barcode[-1]) + 1) % 10)


def login(client: Client, user: Any, language: str = "en") -> Client:
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
    client.force_login(user)
    return client
