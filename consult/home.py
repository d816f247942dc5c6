"""What the home page shows of consultations (called from ``core.views.home``).

Returns ``{"consults": {...}}`` for the people who work consults (grassroots doctors and
specialists asking, specialists answering, coordinators pre-reviewing), ``{}`` for anyone
else, so the home template shows its consult card only when there is one.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from association.models import Membership, Role
from consult import display
from consult.selectors import ListScope, consult_list_for_user

HOME_ROWS = 5
_TAB: dict[str, ListScope] = {
    Role.COORDINATOR: "review",
    Role.SPECIALIST: "invited",
    Role.GRASSROOTS_DOCTOR: "mine",
}


def consult_home_context(request: HttpRequest, membership: Membership | None) -> dict[str, Any]:
    """The open consults of the person's main list: the top few, how many, how many late."""
    if membership is None or membership.role not in _TAB:
        return {}
    scope = _TAB[membership.role]
    consults = consult_list_for_user(actor=request.user, scope=scope, status="open")
    now = display.server_now()
    rows = display.list_rows(consults)
    return {
        "consults": {
            "scope": scope,
            "rows": rows[:HOME_ROWS],
            "open": len(rows),
            "overdue": sum(1 for r in rows if r.overdue),
            "can_request": membership.role in (Role.GRASSROOTS_DOCTOR, Role.SPECIALIST),
            "server_now": now,
        }
    }


def patient_consult_context(user: Any, patient: Any) -> dict[str, Any]:
    """Whether the resident's page offers "Request a consultation" to this person."""
    from association.selectors import actor_scope

    roles = actor_scope(user).roles
    return {"can_request_consult": bool(roles & {Role.GRASSROOTS_DOCTOR, Role.SPECIALIST})}
