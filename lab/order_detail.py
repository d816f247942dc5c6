"""The order page's data: one audited read, then what each side may see and do.

The clinic never sees unvalidated results: ``items`` carry their results for everyone,
and the result partials decide with ``is_lab`` and ``report`` (a signed report).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from association.selectors import actor_scope
from lab.access import is_lab_staff, is_ordering_clinician, order_get_for_user
from lab.models import (
    CriticalAlert,
    ItemStatus,
    LabOrder,
    LabReport,
    OrderItem,
    OrderStatus,
    Specimen,
)

User = AbstractBaseUser | AnonymousUser

_NOT_CANCELLABLE = (OrderStatus.REPORTED, OrderStatus.CANCELLED)
_STEP_LABELS: list[tuple[str, Promise]] = [
    (OrderStatus.ORDERED, _("Ordered")),
    (OrderStatus.COLLECTED, _("Collected")),
    (OrderStatus.SHIPPED, _("Shipped")),
    (OrderStatus.RECEIVED, _("Received")),
    (OrderStatus.REPORTED, _("Reported")),
]
# How far along the stepper each status is (index of the last step reached).
_REACHED: dict[str, int] = {
    OrderStatus.ORDERED: 0,
    OrderStatus.COLLECTED: 1,
    OrderStatus.SHIPPED: 2,
    OrderStatus.RECEIVED: 3,
    OrderStatus.IN_PROGRESS: 3,
    OrderStatus.REPORTED: 4,
}


@dataclass(frozen=True)
class Step:
    """One step of the order's progress as drawn: ``state`` is done, current or todo."""

    key: str
    label: Promise
    state: str
    at: dt.datetime | None


@dataclass(frozen=True)
class OrderDetail:
    """Everything the order page shows, under one access check."""

    order: LabOrder
    is_clinic: bool
    is_lab: bool
    items: list[OrderItem]
    specimens: list[Specimen]
    report: LabReport | None
    alerts: list[CriticalAlert]
    can_cancel: bool
    can_collect: bool

    @property
    def can_print(self) -> bool:
        """Labels are printed by the clinic (and reprinted at the lab) while the order lives."""
        return (
            bool(self.specimens)
            and (self.is_clinic or self.is_lab)
            and self.order.status != OrderStatus.CANCELLED
        )

    @property
    def steps(self) -> list[Step]:
        return order_steps(self.order, self.specimens)

    def as_context(self) -> dict[str, Any]:
        """The template context the contract names (plus ``detail`` itself)."""
        return {
            "detail": self,
            "order": self.order,
            "is_clinic": self.is_clinic,
            "is_lab": self.is_lab,
            "items": self.items,
            "specimens": self.specimens,
            "report": self.report,
            "alerts": self.alerts,
            "can_cancel": self.can_cancel,
            "can_collect": self.can_collect,
        }


def order_steps(order: LabOrder, specimens: list[Specimen]) -> list[Step]:
    """ordered → collected → shipped → received → reported, with the time each was reached."""
    shipped = [
        s.box.shipped_at for s in specimens if s.box is not None and s.box.shipped_at is not None
    ]
    times: dict[str, dt.datetime | None] = {
        OrderStatus.ORDERED: order.created_at,
        OrderStatus.COLLECTED: order.collected_at,
        OrderStatus.SHIPPED: max(shipped) if shipped else None,
        OrderStatus.RECEIVED: order.received_at,
        OrderStatus.REPORTED: order.reported_at,
    }
    reached = _REACHED.get(order.status)
    if reached is None:  # cancelled or rejected: as far as the times say, nothing current
        reached = max((i for i, (key, _l) in enumerate(_STEP_LABELS) if times[key]), default=0)
        current = -1
    else:
        current = reached if order.status != OrderStatus.REPORTED else -1
    steps = []
    for index, (key, label) in enumerate(_STEP_LABELS):
        if index == current:
            state = "current"
        elif index <= reached:
            state = "done"
        else:
            state = "todo"
        steps.append(Step(key=key, label=label, state=state, at=times[key]))
    return steps


def order_detail_for_user(*, actor: User, order_id: int) -> OrderDetail:
    """The order page's data (the read is audited; AccessDenied/NotFound as the guard raises)."""
    order = order_get_for_user(actor=actor, order_id=order_id)
    scope = actor_scope(actor)
    clinic = is_ordering_clinician(scope, order)
    lab = is_lab_staff(scope, order.centre_id)
    items = list(
        OrderItem.objects.filter(order=order)
        .select_related("test", "panel", "specimen", "result")
        .order_by("test__sort_order", "test__code", "id")
    )
    specimens = list(
        Specimen.objects.filter(order=order)
        .select_related("box", "collected_by", "received_by")
        .order_by("id")
    )
    report = (
        LabReport.objects.filter(order=order)
        .select_related("signed_by")
        .prefetch_related("versions")
        .first()
    )
    alerts = list(
        CriticalAlert.objects.filter(order=order)
        .select_related("result__item__test", "acknowledged_by")
        .order_by("-raised_at", "-id")
    )
    pending = any(i.status == ItemStatus.PENDING and i.specimen_id is None for i in items)
    return OrderDetail(
        order=order,
        is_clinic=clinic,
        is_lab=lab,
        items=items,
        specimens=specimens,
        report=report,
        alerts=alerts,
        can_cancel=clinic and order.status not in _NOT_CANCELLABLE,
        can_collect=clinic and order.status == OrderStatus.ORDERED and pending,
    )
