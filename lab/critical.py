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
caller's transaction (the results services, which have checked access already). What the
services share with escalation and the reads (links, wording, the step log, audit, who may
act) is in ``lab.critical_common``.
"""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import User
from lab import escalation
from lab.critical_common import (
    ALERT_RELATED,
    MAX_ACK_NOTE,
    MAX_REACHED,
    MAX_STEP_NOTE,
    StepKind,
    alert_deny,
    alert_link,
    alert_load,
    alert_params,
    alert_payload,
    alert_refuse,
    audit_alert,
    closed_message,
    lazy_format,
    may_acknowledge,
    may_call,
    people_told,
    result_value_text,
    step_add,
    steps_notified,
)
from lab.models import AlertChannel, AlertLevel, AlertStatus, AlertStep, CriticalAlert, Result
from lab.workflow_common import (
    clinic_doctors_of,
    lab_staff_of,
    notify,
    policy_for,
    timeline_title,
)
from realtime.models import Severity
from records.services import timeline_add

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
        raise alert_refuse(
            actor=actor,
            action=action,
            alert=alert,
            message=lazy_format(
                gettext_lazy("Keep the note under %(max)s characters."), max=MAX_ACK_NOTE
            ),
        )
    if alert.status != AlertStatus.OPEN:
        raise alert_refuse(actor=actor, action=action, alert=alert, message=closed_message(alert))
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
        raise alert_refuse(actor=actor, action=action, alert=alert, message=closed_message(alert))
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
        raise alert_refuse(actor=actor, action=action, alert=alert, message=message)

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
    raise alert_refuse(actor=actor, action=action, alert=alert, message=closed_message(alert))


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
    return escalation.alerts_escalate_due(now=now)
