"""What the home page shows of the lab (called from ``core.views.home``).

Returns ``{"lab": {...}}`` for a lab technician (the queue's counts, open critical values
and the top of the queue) or a clinician (the clinic's open orders and new results),
``{}`` for anyone else, so the home template shows its lab card only when there is one.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from association.models import Membership, Role
from association.selectors import actor_scope
from lab.access import lab_centre_ids
from lab.models import OrderStatus
from lab.queue_selectors import open_critical_count, open_emergency_count, queue_for_user
from lab.selectors import orders_for_clinic

HOME_ROWS = 5
_CLINIC_ROLES = {Role.GRASSROOTS_DOCTOR, Role.SPECIALIST, Role.COORDINATOR}


def lab_home_context(request: HttpRequest, membership: Membership | None) -> dict[str, Any]:
    """The lab card of the home page for ``membership``'s role."""
    if membership is None:
        return {}
    scope = actor_scope(request.user)
    if membership.role == Role.LAB_TECHNICIAN:
        centres = lab_centre_ids(scope)
        if not centres:
            return {}
        queue = queue_for_user(actor=request.user, tab="open", limit=HOME_ROWS)
        return {
            "lab": {
                "kind": "centre",
                "counts": queue.counts,
                "tabs": queue.tabs,
                "rows": queue.rows,
                "critical_open": open_critical_count(centres),
                "emergencies": open_emergency_count(centres),
                "discrepancies": queue.discrepancies,
                "server_now": queue.server_now,
            }
        }
    if membership.role in _CLINIC_ROLES and scope.care_institution_ids:
        orders = orders_for_clinic(actor=request.user, status="current")
        ready = [r for r in orders.rows if r.results_ready]
        open_rows = [r for r in orders.rows if r.order.status != OrderStatus.REPORTED]
        return {
            "lab": {
                "kind": "clinic",
                "ready": ready[:HOME_ROWS],
                "ready_count": len(ready),
                "open": open_rows[:HOME_ROWS],
                "open_count": orders.counts.get("open", 0),
                "to_ship": orders.counts.get("collected", 0),
                "critical": sum(1 for r in orders.rows if r.critical),
            }
        }
    return {}
