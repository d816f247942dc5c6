"""Critical values: told to the ordering doctor at once, escalated until acknowledged.

A critical result raises a :class:`~lab.models.CriticalAlert`. The ordering doctor is
notified at once (severity critical, with an "Acknowledge" action in the pushed
notification); a clinician of the ordering institution acknowledges with the action taken.
Unacknowledged, the alert is escalated by ``lab.escalation`` (the clinic's other doctors,
then the lab centre calls). Lab staff log their telephone calls; a call in which the
person reached reads the value back acknowledges the alert. A corrected result withdraws
its open alerts.

Every step (who was told, when, by which channel, who acknowledged) is an
:class:`~lab.models.AlertStep`; every write, denial and refusal is audited with
``resource_type="lab_critical"``. Access is checked before the transaction, so a refusal's
audit event is never rolled back; ``alert_raise`` and ``alerts_withdraw`` run inside the
caller's transaction (the results services, which have checked access already).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.urls import NoReverseMatch, reverse
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
    AlertLevel,
    AlertStatus,
    AlertStep,
    CriticalAlert,
    Flag,
    LabOrder,
    LabTest,
    Result,
)
from lab.workflow_common import (
    clinic_doctors_of,
    lab_staff_of,
    notify,
    policy_for,
    timeline_title,
)
from realtime.models import Severity
from records.selectors import AccessDenied, NotFound
from records.services import InvalidRecord, refused, timeline_add

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


def _reverse(name: str, pk: int, fallback: str) -> str:
    try:
        return reverse(name, args=[pk])
    except NoReverseMatch:
        return fallback


def alert_link(alert: CriticalAlert | int) -> str:
    pk = alert if isinstance(alert, int) else alert.pk
    return _reverse("lab:critical", pk, f"/lab/critical/{pk}/")


def ack_link(alert: CriticalAlert | int) -> str:
    pk = alert if isinstance(alert, int) else alert.pk
    return _reverse("lab:critical_ack", pk, f"/lab/critical/{pk}/ack/")


def call_link(alert: CriticalAlert | int) -> str:
    pk = alert if isinstance(alert, int) else alert.pk
    return _reverse("lab:critical_call", pk, f"/lab/critical/{pk}/call/")


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


def _refuse(*, actor: User, action: str, alert: CriticalAlert, message: Promise) -> InvalidRecord:
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


# --- Raise -------------------------------------------------------------------------------------

_RAISED_TITLE = gettext_lazy("Critical value: %(test)s %(value)s (%(flag)s) for %(name)s")
_RAISED_BODY = gettext_lazy(
    "Lab order %(number)s. Contact the patient now, then acknowledge with the action taken. "
    "Without an acknowledgement within %(minutes)s minutes the clinic's other doctors are told."
)


def alert_raise(*, result: Result, actor: User | None) -> CriticalAlert | None:
    """Raise an alert for a critical ``result`` and tell the ordering doctor at once.

    Runs inside the caller's transaction; notifications are pushed on commit. Returns
    ``None`` when the result is not critical, or when the same value was already raised
    (still open, or acknowledged last). A new value replaces (withdraws) an open alert.
    """
    if not result.is_critical:
        return None
    with transaction.atomic():
        Result.objects.select_for_update().filter(pk=result.pk).values_list("pk").first()
        result = Result.objects.select_related(
            "item__test",
            "item__order__patient",
            "item__order__requesting_institution",
            "item__order__requested_by",
        ).get(pk=result.pk)
        order = result.item.order
        value = result_value_text(result)
        earlier = list(
            CriticalAlert.objects.filter(result=result)
            .exclude(status=AlertStatus.WITHDRAWN)
            .order_by("-raised_at", "-id")
        )
        same = [a for a in earlier if a.value == value and a.flag == result.flag]
        if any(a.status == AlertStatus.OPEN for a in same) or (
            earlier and earlier[0] in same and earlier[0].status == AlertStatus.ACKNOWLEDGED
        ):
            return None
        for old in earlier:
            if old.status == AlertStatus.OPEN:
                _withdraw(old, actor=actor, reason=f"{old.value} → {value}", tell=True)

        now = timezone.now()
        policy = policy_for(order.centre_id)
        alert = CriticalAlert.objects.create(
            result=result,
            order=order,
            patient_id=order.patient_id,
            value=value,
            flag=result.flag,
            level=AlertLevel.ORDERING_DOCTOR,
            raised_by=actor,
            raised_at=now,
            escalate_at=now + dt.timedelta(minutes=policy.ack_minutes),
        )
        test = result.item.test
        step_add(
            alert,
            kind=StepKind.RAISED,
            channel=AlertChannel.SYSTEM,
            actor=actor,
            note=f"{test.code} {value} {result.flag}",
            at=now,
        )
        doctor = order.requested_by
        # An ordering doctor who has left cannot be reached: the clinic is told instead.
        recipients = (
            [doctor] if doctor.is_active else clinic_doctors_of(order.requesting_institution_id)
        )
        sent = notify(
            recipients,
            order=order,
            kind="lab.critical",
            severity=Severity.CRITICAL,
            title=_RAISED_TITLE,
            body=_RAISED_BODY,
            params=alert_params(alert) | {"minutes": policy.ack_minutes},
            link=alert_link(alert),
            payload=alert_payload(alert, acknowledge=True),
        )
        steps_notified(alert, sent, recipients, level=alert.level, at=now)
        timeline_add(
            patient=order.patient,
            kind="lab.critical",
            title=timeline_title("lab.critical"),
            summary=f"{order.number} · {test.code} {test.name} {value} ({result.flag})",
            institution=order.requesting_institution,
            actor=actor,
            link=alert_link(alert),
            data={"alert": alert.pk, "order": order.pk, "flag": result.flag},
            at=now,
        )
        audit_alert(
            actor=actor,
            action="lab.critical.raise",
            alert=alert,
            detail={
                "result": result.pk,
                "test": test.code,
                "value": value,
                "flag": result.flag,
                "notified": sorted(sent),
            },
        )
    return alert


# --- Withdraw ----------------------------------------------------------------------------------

_WITHDRAWN_TITLE = gettext_lazy("Critical value withdrawn: %(test)s %(value)s for %(name)s")
_WITHDRAWN_BODY = gettext_lazy(
    "The lab corrected this result of order %(number)s; no acknowledgement is needed. %(reason)s"
)


def _withdraw(alert: CriticalAlert, *, actor: User | None, reason: str, tell: bool) -> bool:
    """Withdraw one open alert (inside a transaction); False if it was no longer open."""
    updated = CriticalAlert.objects.filter(pk=alert.pk, status=AlertStatus.OPEN).update(
        status=AlertStatus.WITHDRAWN, escalate_at=None
    )
    if not updated:
        return False
    alert.status = AlertStatus.WITHDRAWN
    alert.escalate_at = None
    step_add(alert, kind=StepKind.WITHDRAWN, channel=AlertChannel.SYSTEM, actor=actor, note=reason)
    if tell:
        notify(
            people_told(alert),
            order=alert.order,
            kind="lab.critical_withdrawn",
            severity=Severity.INFO,
            title=_WITHDRAWN_TITLE,
            body=_WITHDRAWN_BODY,
            params=alert_params(alert) | {"reason": reason},
            link=alert_link(alert),
            exclude=actor,
            payload={"alert": alert.pk},
        )
    audit_alert(actor=actor, action="lab.critical.withdraw", alert=alert, detail={"reason": reason})
    return True


def alerts_withdraw(*, result: Result, actor: User | None, reason: str) -> int:
    """Withdraw the open alerts of a corrected result and tell who was told; returns how many.

    Runs inside the caller's transaction (the results service has checked access).
    """
    reason = reason.strip()[:MAX_STEP_NOTE]
    done = 0
    with transaction.atomic():
        alerts = CriticalAlert.objects.select_related(*ALERT_RELATED).filter(
            result_id=result.pk, status=AlertStatus.OPEN
        )
        for alert in alerts:
            done += _withdraw(alert, actor=actor, reason=reason, tell=True)
    return done


# --- Acknowledge -------------------------------------------------------------------------------

_ACKED_TITLE = gettext_lazy("Critical value acknowledged: %(test)s %(value)s for %(name)s")
_ACKED_BODY = gettext_lazy("Acknowledged by %(who)s (%(clinic)s): %(note)s")


def _tell_acknowledged(alert: CriticalAlert, *, actor: User, who: str) -> None:
    """The lab staff and everyone told so far learn that the alert is handled."""
    recipients = [*lab_staff_of(alert.order.centre_id), *people_told(alert)]
    notify(
        recipients,
        order=alert.order,
        kind="lab.critical_acknowledged",
        severity=Severity.INFO,
        title=_ACKED_TITLE,
        body=_ACKED_BODY,
        params=alert_params(alert) | {"who": who, "note": alert.ack_note or "—"},
        link=alert_link(alert),
        exclude=actor,
        payload={"alert": alert.pk},
    )


def alert_acknowledge(*, actor: User, alert_id: int, note: str = "") -> CriticalAlert:
    """The ordering side acknowledges a critical value, with the action taken.

    Raises
    ------
    AccessDenied
        Not a clinician of the ordering institution (lab staff log a call instead).
    NotFound
        No such alert.
    InvalidRecord
        Already acknowledged, or withdrawn, or the note is too long.
    """
    action = "lab.critical.acknowledge"
    alert, scope = alert_load(actor=actor, alert_id=alert_id, action=action)
    if not may_acknowledge(scope, alert.order):
        lab = may_call(scope, alert.order)
        raise alert_deny(
            actor=actor,
            action=action,
            alert=alert,
            reason="lab staff: log a call instead" if lab else "not the ordering institution",
            message=_(
                "Only the clinic that ordered the test acknowledges a critical value. "
                "Log your telephone call instead."
            )
            if lab
            else _("Only the clinic that ordered the test can acknowledge this critical value."),
        )
    note = note.strip()
    if len(note) > MAX_ACK_NOTE:
        raise _refuse(
            actor=actor,
            action=action,
            alert=alert,
            message=lazy_format(
                gettext_lazy("Keep the note under %(max)s characters."), max=MAX_ACK_NOTE
            ),
        )
    if alert.status != AlertStatus.OPEN:
        raise _refuse(actor=actor, action=action, alert=alert, message=closed_message(alert))
    now = timezone.now()
    with transaction.atomic():
        updated = CriticalAlert.objects.filter(pk=alert.pk, status=AlertStatus.OPEN).update(
            status=AlertStatus.ACKNOWLEDGED,
            acknowledged_by=actor,
            acknowledged_at=now,
            ack_note=note,
            escalate_at=None,
        )
        if updated:
            alert.status = AlertStatus.ACKNOWLEDGED
            alert.acknowledged_by = actor
            alert.acknowledged_at = now
            alert.ack_note = note
            alert.escalate_at = None
            step_add(
                alert,
                kind=StepKind.ACKNOWLEDGED,
                channel=AlertChannel.SOCKET,
                actor=actor,
                note=note,
                at=now,
            )
            _tell_acknowledged(alert, actor=actor, who=str(actor))
            audit_alert(
                actor=actor,
                action=action,
                alert=alert,
                detail={"minutes": int((now - alert.raised_at).total_seconds() // 60)},
            )
    if not updated:  # acknowledged or withdrawn meanwhile
        alert.refresh_from_db()
        raise _refuse(actor=actor, action=action, alert=alert, message=closed_message(alert))
    return alert


# --- Telephone calls by the lab ----------------------------------------------------------------


def alert_call_log(
    *, actor: User, alert_id: int, reached: str, acknowledged: bool, note: str = ""
) -> AlertStep:
    """Lab staff log a telephone call about an alert; returns the "called" step.

    With ``acknowledged`` the person reached read the value back: the alert is
    acknowledged by telephone (``acknowledged_by`` stays empty; the caller is the step's
    actor).

    Raises
    ------
    AccessDenied
        Not staff of the order's lab centre.
    NotFound
        No such alert.
    InvalidRecord
        Nobody named, a note too long, a withdrawn alert, or already acknowledged.
    """
    action = "lab.critical.call"
    alert, scope = alert_load(actor=actor, alert_id=alert_id, action=action)
    if not may_call(scope, alert.order):
        raise alert_deny(
            actor=actor,
            action=action,
            alert=alert,
            reason="not staff of the lab centre",
            message=_("Only staff of the lab centre log calls about a critical value."),
        )
    reached = " ".join(reached.split())
    note = note.strip()
    message: Promise | None = None
    if not reached:
        message = gettext_lazy("Say whom you reached (name and role, or that nobody answered).")
    elif len(reached) > MAX_REACHED:
        message = lazy_format(
            gettext_lazy("Keep the name under %(max)s characters."), max=MAX_REACHED
        )
    elif len(note) > MAX_STEP_NOTE:
        message = lazy_format(
            gettext_lazy("Keep the note under %(max)s characters."), max=MAX_STEP_NOTE
        )
    elif alert.status == AlertStatus.WITHDRAWN or (
        acknowledged and alert.status != AlertStatus.OPEN
    ):
        message = closed_message(alert)
    if message is not None:
        raise _refuse(actor=actor, action=action, alert=alert, message=message)

    now = timezone.now()
    ack_note = (f"By telephone: {reached} — {note}" if note else f"By telephone: {reached}")[
        :MAX_ACK_NOTE
    ]
    with transaction.atomic():
        if acknowledged:
            updated = CriticalAlert.objects.filter(pk=alert.pk, status=AlertStatus.OPEN).update(
                status=AlertStatus.ACKNOWLEDGED,
                acknowledged_by=None,
                acknowledged_at=now,
                ack_note=ack_note,
                escalate_at=None,
            )
            if updated:
                alert.status = AlertStatus.ACKNOWLEDGED
                alert.acknowledged_by = None
                alert.acknowledged_at = now
                alert.ack_note = ack_note
                alert.escalate_at = None
        if not acknowledged or updated:
            return _call_logged(
                alert, actor=actor, reached=reached, note=note, acknowledged=acknowledged, at=now
            )
    # Acknowledged or withdrawn meanwhile.
    alert.refresh_from_db()
    raise _refuse(actor=actor, action=action, alert=alert, message=closed_message(alert))


def _call_logged(
    alert: CriticalAlert,
    *,
    actor: User,
    reached: str,
    note: str,
    acknowledged: bool,
    at: dt.datetime,
) -> AlertStep:
    """The log of a call, and of the read-back acknowledgement it brought."""
    called = step_add(
        alert,
        kind=StepKind.CALLED,
        channel=AlertChannel.PHONE,
        actor=actor,
        recipient_text=reached,
        note=note,
        at=at,
    )
    if acknowledged:
        step_add(
            alert,
            kind=StepKind.ACKNOWLEDGED,
            channel=AlertChannel.PHONE,
            actor=actor,
            recipient_text=reached,
            note=note,
            at=at,
        )
        _tell_acknowledged(alert, actor=actor, who=reached)
    audit_alert(
        actor=actor,
        action="lab.critical.call",
        alert=alert,
        detail={"acknowledged": acknowledged, "reached": reached},
    )
    return called


# --- Escalation --------------------------------------------------------------------------------


def alerts_escalate_due(*, now: dt.datetime | None = None) -> int:
    """Escalate every open alert whose time has come; see :mod:`lab.escalation`."""
    from lab.escalation import alerts_escalate_due as escalate

    return escalate(now=now)
