"""Reads of the centre's queue: the orders waiting at its lab, and their turnaround clock.

The queue rests on the visibility rules of ``lab.access`` (the centre sees the orders sent
to it) and is audited as a list read; a person who works at no lab centre is denied, and
the denial is audited too. The clinic's list of its orders is in ``lab.selectors``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Case, Count, Exists, F, IntegerField, OuterRef, Q, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from association.models import DiagnosticCentre
from association.selectors import actor_scope
from audit.models import Outcome
from audit.services import audit_record
from lab.access import ORDER_RELATED, lab_centre_ids
from lab.discrepancies import discrepancy_counts
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
from lab.selectors import Tab, audit_list_denied, item_codes, open_critical, order_items
from lab.workflow_common import target_minutes
from records.selectors import AccessDenied

User = AbstractBaseUser | AnonymousUser

QUEUE_LIMIT = 200
# The clock turns amber from this share of the target, red past it.
NEAR_TARGET = 0.75


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


# --- The centre's queue --------------------------------------------------------------------


def _priority_rank() -> Case:
    return Case(
        *(When(priority=p, then=Value(rank)) for p, rank in PRIORITY_RANK.items()),
        default=Value(len(PRIORITY_RANK)),
        output_field=IntegerField(),
    )


def _has_pending() -> Exists:
    return Exists(OrderItem.objects.filter(order_id=OuterRef("pk"), status=ItemStatus.PENDING))


def _start_of_today(now: dt.datetime) -> dt.datetime:
    local = timezone.localtime(now)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


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


def discrepancy_total(centre_ids: Iterable[int]) -> int:
    """How many shipment discrepancies the centres have (``lab.discrepancies``)."""
    return sum(discrepancy_counts(centre_id)["total"] for centre_id in centre_ids)


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
        audit_list_denied(
            actor=actor, action="lab.queue", resource_type="lab_queue", reason="not lab staff"
        )
        raise AccessDenied(_("Only staff of a lab centre have a specimen queue."))
    if tab not in QUEUE_TAB_KEYS:
        tab = "open"
    now = timezone.now()
    condition = _queue_filters(_start_of_today(now))[tab]
    qs = (
        LabOrder.objects.filter(centre_id__in=centre_ids)
        .annotate(has_pending=_has_pending(), critical=open_critical())
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
    items = order_items(order)
    specimens = list(order.specimens.all())
    return QueueRow(
        order=order,
        codes=item_codes(items),
        specimens_received=sum(1 for s in specimens if s.status == SpecimenStatus.RECEIVED),
        specimens_rejected=sum(1 for s in specimens if s.status == SpecimenStatus.REJECTED),
        specimens_total=len(specimens),
        clock=turnaround_clock(order, items, now=now),
        critical=bool(getattr(order, "critical", False)),
    )
