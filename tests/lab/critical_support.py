"""Builders for the critical-value tests: an order with a received specimen and a result.

Made directly through the models and ``lab.numbering`` so these tests do not depend on the
ordering, shipping and results services.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.utils import timezone

from accounts.models import User
from association.models import DiagnosticCentre, Institution, Membership, Role
from lab.models import (
    Flag,
    ItemStatus,
    LabOrder,
    LabTest,
    OrderItem,
    OrderStatus,
    Priority,
    ResultSource,
    Specimen,
    SpecimenStatus,
)
from lab.models import Result as LabResult
from lab.numbering import create_numbered, next_barcode, next_order_number

LAB_CENTRE = "qingshan-lab"


def lab_centre() -> DiagnosticCentre:
    return DiagnosticCentre.objects.get(code=LAB_CENTRE)


def clinic_of(doctor: User) -> Institution:
    """The institution where ``doctor`` treats patients (not a centre membership)."""
    membership = Membership.objects.filter(user=doctor, active=True, centre__isnull=True).first()
    assert membership is not None, f"{doctor} has no clinic"
    return membership.institution


def clinic_colleague(doctor: User, *, username: str = "village_b") -> User:
    """Another grassroots doctor of ``doctor``'s clinic (the demo clinics have one each)."""
    colleague = User.objects.create_user(
        username=username, display_name="孙村医", password="x", preferred_language="en"
    )
    Membership.objects.create(
        user=colleague, institution=clinic_of(doctor), role=Role.GRASSROOTS_DOCTOR
    )
    return colleague


def critical_result(
    *,
    patient: Any,
    doctor: User,
    labtech: User,
    code: str = "K",
    value: str = "6.8",
    flag: str = Flag.CRITICAL_HIGH,
) -> LabResult:
    """An order of ``doctor``'s clinic at the demo lab, received, with one entered result."""
    centre = lab_centre()
    test = LabTest.objects.get(centre=centre, code=code)
    now = timezone.now()
    clinic = clinic_of(doctor)

    def make_order() -> LabOrder:
        return LabOrder.objects.create(
            number=next_order_number(),
            patient=patient,
            requesting_institution=clinic,
            requested_by=doctor,
            centre=centre,
            priority=Priority.URGENT,
            clinical_note="乏力，心悸",
            status=OrderStatus.IN_PROGRESS,
            collected_at=now - dt.timedelta(hours=3),
            received_at=now - dt.timedelta(hours=1),
        )

    order = create_numbered(make_order)

    def make_specimen() -> Specimen:
        return Specimen.objects.create(
            barcode=next_barcode(),
            order=order,
            specimen_type=test.specimen_type,
            container=test.container,
            status=SpecimenStatus.RECEIVED,
            collected_by=doctor,
            collected_at=now - dt.timedelta(hours=3),
            received_by=labtech,
            received_at=now - dt.timedelta(hours=1),
        )

    specimen = create_numbered(make_specimen)
    item = OrderItem.objects.create(
        order=order, test=test, specimen=specimen, status=ItemStatus.RESULTED
    )
    return LabResult.objects.create(
        item=item,
        value_numeric=Decimal(value),
        unit=test.unit,
        flag=flag,
        reference_low=Decimal("3.5"),
        reference_high=Decimal("5.3"),
        source=ResultSource.MANUAL,
        entered_by=labtech,
    )


def set_value(result: LabResult, value: str, flag: str) -> LabResult:
    """Correct a result in place (what the results service does before calling us)."""
    result.value_numeric = Decimal(value)
    result.flag = flag
    result.save(update_fields=["value_numeric", "flag"])
    return result


def english(*users: User) -> None:
    """Let these users read their notifications in English."""
    for user in users:
        user.preferred_language = "en"
        user.save(update_fields=["preferred_language"])


def with_banner(settings_fixture: Any) -> None:
    """Enable the banner's context processor (settings.py lists it once the owner adds it)."""
    processor = "lab.context_processors.critical_alerts"
    templates = [dict(engine) for engine in settings.TEMPLATES]
    options = dict(templates[0].get("OPTIONS", {}))
    processors = list(options.get("context_processors", []))
    if processor not in processors:
        processors.append(processor)
    options["context_processors"] = processors
    templates[0]["OPTIONS"] = options
    settings_fixture.TEMPLATES = templates
