"""Discrepancies of the chain of custody: specimens received without shipment, shipped but
not scanned at the lab, or missing (a box on its way for too long).

The lab centre's staff see all of its discrepancies, a clinic of the association it serves
only its own; reads and denials are audited here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from association.models import CentreKind, DiagnosticCentre
from association.selectors import actor_scope
from audit.models import Outcome
from audit.services import audit_record
from lab.access import User, lab_centre_ids
from lab.models import BoxStatus, OrderStatus, Specimen, SpecimenStatus
from lab.shipping_selectors import SpecimenLine, open_box_centres, specimens_with_tests
from lab.workflow_common import policy_for
from records.selectors import AccessDenied, NotFound

# Received-without-shipment specimens stay on the discrepancy list this long (they cannot
# be "resolved"; after a fortnight the clinic and the centre have talked about them).
UNSHIPPED_WINDOW = dt.timedelta(days=14)


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
        centre.pk, now=now, institution_ids=institutions, specimens=specimens_with_tests()
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
