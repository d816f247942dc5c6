"""Reads of the shipment workflow: boxes, the receiving desk and the discrepancies.

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
from lab.workflow_common import box_link, order_link, policy_for
from records.selectors import AccessDenied, NotFound

BOX_LIST_LIMIT = 100
RECENT_RECEIVED_LIMIT = 30
# Received-without-shipment specimens stay on the discrepancy list this long (they cannot
# be "resolved"; after a fortnight the clinic and the centre have talked about them).
UNSHIPPED_WINDOW = dt.timedelta(days=14)

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


def _specimens() -> QuerySet[Specimen]:
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
    def lines(self) -> list[SpecimenLine]:
        return lines(self.specimens)

    @property
    def ready_lines(self) -> list[SpecimenLine]:
        return lines(self.ready)

    @property
    def custody(self) -> list[tuple[SpecimenEvent, str]]:
        return [(e, event_label(e.kind)) for e in self.events]


def box_specimens(box: Box) -> list[Specimen]:
    return list(_specimens().filter(box=box).order_by("order__number", "barcode"))


def box_detail_for_user(*, actor: User, box_id: int, action: str = "lab.box.view") -> BoxDetail:
    """The box page for its clinic or its lab centre (audited either way)."""
    box, scope = box_load(actor=actor, box_id=box_id, action=action)
    is_clinic = is_box_clinic(scope, box)
    ready: list[Specimen] = []
    if is_clinic and box.status == BoxStatus.PACKING:
        ready = list(
            _specimens()
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
        _specimens()
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


# --- Discrepancies -------------------------------------------------------------------------------


class DiscrepancyKind:
    RECEIVED_UNSHIPPED = "received_unshipped"
    NOT_SCANNED = "not_scanned"
    MISSING = "missing"


@dataclass(frozen=True)
class DiscrepancyRow:
    kind: str
    specimen: Specimen
    # Since when: the receipt (unshipped), the box's receipt (not scanned), the hand-over.
    since: dt.datetime
    hours: int

    @property
    def line(self) -> SpecimenLine:
        return SpecimenLine(self.specimen)


@dataclass(frozen=True)
class Discrepancies:
    """A lab centre's specimens whose chain of custody has a gap."""

    centre: DiagnosticCentre
    received_unshipped: list[DiscrepancyRow]
    not_scanned: list[DiscrepancyRow]
    missing: list[DiscrepancyRow]
    missing_after_hours: int
    now: dt.datetime

    @property
    def counts(self) -> dict[str, int]:
        return {
            DiscrepancyKind.RECEIVED_UNSHIPPED: len(self.received_unshipped),
            DiscrepancyKind.NOT_SCANNED: len(self.not_scanned),
            DiscrepancyKind.MISSING: len(self.missing),
            "total": len(self.received_unshipped) + len(self.not_scanned) + len(self.missing),
        }

    @property
    def total(self) -> int:
        return self.counts["total"]


def _discrepancy_querysets(
    centre_id: int,
    *,
    now: dt.datetime,
    institution_ids: Iterable[int] | None = None,
    specimens: QuerySet[Specimen] | None = None,
) -> tuple[QuerySet[Specimen], QuerySet[Specimen], QuerySet[Specimen], int]:
    policy = policy_for(centre_id)
    base = (specimens if specimens is not None else Specimen.objects.all()).filter(
        order__centre_id=centre_id
    )
    base = base.exclude(order__status=OrderStatus.CANCELLED)
    if institution_ids is not None:
        base = base.filter(order__requesting_institution_id__in=list(institution_ids))
    unshipped = base.filter(received_unshipped=True, received_at__gte=now - UNSHIPPED_WINDOW)
    not_scanned = base.filter(status=SpecimenStatus.SHIPPED, box__status=BoxStatus.RECEIVED)
    missing = base.filter(
        status=SpecimenStatus.SHIPPED,
        box__status=BoxStatus.SHIPPED,
        box__shipped_at__lt=now - dt.timedelta(hours=policy.missing_after_hours),
    )
    return unshipped, not_scanned, missing, policy.missing_after_hours


def discrepancy_counts(centre_id: int, *, now: dt.datetime | None = None) -> dict[str, int]:
    """How many of each discrepancy a lab centre has (for the queue; callers check access)."""
    unshipped, not_scanned, missing, _hours = _discrepancy_querysets(
        centre_id, now=now or timezone.now()
    )
    counts = {
        DiscrepancyKind.RECEIVED_UNSHIPPED: unshipped.count(),
        DiscrepancyKind.NOT_SCANNED: not_scanned.count(),
        DiscrepancyKind.MISSING: missing.count(),
    }
    counts["total"] = sum(counts.values())
    return counts


def discrepancy_centres_for(actor: User) -> list[DiagnosticCentre]:
    """Lab centres whose discrepancies the actor may see (their lab, or their clinic's)."""
    scope = actor_scope(actor)
    ids = set(lab_centre_ids(scope))
    centres = {c.pk: c for c in open_box_centres(scope)}
    centres.update({c.pk: c for c in DiagnosticCentre.objects.filter(pk__in=ids)})
    return sorted(centres.values(), key=lambda c: (c.pk not in ids, c.name))


def _rows(
    kind: str, specimens: QuerySet[Specimen], when: str, now: dt.datetime
) -> list[DiscrepancyRow]:
    rows = []
    for specimen in specimens.order_by("id")[:500]:
        since = _since(specimen, when) or specimen.collected_at
        hours = max(0, int((now - since).total_seconds() // 3600))
        rows.append(DiscrepancyRow(kind=kind, specimen=specimen, since=since, hours=hours))
    rows.sort(key=lambda r: r.since)
    return rows


def _since(specimen: Specimen, when: str) -> dt.datetime | None:
    if when == "received":
        return specimen.received_at
    if specimen.box is None:
        return None
    return specimen.box.received_at if when == "box_received" else specimen.box.shipped_at


def discrepancies_for_centre(
    *, actor: User, centre_id: int, now: dt.datetime | None = None
) -> Discrepancies:
    """The centre's discrepancies: all of them for its lab staff, its own for a clinic.

    Raises
    ------
    NotFound
        No such lab centre (audited).
    AccessDenied
        Neither staff of the centre nor a clinic of the association it serves (audited).
    """
    action = "lab.discrepancies"
    centre = DiagnosticCentre.objects.filter(pk=centre_id, kind=CentreKind.LAB).first()
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
    scope = actor_scope(actor)
    institutions: list[int] | None = None
    if centre.pk not in lab_centre_ids(scope):
        institutions = [
            m.institution_id
            for m in scope.memberships
            if m.institution_id in scope.care_institution_ids
            and m.institution.association_id == centre.association_id
        ]
        if not institutions:
            audit_record(
                actor=actor,
                action=action,
                outcome=Outcome.DENIED,
                resource_type="lab_centre",
                resource_id=centre.pk,
                reason="neither staff of the centre nor a clinic it serves",
            )
            raise AccessDenied(
                _("Only the lab centre and the clinics it serves see its discrepancies.")
            )
    now = now or timezone.now()
    unshipped, not_scanned, missing, hours = _discrepancy_querysets(
        centre.pk, now=now, institution_ids=institutions, specimens=_specimens()
    )
    result = Discrepancies(
        centre=centre,
        received_unshipped=_rows(DiscrepancyKind.RECEIVED_UNSHIPPED, unshipped, "received", now),
        not_scanned=_rows(DiscrepancyKind.NOT_SCANNED, not_scanned, "box_received", now),
        missing=_rows(DiscrepancyKind.MISSING, missing, "shipped", now),
        missing_after_hours=hours,
        now=now,
    )
    audit_record(
        actor=actor,
        action=action,
        outcome=Outcome.ALLOWED,
        resource_type="lab_centre",
        resource_id=centre.pk,
        detail=result.counts,
    )
    return result
