"""What the critical-value services and reads share: links, wording, the step log, audit
and who may act on an alert.

The services are in ``lab.critical`` (raise, withdraw, acknowledge, calls), escalation in
``lab.escalation``, the reads in ``lab.critical_selectors``; all of them build on this
module, which depends on none of them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import Promise, lazy
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import User
from association.selectors import ActorScope, actor_scope
from audit.models import Outcome
from audit.services import audit_record
from lab.access import is_lab_staff, is_ordering_clinician, orders_visible_to
from lab.models import (
    AlertChannel,
    AlertStatus,
    AlertStep,
    CriticalAlert,
    Flag,
    LabOrder,
    LabTest,
    Result,
)
from records.selectors import AccessDenied, NotFound
from records.services import InvalidRecord, refused

Actor = AbstractBaseUser | AnonymousUser

RESOURCE = "lab_critical"
MAX_ACK_NOTE = 300  # CriticalAlert.ack_note
MAX_STEP_NOTE = 300  # AlertStep.note
MAX_REACHED = 100  # AlertStep.recipient_text

ALERT_RELATED = (
    "order",
    "order__patient",
    "order__requesting_institution",
    "order__requested_by",
    "order__centre",
    "patient",
    "result",
    "result__item",
    "result__item__test",
    "acknowledged_by",
    "raised_by",
)


class StepKind:
    """What an :class:`AlertStep` records (the model keeps them as plain strings)."""

    RAISED = "raised"
    NOTIFIED = "notified"
    ESCALATED = "escalated"
    CALLED = "called"
    ACKNOWLEDGED = "acknowledged"
    WITHDRAWN = "withdrawn"


# --- Links and wording -------------------------------------------------------------------------


def alert_link(alert: CriticalAlert | int) -> str:
    return reverse("lab:critical", args=[alert if isinstance(alert, int) else alert.pk])


def ack_link(alert: CriticalAlert | int) -> str:
    return reverse("lab:critical_ack", args=[alert if isinstance(alert, int) else alert.pk])


def _lazy_text(make: Any) -> Promise:
    """A string computed when shown, so it is in the reader's (or the auditor's) language."""
    return lazy(make, str)()


def lazy_format(template: Promise, **params: object) -> Promise:
    """``template % params``, translated when shown (audit reasons are stored in English)."""
    return _lazy_text(lambda: str(template) % params)


def result_value_text(result: Result) -> str:
    """The value as told: "6.8 mmol/L"."""
    return f"{result.display_value} {result.unit}".strip()


def alert_test(alert: CriticalAlert) -> LabTest:
    return alert.result.item.test


def alert_params(alert: CriticalAlert) -> dict[str, object]:
    """Parameters of the notification texts, each rendered in the recipient's language."""
    test = alert_test(alert)
    flag_label = Flag(alert.flag).label if alert.flag in Flag.values else alert.flag
    return {
        "test": _lazy_text(lambda: test.display_name),
        "value": alert.value,
        # Mid-sentence: "(critically high)".
        "flag": _lazy_text(lambda: str(flag_label).lower()),
        "name": alert.order.patient.name,
        "number": alert.order.number,
        "doctor": str(alert.order.requested_by),
        "clinic": alert.order.requesting_institution.name,
    }


def _when(at: dt.datetime) -> str:
    local = timezone.localtime(at)
    if local.date() == timezone.localdate():
        return local.strftime("%H:%M")
    return local.strftime("%Y-%m-%d %H:%M")


def closed_message(alert: CriticalAlert) -> Promise:
    """Why an alert cannot be acknowledged (again): who did it and when, or withdrawn."""
    if alert.status == AlertStatus.WITHDRAWN:
        return gettext_lazy("This critical value was withdrawn: the result was corrected.")
    when = _when(alert.acknowledged_at) if alert.acknowledged_at else ""
    if alert.acknowledged_by is not None:
        return lazy_format(
            gettext_lazy("Already acknowledged by %(who)s at %(when)s."),
            who=str(alert.acknowledged_by),
            when=when,
        )
    return lazy_format(
        gettext_lazy("Already acknowledged at %(when)s (%(note)s)."),
        when=when,
        note=alert.ack_note,
    )


# --- Log, audit, notify ------------------------------------------------------------------------


def step_add(
    alert: CriticalAlert,
    *,
    kind: str,
    channel: str,
    actor: User | None = None,
    recipient: User | None = None,
    recipient_text: str = "",
    note: str = "",
    notification_id: int | None = None,
    level: int | None = None,
    at: dt.datetime | None = None,
) -> AlertStep:
    """One line of the alert's log."""
    return AlertStep.objects.create(
        alert=alert,
        kind=kind,
        channel=channel,
        actor=actor,
        recipient=recipient,
        recipient_text=recipient_text[:MAX_REACHED],
        note=note[:MAX_STEP_NOTE],
        notification_id=notification_id,
        level=alert.level if level is None else level,
        at=at or timezone.now(),
    )


def steps_notified(
    alert: CriticalAlert,
    sent: dict[int, int],
    recipients: Iterable[User],
    *,
    level: int,
    at: dt.datetime | None = None,
) -> list[AlertStep]:
    """A "notified" step per person told (``sent`` is ``notify``'s answer)."""
    by_id = {user.pk: user for user in recipients}
    return [
        step_add(
            alert,
            kind=StepKind.NOTIFIED,
            channel=AlertChannel.SOCKET,
            recipient=by_id[user_id],
            notification_id=notification_id,
            level=level,
            at=at,
        )
        for user_id, notification_id in sent.items()
    ]


def audit_alert(
    *,
    actor: Actor | None,
    action: str,
    alert: CriticalAlert,
    outcome: Outcome = Outcome.ALLOWED,
    reason: str | Promise = "",
    detail: dict[str, Any] | None = None,
) -> None:
    audit_record(
        actor=actor,
        action=action,
        outcome=outcome,
        resource_type=RESOURCE,
        resource_id=alert.pk,
        patient_id=alert.patient_id,
        reason=reason,
        detail={"order": alert.order_id, "level": alert.level} | (detail or {}),
    )


def alert_refuse(
    *, actor: User, action: str, alert: CriticalAlert, message: Promise
) -> InvalidRecord:
    """An audited refusal (failed) of an action on the alert, to raise."""
    return refused(
        actor=actor,
        action=action,
        message=message,
        resource_type=RESOURCE,
        resource_id=alert.pk,
        patient_id=alert.patient_id,
    )


def people_told(alert: CriticalAlert) -> list[User]:
    """Everyone the alert was pushed to so far."""
    ids = alert.steps.filter(kind=StepKind.NOTIFIED, recipient__isnull=False).values("recipient_id")
    return list(User.objects.filter(pk__in=ids, is_active=True).order_by("pk"))


def alert_payload(alert: CriticalAlert, *, acknowledge: bool) -> dict[str, Any]:
    """What the pushed notification carries: the alert, and the acknowledge action."""
    payload: dict[str, Any] = {"alert": alert.pk, "level": alert.level}
    if acknowledge:
        payload["ack_url"] = ack_link(alert)
    return payload


# --- Who may act -------------------------------------------------------------------------------


def alert_load(*, actor: Actor, alert_id: int, action: str) -> tuple[CriticalAlert, ActorScope]:
    """The alert and the actor's scope; an unknown alert is audited and ``NotFound``."""
    scope = actor_scope(actor)
    alert = CriticalAlert.objects.select_related(*ALERT_RELATED).filter(pk=alert_id).first()
    if alert is None:
        audit_record(
            actor=actor,
            action=action,
            outcome=Outcome.FAILED,
            resource_type=RESOURCE,
            resource_id=alert_id,
            reason="no such critical value",
        )
        raise NotFound(_("No such critical value."))
    return alert, scope


def alert_deny(
    *, actor: Actor, action: str, alert: CriticalAlert, reason: str, message: str
) -> AccessDenied:
    audit_alert(actor=actor, action=action, alert=alert, outcome=Outcome.DENIED, reason=reason)
    return AccessDenied(message)


def may_acknowledge(scope: ActorScope, order: LabOrder) -> bool:
    """A clinician of the ordering institution, or the ordering doctor."""
    if scope.user_id is None:
        return False
    return is_ordering_clinician(scope, order) or order.requested_by_id == scope.user_id


def may_call(scope: ActorScope, order: LabOrder) -> bool:
    """Staff of the order's lab centre."""
    return scope.user_id is not None and is_lab_staff(scope, order.centre_id)


def may_see(scope: ActorScope, order: LabOrder) -> bool:
    """Whoever may act on the alert, or may see its order."""
    return (
        may_acknowledge(scope, order)
        or may_call(scope, order)
        or orders_visible_to(scope).filter(pk=order.pk).exists()
    )
