"""Writes of the shipment: pack specimens into a box, hand it to the courier, receive it at
the lab centre, receive or reject each specimen.

Every scan is audited, the bad ones too (as failed, or denied for someone else's
specimen or box). Access is checked through ``lab.access`` and ``lab.shipping_selectors``
before the transaction; the state changes are conditional updates (``UPDATE ... WHERE
status = ...``), so the same tube scanned at two desks at once changes once and the second
desk gets the message the first one caused.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone, translation
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from accounts.models import User
from association.models import CentreKind, DiagnosticCentre
from association.selectors import actor_scope
from audit.models import Outcome
from audit.services import audit_record
from lab.access import box_deny, lab_centre_ids
from lab.models import (
    Box,
    BoxStatus,
    ItemStatus,
    LabOrder,
    OrderItem,
    OrderStatus,
    Priority,
    RejectionReason,
    Specimen,
    SpecimenStatus,
    SpecimenType,
)
from lab.numbering import BOX_PREFIX, barcode_valid, create_numbered, next_box_number
from lab.shipping_selectors import (
    box_as_clinic,
    lab_scope,
    later,
    sending_institution,
    specimen_tests,
    when_text,
)
from lab.workflow_common import (
    MAX_COURIER,
    MAX_REASON,
    NOTIFY_SEVERITY,
    audit_box,
    audit_order,
    box_link,
    clinic_doctors_of,
    lab_staff_of,
    notify,
    order_link,
    policy_for,
    refuse,
    refuse_plain,
    specimen_event,
    timeline_title,
)
from realtime.models import Severity
from realtime.services import notification_send
from records.selectors import AccessDenied, NotFound
from records.services import InvalidRecord, timeline_add

__all__ = [
    "AccessDenied",
    "InvalidRecord",
    "NotFound",
    "ReceiveOutcome",
    "box_add",
    "box_open",
    "box_receive",
    "box_remove",
    "box_ship",
    "specimen_receive",
    "specimen_reject",
]

MAX_CONDITION = 200
_l = gettext_lazy

MALFORMED = _l("This is not a specimen barcode of ours, or it was mistyped. Scan it again.")
_BEFORE_RECEIPT = (SpecimenStatus.COLLECTED, SpecimenStatus.PACKED, SpecimenStatus.SHIPPED)
_UNSHIPPED = (SpecimenStatus.COLLECTED, SpecimenStatus.PACKED)
_NOT_YET_RECEIVED = (OrderStatus.ORDERED, OrderStatus.COLLECTED, OrderStatus.SHIPPED)


@dataclass(frozen=True)
class ReceiveOutcome:
    """A specimen scanned at the lab: received, perhaps without shipment, perhaps with warnings."""

    specimen: Specimen
    unshipped: bool
    # Things to check now (too old, never shipped), in the language of the scan.
    warnings: list[str]


# --- Scanning -----------------------------------------------------------------------------------


def scan_text(text: str) -> str:
    """What a scanner or a person typed, without spaces and line ends."""
    return "".join(text.split())


def _specimen_by_scan(*, actor: User, barcode: str, action: str) -> Specimen:
    """The specimen with this barcode; a malformed or unknown one is refused (audited)."""
    code = scan_text(barcode)
    if not barcode_valid(code):
        raise refuse_plain(
            actor=actor,
            action=action,
            message=MALFORMED,
            resource_type="lab_specimen",
            resource_id=code[:32],
        )
    specimen = (
        Specimen.objects.select_related(
            "order",
            "order__patient",
            "order__centre",
            "order__centre__host",
            "order__requesting_institution",
            "order__requested_by",
            "box",
            "received_by",
        )
        .filter(barcode=code)
        .first()
    )
    if specimen is None:
        raise refuse_plain(
            actor=actor,
            action=action,
            message=later(
                _l(
                    "No specimen has the barcode %(barcode)s. Check that it was collected in"
                    " the system and that the label is the right one."
                ),
                barcode=code,
            ),
            resource_type="lab_specimen",
            resource_id=code,
        )
    return specimen


def _refuse_box(*, actor: User, action: str, box: Box, message: Promise) -> InvalidRecord:
    return refuse_plain(
        actor=actor, action=action, message=message, resource_type="lab_box", resource_id=box.pk
    )


def _lock_packing_box(box: Box) -> bool:
    """Lock the box row while it is being packed (shipping waits for a scan in progress)."""
    return (
        Box.objects.select_for_update()
        .filter(pk=box.pk, status=BoxStatus.PACKING)
        .values_list("pk", flat=True)
        .first()
        is not None
    )


# --- At the clinic -------------------------------------------------------------------------------


def box_open(*, actor: User, centre_id: int) -> Box:
    """Open a new box at the actor's clinic for a lab centre of its association.

    Raises
    ------
    NotFound
        No such lab centre.
    AccessDenied
        The actor is no clinician of a clinic the centre serves.
    """
    action = "lab.box.open"
    scope = actor_scope(actor)
    if not scope.care_institution_ids:
        audit_record(
            actor=actor,
            action=action,
            outcome=Outcome.DENIED,
            resource_type="lab_box",
            reason="no clinical membership",
        )
        raise AccessDenied(_("Only clinicians of a clinic pack specimen boxes."))
    centre = (
        DiagnosticCentre.objects.filter(pk=centre_id, kind=CentreKind.LAB)
        .select_related("association")
        .first()
    )
    if centre is None:
        audit_record(
            actor=actor,
            action=action,
            outcome=Outcome.FAILED,
            resource_type="lab_centre",
            resource_id=centre_id,
            reason="no such lab centre",
        )
        raise NotFound(_("No such lab centre."))
    institution = sending_institution(scope, centre)
    if institution is None:
        audit_record(
            actor=actor,
            action=action,
            outcome=Outcome.DENIED,
            resource_type="lab_centre",
            resource_id=centre.pk,
            reason="centre does not serve the actor's association",
        )
        raise AccessDenied(_("This lab centre does not serve your clinic's association."))
    with transaction.atomic():
        box = create_numbered(
            lambda: Box.objects.create(
                number=next_box_number(),
                from_institution=institution,
                centre=centre,
                created_by=actor,
            )
        )
        audit_box(actor=actor, action=action, box=box, detail={"centre": centre.pk})
    return box


def _packing_problem(specimen: Specimen, box: Box) -> Promise | None:
    """Why this specimen cannot go into this box now, or None."""
    order = specimen.order
    code = specimen.barcode
    if specimen.box_id == box.pk and specimen.status == SpecimenStatus.PACKED:
        return later(_l("Specimen %(barcode)s is already in this box."), barcode=code)
    if specimen.status == SpecimenStatus.REJECTED:
        return later(
            _l("Specimen %(barcode)s was rejected by the lab; collect a new one."), barcode=code
        )
    if specimen.status in (SpecimenStatus.SHIPPED, SpecimenStatus.RECEIVED):
        if specimen.box is not None and specimen.status == SpecimenStatus.SHIPPED:
            return later(
                _l("Specimen %(barcode)s was already shipped in box %(box)s."),
                barcode=code,
                box=specimen.box.number,
            )
        return later(_l("Specimen %(barcode)s has already been received by the lab."), barcode=code)
    if specimen.box is not None:
        return later(
            _l("Specimen %(barcode)s is already in box %(box)s. Take it out of that box first."),
            barcode=code,
            box=specimen.box.number,
        )
    if order.status == OrderStatus.CANCELLED:
        return later(
            _l("Order %(order)s of specimen %(barcode)s was cancelled; do not ship it."),
            order=order.number,
            barcode=code,
        )
    if order.centre_id != box.centre_id:
        return later(
            _l(
                "Specimen %(barcode)s goes to %(centre)s, not to this box's lab centre. Pack it"
                " in a box for that centre."
            ),
            barcode=code,
            centre=order.centre.name,
        )
    if specimen.status != SpecimenStatus.COLLECTED:
        return later(_l("Specimen %(barcode)s cannot be packed now."), barcode=code)
    return None


def box_add(*, actor: User, box_id: int, barcode: str) -> Specimen:
    """Pack a collected specimen of the clinic's own orders into the box (scanned).

    Raises
    ------
    AccessDenied, NotFound
        Not the clinic's box.
    InvalidRecord
        Malformed or unknown barcode, another clinic's specimen, already packed or shipped,
        a cancelled order, another lab centre, or a box already handed over.
    """
    action = "lab.box.add"
    box = box_as_clinic(actor=actor, box_id=box_id, action=action)
    if box.status != BoxStatus.PACKING:
        raise _refuse_box(
            actor=actor,
            action=action,
            box=box,
            message=later(
                _l("Box %(number)s was handed to the courier; open a new box for more specimens."),
                number=box.number,
            ),
        )
    specimen = _specimen_by_scan(actor=actor, barcode=barcode, action=action)
    order = specimen.order
    if order.requesting_institution_id != box.from_institution_id:
        message = later(
            _l("Specimen %(barcode)s belongs to another clinic's order; it cannot go in this box."),
            barcode=specimen.barcode,
        )
        audit_order(actor=actor, action=action, order=order, outcome=Outcome.DENIED, reason=message)
        raise InvalidRecord(message)
    problem = _packing_problem(specimen, box)
    if problem is not None:
        raise refuse(actor=actor, action=action, order=order, message=problem)
    with transaction.atomic():
        packed = _lock_packing_box(box) and bool(
            Specimen.objects.filter(
                pk=specimen.pk, status=SpecimenStatus.COLLECTED, box__isnull=True
            ).update(status=SpecimenStatus.PACKED, box=box)
        )
        if packed:
            specimen_event(
                kind="packed", actor=actor, specimen=specimen, box=box, detail={"box": box.number}
            )
            audit_order(
                actor=actor,
                action=action,
                order=order,
                detail={"box": box.number, "barcode": specimen.barcode},
            )
    if not packed:  # another desk was quicker: say what it did
        specimen.refresh_from_db()
        box.refresh_from_db()
        problem = _packing_problem(specimen, box) or _l("The box changed meanwhile; scan again.")
        raise refuse(actor=actor, action=action, order=order, message=problem)
    specimen.refresh_from_db()
    return specimen


def box_remove(*, actor: User, box_id: int, barcode: str) -> Specimen:
    """Take a specimen out of a box that is still being packed."""
    action = "lab.box.remove"
    box = box_as_clinic(actor=actor, box_id=box_id, action=action)
    if box.status != BoxStatus.PACKING:
        raise _refuse_box(
            actor=actor,
            action=action,
            box=box,
            message=later(
                _l("Box %(number)s was handed to the courier; nothing can be taken out any more."),
                number=box.number,
            ),
        )
    specimen = _specimen_by_scan(actor=actor, barcode=barcode, action=action)
    not_here = later(_l("Specimen %(barcode)s is not in this box."), barcode=specimen.barcode)
    if specimen.box_id != box.pk or specimen.status != SpecimenStatus.PACKED:
        raise _refuse_box(actor=actor, action=action, box=box, message=not_here)
    with transaction.atomic():
        removed = _lock_packing_box(box) and bool(
            Specimen.objects.filter(pk=specimen.pk, box=box, status=SpecimenStatus.PACKED).update(
                status=SpecimenStatus.COLLECTED, box=None
            )
        )
        if removed:
            specimen_event(
                kind="unpacked", actor=actor, specimen=specimen, box=box, detail={"box": box.number}
            )
            audit_order(
                actor=actor,
                action=action,
                order=specimen.order,
                detail={"box": box.number, "barcode": specimen.barcode},
            )
    if not removed:
        raise _refuse_box(actor=actor, action=action, box=box, message=not_here)
    specimen.refresh_from_db()
    return specimen


def _ship_problem(*, box: Box, scanned: str, courier: str) -> Promise | None:
    if box.status != BoxStatus.PACKING:
        return later(
            _l("Box %(number)s was already handed to the courier at %(time)s."),
            number=box.number,
            time=when_text(box.shipped_at),
        )
    if not scanned:
        return _l("Scan the number on the box's label.")
    if scanned != box.number:
        return later(
            _l(
                "You scanned %(scanned)s, but this is box %(number)s. Scan the label of the"
                " box you hand over."
            ),
            scanned=scanned[:20],
            number=box.number,
        )
    if not courier:
        return _l("Name the courier who takes the box.")
    if len(courier) > MAX_COURIER:
        return later(
            _l("The courier's name is too long (at most %(max)s characters)."), max=MAX_COURIER
        )
    if not box.specimens.filter(status=SpecimenStatus.PACKED).exists():
        return later(
            _l("Box %(number)s is empty: scan its specimens into it first."), number=box.number
        )
    return None


def box_ship(*, actor: User, box_id: int, scanned_number: str, courier: str) -> Box:
    """Hand the box to the courier: the box's own label is scanned to confirm which box.

    The box and its specimens become shipped; each order whose specimens are all on their
    way becomes shipped; the lab staff of the centre are told a box is coming.
    """
    action = "lab.box.ship"
    box = box_as_clinic(actor=actor, box_id=box_id, action=action)
    scanned = scan_text(scanned_number).upper()
    courier = " ".join(courier.split())
    problem = _ship_problem(box=box, scanned=scanned, courier=courier)
    if problem is not None:
        raise _refuse_box(actor=actor, action=action, box=box, message=problem)
    now = timezone.now()
    with transaction.atomic():
        shipped = Box.objects.filter(pk=box.pk, status=BoxStatus.PACKING).update(
            status=BoxStatus.SHIPPED, courier=courier, shipped_by=actor, shipped_at=now
        )
        if shipped:
            box.refresh_from_db()
            _ship_contents(box=box, actor=actor, now=now)
    if not shipped:
        box.refresh_from_db()
        message = _ship_problem(box=box, scanned=scanned, courier=courier)
        message = message or _l("The box changed meanwhile; open it again.")
        raise _refuse_box(actor=actor, action=action, box=box, message=message)
    return box


def _ship_contents(*, box: Box, actor: User, now: dt.datetime) -> None:
    specimens = list(
        Specimen.objects.filter(box=box, status=SpecimenStatus.PACKED).select_related(
            "order", "order__patient"
        )
    )
    Specimen.objects.filter(pk__in=[s.pk for s in specimens], status=SpecimenStatus.PACKED).update(
        status=SpecimenStatus.SHIPPED
    )
    specimen_event(
        kind="shipped",
        actor=actor,
        box=box,
        detail={"courier": box.courier, "specimens": len(specimens)},
    )
    orders: dict[int, LabOrder] = {}
    for specimen in specimens:
        specimen_event(
            kind="shipped", actor=actor, specimen=specimen, box=box, detail={"box": box.number}
        )
        orders[specimen.order_id] = specimen.order
    for order in orders.values():
        waiting = Specimen.objects.filter(order=order, status__in=_UNSHIPPED).exists()
        if not waiting and LabOrder.objects.filter(
            pk=order.pk, status=OrderStatus.COLLECTED
        ).update(status=OrderStatus.SHIPPED, updated_at=now):
            audit_order(
                actor=actor, action="lab.order.shipped", order=order, detail={"box": box.number}
            )
    audit_box(
        actor=actor,
        action="lab.box.ship",
        box=box,
        detail={"courier": box.courier, "specimens": len(specimens), "orders": len(orders)},
    )
    _notify_box_shipped(box=box, count=len(specimens), orders=list(orders.values()))


def _notify_box_shipped(*, box: Box, count: int, orders: list[LabOrder]) -> None:
    ranks = [Priority.EMERGENCY, Priority.URGENT, Priority.ROUTINE]
    top = min((ranks.index(Priority(o.priority)) for o in orders), default=2)
    severity = NOTIFY_SEVERITY.get(ranks[top], Severity.INFO)
    for user in lab_staff_of(box.centre_id):
        with translation.override(user.preferred_language or None):
            notification_send(
                recipient=user,
                kind="lab.box_shipped",
                severity=severity,
                title=ngettext(
                    "A box of %(count)d specimen is on its way",
                    "A box of %(count)d specimens is on its way",
                    count,
                )
                % {"count": count},
                body=_("Box %(number)s from %(clinic)s, handed to %(courier)s at %(time)s.")
                % {
                    "number": box.number,
                    "clinic": box.from_institution.name,
                    "courier": box.courier,
                    "time": when_text(box.shipped_at),
                },
                link=box_link(box),
                payload={"box": box.pk, "number": box.number, "count": count},
            )


# --- At the lab centre ---------------------------------------------------------------------------


def _already_received(box: Box) -> Promise:
    return later(
        _l("Box %(number)s was already received at %(time)s by %(name)s."),
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
                _l("No box has the number %(number)s. Check the label and scan again."),
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
            _l(
                "Box %(number)s was never handed to the courier: the clinic is still packing"
                " it. Scan its specimens one by one; they will be listed as received without"
                " shipment."
            ),
            number=box.number,
        )
    elif len(note) > MAX_CONDITION:
        problem = later(
            _l("The note on the box's condition is too long (at most %(max)s characters)."),
            max=MAX_CONDITION,
        )
    if problem is not None:
        raise _refuse_box(actor=actor, action=action, box=box, message=problem)
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
        raise _refuse_box(actor=actor, action=action, box=box, message=_already_received(box))
    return box


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
            _l("Specimen %(barcode)s was already received at %(time)s by %(name)s."),
            barcode=code,
            time=when_text(specimen.received_at),
            name=str(specimen.received_by) if specimen.received_by else "?",
        )
    if specimen.status == SpecimenStatus.REJECTED:
        return later(
            _l("Specimen %(barcode)s was already rejected: %(reason)s."),
            barcode=code,
            reason=_reason_label(specimen.rejection_reason),
        )
    if specimen.order.status == OrderStatus.CANCELLED:
        return later(
            _l("The clinic cancelled order %(order)s; do not process specimen %(barcode)s."),
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
                _l(
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
                _l(
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
    specimen = _specimen_by_scan(actor=actor, barcode=barcode, action=action)
    order = _order_for_lab(actor=actor, specimen=specimen, action=action)
    problem = _receive_problem(specimen)
    if problem is not None:
        raise refuse(actor=actor, action=action, order=order, message=problem)
    unshipped = specimen.status in _UNSHIPPED
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
        message = _receive_problem(specimen) or _l("The specimen changed meanwhile; scan again.")
        raise refuse(actor=actor, action=action, order=order, message=message)
    return ReceiveOutcome(
        specimen=specimen, unshipped=unshipped, warnings=[str(w) for w in warnings]
    )


def _reject_problem(specimen: Specimen, *, reason: str, note: str) -> Promise | None:
    if reason not in RejectionReason.values:
        return _l("Choose why the specimen is rejected.")
    if reason == RejectionReason.OTHER and not note:
        return _l("Describe the reason in the note when you choose “Other”.")
    if len(note) > MAX_REASON:
        return later(_l("The note is too long (at most %(max)s characters)."), max=MAX_REASON)
    if specimen.status == SpecimenStatus.REJECTED:
        return later(
            _l("Specimen %(barcode)s was already rejected: %(reason)s."),
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
            _l("Results were already entered for specimen %(barcode)s; it cannot be rejected now."),
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
    specimen = _specimen_by_scan(actor=actor, barcode=barcode, action=action)
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
        message = _reject_problem(specimen, reason=reason, note=note) or _l(
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
            received_unshipped=specimen.status in _UNSHIPPED,
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
        _l(
            "The lab rejected specimen %(barcode)s (%(specimen)s; %(tests)s): %(reason)s."
            " %(note)sThe order is closed: collect a new specimen and order the tests again."
        )
        if order_closed
        else _l(
            "The lab rejected specimen %(barcode)s (%(specimen)s; %(tests)s): %(reason)s."
            " %(note)sCollect a new specimen and order these tests again."
        )
    )
    notify(
        [order.requested_by, *clinic_doctors_of(order.requesting_institution_id)],
        order=order,
        kind="lab.specimen_rejected",
        title=_l("Specimen rejected: %(name)s, order %(number)s"),
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


def is_box_number(text: str) -> bool:
    """A scan that names a box (``BX…``) rather than a specimen."""
    return scan_text(text).upper().startswith(BOX_PREFIX)
