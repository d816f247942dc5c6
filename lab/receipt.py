"""Receipt at the lab centre: receive a shipped box, receive or reject each specimen.

Every scan is audited, the bad ones too (as failed, or denied for a box or specimen sent
to another lab centre). Access is checked through ``lab.access`` and
``lab.shipping_selectors`` before the transaction; the state changes are conditional
updates (``UPDATE ... WHERE status = ...``), so the same tube scanned at two desks at once
changes once and the second desk gets the message the first one caused. Scanning itself
(reading a barcode, finding its specimen) is shared with packing in ``lab.shipping``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone, translation
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import User
from association.selectors import actor_scope
from audit.models import Outcome
from lab.access import box_deny, lab_centre_ids
from lab.models import (
    Box,
    BoxStatus,
    ItemStatus,
    LabOrder,
    OrderItem,
    OrderStatus,
    RejectionReason,
    Specimen,
    SpecimenStatus,
    SpecimenType,
)
from lab.shipping import UNSHIPPED, refuse_box, scan_text, specimen_by_scan
from lab.shipping_selectors import lab_scope, later, specimen_tests, when_text
from lab.workflow_common import (
    MAX_REASON,
    audit_box,
    audit_order,
    clinic_doctors_of,
    notify,
    order_link,
    policy_for,
    refuse,
    refuse_plain,
    specimen_event,
    timeline_title,
)
from realtime.models import Severity
from records.selectors import AccessDenied
from records.services import timeline_add

MAX_CONDITION = 200

_BEFORE_RECEIPT = (SpecimenStatus.COLLECTED, SpecimenStatus.PACKED, SpecimenStatus.SHIPPED)
_NOT_YET_RECEIVED = (OrderStatus.ORDERED, OrderStatus.COLLECTED, OrderStatus.SHIPPED)


@dataclass(frozen=True)
class ReceiveOutcome:
    """A specimen scanned at the lab: received, perhaps without shipment, perhaps with warnings."""

    specimen: Specimen
    unshipped: bool
    # Things to check now (too old, never shipped), in the language of the scan.
    warnings: list[str]


# --- Boxes --------------------------------------------------------------------------------------


def _already_received(box: Box) -> Promise:
    return later(
        gettext_lazy("Box %(number)s was already received at %(time)s by %(name)s."),
        number=box.number,
        time=when_text(box.received_at),
        name=str(box.received_by) if box.received_by else "?",
    )


def box_receive(*, actor: User, scanned_number: str, condition_note: str = "") -> Box:
    """Receive a shipped box at the actor's lab centre (its number scanned).

    Raises
    ------
    AccessDenied
        Not lab staff, or the box goes to another lab centre.
    InvalidRecord
        Unknown number, a box already received (with when and by whom), or still packing.
    """
    action = "lab.box.receive"
    scope = lab_scope(actor=actor, action=action)
    number = scan_text(scanned_number).upper()
    note = " ".join(condition_note.split())
    box = (
        Box.objects.select_related("from_institution", "received_by").filter(number=number).first()
    )
    if box is None:
        raise refuse_plain(
            actor=actor,
            action=action,
            message=later(
                gettext_lazy("No box has the number %(number)s. Check the label and scan again."),
                number=number[:20],
            ),
            resource_type="lab_box",
            resource_id=number[:32],
        )
    if box.centre_id not in lab_centre_ids(scope):
        box_deny(actor=actor, box_id=box.pk, action=action)  # audits the denial
        raise AccessDenied(
            _("Box %(number)s is addressed to another lab centre; it is not yours to receive.")
            % {"number": box.number}
        )
    problem: Promise | None = None
    if box.status == BoxStatus.RECEIVED:
        problem = _already_received(box)
    elif box.status == BoxStatus.PACKING:
        problem = later(
            gettext_lazy(
                "Box %(number)s was never handed to the courier: the clinic is still packing"
                " it. Scan its specimens one by one; they will be listed as received without"
                " shipment."
            ),
            number=box.number,
        )
    elif len(note) > MAX_CONDITION:
        problem = later(
            gettext_lazy(
                "The note on the box's condition is too long (at most %(max)s characters)."
            ),
            max=MAX_CONDITION,
        )
    if problem is not None:
        raise refuse_box(actor=actor, action=action, box=box, message=problem)
    now = timezone.now()
    with transaction.atomic():
        received = Box.objects.filter(pk=box.pk, status=BoxStatus.SHIPPED).update(
            status=BoxStatus.RECEIVED, received_by=actor, received_at=now, temperature_note=note
        )
        if received:
            specimen_event(kind="box_received", actor=actor, box=box, detail={"condition": note})
            audit_box(actor=actor, action=action, box=box, detail={"condition": note})
    box.refresh_from_db()
    if not received:
        raise refuse_box(actor=actor, action=action, box=box, message=_already_received(box))
    return box


# --- Specimens ----------------------------------------------------------------------------------


def _order_for_lab(*, actor: User, specimen: Specimen, action: str) -> LabOrder:
    """The specimen's order if the actor works at its lab centre; else denied (audited)."""
    order = specimen.order
    if order.centre_id not in lab_centre_ids(actor_scope(actor)):
        audit_order(
            actor=actor,
            action=action,
            order=order,
            outcome=Outcome.DENIED,
            reason="not staff of the lab centre",
        )
        raise AccessDenied(
            _("Specimen %(barcode)s was sent to another lab centre.")
            % {"barcode": specimen.barcode}
        )
    return order


def _receive_problem(specimen: Specimen) -> Promise | None:
    code = specimen.barcode
    if specimen.status == SpecimenStatus.RECEIVED:
        return later(
            gettext_lazy("Specimen %(barcode)s was already received at %(time)s by %(name)s."),
            barcode=code,
            time=when_text(specimen.received_at),
            name=str(specimen.received_by) if specimen.received_by else "?",
        )
    if specimen.status == SpecimenStatus.REJECTED:
        return later(
            gettext_lazy("Specimen %(barcode)s was already rejected: %(reason)s."),
            barcode=code,
            reason=_reason_label(specimen.rejection_reason),
        )
    if specimen.order.status == OrderStatus.CANCELLED:
        return later(
            gettext_lazy(
                "The clinic cancelled order %(order)s; do not process specimen %(barcode)s."
            ),
            order=specimen.order.number,
            barcode=code,
        )
    return None


def _reason_label(reason: str) -> Promise | str:
    return RejectionReason(reason).label if reason in RejectionReason.values else reason


def _receive_warnings(specimen: Specimen, *, unshipped: bool, now: dt.datetime) -> list[Promise]:
    warnings: list[Promise] = []
    if unshipped:
        warnings.append(
            later(
                gettext_lazy(
                    "Specimen %(barcode)s was never shipped: the clinic did not hand it over in"
                    " a box. It is received and listed under discrepancies."
                ),
                barcode=specimen.barcode,
            )
        )
    limit = policy_for(specimen.order.centre_id).specimen_max_age_hours
    hours = int((now - specimen.collected_at).total_seconds() // 3600)
    if hours >= limit:
        warnings.append(
            later(
                gettext_lazy(
                    "Collected %(hours)s hours ago (the limit is %(limit)s hours): consider"
                    " rejecting it as too old."
                ),
                hours=hours,
                limit=limit,
            )
        )
    return warnings


def _english(messages: list[Promise]) -> list[str]:
    with translation.override("en"):
        return [str(m) for m in messages]


def specimen_receive(*, actor: User, barcode: str) -> ReceiveOutcome:
    """Receive one specimen at the lab (scanned): shipped, or with a discrepancy if not.

    The first specimen of an order received makes the order received. A specimen older
    than the centre's limit is received with a warning: the technician decides.
    """
    action = "lab.specimen.receive"
    lab_scope(actor=actor, action=action)
    specimen = specimen_by_scan(actor=actor, barcode=barcode, action=action)
    order = _order_for_lab(actor=actor, specimen=specimen, action=action)
    problem = _receive_problem(specimen)
    if problem is not None:
        raise refuse(actor=actor, action=action, order=order, message=problem)
    unshipped = specimen.status in UNSHIPPED
    now = timezone.now()
    warnings = _receive_warnings(specimen, unshipped=unshipped, now=now)
    with transaction.atomic():
        received = Specimen.objects.filter(pk=specimen.pk, status__in=_BEFORE_RECEIPT).update(
            status=SpecimenStatus.RECEIVED,
            received_by=actor,
            received_at=now,
            received_unshipped=unshipped,
        )
        if received:
            detail = {"barcode": specimen.barcode, "warnings": _english(warnings)}
            specimen_event(
                kind="received_unshipped" if unshipped else "received",
                actor=actor,
                specimen=specimen,
                box=specimen.box,
                detail=detail,
            )
            if LabOrder.objects.filter(pk=order.pk, status__in=_NOT_YET_RECEIVED).update(
                status=OrderStatus.RECEIVED, received_at=now, updated_at=now
            ):
                audit_order(actor=actor, action="lab.order.received", order=order)
            audit_order(
                actor=actor, action=action, order=order, detail=detail | {"unshipped": unshipped}
            )
    specimen.refresh_from_db()
    if not received:
        message = _receive_problem(specimen) or gettext_lazy(
            "The specimen changed meanwhile; scan again."
        )
        raise refuse(actor=actor, action=action, order=order, message=message)
    return ReceiveOutcome(
        specimen=specimen, unshipped=unshipped, warnings=[str(w) for w in warnings]
    )


# --- Rejection ----------------------------------------------------------------------------------


def _reject_problem(specimen: Specimen, *, reason: str, note: str) -> Promise | None:
    if reason not in RejectionReason.values:
        return gettext_lazy("Choose why the specimen is rejected.")
    if reason == RejectionReason.OTHER and not note:
        return gettext_lazy("Describe the reason in the note when you choose “Other”.")
    if len(note) > MAX_REASON:
        return later(
            gettext_lazy("The note is too long (at most %(max)s characters)."), max=MAX_REASON
        )
    if specimen.status == SpecimenStatus.REJECTED:
        return later(
            gettext_lazy("Specimen %(barcode)s was already rejected: %(reason)s."),
            barcode=specimen.barcode,
            reason=_reason_label(specimen.rejection_reason),
        )
    if specimen.order.status == OrderStatus.CANCELLED:
        return _receive_problem(specimen)
    resulted = (
        OrderItem.objects.filter(specimen=specimen)
        .exclude(status__in=[ItemStatus.PENDING, ItemStatus.CANCELLED, ItemStatus.REJECTED])
        .exists()
    )
    if resulted:
        return later(
            gettext_lazy(
                "Results were already entered for specimen %(barcode)s; it cannot be rejected now."
            ),
            barcode=specimen.barcode,
        )
    return None


def specimen_reject(*, actor: User, barcode: str, reason: str, note: str = "") -> Specimen:
    """Reject a specimen at the lab with a reason; the clinic is told at once.

    Its tests are rejected; the order is rejected when all its specimens are. The ordering
    doctor and the clinic's doctors get an urgent notification; the resident's timeline
    records the rejection.
    """
    action = "lab.specimen.reject"
    lab_scope(actor=actor, action=action)
    specimen = specimen_by_scan(actor=actor, barcode=barcode, action=action)
    order = _order_for_lab(actor=actor, specimen=specimen, action=action)
    note = " ".join(note.split())
    problem = _reject_problem(specimen, reason=reason, note=note)
    if problem is not None:
        raise refuse(actor=actor, action=action, order=order, message=problem)
    now = timezone.now()
    before = specimen.status
    with transaction.atomic():
        rejected = Specimen.objects.filter(pk=specimen.pk, status=before).update(
            status=SpecimenStatus.REJECTED, rejection_reason=reason, rejection_note=note
        )
        if rejected:
            _record_rejection(
                specimen=specimen, order=order, actor=actor, reason=reason, note=note, now=now
            )
    specimen.refresh_from_db()
    if not rejected:
        message = _reject_problem(specimen, reason=reason, note=note) or gettext_lazy(
            "The specimen changed meanwhile; scan again."
        )
        raise refuse(actor=actor, action=action, order=order, message=message)
    return specimen


def _record_rejection(
    *,
    specimen: Specimen,
    order: LabOrder,
    actor: User,
    reason: str,
    note: str,
    now: dt.datetime,
) -> None:
    if specimen.received_at is None:  # rejected on arrival without a receipt scan first
        Specimen.objects.filter(pk=specimen.pk).update(
            received_by=actor,
            received_at=now,
            received_unshipped=specimen.status in UNSHIPPED,
        )
        if LabOrder.objects.filter(pk=order.pk, status__in=_NOT_YET_RECEIVED).update(
            status=OrderStatus.RECEIVED, received_at=now, updated_at=now
        ):
            audit_order(actor=actor, action="lab.order.received", order=order)
    OrderItem.objects.filter(specimen=specimen, status=ItemStatus.PENDING).update(
        status=ItemStatus.REJECTED
    )
    all_rejected = (
        not Specimen.objects.filter(order=order).exclude(status=SpecimenStatus.REJECTED).exists()
    )
    order_closed = all_rejected and bool(
        LabOrder.objects.filter(pk=order.pk)
        .exclude(status__in=[OrderStatus.CANCELLED, OrderStatus.REPORTED, OrderStatus.REJECTED])
        .update(status=OrderStatus.REJECTED, updated_at=now)
    )
    with translation.override("en"):
        label = str(_reason_label(reason))
    specimen_event(
        kind="rejected", actor=actor, specimen=specimen, detail={"reason": reason, "note": note}
    )
    timeline_add(
        patient=order.patient,
        kind="lab.rejected",
        title=timeline_title("lab.rejected"),
        summary=" · ".join(part for part in (order.number, specimen.barcode, label, note) if part),
        institution=order.centre.host,
        actor=actor,
        link=order_link(order),
        data={"order": order.pk, "specimen": specimen.pk, "reason": reason},
    )
    body = (
        gettext_lazy(
            "The lab rejected specimen %(barcode)s (%(specimen)s; %(tests)s): %(reason)s."
            " %(note)sThe order is closed: collect a new specimen and order the tests again."
        )
        if order_closed
        else gettext_lazy(
            "The lab rejected specimen %(barcode)s (%(specimen)s; %(tests)s): %(reason)s."
            " %(note)sCollect a new specimen and order these tests again."
        )
    )
    notify(
        [order.requested_by, *clinic_doctors_of(order.requesting_institution_id)],
        order=order,
        kind="lab.specimen_rejected",
        title=gettext_lazy("Specimen rejected: %(name)s, order %(number)s"),
        body=body,
        params={
            "barcode": specimen.barcode,
            "specimen": _type_label(specimen.specimen_type),
            "tests": specimen_tests(specimen) or "—",
            "reason": _reason_label(reason),
            "note": f"“{note}” " if note else "",
        },
        severity=Severity.URGENT,
        link=order_link(order),
        payload={"specimen": specimen.pk, "reason": reason},
    )
    if order_closed:
        audit_order(actor=actor, action="lab.order.rejected", order=order)
    audit_order(
        actor=actor,
        action="lab.specimen.reject",
        order=order,
        detail={"barcode": specimen.barcode, "reason": reason, "order_rejected": order_closed},
    )


def _type_label(value: str) -> Promise | str:
    return SpecimenType(value).label if value in SpecimenType.values else value
