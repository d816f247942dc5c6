"""Reads of the lab lists: the centre's queue and a clinic's orders.

Both rest on the visibility rules of ``lab.access`` (the centre sees the orders sent to
it, the clinic the orders it made) and are audited as list reads; a person with no place
on the list is denied, and the denial is audited too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import (
    Case,
    Count,
    Exists,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Value,
    When,
)
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from association.models import DiagnosticCentre
from association.selectors import actor_scope
from audit.models import AuditEvent, Outcome
from audit.services import audit_record
from lab.access import ORDER_RELATED, lab_centre_ids
from lab.models import (
    OPEN_ORDER_STATUSES,
    PRIORITY_RANK,
    AlertStatus,
    CriticalAlert,
    ItemStatus,
    LabOrder,
    OrderItem,
    OrderStatus,
    Priority,
    SpecimenStatus,
)
from lab.workflow_common import target_minutes
from records.selectors import AccessDenied

User = AbstractBaseUser | AnonymousUser

QUEUE_LIMIT = 200
CLINIC_LIMIT = 200
# The clock turns amber from this share of the target, red past it.
NEAR_TARGET = 0.75
# Reports this recent count as "new" on the clinic's list and home card.
RECENT_REPORTS = dt.timedelta(days=7)

# --- Turnaround clock ----------------------------------------------------------------------


def hhmm(minutes: int) -> str:
    """Minutes as ``HH:MM`` (hours may pass 24), the clock's format in every language."""
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass(frozen=True)
class TurnaroundClock:
    """Minutes since the lab received the order, against its turnaround target."""

    started_at: dt.datetime
    stopped_at: dt.datetime | None
    target_minutes: int
    elapsed_minutes: int

    @property
    def running(self) -> bool:
        return self.stopped_at is None

    @property
    def percent(self) -> int:
        """How much of the target is used, for the bar (capped at 100)."""
        if self.target_minutes <= 0:
            return 100
        return min(100, int(self.elapsed_minutes * 100 / self.target_minutes))

    @property
    def state(self) -> str:
        """``ok``, ``near`` (from 75 % of the target) or ``late`` (past it)."""
        if self.elapsed_minutes > self.target_minutes:
            return "late"
        if self.elapsed_minutes >= self.target_minutes * NEAR_TARGET:
            return "near"
        return "ok"

    @property
    def since_epoch(self) -> int:
        return int(self.started_at.timestamp())

    @property
    def elapsed_hhmm(self) -> str:
        return hhmm(self.elapsed_minutes)

    @property
    def target_hhmm(self) -> str:
        return hhmm(self.target_minutes)


def order_target_minutes(order: LabOrder, items: Iterable[OrderItem]) -> int:
    """The order's turnaround target from its (not cancelled) tests and its priority."""
    minutes = [i.test.turnaround_minutes for i in items if i.status != ItemStatus.CANCELLED]
    return target_minutes(order.priority, minutes)


def turnaround_clock(
    order: LabOrder, items: Iterable[OrderItem], *, now: dt.datetime | None = None
) -> TurnaroundClock | None:
    """The order's clock from receipt at the lab (None before the lab received it)."""
    if order.received_at is None:
        return None
    end = order.reported_at or now or timezone.now()
    return TurnaroundClock(
        started_at=order.received_at,
        stopped_at=order.reported_at,
        target_minutes=order_target_minutes(order, items),
        elapsed_minutes=max(0, int((end - order.received_at).total_seconds() // 60)),
    )


# --- Shared pieces -----------------------------------------------------------------------------


def _priority_rank() -> Case:
    return Case(
        *(When(priority=p, then=Value(rank)) for p, rank in PRIORITY_RANK.items()),
        default=Value(len(PRIORITY_RANK)),
        output_field=IntegerField(),
    )


def _open_critical() -> Exists:
    return Exists(CriticalAlert.objects.filter(order_id=OuterRef("pk"), status=AlertStatus.OPEN))


def _has_pending() -> Exists:
    return Exists(OrderItem.objects.filter(order_id=OuterRef("pk"), status=ItemStatus.PENDING))


def _items(order: LabOrder) -> list[OrderItem]:
    return list(order.items.all())


def _codes(items: list[OrderItem]) -> list[str]:
    return [i.test.code for i in items if i.status != ItemStatus.CANCELLED]


def _audit_denied(*, actor: User, action: str, resource_type: str, reason: str) -> None:
    audit_record(
        actor=actor,
        action=action,
        outcome=Outcome.DENIED,
        resource_type=resource_type,
        reason=reason,
    )


def _start_of_today(now: dt.datetime) -> dt.datetime:
    local = timezone.localtime(now)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


# --- The centre's queue --------------------------------------------------------------------


@dataclass(frozen=True)
class Tab:
    key: str
    label: Promise


QUEUE_TABS: tuple[Tab, ...] = (
    Tab("receive", gettext_lazy("To receive")),
    Tab("waiting", gettext_lazy("Waiting for results")),
    Tab("validate", gettext_lazy("To validate")),
    Tab("today", gettext_lazy("Reported today")),
    Tab("open", gettext_lazy("All open")),
)
QUEUE_TAB_KEYS = tuple(t.key for t in QUEUE_TABS)


def _queue_filters(today: dt.datetime) -> dict[str, Q]:
    """Each tab's condition (on a queryset annotated with ``has_pending``)."""
    return {
        # Shipped by the clinic, not yet scanned at the lab.
        "receive": Q(status=OrderStatus.SHIPPED),
        # At the lab, some test still without a result.
        "waiting": Q(status=OrderStatus.RECEIVED)
        | Q(status=OrderStatus.IN_PROGRESS, has_pending=True),
        # Every test has a result: validate and sign.
        "validate": Q(status=OrderStatus.IN_PROGRESS, has_pending=False),
        "today": Q(status=OrderStatus.REPORTED, reported_at__gte=today),
        "open": Q(status__in=OPEN_ORDER_STATUSES),
    }


@dataclass(frozen=True)
class QueueRow:
    """One order on the queue, with what the technician needs to pick the next one."""

    order: LabOrder
    codes: list[str]
    specimens_received: int
    specimens_rejected: int
    specimens_total: int
    clock: TurnaroundClock | None
    critical: bool


@dataclass(frozen=True)
class Queue:
    tab: str
    rows: list[QueueRow]
    counts: dict[str, int]
    centres: list[DiagnosticCentre]
    # Specimens received unshipped or shipped and missing (None when not known).
    discrepancies: int | None
    server_now: dt.datetime

    @property
    def tabs(self) -> list[tuple[Tab, int]]:
        return [(t, self.counts.get(t.key, 0)) for t in QUEUE_TABS]


def queue_counts(centre_ids: Iterable[int], *, now: dt.datetime | None = None) -> dict[str, int]:
    """How many orders each queue tab holds (no patient data: not audited)."""
    filters = _queue_filters(_start_of_today(now or timezone.now()))
    qs = LabOrder.objects.filter(centre_id__in=list(centre_ids)).annotate(
        has_pending=_has_pending()
    )
    counts = qs.aggregate(**{key: Count("pk", filter=q) for key, q in filters.items()})
    return {key: int(value or 0) for key, value in counts.items()}


def open_critical_count(centre_ids: Iterable[int]) -> int:
    """Critical values of the centres' orders still waiting for acknowledgement."""
    return CriticalAlert.objects.filter(
        order__centre_id__in=list(centre_ids), status=AlertStatus.OPEN
    ).count()


def open_emergency_count(centre_ids: Iterable[int]) -> int:
    """Open emergency (STAT) orders of the centres."""
    return LabOrder.objects.filter(
        centre_id__in=list(centre_ids),
        status__in=OPEN_ORDER_STATUSES,
        priority=Priority.EMERGENCY,
    ).count()


def discrepancy_total(centre_ids: Iterable[int]) -> int | None:
    """The shipment discrepancies of the centres (part 2's counts), None when unavailable."""
    try:
        from lab.shipping_selectors import discrepancy_counts
    except ImportError:  # only while the shipping part is being written
        return None
    total = 0
    for centre_id in centre_ids:
        total += _count_of(discrepancy_counts(centre_id))
    return total


def _count_of(value: Any) -> int:
    """A total from an int, a mapping of counts (its ``total`` when it has one), or an
    object with ``total``."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if hasattr(value, "total"):
        return int(value.total)
    if isinstance(value, dict):
        if "total" in value:
            return int(value["total"])
        return sum(int(v) for v in value.values() if isinstance(v, int))
    return 0


def queue_for_user(*, actor: User, tab: str = "open", limit: int = QUEUE_LIMIT) -> Queue:
    """The orders of the actor's lab centres on ``tab``: emergencies first, then longest waiting.

    Raises
    ------
    AccessDenied
        The actor works at no lab centre (audited).
    """
    scope = actor_scope(actor)
    centre_ids = lab_centre_ids(scope)
    if not centre_ids:
        _audit_denied(
            actor=actor, action="lab.queue", resource_type="lab_queue", reason="not lab staff"
        )
        raise AccessDenied(_("Only staff of a lab centre have a specimen queue."))
    if tab not in QUEUE_TAB_KEYS:
        tab = "open"
    now = timezone.now()
    condition = _queue_filters(_start_of_today(now))[tab]
    qs = (
        LabOrder.objects.filter(centre_id__in=centre_ids)
        .annotate(has_pending=_has_pending(), critical=_open_critical())
        .filter(condition)
        .select_related(*ORDER_RELATED)
        .prefetch_related("items__test", "specimens")
    )
    if tab == "today":
        qs = qs.order_by("-reported_at", "-id")
    else:
        waiting_since = Coalesce(F("received_at"), F("collected_at"), F("created_at"))
        qs = qs.annotate(priority_rank=_priority_rank(), waiting_since=waiting_since).order_by(
            "priority_rank", "waiting_since", "id"
        )
    rows = [_queue_row(order, now=now) for order in qs[:limit]]
    audit_record(
        actor=actor,
        action="lab.queue",
        outcome=Outcome.ALLOWED,
        resource_type="lab_queue",
        detail={"tab": tab, "count": len(rows), "centres": sorted(centre_ids)},
    )
    return Queue(
        tab=tab,
        rows=rows,
        counts=queue_counts(centre_ids, now=now),
        centres=list(DiagnosticCentre.objects.filter(pk__in=centre_ids).order_by("name")),
        discrepancies=discrepancy_total(sorted(centre_ids)),
        server_now=now,
    )


def _queue_row(order: LabOrder, *, now: dt.datetime) -> QueueRow:
    items = _items(order)
    specimens = list(order.specimens.all())
    return QueueRow(
        order=order,
        codes=_codes(items),
        specimens_received=sum(1 for s in specimens if s.status == SpecimenStatus.RECEIVED),
        specimens_rejected=sum(1 for s in specimens if s.status == SpecimenStatus.REJECTED),
        specimens_total=len(specimens),
        clock=turnaround_clock(order, items, now=now),
        critical=bool(getattr(order, "critical", False)),
    )


# --- A clinic's orders ---------------------------------------------------------------------


CLINIC_FILTERS: tuple[Tab, ...] = (
    Tab("open", gettext_lazy("Open orders")),
    Tab("ordered", gettext_lazy("Ordered")),
    Tab("collected", gettext_lazy("Collected — to ship")),
    Tab("shipped", gettext_lazy("Shipped")),
    Tab("received", gettext_lazy("Received")),
    Tab("in_progress", gettext_lazy("In progress")),
    Tab("recent", gettext_lazy("Reported recently")),
    Tab("rejected", gettext_lazy("Rejected")),
    Tab("all", gettext_lazy("All")),
)
CLINIC_FILTER_KEYS = (*(t.key for t in CLINIC_FILTERS), "current")

# The steps drawn on each row, in order.
ORDER_STEPS: tuple[Tab, ...] = (
    Tab(OrderStatus.ORDERED, gettext_lazy("Ordered")),
    Tab(OrderStatus.COLLECTED, gettext_lazy("Collected")),
    Tab(OrderStatus.SHIPPED, gettext_lazy("Shipped")),
    Tab(OrderStatus.RECEIVED, gettext_lazy("Received")),
    Tab(OrderStatus.REPORTED, gettext_lazy("Reported")),
)
# How many steps each status has completed.
_STEPS_DONE: dict[str, int] = {
    OrderStatus.ORDERED: 1,
    OrderStatus.COLLECTED: 2,
    OrderStatus.SHIPPED: 3,
    OrderStatus.RECEIVED: 4,
    OrderStatus.IN_PROGRESS: 4,
    OrderStatus.REPORTED: 5,
}


def _clinic_filters(recent_since: dt.datetime) -> dict[str, Q]:
    recent = Q(status=OrderStatus.REPORTED, reported_at__gte=recent_since)
    return {
        "open": Q(status__in=OPEN_ORDER_STATUSES),
        "ordered": Q(status=OrderStatus.ORDERED),
        "collected": Q(status=OrderStatus.COLLECTED),
        "shipped": Q(status=OrderStatus.SHIPPED),
        "received": Q(status=OrderStatus.RECEIVED),
        "in_progress": Q(status=OrderStatus.IN_PROGRESS),
        "recent": recent,
        "rejected": Q(status=OrderStatus.REJECTED),
        "all": Q(),
        # The home card: open, and reported recently.
        "current": Q(status__in=OPEN_ORDER_STATUSES) | recent,
    }


@dataclass(frozen=True)
class Step:
    label: Promise
    # done, current, todo or stopped (cancelled or rejected here)
    state: str


@dataclass(frozen=True)
class ClinicRow:
    """One of the clinic's orders, with its progress drawn as steps."""

    order: LabOrder
    codes: list[str]
    steps: list[Step]
    # Reported recently and not opened by this person since.
    results_ready: bool
    critical: bool
    specimens_rejected: int


@dataclass(frozen=True)
class ClinicOrders:
    status: str
    priority: str
    name: str
    rows: list[ClinicRow]
    counts: dict[str, int]
    server_now: dt.datetime

    @property
    def chips(self) -> list[tuple[Tab, int]]:
        return [(t, self.counts.get(t.key, 0)) for t in CLINIC_FILTERS]

    @property
    def results_ready(self) -> int:
        return sum(1 for r in self.rows if r.results_ready)


def order_steps(order: LabOrder) -> list[Step]:
    """The progress of ``order`` as the five steps ordered → … → reported."""
    stopped = order.status in (OrderStatus.CANCELLED, OrderStatus.REJECTED)
    if order.status == OrderStatus.REJECTED:
        done = 3  # the specimens reached the lab and were turned away there
    elif order.status == OrderStatus.CANCELLED:
        done = 2 if order.collected_at is not None else 1
    else:
        done = _STEPS_DONE.get(order.status, 0)
    steps: list[Step] = []
    for index, step in enumerate(ORDER_STEPS):
        if index < done:
            state = "done"
        elif index == done:
            state = "stopped" if stopped else "current"
        else:
            state = "todo"
        steps.append(Step(label=step.label, state=state))
    return steps


def _clinic_base(institution_ids: Iterable[int], *, priority: str, name: str) -> QuerySet[LabOrder]:
    qs = LabOrder.objects.filter(requesting_institution_id__in=list(institution_ids))
    if priority:
        qs = qs.filter(priority=priority)
    if name:
        qs = qs.filter(patient__name__icontains=name)
    return qs


def orders_for_clinic(
    *,
    actor: User,
    status: str = "open",
    priority: str = "",
    name: str = "",
    limit: int = CLINIC_LIMIT,
) -> ClinicOrders:
    """The orders of the actor's institutions on the chosen chip, newest first.

    Raises
    ------
    AccessDenied
        The actor treats patients at no institution (audited).
    """
    scope = actor_scope(actor)
    institutions = scope.care_institution_ids
    if not institutions:
        _audit_denied(
            actor=actor,
            action="lab.order.list",
            resource_type="lab_order",
            reason="no clinical membership",
        )
        raise AccessDenied(_("Only clinicians of an institution order lab tests."))
    if status not in CLINIC_FILTER_KEYS:
        status = "open"
    now = timezone.now()
    filters = _clinic_filters(now - RECENT_REPORTS)
    base = _clinic_base(institutions, priority=priority, name=name)
    counts = base.aggregate(**{t.key: Count("pk", filter=filters[t.key]) for t in CLINIC_FILTERS})
    qs = (
        base.filter(filters[status])
        .annotate(critical=_open_critical())
        .select_related(*ORDER_RELATED)
        .prefetch_related("items__test", "specimens")
        .order_by("-created_at", "-id")
    )
    orders = list(qs[:limit])
    unseen = _reported_unseen(actor=actor, orders=orders, since=now - RECENT_REPORTS)
    rows = [
        ClinicRow(
            order=order,
            codes=_codes(_items(order)),
            steps=order_steps(order),
            results_ready=order.pk in unseen,
            critical=bool(getattr(order, "critical", False)),
            specimens_rejected=sum(
                1 for s in order.specimens.all() if s.status == SpecimenStatus.REJECTED
            ),
        )
        for order in orders
    ]
    audit_record(
        actor=actor,
        action="lab.order.list",
        outcome=Outcome.ALLOWED,
        resource_type="lab_order",
        detail={"status": status, "priority": priority, "name": bool(name), "count": len(rows)},
    )
    return ClinicOrders(
        status=status,
        priority=priority,
        name=name,
        rows=rows,
        counts={key: int(value or 0) for key, value in counts.items()},
        server_now=now,
    )


def _reported_unseen(*, actor: User, orders: Sequence[LabOrder], since: dt.datetime) -> set[int]:
    """Orders reported since ``since`` that ``actor`` has not opened since the report.

    "Opened" is any allowed read of the order by the actor after it was reported, as the
    audit trail records it (the order and results pages audit every read).
    """
    recent = {
        o.pk: o
        for o in orders
        if o.status == OrderStatus.REPORTED and o.reported_at and o.reported_at >= since
    }
    if not recent or actor.pk is None:
        return set()
    earliest = min(o.reported_at for o in recent.values() if o.reported_at is not None)
    reads = AuditEvent.objects.filter(
        patient_id__in={o.patient_id for o in recent.values()},
        at__gte=earliest,
        actor_id=actor.pk,
        resource_type="lab_order",
        resource_id__in=[str(pk) for pk in recent],
        outcome=Outcome.ALLOWED,
    ).values_list("resource_id", "at")
    seen: set[int] = set()
    for resource_id, at in reads:
        order = recent.get(int(resource_id))
        if order is not None and order.reported_at is not None and at >= order.reported_at:
            seen.add(order.pk)
    return set(recent) - seen
