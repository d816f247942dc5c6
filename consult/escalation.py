"""Escalation of overdue consults, run periodically by ``telemed worker``.

Two clocks (see ``consult.sla``): the answer clock while nobody has taken the consult
(pre-review or waiting for an expert), the opinion clock once an expert has. Per clock:

* level 1 when the due time has passed: the association's coordinators and the
  requester are warned (and, on the opinion clock, the accepted experts);
* level 2 when it is overdue by as long again: the coordinators again, as critical, and
  the department colleagues of the experts concerned.

Each level fires once (``Consult.escalation_level``, reset when the consult is routed or
accepted), leaves a ``ConsultEvent`` and an audit event with no actor.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading

from django.db import close_old_connections, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy

from accounts.models import User
from association.models import Membership, Role
from audit.models import Outcome
from audit.services import audit_record
from consult.models import Consult, ConsultExpert, ExpertStatus, Status
from consult.sla import opinion_target, respond_target
from consult.workflow_common import coordinators_of, event_add, experts_of, notify
from realtime.models import Severity

logger = logging.getLogger(__name__)

MAX_LEVEL = 2
# Escalated while nobody has taken the consult (a returned consult waits for the requester).
RESPOND_STATUSES = (Status.PENDING_REVIEW, Status.PENDING_EXPERT)
OPINION_STATUSES = (Status.ACCEPTED, Status.SCHEDULED, Status.IN_PROGRESS)


def _due_level(due: dt.datetime | None, target: dt.timedelta, now: dt.datetime) -> int:
    if due is None or now <= due:
        return 0
    return MAX_LEVEL if now >= due + target else 1


def department_colleagues(rows: list[ConsultExpert]) -> list[User]:
    """Active specialists of the departments the experts of ``rows`` work in."""
    departments = set(
        Membership.objects.filter(
            user_id__in=[r.user_id for r in rows],
            role=Role.SPECIALIST,
            active=True,
            department__isnull=False,
        ).values_list("department_id", flat=True)
    )
    if not departments:
        return []
    memberships = Membership.objects.filter(
        department_id__in=departments, role=Role.SPECIALIST, active=True, user__is_active=True
    ).select_related("user")
    return list({m.user_id: m.user for m in memberships}.values())


def _recipients(consult: Consult, *, clock: str, level: int) -> list[User]:
    coordinators = coordinators_of(consult.requesting_institution.association_id)
    statuses = (ExpertStatus.INVITED,) if clock == "respond" else (ExpertStatus.ACCEPTED,)
    rows = list(experts_of(consult, *statuses))
    experts = [r.user for r in rows]
    if level == 1:
        return [*coordinators, consult.requested_by, *(experts if clock == "opinion" else [])]
    return [*coordinators, *experts, *department_colleagues(rows)]


_TITLES = {
    ("respond", 1): gettext_lazy("Consultation %(number)s for %(name)s has not been answered"),
    ("respond", 2): gettext_lazy(
        "Consultation %(number)s for %(name)s is still unanswered, long overdue"
    ),
    ("opinion", 1): gettext_lazy("The opinion on consultation %(number)s for %(name)s is overdue"),
    ("opinion", 2): gettext_lazy(
        "The opinion on consultation %(number)s for %(name)s is long overdue"
    ),
}


def _escalate(consult: Consult, *, clock: str, level: int, now: dt.datetime) -> bool:
    due = consult.respond_due_at if clock == "respond" else consult.complete_due_at
    with transaction.atomic():
        updated = Consult.objects.filter(
            pk=consult.pk, status=consult.status, escalation_level=level - 1
        ).update(escalation_level=level, escalated_at=now)
        if not updated:
            return False
        consult.escalation_level = level
        detail = {"clock": clock, "level": level, "due": due.isoformat() if due else None}
        event_add(consult=consult, kind="escalated", actor=None, detail=detail)
        notify(
            _recipients(consult, clock=clock, level=level),
            consult=consult,
            kind="consult.escalated",
            severity=Severity.URGENT if level == 1 else Severity.CRITICAL,
            title=_TITLES[(clock, level)],
            body=gettext_lazy("%(priority)s, due %(due)s. Status: %(status)s."),
            params={
                "priority": consult.get_priority_display(),
                "due": timezone.localtime(due).strftime("%Y-%m-%d %H:%M") if due else "",
                "status": consult.get_status_display(),
            },
            payload={"clock": clock, "level": level},
        )
        audit_record(
            actor=None,
            action="consult.escalate",
            outcome=Outcome.ALLOWED,
            resource_type="consult",
            resource_id=consult.pk,
            patient_id=consult.patient_id,
            detail=detail,
        )
    return True


def consults_escalate_overdue(*, now: dt.datetime | None = None) -> int:
    """Escalate every overdue consult to the level it has reached; returns escalations made."""
    now = now or timezone.now()
    related = ("patient", "requesting_institution", "requested_by")
    candidates = list(
        Consult.objects.filter(
            status__in=RESPOND_STATUSES,
            respond_due_at__lt=now,
            escalation_level__lt=MAX_LEVEL,
        ).select_related(*related)
    ) + list(
        Consult.objects.filter(
            status__in=OPINION_STATUSES,
            complete_due_at__lt=now,
            escalation_level__lt=MAX_LEVEL,
        ).select_related(*related)
    )
    done = 0
    for consult in candidates:
        if consult.status in RESPOND_STATUSES:
            clock, due = "respond", consult.respond_due_at
            target = respond_target(consult.priority)
        else:
            clock, due = "opinion", consult.complete_due_at
            target = opinion_target(consult.priority)
        reached = _due_level(due, target, now)
        for level in range(consult.escalation_level + 1, reached + 1):
            if not _escalate(consult, clock=clock, level=level, now=now):
                break
            done += 1
    return done


def run_periodic(stop_event: threading.Event, interval: float = 60) -> None:
    """Escalate overdue consults and purge expired recordings every ``interval`` seconds.

    Runs as a thread of ``telemed worker`` (and of ``telemed demo``) until ``stop_event``
    is set; a failing round is logged, not fatal.
    """
    while not stop_event.is_set():
        close_old_connections()
        try:
            count = consults_escalate_overdue()
            if count:
                logger.info("escalated %d overdue consult(s)", count)
            from consult.recordings import recordings_purge_expired

            purged = recordings_purge_expired()
            if purged:
                logger.info("purged %d expired consult recording(s)", purged)
        except Exception:
            logger.exception("consult escalation round failed")
        finally:
            close_old_connections()
        stop_event.wait(interval)


def start_periodic(interval: float = 60) -> tuple[threading.Thread, threading.Event]:
    """Start :func:`run_periodic` in a daemon thread; set the event to stop it."""
    stop = threading.Event()
    thread = threading.Thread(
        target=run_periodic, args=(stop, interval), name="consult-periodic", daemon=True
    )
    thread.start()
    return thread, stop
