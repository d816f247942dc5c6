"""Builders for the results tests: an order whose specimens are already received at the lab.

Made directly through the models and ``lab.numbering``, so the results tests do not depend
on the ordering and shipping services.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from django.utils import timezone

from accounts.models import User
from association.models import DiagnosticCentre, Institution, Membership
from lab.models import (
    ItemStatus,
    LabOrder,
    LabTest,
    OrderItem,
    OrderStatus,
    Priority,
    Specimen,
    SpecimenStatus,
)
from lab.numbering import create_numbered, next_barcode, next_order_number
from lab.reports import report_sign
from lab.results import ResultEntry, results_save, results_validate_technical

LAB_CENTRE = "qingshan-lab"


def lab_centre() -> DiagnosticCentre:
    return DiagnosticCentre.objects.get(code=LAB_CENTRE)


def clinic_of(doctor: User) -> Institution:
    membership = Membership.objects.filter(user=doctor, active=True, centre__isnull=True).first()
    assert membership is not None, f"{doctor} has no clinic"
    return membership.institution


def received_order(
    *,
    patient: Any,
    doctor: User,
    labtech: User,
    codes: Sequence[str] = ("K", "NA"),
    priority: str = Priority.ROUTINE,
    collected_at: dt.datetime | None = None,
) -> LabOrder:
    """An order of ``doctor``'s clinic at the demo lab; one received specimen per tube type."""
    centre = lab_centre()
    now = timezone.now()
    drawn = collected_at or now - dt.timedelta(hours=3)
    order = create_numbered(
        lambda: LabOrder.objects.create(
            number=next_order_number(),
            patient=patient,
            requesting_institution=clinic_of(doctor),
            requested_by=doctor,
            centre=centre,
            priority=priority,
            clinical_note="乏力，心悸",
            status=OrderStatus.RECEIVED,
            collected_at=drawn,
            received_at=now - dt.timedelta(hours=1),
        )
    )
    tubes: dict[tuple[str, str], Specimen] = {}
    for code in codes:
        test = LabTest.objects.get(centre=centre, code=code)
        key = (test.specimen_type, test.container)
        if key not in tubes:
            tubes[key] = create_numbered(
                lambda t=test: Specimen.objects.create(
                    barcode=next_barcode(),
                    order=order,
                    specimen_type=t.specimen_type,
                    container=t.container,
                    status=SpecimenStatus.RECEIVED,
                    collected_by=doctor,
                    collected_at=drawn,
                    received_by=labtech,
                    received_at=now - dt.timedelta(hours=1),
                )
            )
        OrderItem.objects.create(order=order, test=test, specimen=tubes[key])
    return order


def item_of(order: LabOrder, code: str) -> OrderItem:
    return OrderItem.objects.select_related("specimen", "test").get(order=order, test__code=code)


def barcode_of(order: LabOrder, code: str) -> str:
    specimen = item_of(order, code).specimen
    assert specimen is not None
    return specimen.barcode


def enter(order: LabOrder, labtech: User, **values: str) -> None:
    """Save values by test code: ``enter(order, labtech, K="4.1", NA="140")``."""
    entries = [ResultEntry(item_id=item_of(order, code).pk, value=v) for code, v in values.items()]
    results_save(actor=labtech, order_id=order.pk, entries=entries)


def signed_order(*, patient: Any, doctor: User, labtech: User, **values: str) -> LabOrder:
    """An order with the given results entered, validated and signed (version 1)."""
    order = received_order(patient=patient, doctor=doctor, labtech=labtech, codes=list(values))
    enter(order, labtech, **values)
    results_validate_technical(actor=labtech, order_id=order.pk)
    report_sign(actor=labtech, order_id=order.pk)
    order.refresh_from_db()
    return order


def reject_specimen(order: LabOrder, code: str, *, reason: str = "haemolysed") -> None:
    """What the shipping part does at receipt: the specimen and its tests are rejected."""
    specimen = item_of(order, code).specimen
    assert specimen is not None
    Specimen.objects.filter(pk=specimen.pk).update(
        status=SpecimenStatus.REJECTED, rejection_reason=reason
    )
    OrderItem.objects.filter(specimen=specimen).update(status=ItemStatus.REJECTED)


def english(*users: User) -> None:
    """Let these users read their notifications in English."""
    for user in users:
        user.preferred_language = "en"
        user.save(update_fields=["preferred_language"])
