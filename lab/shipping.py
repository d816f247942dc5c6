"""Writes of the shipment at the clinic: pack specimens into a box, hand it to the courier.

Scanning is shared with receipt at the lab centre (``lab.receipt``): a scan is read by
:func:`scan_text` and its specimen found by :func:`specimen_by_scan`.

Every scan is audited, the bad ones too (as failed, or denied for someone else's
specimen or box). Access is checked through ``lab.access`` and ``lab.shipping_selectors``
before the transaction; the state changes are conditional updates (``UPDATE ... WHERE
status = ...``), so the same tube scanned at two desks at once changes once and the second
desk gets the message the first one caused.
"""

from __future__ import annotations

import datetime as dt

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
from lab.models import (
    Box,
    BoxStatus,
    LabOrder,
    OrderStatus,
    Priority,
    Specimen,
    SpecimenStatus,
)
from lab.numbering import BOX_PREFIX, barcode_valid, create_numbered, next_box_number
from lab.shipping_selectors import box_as_clinic, later, sending_institution, when_text
from lab.workflow_common import (
    MAX_COURIER,
    NOTIFY_SEVERITY,
    audit_box,
    audit_order,
    box_link,
    lab_staff_of,
    refuse,
    refuse_plain,
    specimen_event,
)
from realtime.models import Severity
from realtime.services import notification_send
from records.selectors import AccessDenied, NotFound
from records.services import InvalidRecord

MALFORMED = gettext_lazy(
    "This is not a specimen barcode of ours, or it was mistyped. Scan it again."
)
# A specimen still at the clinic (not yet handed to the courier).
UNSHIPPED = (SpecimenStatus.COLLECTED, SpecimenStatus.PACKED)


# --- Scanning -----------------------------------------------------------------------------------


def scan_text(text: str) -> str:
    """What a scanner or a person typed, without spaces and line ends."""
    return "".join(text.split())


def is_box_number(text: str) -> bool:
    """A scan that names a box (``BX…``) rather than a specimen."""
    return scan_text(text).upper().startswith(BOX_PREFIX)


def specimen_by_scan(*, actor: User, barcode: str, action: str) -> Specimen:
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
                gettext_lazy(
                    "No specimen has the barcode %(barcode)s. Check that it was collected in"
                    " the system and that the label is the right one."
                ),
                barcode=code,
            ),
            resource_type="lab_specimen",
            resource_id=code,
        )
    return specimen


def refuse_box(*, actor: User, action: str, box: Box, message: Promise) -> InvalidRecord:
    """An audited refusal (failed) of something done to ``box``, to raise."""
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
        return later(gettext_lazy("Specimen %(barcode)s is already in this box."), barcode=code)
    if specimen.status == SpecimenStatus.REJECTED:
        return later(
            gettext_lazy("Specimen %(barcode)s was rejected by the lab; collect a new one."),
            barcode=code,
        )
    if specimen.status in (SpecimenStatus.SHIPPED, SpecimenStatus.RECEIVED):
        if specimen.box is not None and specimen.status == SpecimenStatus.SHIPPED:
            return later(
                gettext_lazy("Specimen %(barcode)s was already shipped in box %(box)s."),
                barcode=code,
                box=specimen.box.number,
            )
        return later(
            gettext_lazy("Specimen %(barcode)s has already been received by the lab."), barcode=code
        )
    if specimen.box is not None:
        return later(
            gettext_lazy(
                "Specimen %(barcode)s is already in box %(box)s. Take it out of that box first."
            ),
            barcode=code,
            box=specimen.box.number,
        )
    if order.status == OrderStatus.CANCELLED:
        return later(
            gettext_lazy("Order %(order)s of specimen %(barcode)s was cancelled; do not ship it."),
            order=order.number,
            barcode=code,
        )
    if order.centre_id != box.centre_id:
        return later(
            gettext_lazy(
                "Specimen %(barcode)s goes to %(centre)s, not to this box's lab centre. Pack it"
                " in a box for that centre."
            ),
            barcode=code,
            centre=order.centre.name,
        )
    if specimen.status != SpecimenStatus.COLLECTED:
        return later(gettext_lazy("Specimen %(barcode)s cannot be packed now."), barcode=code)
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
        raise refuse_box(
            actor=actor,
            action=action,
            box=box,
            message=later(
                gettext_lazy(
                    "Box %(number)s was handed to the courier; open a new box for more specimens."
                ),
                number=box.number,
            ),
        )
    specimen = specimen_by_scan(actor=actor, barcode=barcode, action=action)
    order = specimen.order
    if order.requesting_institution_id != box.from_institution_id:
        message = later(
            gettext_lazy(
                "Specimen %(barcode)s belongs to another clinic's order; it cannot go in this box."
            ),
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
        problem = _packing_problem(specimen, box) or gettext_lazy(
            "The box changed meanwhile; scan again."
        )
        raise refuse(actor=actor, action=action, order=order, message=problem)
    specimen.refresh_from_db()
    return specimen


def box_remove(*, actor: User, box_id: int, barcode: str) -> Specimen:
    """Take a specimen out of a box that is still being packed."""
    action = "lab.box.remove"
    box = box_as_clinic(actor=actor, box_id=box_id, action=action)
    if box.status != BoxStatus.PACKING:
        raise refuse_box(
            actor=actor,
            action=action,
            box=box,
            message=later(
                gettext_lazy(
                    "Box %(number)s was handed to the courier; nothing can be taken out any more."
                ),
                number=box.number,
            ),
        )
    specimen = specimen_by_scan(actor=actor, barcode=barcode, action=action)
    not_here = later(
        gettext_lazy("Specimen %(barcode)s is not in this box."), barcode=specimen.barcode
    )
    if specimen.box_id != box.pk or specimen.status != SpecimenStatus.PACKED:
        raise refuse_box(actor=actor, action=action, box=box, message=not_here)
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
        raise refuse_box(actor=actor, action=action, box=box, message=not_here)
    specimen.refresh_from_db()
    return specimen


def _ship_problem(*, box: Box, scanned: str, courier: str) -> Promise | None:
    if box.status != BoxStatus.PACKING:
        return later(
            gettext_lazy("Box %(number)s was already handed to the courier at %(time)s."),
            number=box.number,
            time=when_text(box.shipped_at),
        )
    if not scanned:
        return gettext_lazy("Scan the number on the box's label.")
    if scanned != box.number:
        return later(
            gettext_lazy(
                "You scanned %(scanned)s, but this is box %(number)s. Scan the label of the"
                " box you hand over."
            ),
            scanned=scanned[:20],
            number=box.number,
        )
    if not courier:
        return gettext_lazy("Name the courier who takes the box.")
    if len(courier) > MAX_COURIER:
        return later(
            gettext_lazy("The courier's name is too long (at most %(max)s characters)."),
            max=MAX_COURIER,
        )
    cancelled = _cancelled_barcodes(box)
    if cancelled:
        return later(
            gettext_lazy(
                "Take out the specimens of cancelled orders before shipping: %(barcodes)s"
            ),
            barcodes=", ".join(cancelled),
        )
    if not box.specimens.filter(status=SpecimenStatus.PACKED).exists():
        return later(
            gettext_lazy("Box %(number)s is empty: scan its specimens into it first."),
            number=box.number,
        )
    return None


def _cancelled_barcodes(box: Box, *, lock: bool = False) -> list[str]:
    """Barcodes of the specimens in the box whose order was cancelled after packing.

    They are refused rather than taken out here: someone has to take the tubes out of the
    box. With ``lock`` the specimens and their orders stay locked until the transaction
    ends, so an order cancelled during the hand-over waits for it or is seen here.
    """
    packed = Specimen.objects.filter(box=box, status=SpecimenStatus.PACKED)
    if lock:
        packed = packed.select_for_update()
    rows = packed.order_by("barcode").values_list("barcode", "order__status")
    return [barcode for barcode, status in rows if status == OrderStatus.CANCELLED]


def box_ship(*, actor: User, box_id: int, scanned_number: str, courier: str) -> Box:
    """Hand the box to the courier: the box's own label is scanned to confirm which box.

    The box and its specimens become shipped; each order whose specimens are all on their
    way becomes shipped; the lab staff of the centre are told a box is coming. A box that
    holds specimens of a cancelled order is refused until they are taken out.
    """
    action = "lab.box.ship"
    box = box_as_clinic(actor=actor, box_id=box_id, action=action)
    scanned = scan_text(scanned_number).upper()
    courier = " ".join(courier.split())
    problem = _ship_problem(box=box, scanned=scanned, courier=courier)
    if problem is not None:
        raise refuse_box(actor=actor, action=action, box=box, message=problem)
    now = timezone.now()
    with transaction.atomic():
        shipped = Box.objects.filter(pk=box.pk, status=BoxStatus.PACKING).update(
            status=BoxStatus.SHIPPED, courier=courier, shipped_by=actor, shipped_at=now
        )
        # An order cancelled since the check above: the box stays (rolled back) and the
        # refusal below names its specimens.
        if shipped and _cancelled_barcodes(box, lock=True):
            transaction.set_rollback(True)
            shipped = 0
        if shipped:
            box.refresh_from_db()
            _ship_contents(box=box, actor=actor, now=now)
    if not shipped:
        box.refresh_from_db()
        message = _ship_problem(box=box, scanned=scanned, courier=courier)
        message = message or gettext_lazy("The box changed meanwhile; open it again.")
        raise refuse_box(actor=actor, action=action, box=box, message=message)
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
        waiting = Specimen.objects.filter(order=order, status__in=UNSHIPPED).exists()
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
