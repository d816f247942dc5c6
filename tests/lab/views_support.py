"""Builders for the queue, clinic list and dashboard tests: orders in any state, at set times.

Made directly through the models and ``lab.numbering`` so these tests do not depend on the
ordering, shipping, results and critical-value services.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from django.utils import timezone

from accounts.models import User
from association.models import CentreKind, DiagnosticCentre, Institution, Membership, Role
from lab.models import (
    AlertLevel,
    AlertStatus,
    CriticalAlert,
    Flag,
    ItemStatus,
    LabOrder,
    LabReport,
    LabReportVersion,
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


def institution(code: str) -> Institution:
    return Institution.objects.get(code=code)


def clinic_of(doctor: User) -> Institution:
    membership = Membership.objects.filter(user=doctor, active=True, centre__isnull=True).first()
    assert membership is not None, f"{doctor} has no clinic"
    return membership.institution


def hexi_lab_tech() -> User:
    """A lab technician of a lab centre of the other association (Hexi)."""
    clinic = institution("hexi-clinic")
    centre, _new = DiagnosticCentre.objects.get_or_create(
        code="hexi-lab",
        defaults={
            "name": "河西检验中心",
            "kind": CentreKind.LAB,
            "host": clinic,
            "association": clinic.association,
        },
    )
    user = User.objects.filter(username="hexi_labtech").first()
    if user is None:
        user = User.objects.create_user(
            username="hexi_labtech", display_name="吴技师", password="x"
        )
        Membership.objects.create(
            user=user, institution=clinic, centre=centre, role=Role.LAB_TECHNICIAN
        )
    return user


# Order statuses and how far along the specimens are for each.
_SPECIMEN_STATUS = {
    OrderStatus.ORDERED: None,
    OrderStatus.COLLECTED: SpecimenStatus.COLLECTED,
    OrderStatus.SHIPPED: SpecimenStatus.SHIPPED,
    OrderStatus.RECEIVED: SpecimenStatus.RECEIVED,
    OrderStatus.IN_PROGRESS: SpecimenStatus.RECEIVED,
    OrderStatus.REPORTED: SpecimenStatus.RECEIVED,
    OrderStatus.REJECTED: SpecimenStatus.REJECTED,
    OrderStatus.CANCELLED: None,
}


def make_order(
    *,
    patient: Any,
    doctor: User,
    labtech: User,
    status: str,
    priority: str = Priority.ROUTINE,
    codes: Sequence[str] = ("K",),
    created_at: dt.datetime | None = None,
    received_at: dt.datetime | None = None,
    reported_at: dt.datetime | None = None,
    first_signed_at: dt.datetime | None = None,
    item_status: str | None = None,
    specimens: int = 1,
    rejected_specimens: int = 0,
    received_specimens: int | None = None,
    institution_of: Institution | None = None,
) -> LabOrder:
    """An order of ``doctor``'s clinic at the demo lab in ``status``, with set times.

    ``specimens`` tubes are made (all of the first test's type); ``rejected_specimens`` of
    them are rejected and ``received_specimens`` (default: the rest, once at the lab)
    received. ``first_signed_at`` adds a signed report version at that time.
    """
    centre = lab_centre()
    now = timezone.now()
    created = created_at or now - dt.timedelta(hours=6)
    at_lab = status in (
        OrderStatus.RECEIVED,
        OrderStatus.IN_PROGRESS,
        OrderStatus.REPORTED,
        OrderStatus.REJECTED,
    )
    received = received_at or (created + dt.timedelta(hours=2) if at_lab else None)
    reported = reported_at
    if status == OrderStatus.REPORTED and reported is None:
        reported = (received or created) + dt.timedelta(hours=1)
    collected = created + dt.timedelta(minutes=30) if status != OrderStatus.ORDERED else None
    clinic = institution_of or clinic_of(doctor)

    def build() -> LabOrder:
        return LabOrder.objects.create(
            number=next_order_number(),
            patient=patient,
            requesting_institution=clinic,
            requested_by=doctor,
            centre=centre,
            priority=priority,
            status=status,
            created_at=created,
            collected_at=collected,
            received_at=received,
            reported_at=reported,
        )

    order = create_numbered(build)
    tests = [LabTest.objects.get(centre=centre, code=code) for code in codes]
    made: list[Specimen] = []
    specimen_status = _SPECIMEN_STATUS[OrderStatus(status)]
    if specimen_status is not None:
        received_count = (
            received_specimens
            if received_specimens is not None
            else (specimens - rejected_specimens if at_lab else 0)
        )
        for index in range(specimens):
            if index < rejected_specimens:
                state = SpecimenStatus.REJECTED
            elif index < rejected_specimens + received_count:
                state = SpecimenStatus.RECEIVED
            elif specimen_status in (SpecimenStatus.RECEIVED, SpecimenStatus.REJECTED):
                state = SpecimenStatus.SHIPPED
            else:
                state = specimen_status
            made.append(_specimen(order, tests[0], doctor, labtech, state, collected, received))
    if item_status is None:
        item_status = {
            OrderStatus.IN_PROGRESS: ItemStatus.RESULTED,
            OrderStatus.REPORTED: ItemStatus.VALIDATED,
            OrderStatus.REJECTED: ItemStatus.REJECTED,
            OrderStatus.CANCELLED: ItemStatus.CANCELLED,
        }.get(OrderStatus(status), ItemStatus.PENDING)
    for test in tests:
        OrderItem.objects.create(
            order=order, test=test, specimen=made[0] if made else None, status=item_status
        )
    if status == OrderStatus.REPORTED:
        sign(order, labtech, at=first_signed_at or reported)
    return order


def _specimen(
    order: LabOrder,
    test: LabTest,
    doctor: User,
    labtech: User,
    state: str,
    collected: dt.datetime | None,
    received: dt.datetime | None,
) -> Specimen:
    at_lab = state in (SpecimenStatus.RECEIVED, SpecimenStatus.REJECTED)

    def build() -> Specimen:
        return Specimen.objects.create(
            barcode=next_barcode(),
            order=order,
            specimen_type=test.specimen_type,
            container=test.container,
            status=state,
            collected_by=doctor,
            collected_at=collected or order.created_at,
            received_by=labtech if at_lab else None,
            received_at=received if at_lab else None,
            rejection_reason="haemolysed" if state == SpecimenStatus.REJECTED else "",
        )

    return create_numbered(build)


def sign(order: LabOrder, labtech: User, *, at: dt.datetime | None) -> LabReport:
    """A signed report (version 1) at ``at``."""
    signed_at = at or timezone.now()
    report = LabReport.objects.create(
        order=order, version=1, signed_by=labtech, signed_at=signed_at
    )
    LabReportVersion.objects.create(
        report=report, version=1, signed_by=labtech, signed_at=signed_at
    )
    return report


def make_alert(
    order: LabOrder,
    labtech: User,
    *,
    raised_at: dt.datetime,
    acknowledged_at: dt.datetime | None = None,
    level: int = AlertLevel.ORDERING_DOCTOR,
    status: str | None = None,
) -> CriticalAlert:
    """A critical value on the order's first test, raised (and acknowledged) at set times."""
    item = order.items.order_by("id").first()
    assert item is not None
    result = LabResult.objects.filter(item=item).first() or LabResult.objects.create(
        item=item,
        value_numeric=Decimal("6.8"),
        unit=item.test.unit,
        flag=Flag.CRITICAL_HIGH,
        source=ResultSource.MANUAL,
        entered_by=labtech,
    )
    if status is None:
        status = AlertStatus.ACKNOWLEDGED if acknowledged_at else AlertStatus.OPEN
    return CriticalAlert.objects.create(
        result=result,
        order=order,
        patient_id=order.patient_id,
        value="6.8",
        flag=Flag.CRITICAL_HIGH,
        status=status,
        level=level,
        raised_by=labtech,
        raised_at=raised_at,
        acknowledged_by=order.requested_by if acknowledged_at else None,
        acknowledged_at=acknowledged_at,
    )
