"""Reads of the shipment workflow: boxes and the receiving desk.

The discrepancies of the chain of custody are read in ``lab.discrepancies``.

Every read of a box goes through :func:`box_load` (built on ``lab.access.boxes_visible_to``);
denials are audited before ``AccessDenied`` or ``NotFound`` is raised, and allowed reads
of a box or a list are audited here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db.models import Count, Prefetch, Q, QuerySet
from django.utils import timezone
from django.utils.functional import Promise, lazy
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from association.models import CentreKind, DiagnosticCentre, Institution
from association.selectors import ActorScope, actor_scope
from audit.models import Outcome
from audit.services import audit_record
from lab.access import User, box_deny, boxes_visible_to, lab_centre_ids
from lab.models import (
    Box,
    BoxStatus,
    OrderItem,
    OrderStatus,
    Specimen,
    SpecimenEvent,
    SpecimenStatus,
)
from lab.workflow_common import box_link, order_link
from records.selectors import AccessDenied

BOX_LIST_LIMIT = 100
RECENT_RECEIVED_LIMIT = 30

SPECIMEN_RELATED = (
    "order",
    "order__patient",
    "order__requesting_institution",
    "order__requested_by",
    "order__centre",
    "box",
    "received_by",
)
BOX_RELATED = ("from_institution", "centre", "created_by", "shipped_by", "received_by")
# Specimens the receiving desk has dealt with (ticked or crossed on the checklist).
_CHECKED = frozenset({SpecimenStatus.RECEIVED, SpecimenStatus.REJECTED})


# --- Small helpers shared with the services -----------------------------------------------------


def _format_later(message: Promise, params: dict[str, object]) -> str:
    return str(message) % {k: str(v) if isinstance(v, Promise) else v for k, v in params.items()}


_format_lazy = lazy(_format_later, str)


def later(message: Promise, **params: object) -> Promise:
    """``message % params``, formatted when shown: audits keep English, people read theirs."""
    promise: Promise = _format_lazy(message, params)  # type: ignore[assignment]
    return promise


def when_text(at: dt.datetime | None) -> str:
    """A time as people say it: ``10:42`` today, ``2025-03-14 10:42`` on another day."""
    if at is None:
        return ""
    local = timezone.localtime(at)
    if local.date() == timezone.localdate():
        return local.strftime("%H:%M")
    return local.strftime("%Y-%m-%d %H:%M")


def masked_name(name: str) -> str:
    """``张三`` → ``张*``: enough for a courier's manifest, not a full name."""
    return name[:1] + "*" * max(1, len(name) - 1) if name else ""


def name_initials(name: str) -> str:
    """``张三`` → ``ZS`` (pinyin initials, imported lazily: pypinyin loads a large table)."""
    from pypinyin import Style, lazy_pinyin

    letters = lazy_pinyin(name, style=Style.FIRST_LETTER, errors="ignore")
    return "".join(letter[:1] for letter in letters).upper()


def specimen_tests(specimen: Specimen) -> str:
    """The codes of the tests done on a specimen (its items prefetched or not)."""
    return ", ".join(item.test.code for item in specimen.items.all())


# The chain of custody's event kinds, as people read them.
EVENT_LABELS: dict[str, Promise] = {
    "collected": gettext_lazy("Collected"),
    "label_printed": gettext_lazy("Label printed"),
    "label_reprinted": gettext_lazy("Label reprinted"),
    "packed": gettext_lazy("Packed into the box"),
    "unpacked": gettext_lazy("Taken out of the box"),
    "shipped": gettext_lazy("Handed to the courier"),
    "box_received": gettext_lazy("Box received at the lab"),
    "received": gettext_lazy("Received at the lab"),
    "received_unshipped": gettext_lazy("Received without shipment"),
    "rejected": gettext_lazy("Rejected"),
    "missing": gettext_lazy("Reported missing"),
}


def event_label(kind: str) -> str:
    label = EVENT_LABELS.get(kind)
    return str(label) if label is not None else kind


@dataclass(frozen=True)
class SpecimenLine:
    """A specimen as a row of a page: its tests and the link to its order."""

    specimen: Specimen

    @property
    def tests(self) -> str:
        return specimen_tests(self.specimen)

    @property
    def order_url(self) -> str:
        return order_link(self.specimen.order_id)

    @property
    def box_url(self) -> str:
        return box_link(self.specimen.box_id) if self.specimen.box_id else ""

    @property
    def checked(self) -> bool:
        return self.specimen.status in _CHECKED


def lines(specimens: Iterable[Specimen]) -> list[SpecimenLine]:
    return [SpecimenLine(s) for s in specimens]


def _deny(*, actor: User, action: str, reason: str, message: str, resource: str) -> AccessDenied:
    audit_record(
        actor=actor,
        action=action,
        outcome=Outcome.DENIED,
        resource_type=resource,
        reason=reason,
    )
    return AccessDenied(message)


def specimens_with_tests() -> QuerySet[Specimen]:
    """Specimens with their order, box and tests loaded, as the pages draw them."""
    items = OrderItem.objects.select_related("test").order_by("id")
    return Specimen.objects.select_related(*SPECIMEN_RELATED).prefetch_related(
        Prefetch("items", queryset=items)
    )


def _with_counts(boxes: QuerySet[Box]) -> QuerySet[Box]:
    return boxes.select_related(*BOX_RELATED).annotate(
        n_specimens=Count("specimens", distinct=True),
        n_received=Count(
            "specimens", filter=Q(specimens__status=SpecimenStatus.RECEIVED), distinct=True
        ),
        n_rejected=Count(
            "specimens", filter=Q(specimens__status=SpecimenStatus.REJECTED), distinct=True
        ),
    )


# --- Who may act on a box ------------------------------------------------------------------------


def box_load(*, actor: User, box_id: int, action: str) -> tuple[Box, ActorScope]:
    """The box if the actor may see it (its clinic or its lab centre), and the actor's scope.

    Raises
    ------
    AccessDenied, NotFound
        Audited.
    """
    scope = actor_scope(actor)
    box = boxes_visible_to(scope).select_related(*BOX_RELATED).filter(pk=box_id).first()
    if box is None:
        raise box_deny(actor=actor, box_id=box_id, action=action)
    return box, scope


def is_box_clinic(scope: ActorScope, box: Box) -> bool:
    return box.from_institution_id in scope.care_institution_ids


def is_box_lab(scope: ActorScope, box: Box) -> bool:
    return box.centre_id in lab_centre_ids(scope)


def box_as_clinic(*, actor: User, box_id: int, action: str) -> Box:
    """The box, for a clinician of the clinic that packs it; others are denied (audited)."""
    box, scope = box_load(actor=actor, box_id=box_id, action=action)
    if not is_box_clinic(scope, box):
        audit_record(
            actor=actor,
            action=action,
            outcome=Outcome.DENIED,
            resource_type="lab_box",
            resource_id=box.pk,
            reason="not the sending clinic",
        )
        raise AccessDenied(_("Only the clinic that packs this box can do this."))
    return box


def lab_scope(*, actor: User, action: str) -> ActorScope:
    """The scope of a lab technician; anyone else is denied (audited)."""
    scope = actor_scope(actor)
    if not lab_centre_ids(scope):
        raise _deny(
            actor=actor,
            action=action,
            reason="not staff of a lab centre",
            message=_("Only staff of a lab centre receive specimens."),
            resource="lab_box",
        )
    return scope


# --- The boxes page ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BoxLists:
    """What /lab/boxes/ draws: the clinic's boxes and the boxes coming to the actor's lab."""

    is_clinic: bool
    is_lab: bool
    clinic_boxes: list[Box]
    incoming: list[Box]
    # Lab centres the clinic may open a box for.
    centres: list[DiagnosticCentre]
    # Collected specimens of the clinic still waiting for a box.
    waiting: int


def open_box_centres(scope: ActorScope) -> list[DiagnosticCentre]:
    """Lab centres serving an association where the actor treats patients."""
    if not scope.care_institution_ids:
        return []
    return list(
        DiagnosticCentre.objects.filter(
            kind=CentreKind.LAB, association_id__in=scope.clinical_association_ids
        ).order_by("name")
    )


def sending_institution(scope: ActorScope, centre: DiagnosticCentre) -> Institution | None:
    """The actor's clinic that sends to ``centre`` (one of the centre's association)."""
    for membership in scope.memberships:
        institution = membership.institution
        if (
            membership.institution_id in scope.care_institution_ids
            and institution.association_id == centre.association_id
        ):
            return institution
    return None


def boxes_for_user(*, actor: User, limit: int = BOX_LIST_LIMIT) -> BoxLists:
    """The clinic's boxes (newest first) and the boxes on their way to the actor's lab.

    Raises
    ------
    AccessDenied
        The actor neither packs boxes at a clinic nor receives them at a lab (audited).
    """
    action = "lab.box.list"
    scope = actor_scope(actor)
    labs = lab_centre_ids(scope)
    is_clinic = bool(scope.care_institution_ids) and scope.is_clinical
    if not is_clinic and not labs:
        raise _deny(
            actor=actor,
            action=action,
            reason="neither a clinic nor a lab centre",
            message=_("Only clinicians of a clinic and staff of a lab centre handle boxes."),
            resource="lab_box",
        )
    clinic_boxes: list[Box] = []
    waiting = 0
    if is_clinic:
        clinic_boxes = list(
            _with_counts(
                Box.objects.filter(from_institution_id__in=scope.care_institution_ids)
            ).order_by("-created_at", "-id")[:limit]
        )
        waiting = Specimen.objects.filter(
            order__requesting_institution_id__in=scope.care_institution_ids,
            status=SpecimenStatus.COLLECTED,
            box__isnull=True,
        ).count()
    incoming: list[Box] = []
    if labs:
        incoming = list(
            _with_counts(Box.objects.filter(centre_id__in=labs, status=BoxStatus.SHIPPED)).order_by(
                "shipped_at", "id"
            )[:limit]
        )
    audit_record(
        actor=actor,
        action=action,
        outcome=Outcome.ALLOWED,
        resource_type="lab_box",
        detail={"clinic": len(clinic_boxes), "incoming": len(incoming)},
    )
    return BoxLists(
        is_clinic=is_clinic,
        is_lab=bool(labs),
        clinic_boxes=clinic_boxes,
        incoming=incoming,
        centres=open_box_centres(scope),
        waiting=waiting,
    )


# --- One box -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BoxDetail:
    """What a box page draws: the box, its specimens, what may be done now and its custody."""

    box: Box
    specimens: list[Specimen]
    is_clinic: bool
    is_lab: bool
    # Collected specimens of the clinic for the same centre not yet in a box.
    ready: list[Specimen]
    events: list[SpecimenEvent]

    @property
    def can_pack(self) -> bool:
        return self.is_clinic and self.box.status == BoxStatus.PACKING

    @property
    def can_ship(self) -> bool:
        return self.can_pack and bool(self.specimens)

    @property
    def received(self) -> int:
        return sum(1 for s in self.specimens if s.status == SpecimenStatus.RECEIVED)

    @property
    def cancelled(self) -> list[Specimen]:
        """Packed specimens whose order was cancelled: to take out before shipping."""
        return [
            s
            for s in self.specimens
            if s.status == SpecimenStatus.PACKED and s.order.status == OrderStatus.CANCELLED
        ]

    @property
    def cancelled_barcodes(self) -> str:
        return ", ".join(s.barcode for s in self.cancelled)

    @property
    def lines(self) -> list[SpecimenLine]:
        return lines(self.specimens)

    @property
    def ready_lines(self) -> list[SpecimenLine]:
        return lines(self.ready)

    @property
    def custody(self) -> list[tuple[SpecimenEvent, str]]:
        return [(e, event_label(e.kind)) for e in self.events]


def box_specimens(box: Box) -> list[Specimen]:
    return list(specimens_with_tests().filter(box=box).order_by("order__number", "barcode"))


def box_detail_for_user(*, actor: User, box_id: int, action: str = "lab.box.view") -> BoxDetail:
    """The box page for its clinic or its lab centre (audited either way)."""
    box, scope = box_load(actor=actor, box_id=box_id, action=action)
    is_clinic = is_box_clinic(scope, box)
    ready: list[Specimen] = []
    if is_clinic and box.status == BoxStatus.PACKING:
        ready = list(
            specimens_with_tests()
            .filter(
                order__requesting_institution_id=box.from_institution_id,
                order__centre_id=box.centre_id,
                status=SpecimenStatus.COLLECTED,
                box__isnull=True,
            )
            .exclude(order__status=OrderStatus.CANCELLED)
            .order_by("collected_at", "id")[:BOX_LIST_LIMIT]
        )
    events = list(
        SpecimenEvent.objects.filter(Q(box=box) | Q(specimen__box=box))
        .select_related("actor", "specimen")
        .order_by("-at", "-id")[:200]
    )
    audit_record(
        actor=actor,
        action=action,
        outcome=Outcome.ALLOWED,
        resource_type="lab_box",
        resource_id=box.pk,
    )
    return BoxDetail(
        box=box,
        specimens=box_specimens(box),
        is_clinic=is_clinic,
        is_lab=is_box_lab(scope, box),
        ready=ready,
        events=events,
    )


# --- The receiving desk --------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceiveDesk:
    """The receiving desk: the box being checked, with ticks, and the boxes on their way."""

    box: Box | None
    expected: list[Specimen]
    incoming: list[Box]
    recent: list[Specimen]
    centres: list[DiagnosticCentre] = field(default_factory=list)

    @property
    def checked(self) -> int:
        return sum(1 for s in self.expected if s.status in _CHECKED)

    @property
    def missing(self) -> list[Specimen]:
        return [s for s in self.expected if s.status not in _CHECKED]

    @property
    def percent(self) -> int:
        return round(100 * self.checked / len(self.expected)) if self.expected else 0

    @property
    def expected_lines(self) -> list[SpecimenLine]:
        return lines(self.expected)

    @property
    def recent_lines(self) -> list[SpecimenLine]:
        return lines(self.recent)


def receive_desk_for_user(*, actor: User, box_id: int | None = None) -> ReceiveDesk:
    """The receiving desk of a lab technician; ``box_id`` is the box being checked."""
    action = "lab.receive.view"
    scope = lab_scope(actor=actor, action=action)
    labs = lab_centre_ids(scope)
    box: Box | None = None
    if box_id is not None:
        box = Box.objects.select_related(*BOX_RELATED).filter(pk=box_id, centre_id__in=labs).first()
    incoming = list(
        _with_counts(Box.objects.filter(centre_id__in=labs, status=BoxStatus.SHIPPED)).order_by(
            "shipped_at", "id"
        )[:BOX_LIST_LIMIT]
    )
    since = timezone.now() - dt.timedelta(hours=24)
    recent = list(
        specimens_with_tests()
        .filter(order__centre_id__in=labs, received_at__gte=since)
        .order_by("-received_at", "-id")[:RECENT_RECEIVED_LIMIT]
    )
    audit_record(
        actor=actor,
        action=action,
        outcome=Outcome.ALLOWED,
        resource_type="lab_box",
        resource_id=box.pk if box else "",
    )
    return ReceiveDesk(
        box=box,
        expected=box_specimens(box) if box else [],
        incoming=incoming,
        recent=recent,
        centres=list(DiagnosticCentre.objects.filter(pk__in=labs).order_by("name")),
    )
