"""The demo lab's recent past: a fortnight of reported orders and one order at each step.

Run by ``telemed demo`` after the catalogue (not by the test session). Every order goes
through the real services (order, collect, box, hand-over, receipt, results, validation,
signing, acknowledgement), as the township doctor and the lab technician, for 刘桂兰 (who
consented to association-wide sharing); afterwards the times are moved back so that the
queue's clocks and the dashboard's charts have something to draw. The notifications this
makes are marked read. Idempotent: does nothing once the demo lab has an order.
"""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from association.models import DiagnosticCentre
from lab.critical import alert_acknowledge
from lab.demo import LAB_CENTRE_CODE
from lab.models import (
    AlertStep,
    Box,
    CriticalAlert,
    LabOrder,
    LabReport,
    LabReportVersion,
    LabTest,
    Panel,
    Priority,
    Result,
    Specimen,
)
from lab.ordering import order_create, specimens_collect
from lab.receipt import box_receive, specimen_receive
from lab.reports import report_sign
from lab.results import result_save, results_validate_technical
from lab.shipping import box_add, box_open, box_ship
from realtime.models import Notification
from records.models import Patient

RESIDENT = "刘桂兰"
COURIER = "县医共体物流 王师傅"

# (days ago, panel, priority, {test code: value}, minutes from receipt to report)
_HISTORY: list[tuple[int, str, str, dict[str, str], int]] = [
    (13, "CBC", Priority.ROUTINE, {"HGB": "118", "WBC": "6.2", "PLT": "210"}, 95),
    (12, "LYTES", Priority.URGENT, {"K": "4.1", "NA": "139"}, 70),
    (11, "LFT", Priority.ROUTINE, {"ALT": "35", "AST": "28", "TBIL": "12.4"}, 300),
    (9, "CBC", Priority.ROUTINE, {"HGB": "112", "WBC": "7.9", "PLT": "198"}, 140),
    (8, "LYTES", Priority.EMERGENCY, {"K": "6.6", "NA": "133"}, 45),
    (7, "LFT", Priority.ROUTINE, {"ALT": "62", "AST": "41", "TBIL": "18.0"}, 1500),
    (5, "LYTES", Priority.ROUTINE, {"K": "3.9", "NA": "141"}, 180),
    (4, "CBC", Priority.URGENT, {"HGB": "121", "WBC": "11.3", "PLT": "240"}, 100),
    (2, "LYTES", Priority.ROUTINE, {"K": "4.4", "NA": "138"}, 210),
    (1, "LFT", Priority.ROUTINE, {"ALT": "44", "AST": "30", "TBIL": "15.1"}, 260),
]


def _order(
    *, doctor: User, patient: Patient, centre: DiagnosticCentre, panel: str, priority: str
) -> LabOrder:
    return order_create(
        actor=doctor,
        patient_id=patient.pk,
        centre=centre,
        test_ids=[],
        panel_ids=[Panel.objects.get(centre=centre, code=panel).pk],
        priority=priority,
        clinical_note="随访复查",
    )


def _ship(*, doctor: User, centre: DiagnosticCentre, specimens: list[Specimen]) -> Box:
    box = box_open(actor=doctor, centre_id=centre.pk)
    for specimen in specimens:
        box_add(actor=doctor, box_id=box.pk, barcode=specimen.barcode)
    return box_ship(actor=doctor, box_id=box.pk, scanned_number=box.number, courier=COURIER)


def _receive(*, tech: User, box: Box, specimens: list[Specimen]) -> None:
    box_receive(actor=tech, scanned_number=box.number)
    for specimen in specimens:
        specimen_receive(actor=tech, barcode=specimen.barcode)


def _results(*, tech: User, order: LabOrder, values: dict[str, str]) -> None:
    for item in order.items.select_related("test"):
        result_save(actor=tech, item_id=item.pk, value=values[item.test.code])


def _move_back(order: LabOrder, box: Box, *, ordered: dt.datetime, tat: int) -> None:
    """Put an order's times in the past: ordered, collected +20 min, shipped +2 h, received
    +3 h, reported ``tat`` minutes after receipt (acknowledged 6 minutes after raising)."""
    collected = ordered + dt.timedelta(minutes=20)
    shipped = ordered + dt.timedelta(hours=2)
    received = ordered + dt.timedelta(hours=3)
    reported = received + dt.timedelta(minutes=tat)
    LabOrder.objects.filter(pk=order.pk).update(
        created_at=ordered,
        collected_at=collected,
        received_at=received,
        reported_at=reported if order.reported_at else None,
    )
    Specimen.objects.filter(order=order).update(collected_at=collected, received_at=received)
    Box.objects.filter(pk=box.pk).update(
        created_at=collected, shipped_at=shipped, received_at=received
    )
    results = Result.objects.filter(item__order=order)
    results.update(
        entered_at=reported - dt.timedelta(minutes=10),
        tech_validated_at=reported - dt.timedelta(minutes=5),
        validated_at=reported,
    )
    LabReport.objects.filter(order=order).update(signed_at=reported)
    LabReportVersion.objects.filter(report__order=order).update(signed_at=reported)
    for alert in CriticalAlert.objects.filter(order=order):
        raised = reported - dt.timedelta(minutes=10)
        acknowledged = raised + dt.timedelta(minutes=6)
        CriticalAlert.objects.filter(pk=alert.pk).update(
            raised_at=raised, acknowledged_at=acknowledged, escalate_at=None
        )
        AlertStep.objects.filter(alert=alert, kind="acknowledged").update(at=acknowledged)
        AlertStep.objects.filter(alert=alert).exclude(kind="acknowledged").update(at=raised)


def demo_seed_lab_orders() -> None:
    """Seed the demo lab's history and open work (once)."""
    centre = DiagnosticCentre.objects.filter(code=LAB_CENTRE_CODE).first()
    patient = Patient.objects.filter(name=RESIDENT).first()
    doctor = User.objects.filter(username="township").first()
    tech = User.objects.filter(username="labtech").first()
    if centre is None or patient is None or doctor is None or tech is None:
        return
    if LabOrder.objects.filter(centre=centre).exists():
        return
    if not LabTest.objects.filter(centre=centre).exists():
        return
    started = timezone.now()
    with transaction.atomic():
        for days, panel, priority, values, tat in _HISTORY:
            order = _order(
                doctor=doctor, patient=patient, centre=centre, panel=panel, priority=priority
            )
            specimens = specimens_collect(actor=doctor, order_id=order.pk)
            box = _ship(doctor=doctor, centre=centre, specimens=specimens)
            _receive(tech=tech, box=box, specimens=specimens)
            _results(tech=tech, order=order, values=values)
            for alert in CriticalAlert.objects.filter(order=order):
                alert_acknowledge(actor=doctor, alert_id=alert.pk, note="已电话通知患者复诊")
            results_validate_technical(actor=tech, order_id=order.pk)
            report_sign(actor=tech, order_id=order.pk)
            order.refresh_from_db()
            ordered = (started - dt.timedelta(days=days)).replace(hour=9, minute=0)
            _move_back(order, box, ordered=ordered, tat=tat)
        # Open work: one order at each step of the queue.
        waiting = _order(
            doctor=doctor, patient=patient, centre=centre, panel="LFT", priority=Priority.ROUTINE
        )
        specimens_collect(actor=doctor, order_id=waiting.pk)
        shipped = _order(
            doctor=doctor, patient=patient, centre=centre, panel="CBC", priority=Priority.URGENT
        )
        _ship(
            doctor=doctor,
            centre=centre,
            specimens=specimens_collect(actor=doctor, order_id=shipped.pk),
        )
        received = _order(
            doctor=doctor, patient=patient, centre=centre, panel="LYTES", priority=Priority.URGENT
        )
        tubes = specimens_collect(actor=doctor, order_id=received.pk)
        _receive(
            tech=tech, box=_ship(doctor=doctor, centre=centre, specimens=tubes), specimens=tubes
        )
        Notification.objects.filter(created_at__gte=started, read_at__isnull=True).update(
            read_at=timezone.now()
        )
