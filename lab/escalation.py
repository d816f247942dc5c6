"""Escalation of unacknowledged critical values, run periodically by ``telemed worker``.

An open alert's ``escalate_at`` is when its next step is due (see ``lab.critical``):

* level 0 → 1 when the ordering doctor has not acknowledged within the centre's
  ``ack_minutes``: the clinic's other doctors and the ordering doctor again are told
  (critical); the next step is due ``escalate_minutes`` later;
* level 1 → 2 when still nobody has: the lab centre's staff are told to call the clinic
  (critical). No further automatic step: the alert stays open and highlighted until
  someone acknowledges it (the lab logs its calls).

Each level fires once, under a conditional update (two workers never escalate twice), and
leaves "escalated" and "notified" steps and an audit event with no actor. An alert is
escalated one level per round: whoever is told gets their full minutes.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading

from django.db import close_old_connections, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy

from accounts.models import User
from lab.critical_common import (
    ALERT_RELATED,
    StepKind,
    alert_link,
    alert_params,
    alert_payload,
    audit_alert,
    step_add,
    steps_notified,
)
from lab.models import AlertChannel, AlertLevel, AlertStatus, CriticalAlert
from lab.workflow_common import clinic_doctors_of, lab_staff_of, notify, policy_for
from realtime.models import Severity

logger = logging.getLogger(__name__)

_CLINIC_TITLE = gettext_lazy(
    "Not acknowledged yet: critical value %(test)s %(value)s (%(flag)s) for %(name)s"
)
_CLINIC_BODY = gettext_lazy(
    "Lab order %(number)s, ordered by %(doctor)s, raised %(minutes)s minutes ago. "
    "Any doctor of %(clinic)s can acknowledge it: contact the patient now."
)
_CENTRE_TITLE = gettext_lazy(
    "Call the clinic now: critical value %(test)s %(value)s for %(name)s not acknowledged"
)
_CENTRE_BODY = gettext_lazy(
    "Lab order %(number)s from %(clinic)s (telephone %(phone)s), ordered by %(doctor)s, "
    "raised %(minutes)s minutes ago. Log the call on the alert page."
)


def _recipients(alert: CriticalAlert, level: int) -> list[User]:
    order = alert.order
    if level == AlertLevel.CLINIC:
        return [*clinic_doctors_of(order.requesting_institution_id), order.requested_by]
    return lab_staff_of(order.centre_id)


def _escalate(alert: CriticalAlert, *, now: dt.datetime) -> bool:
    """Raise one open alert by one level; False if someone else did, or it closed."""
    old = alert.level
    level = old + 1
    policy = policy_for(alert.order.centre_id)
    next_due = (
        now + dt.timedelta(minutes=policy.escalate_minutes) if level == AlertLevel.CLINIC else None
    )
    with transaction.atomic():
        updated = CriticalAlert.objects.filter(
            pk=alert.pk, level=old, status=AlertStatus.OPEN
        ).update(level=level, escalate_at=next_due)
        if not updated:
            return False
        alert.level = level
        alert.escalate_at = next_due
        step_add(alert, kind=StepKind.ESCALATED, channel=AlertChannel.SYSTEM, level=level, at=now)
        recipients = _recipients(alert, level)
        clinic_level = level == AlertLevel.CLINIC
        sent = notify(
            recipients,
            order=alert.order,
            kind="lab.critical_escalated",
            severity=Severity.CRITICAL,
            title=_CLINIC_TITLE if clinic_level else _CENTRE_TITLE,
            body=_CLINIC_BODY if clinic_level else _CENTRE_BODY,
            params=alert_params(alert)
            | {
                "minutes": int((now - alert.raised_at).total_seconds() // 60),
                "phone": alert.order.requesting_institution.phone or "—",
            },
            link=alert_link(alert),
            # Only the clinic can acknowledge; the lab's toast just opens the alert.
            payload=alert_payload(alert, acknowledge=clinic_level),
        )
        steps_notified(alert, sent, recipients, level=level, at=now)
        audit_alert(
            actor=None,
            action="lab.critical.escalate",
            alert=alert,
            detail={"from": old, "notified": sorted(sent)},
        )
    return True


def alerts_escalate_due(*, now: dt.datetime | None = None) -> int:
    """Escalate every open alert whose next step is due; returns escalations made."""
    now = now or timezone.now()
    due = list(
        CriticalAlert.objects.filter(
            status=AlertStatus.OPEN,
            escalate_at__isnull=False,
            escalate_at__lte=now,
            level__lt=AlertLevel.CENTRE_CALLS,
        )
        .select_related(*ALERT_RELATED)
        .order_by("escalate_at", "id")
    )
    return sum(_escalate(alert, now=now) for alert in due)


def run_periodic(stop_event: threading.Event, interval: float = 30) -> None:
    """Escalate due critical values every ``interval`` seconds until ``stop_event`` is set.

    Runs as a thread of ``telemed worker`` (and of ``telemed demo``); a failing round is
    logged, not fatal.
    """
    while not stop_event.is_set():
        close_old_connections()
        try:
            count = alerts_escalate_due()
            if count:
                logger.info("escalated %d critical lab value(s)", count)
        except Exception:
            logger.exception("critical value escalation round failed")
        finally:
            close_old_connections()
        stop_event.wait(interval)


def start_periodic(interval: float = 30) -> tuple[threading.Thread, threading.Event]:
    """Start :func:`run_periodic` in a daemon thread; set the event to stop it."""
    stop = threading.Event()
    thread = threading.Thread(
        target=run_periodic, args=(stop, interval), name="lab-periodic", daemon=True
    )
    thread.start()
    return thread, stop
