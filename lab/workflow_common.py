"""What the lab services share: limits, links, audit, refusals, notifications, who is who.

Services check access through ``lab.access`` before their transaction, so a refusal's
audit event is never rolled back; each refusal (an order that cannot change this way now)
is audited as failed before ``InvalidRecord`` is raised.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings
from django.urls import reverse
from django.utils import translation
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy

from accounts.models import User
from association.models import DiagnosticCentre, Membership, Role
from audit.models import Outcome
from audit.services import audit_record
from lab.models import Box, LabOrder, LabPolicy, Priority, Specimen, SpecimenEvent
from realtime.models import Severity
from realtime.services import notification_send
from records.services import InvalidRecord, refused

MAX_NOTE = 1000
MAX_REASON = 300
MAX_COURIER = 100
MAX_ITEMS_PER_ORDER = 40
MAX_IMPORT_BYTES = 2 * 1024**2
MAX_IMPORT_ROWS = 5000

# Timeline titles are stored in English and translated when shown (records.timeline.TITLES
# lists the same kinds).
TIMELINE_TITLES: dict[str, Promise] = {
    "lab.ordered": gettext_lazy("Lab tests ordered"),
    "lab.cancelled": gettext_lazy("Lab order cancelled"),
    "lab.rejected": gettext_lazy("Lab specimen rejected"),
    "lab.report_signed": gettext_lazy("Lab report signed"),
    "lab.report_amended": gettext_lazy("Lab report amended"),
    "lab.critical": gettext_lazy("Critical lab value"),
}

NOTIFY_SEVERITY: dict[str, Severity] = {
    Priority.EMERGENCY: Severity.CRITICAL,
    Priority.URGENT: Severity.URGENT,
    Priority.ROUTINE: Severity.INFO,
}

# Turnaround targets (receipt at the lab to signed report) are the tests' own for routine
# orders, capped for urgent and emergency ones.
PRIORITY_CAP_MINUTES: dict[str, int | None] = {
    Priority.ROUTINE: None,
    Priority.URGENT: 4 * 60,
    Priority.EMERGENCY: 60,
}


def timeline_title(kind: str) -> str:
    with translation.override("en"):
        return str(TIMELINE_TITLES[kind])


def target_minutes(priority: str, test_minutes: Iterable[int]) -> int:
    """The order's turnaround target: the slowest test, capped by priority."""
    longest = max(test_minutes, default=24 * 60)
    cap = PRIORITY_CAP_MINUTES.get(priority)
    return min(longest, cap) if cap is not None else longest


# --- Links -------------------------------------------------------------------------------------


def order_link(order: LabOrder | int) -> str:
    return reverse("lab:order", args=[order if isinstance(order, int) else order.pk])


def box_link(box: Box | int) -> str:
    return reverse("lab:box", args=[box if isinstance(box, int) else box.pk])


# --- Policy ------------------------------------------------------------------------------------


def policy_for(centre: DiagnosticCentre | int) -> LabPolicy:
    """The centre's policy, or an unsaved one with the defaults of ``settings.LAB``."""
    centre_id = centre if isinstance(centre, int) else centre.pk
    policy = LabPolicy.objects.filter(centre_id=centre_id).first()
    if policy is not None:
        return policy
    defaults: Mapping[str, int] = getattr(settings, "LAB", {})
    return LabPolicy(
        centre_id=centre_id,
        ack_minutes=defaults.get("CRITICAL_ACK_MINUTES", 10),
        escalate_minutes=defaults.get("CRITICAL_ESCALATE_MINUTES", 10),
        specimen_max_age_hours=defaults.get("SPECIMEN_MAX_AGE_HOURS", 48),
        missing_after_hours=defaults.get("MISSING_AFTER_HOURS", 24),
    )


# --- Audit and refusals ------------------------------------------------------------------------


def audit_order(
    *,
    actor: User | None,
    action: str,
    order: LabOrder,
    outcome: Outcome = Outcome.ALLOWED,
    reason: str | Promise = "",
    detail: dict[str, Any] | None = None,
) -> None:
    audit_record(
        actor=actor,
        action=action,
        outcome=outcome,
        resource_type="lab_order",
        resource_id=order.pk,
        patient_id=order.patient_id,
        reason=reason,
        detail=detail,
    )


def audit_box(
    *,
    actor: User | None,
    action: str,
    box: Box,
    outcome: Outcome = Outcome.ALLOWED,
    reason: str | Promise = "",
    detail: dict[str, Any] | None = None,
) -> None:
    audit_record(
        actor=actor,
        action=action,
        outcome=outcome,
        resource_type="lab_box",
        resource_id=box.pk,
        reason=reason,
        detail=detail,
    )


def refuse(*, actor: User, action: str, order: LabOrder, message: str | Promise) -> InvalidRecord:
    """Audit a refused change of ``order`` (failed) and return the error to raise."""
    return refused(
        actor=actor,
        action=action,
        message=message,
        resource_type="lab_order",
        resource_id=order.pk,
        patient_id=order.patient_id,
    )


def refuse_plain(
    *,
    actor: User,
    action: str,
    message: str | Promise,
    resource_type: str = "lab",
    resource_id: object = "",
) -> InvalidRecord:
    """Audit a refusal not tied to one order (an unknown barcode, a bad file)."""
    return refused(
        actor=actor,
        action=action,
        message=message,
        resource_type=resource_type,
        resource_id=resource_id,
    )


def specimen_event(
    *,
    kind: str,
    actor: User | None,
    specimen: Specimen | None = None,
    box: Box | None = None,
    detail: dict[str, Any] | None = None,
) -> SpecimenEvent:
    """One link of the chain of custody."""
    return SpecimenEvent.objects.create(
        specimen=specimen, box=box, kind=kind, actor=actor, detail=detail or {}
    )


# --- Who is who --------------------------------------------------------------------------------


def lab_staff_of(centre_id: int) -> list[User]:
    """Active lab technicians of a lab centre."""
    memberships = Membership.objects.filter(
        centre_id=centre_id, role=Role.LAB_TECHNICIAN, active=True, user__is_active=True
    ).select_related("user")
    return list({m.user_id: m.user for m in memberships}.values())


def clinic_doctors_of(institution_id: int) -> list[User]:
    """Active clinicians (not centre-scoped) of an institution."""
    memberships = Membership.objects.filter(
        institution_id=institution_id,
        role__in=[Role.GRASSROOTS_DOCTOR, Role.SPECIALIST],
        centre__isnull=True,
        active=True,
        user__is_active=True,
    ).select_related("user")
    return list({m.user_id: m.user for m in memberships}.values())


# --- Notifications -----------------------------------------------------------------------------


def notify(
    recipients: Iterable[User],
    *,
    order: LabOrder,
    kind: str,
    title: Promise,
    body: Promise | str = "",
    params: Mapping[str, object] | None = None,
    severity: Severity | None = None,
    link: str = "",
    exclude: User | None = None,
    payload: dict[str, Any] | None = None,
) -> dict[int, int]:
    """Notify each recipient once, in their language (``title % params``).

    Returns ``{user id: notification id}`` for those notified.
    """
    values = dict(params or {})
    values.setdefault("name", order.patient.name)
    values.setdefault("number", order.number)
    sent: dict[int, int] = {}
    for user in recipients:
        if user.pk in sent or (exclude is not None and user.pk == exclude.pk):
            continue
        if not user.is_active:
            continue
        with translation.override(user.preferred_language or None):
            notification = notification_send(
                recipient=user,
                kind=kind,
                severity=severity or NOTIFY_SEVERITY.get(order.priority, Severity.INFO),
                title=(str(title) % values)[:200],
                body=(str(body) % values) if body else "",
                link=link or order_link(order),
                patient_id=order.patient_id,
                payload={"order": order.pk, "number": order.number} | (payload or {}),
            )
        sent[user.pk] = notification.pk
    return sent


def age_days(birth_date: dt.date, on: dt.date) -> int:
    return max(0, (on - birth_date).days)
