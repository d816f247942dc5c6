"""What the resident page shows of the lab (called from ``records.views``).

Returns a dict with one key, so the template shows its lab part only when the view has
added it.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Prefetch

from association.selectors import actor_scope
from lab.access import orders_visible_to
from lab.models import OrderItem
from records.models import Patient

PATIENT_ORDER_ROWS = 10


def patient_lab_context(
    actor: AbstractBaseUser | AnonymousUser, patient: Patient
) -> dict[str, Any]:
    """``{"patient_lab": {...}}`` for the resident page; the caller has read ``patient``."""
    scope = actor_scope(actor)
    items = OrderItem.objects.select_related("test").order_by("test__sort_order", "test__code")
    orders = list(
        orders_visible_to(scope)
        .filter(patient=patient)
        .select_related("centre")
        .prefetch_related(Prefetch("items", queryset=items))
        .order_by("-created_at", "-id")[: PATIENT_ORDER_ROWS + 1]
    )
    for order in orders:
        order.codes = ", ".join(i.test.code for i in order.items.all())  # type: ignore[attr-defined]
    return {
        "patient_lab": {
            "orders": orders[:PATIENT_ORDER_ROWS],
            "more": len(orders) > PATIENT_ORDER_ROWS,
            "can_order": bool(scope.care_institution_ids),
        }
    }
