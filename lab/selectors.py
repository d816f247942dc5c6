"""Reads of a clinic's lab orders, and the pieces the lab lists share.

The clinic's list rests on the visibility rules of ``lab.access`` (the clinic sees the
orders it made) and is audited as a list read; a person with no place on the list is
denied, and the denial is audited too. The centre's queue is in ``lab.queue_selectors``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from association.selectors import actor_scope
from audit.models import AuditEvent, Outcome
from audit.services import audit_record
from lab.access import ORDER_RELATED
from lab.models import (
    OPEN_ORDER_STATUSES,
    AlertStatus,
    CriticalAlert,
    ItemStatus,
    LabOrder,
    OrderItem,
    OrderStatus,
    SpecimenStatus,
)
from records.selectors import AccessDenied

User = AbstractBaseUser | AnonymousUser

CLINIC_LIMIT = 200
# Reports this recent count as "new" on the clinic's list and home card.
RECENT_REPORTS = dt.timedelta(days=7)

# --- Shared pieces -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Tab:
    """A tab, filter chip or progress step of the lab lists."""

    key: str
    label: Promise


def open_critical() -> Exists:
    """Whether the order has a critical value waiting for acknowledgement (to annotate)."""
    return Exists(CriticalAlert.objects.filter(order_id=OuterRef("pk"), status=AlertStatus.OPEN))


def order_items(order: LabOrder) -> list[OrderItem]:
    """The order's tests (prefetched by the lists)."""
    return list(order.items.all())


def item_codes(items: list[OrderItem]) -> list[str]:
    """The codes of the tests still ordered (cancelled ones left out)."""
    return [i.test.code for i in items if i.status != ItemStatus.CANCELLED]


def audit_list_denied(*, actor: User, action: str, resource_type: str, reason: str) -> None:
    """Audit a refused read of a lab list."""
    audit_record(
        actor=actor,
        action=action,
        outcome=Outcome.DENIED,
        resource_type=resource_type,
        reason=reason,
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
        audit_list_denied(
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
        .annotate(critical=open_critical())
        .select_related(*ORDER_RELATED)
        .prefetch_related("items__test", "specimens")
        .order_by("-created_at", "-id")
    )
    orders = list(qs[:limit])
    unseen = _reported_unseen(actor=actor, orders=orders, since=now - RECENT_REPORTS)
    rows = [
        ClinicRow(
            order=order,
            codes=item_codes(order_items(order)),
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
