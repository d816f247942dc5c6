"""Turnaround and critical-value timeliness of a lab centre, per requesting institution.

Computed in Python over the period's rows (a county's orders fit in memory); percentiles
interpolate linearly between the closest ranks (NumPy's default), so the median of an even
count is the mean of the middle two.

* Orders: placed in the period (cancelled ones left out).
* Turnaround: reports first signed in the period; receipt at the lab → report, and
  order → report, in minutes; "within target" compares receipt → report with the order's
  target (``lab.workflow_common.target_minutes``).
* Rejected specimens: of the period's orders, those rejected among those that reached the lab.
* Critical values: raised in the period (withdrawn ones left out); minutes to
  acknowledgement; "in time" within the centre's policy (``ack_minutes``), counted over
  the acknowledged ones and those still open past the deadline; "escalated" once the
  alert went beyond the ordering doctor.

Who sees what: staff of the lab centre, and the administrators and auditors of its
association, see every institution; a clinician of the association sees their own
institutions only. Each read is audited (resource type ``lab_stats``).
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Max, Min
from django.utils import timezone
from django.utils.translation import gettext as _

from association.models import CentreKind, DiagnosticCentre, Institution
from association.selectors import ActorScope, actor_scope
from audit.models import Outcome
from audit.services import audit_record
from lab.access import lab_centre_ids
from lab.models import (
    AlertLevel,
    AlertStatus,
    CriticalAlert,
    LabOrder,
    OrderStatus,
    Specimen,
    SpecimenStatus,
)
from lab.workflow_common import policy_for, target_minutes
from records.selectors import AccessDenied, NotFound

User = AbstractBaseUser | AnonymousUser

PERIOD_DAYS = (7, 30, 90)
DEFAULT_DAYS = 30
ACTION = "lab.stats"
RESOURCE = "lab_stats"


# --- Numbers -----------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float | None:
    """The ``p``-th percentile (0–100) of ``values``, linear between closest ranks."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def share(part: int, whole: int) -> float | None:
    """``part`` of ``whole`` in per cent, None when there is nothing to divide."""
    return part * 100 / whole if whole else None


def _minutes(start: dt.datetime, end: dt.datetime) -> float:
    return (end - start).total_seconds() / 60


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


# --- Results -----------------------------------------------------------------------------------


@dataclass
class _Rows:
    """The raw rows of one institution (or of all of them) in the period."""

    orders: int = 0
    receipt_minutes: list[float] = field(default_factory=list)
    order_minutes: list[float] = field(default_factory=list)
    targets: list[int] = field(default_factory=list)
    within_target: int = 0
    specimens_arrived: int = 0
    specimens_rejected: int = 0
    critical: int = 0
    ack_minutes: list[float] = field(default_factory=list)
    ack_due: int = 0
    ack_in_time: int = 0
    escalated: int = 0


@dataclass(frozen=True)
class InstitutionStats:
    """The period's figures of one requesting institution (or the total row)."""

    institution_id: int | None
    name: str
    orders: int
    reported: int
    tat_receipt_median: float | None
    tat_receipt_p90: float | None
    tat_order_median: float | None
    tat_order_p90: float | None
    # The median of the reported orders' targets (drawn as the target line).
    target_median: float | None
    within_target_pct: float | None
    specimens_arrived: int
    specimens_rejected: int
    rejected_pct: float | None
    critical: int
    critical_ack_median: float | None
    critical_ack_due: int
    critical_ack_in_time: int
    critical_ack_in_time_pct: float | None
    critical_escalated: int

    @classmethod
    def from_rows(cls, institution_id: int | None, name: str, rows: _Rows) -> InstitutionStats:
        reported = len(rows.order_minutes)
        timed = len(rows.receipt_minutes)
        return cls(
            institution_id=institution_id,
            name=name,
            orders=rows.orders,
            reported=reported,
            tat_receipt_median=_round(percentile(rows.receipt_minutes, 50)),
            tat_receipt_p90=_round(percentile(rows.receipt_minutes, 90)),
            tat_order_median=_round(percentile(rows.order_minutes, 50)),
            tat_order_p90=_round(percentile(rows.order_minutes, 90)),
            target_median=_round(percentile([float(t) for t in rows.targets], 50)),
            within_target_pct=_round(share(rows.within_target, timed)),
            specimens_arrived=rows.specimens_arrived,
            specimens_rejected=rows.specimens_rejected,
            rejected_pct=_round(share(rows.specimens_rejected, rows.specimens_arrived)),
            critical=rows.critical,
            critical_ack_median=_round(percentile(rows.ack_minutes, 50)),
            critical_ack_due=rows.ack_due,
            critical_ack_in_time=rows.ack_in_time,
            critical_ack_in_time_pct=_round(share(rows.ack_in_time, rows.ack_due)),
            critical_escalated=rows.escalated,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.institution_id,
            "name": self.name,
            "orders": self.orders,
            "reported": self.reported,
            "tat_receipt": {"median": self.tat_receipt_median, "p90": self.tat_receipt_p90},
            "tat_order": {"median": self.tat_order_median, "p90": self.tat_order_p90},
            "target_minutes": self.target_median,
            "within_target_pct": self.within_target_pct,
            "specimens_arrived": self.specimens_arrived,
            "specimens_rejected": self.specimens_rejected,
            "rejected_pct": self.rejected_pct,
            "critical": {
                "count": self.critical,
                "ack_median": self.critical_ack_median,
                "ack_due": self.critical_ack_due,
                "ack_in_time": self.critical_ack_in_time,
                "ack_in_time_pct": self.critical_ack_in_time_pct,
                "escalated": self.critical_escalated,
            },
        }


@dataclass(frozen=True)
class DailyPoint:
    day: dt.date
    orders: int
    reports: int


@dataclass(frozen=True)
class LabStats:
    """A lab centre's dashboard for one period, as far as the actor may see it."""

    centre: DiagnosticCentre
    since: dt.datetime
    until: dt.datetime
    ack_minutes: int
    # True when the actor sees only their own institutions.
    own_only: bool
    institutions: list[InstitutionStats]
    total: InstitutionStats
    daily: list[DailyPoint]

    def as_json(self) -> dict[str, Any]:
        return {
            "centre": {"id": self.centre.pk, "name": self.centre.name},
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "ack_minutes": self.ack_minutes,
            "own_only": self.own_only,
            "institutions": [i.as_json() for i in self.institutions],
            "total": self.total.as_json(),
            "daily": [
                {"day": p.day.isoformat(), "orders": p.orders, "reports": p.reports}
                for p in self.daily
            ],
        }


# --- Who may see what --------------------------------------------------------------------------


def stats_centres_for(scope: ActorScope) -> list[DiagnosticCentre]:
    """The lab centres whose dashboard the actor may open."""
    associations = (
        scope.admin_association_ids | scope.audit_association_ids | scope.clinical_association_ids
    )
    centres = DiagnosticCentre.objects.filter(kind=CentreKind.LAB)
    staff_of = lab_centre_ids(scope)
    return [
        c
        for c in centres.select_related("host").order_by("name")
        if c.pk in staff_of or c.association_id in associations
    ]


def _sees_every_institution(scope: ActorScope, centre: DiagnosticCentre) -> bool:
    """Staff of the centre, and administrators and auditors of its association."""
    return (
        centre.pk in lab_centre_ids(scope)
        or centre.association_id in scope.admin_association_ids
        or centre.association_id in scope.audit_association_ids
    )


def _own_institutions(scope: ActorScope, centre: DiagnosticCentre) -> frozenset[int]:
    """A clinician of the centre's association sees the institutions they work at."""
    if centre.association_id not in scope.clinical_association_ids:
        return frozenset()
    return scope.care_institution_ids


def _deny(*, actor: User, centre_id: int, reason: str, outcome: Outcome) -> None:
    audit_record(
        actor=actor,
        action=ACTION,
        outcome=outcome,
        resource_type=RESOURCE,
        resource_id=centre_id,
        reason=reason,
    )


# --- The computation ---------------------------------------------------------------------------


def lab_stats(*, actor: User, centre_id: int, since: dt.datetime, until: dt.datetime) -> LabStats:
    """The centre's figures for [since, until), scoped to what ``actor`` may see (audited).

    Raises
    ------
    NotFound
        No lab centre with this id (audited).
    AccessDenied
        The actor may see no statistics of this centre (audited).
    """
    centre = DiagnosticCentre.objects.filter(pk=centre_id, kind=CentreKind.LAB).first()
    if centre is None:
        _deny(actor=actor, centre_id=centre_id, reason="no such lab centre", outcome=Outcome.FAILED)
        raise NotFound(_("No such lab centre."))
    scope = actor_scope(actor)
    own: frozenset[int] | None = None
    if not _sees_every_institution(scope, centre):
        own = _own_institutions(scope, centre)
        if not own:
            _deny(
                actor=actor,
                centre_id=centre_id,
                reason="not visible to actor",
                outcome=Outcome.DENIED,
            )
            raise AccessDenied(_("You may not see the statistics of this lab centre."))
    orders = LabOrder.objects.filter(centre_id=centre.pk)
    if own is not None:
        orders = orders.filter(requesting_institution_id__in=own)
    policy = policy_for(centre)
    rows: dict[int, _Rows] = defaultdict(_Rows)
    total = _Rows()
    daily_orders: dict[dt.date, int] = defaultdict(int)
    daily_reports: dict[dt.date, int] = defaultdict(int)
    in_period = orders.filter(created_at__gte=since, created_at__lt=until).exclude(
        status=OrderStatus.CANCELLED
    )
    for institution_id, created_at in in_period.values_list(
        "requesting_institution_id", "created_at"
    ):
        for r in (rows[institution_id], total):
            r.orders += 1
        daily_orders[timezone.localdate(created_at)] += 1
    _add_turnaround(orders, since=since, until=until, rows=rows, total=total, daily=daily_reports)
    _add_specimens(in_period, rows=rows, total=total)
    _add_critical(
        orders,
        since=since,
        until=until,
        ack_minutes=policy.ack_minutes,
        now=min(until, timezone.now()),
        rows=rows,
        total=total,
    )
    names = dict(Institution.objects.filter(pk__in=list(rows)).values_list("pk", "name"))
    institutions = sorted(
        (InstitutionStats.from_rows(pk, names.get(pk, str(pk)), r) for pk, r in rows.items()),
        key=lambda s: (-s.orders, s.name),
    )
    stats = LabStats(
        centre=centre,
        since=since,
        until=until,
        ack_minutes=policy.ack_minutes,
        own_only=own is not None,
        institutions=institutions,
        total=InstitutionStats.from_rows(None, _("All institutions"), total),
        daily=_daily(since, until, daily_orders, daily_reports),
    )
    audit_record(
        actor=actor,
        action=ACTION,
        outcome=Outcome.ALLOWED,
        resource_type=RESOURCE,
        resource_id=centre.pk,
        detail={
            "since": since.isoformat(),
            "until": until.isoformat(),
            "institutions": len(institutions),
            "own_only": own is not None,
        },
    )
    return stats


def _add_turnaround(
    orders: Any,
    *,
    since: dt.datetime,
    until: dt.datetime,
    rows: dict[int, _Rows],
    total: _Rows,
    daily: dict[dt.date, int],
) -> None:
    """Reports first signed in the period: their turnaround against the order's target."""
    # reported_at is never before the first signature, so this pre-filter loses nothing.
    reported = (
        orders.filter(reported_at__isnull=False, reported_at__gte=since)
        .annotate(
            first_signed=Min("report__versions__signed_at"),
            slowest_test=Max("items__test__turnaround_minutes"),
        )
        .values_list(
            "requesting_institution_id",
            "priority",
            "created_at",
            "received_at",
            "reported_at",
            "first_signed",
            "slowest_test",
        )
    )
    for institution_id, priority, created, received, reported_at, first, slowest in reported:
        signed = first or reported_at
        if not since <= signed < until:
            continue
        daily[timezone.localdate(signed)] += 1
        target = target_minutes(priority, [slowest] if slowest is not None else [])
        for r in (rows[institution_id], total):
            r.order_minutes.append(_minutes(created, signed))
            r.targets.append(target)
            if received is not None:
                taken = _minutes(received, signed)
                r.receipt_minutes.append(taken)
                r.within_target += taken <= target


def _add_specimens(orders: Any, *, rows: dict[int, _Rows], total: _Rows) -> None:
    """Specimens of the period's orders that reached the lab, and how many were rejected."""
    arrived = (
        Specimen.objects.filter(
            order__in=orders, status__in=[SpecimenStatus.RECEIVED, SpecimenStatus.REJECTED]
        )
        .values_list("order__requesting_institution_id", "status")
        .order_by()
    )
    for institution_id, status in arrived:
        for r in (rows[institution_id], total):
            r.specimens_arrived += 1
            r.specimens_rejected += status == SpecimenStatus.REJECTED


def _add_critical(
    orders: Any,
    *,
    since: dt.datetime,
    until: dt.datetime,
    ack_minutes: int,
    now: dt.datetime,
    rows: dict[int, _Rows],
    total: _Rows,
) -> None:
    """Critical values raised in the period: acknowledgement times against the policy."""
    alerts = (
        CriticalAlert.objects.filter(order__in=orders, raised_at__gte=since, raised_at__lt=until)
        .exclude(status=AlertStatus.WITHDRAWN)
        .values_list("order__requesting_institution_id", "raised_at", "acknowledged_at", "level")
        .order_by()
    )
    deadline = dt.timedelta(minutes=ack_minutes)
    for institution_id, raised, acknowledged, level in alerts:
        for r in (rows[institution_id], total):
            r.critical += 1
            r.escalated += level > AlertLevel.ORDERING_DOCTOR
            if acknowledged is not None:
                r.ack_minutes.append(_minutes(raised, acknowledged))
                r.ack_due += 1
                r.ack_in_time += acknowledged - raised <= deadline
            elif now - raised > deadline:
                r.ack_due += 1


def _daily(
    since: dt.datetime,
    until: dt.datetime,
    orders: dict[dt.date, int],
    reports: dict[dt.date, int],
) -> list[DailyPoint]:
    """One point per local day of the period, empty days included."""
    first = timezone.localdate(since)
    last = timezone.localdate(until - dt.timedelta(microseconds=1))
    days = [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]
    return [DailyPoint(day=d, orders=orders.get(d, 0), reports=reports.get(d, 0)) for d in days]


def period(days: int, *, now: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime]:
    """The last ``days`` days up to now."""
    until = now or timezone.now()
    return until - dt.timedelta(days=days), until


def institutions_of(stats: LabStats) -> Iterable[InstitutionStats]:
    """The rows of the table: each institution, then the total when there are several."""
    yield from stats.institutions
    if len(stats.institutions) > 1:
        yield stats.total
