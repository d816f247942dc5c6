"""Slots and the consult's life after acceptance: book, reschedule, start, cancel, no-show.

Experts (specialists) publish availability slots; the lead expert books one of their own
free future slots for a live consult (booking again reschedules and frees the old slot).
A written consult needs no slot. Cancelling frees the slots and ends the consult's shares
of the record; a no-show closes a scheduled consult once its start has passed.
"""

from __future__ import annotations

import datetime as dt

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import User
from association.models import Role
from association.selectors import actor_scope
from audit.models import Outcome
from audit.services import audit_record
from consult.models import OPEN_STATUSES, Consult, ExpertStatus, Mode, Slot, Status
from consult.workflow_common import (
    MAX_REASON,
    audit_consult,
    consult_link,
    deny,
    event_add,
    experts_of,
    involved_users,
    is_coordinator_for,
    load_consult,
    notify,
    refuse,
    shares_revoke,
    timeline_title,
)
from realtime.models import Severity
from records.selectors import AccessDenied, NotFound
from records.services import InvalidRecord, refused, timeline_add

SLOT_MIN = dt.timedelta(minutes=10)
SLOT_MAX = dt.timedelta(hours=8)
SLOT_HORIZON = dt.timedelta(days=90)


def _when(value: dt.datetime | None) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M") if value else ""


def _aware(value: dt.datetime) -> dt.datetime:
    return timezone.make_aware(value) if timezone.is_naive(value) else value


# --- Slots -------------------------------------------------------------------------------------


def _audit_slot(
    *, actor: User, action: str, slot_id: object, outcome: Outcome, reason: str | Promise = ""
) -> None:
    audit_record(
        actor=actor,
        action=action,
        outcome=outcome,
        resource_type="slot",
        resource_id=slot_id,
        reason=reason,
    )


def slot_create(*, actor: User, start: dt.datetime, end: dt.datetime) -> Slot:
    """A specialist offers a period for live consults.

    Raises
    ------
    AccessDenied
        The actor is no active specialist.
    InvalidRecord
        The period is in the past, too short or too long, or overlaps another own slot.
    """
    action = "consult.slot.create"
    scope = actor_scope(actor)
    if not any(m.role == Role.SPECIALIST and m.centre_id is None for m in scope.memberships):
        _audit_slot(
            actor=actor, action=action, slot_id="", outcome=Outcome.DENIED, reason="no specialist"
        )
        raise AccessDenied(_("Only specialists offer consultation slots."))
    start, end = _aware(start), _aware(end)
    now = timezone.now()
    message: str | Promise | None = None
    if end <= start:
        message = gettext_lazy("A slot must end after it starts.")
    elif start <= now:
        message = gettext_lazy("A slot must start in the future.")
    elif start > now + SLOT_HORIZON:
        message = gettext_lazy("Slots can be offered at most 90 days ahead.")
    elif not SLOT_MIN <= end - start <= SLOT_MAX:
        message = gettext_lazy("A slot lasts from 10 minutes to 8 hours.")
    elif Slot.objects.filter(expert=actor, start__lt=end, end__gt=start).exists():
        message = gettext_lazy("This time overlaps another of your slots.")
    if message is not None:
        raise refused(actor=actor, action=action, message=message, resource_type="slot")
    try:
        with transaction.atomic():
            slot = Slot.objects.create(expert=actor, start=start, end=end)
    except IntegrityError:  # the same start created concurrently
        raise refused(
            actor=actor,
            action=action,
            message=gettext_lazy("This time overlaps another of your slots."),
            resource_type="slot",
        ) from None
    _audit_slot(actor=actor, action=action, slot_id=slot.pk, outcome=Outcome.ALLOWED)
    return slot


def slot_delete(*, actor: User, slot_id: int) -> None:
    """An expert withdraws one of their free slots.

    Raises
    ------
    NotFound, AccessDenied, InvalidRecord
    """
    action = "consult.slot.delete"
    slot = Slot.objects.filter(pk=slot_id).first()
    if slot is None:
        _audit_slot(actor=actor, action=action, slot_id=slot_id, outcome=Outcome.FAILED)
        raise NotFound(_("No such slot."))
    if slot.expert_id != actor.pk:
        _audit_slot(
            actor=actor, action=action, slot_id=slot_id, outcome=Outcome.DENIED, reason="not own"
        )
        raise AccessDenied(_("Only the expert who offered a slot can withdraw it."))
    deleted, _rows = Slot.objects.filter(pk=slot.pk, consult__isnull=True).delete()
    if not deleted:
        raise refused(
            actor=actor,
            action=action,
            message=gettext_lazy(
                "This slot is booked; reschedule or cancel the consultation first."
            ),
            resource_type="slot",
            resource_id=slot_id,
        )
    _audit_slot(actor=actor, action=action, slot_id=slot_id, outcome=Outcome.ALLOWED)


# --- Booking -----------------------------------------------------------------------------------


def _as_accepted_expert(
    *, actor: User, consult_id: int, action: str, lead: bool = False
) -> Consult:
    consult, _scope = load_consult(actor=actor, consult_id=consult_id, action=action)
    rows = consult.experts.filter(user_id=actor.pk, status=ExpertStatus.ACCEPTED)
    if lead:
        rows = rows.filter(lead=True)
    if not rows.exists():
        raise deny(
            actor=actor,
            action=action,
            consult=consult,
            reason="not the lead expert" if lead else "not an accepted expert",
            message=_("Only the lead expert can do this.")
            if lead
            else _("Only an expert who accepted this consultation can do this."),
        )
    return consult


def consult_book(*, actor: User, consult_id: int, slot_id: int) -> Consult:
    """The lead expert books one of their free future slots; booking again reschedules.

    Raises
    ------
    AccessDenied, NotFound, InvalidRecord
    """
    action = "consult.book"
    consult = _as_accepted_expert(actor=actor, consult_id=consult_id, action=action, lead=True)
    slot = Slot.objects.filter(pk=slot_id, expert=actor).first()
    message: str | Promise | None = None
    if consult.mode == Mode.WRITTEN:
        message = gettext_lazy("A written consultation needs no appointment.")
    elif consult.status not in (Status.ACCEPTED, Status.SCHEDULED):
        message = gettext_lazy("This consultation cannot be booked now.")
    elif slot is None:
        message = gettext_lazy("Choose one of your own free slots.")
    elif slot.consult_id == consult.pk:
        return consult  # booked on this slot already: nothing changes
    elif slot.consult_id is not None:
        message = gettext_lazy("This slot is already booked.")
    elif slot.start <= timezone.now():
        message = gettext_lazy("Choose a slot in the future.")
    if message is not None or slot is None:
        raise refuse(
            actor=actor,
            action=action,
            consult=consult,
            message=message or gettext_lazy("Choose one of your own free slots."),
        )
    previous = consult.scheduled_start
    rescheduled = consult.status == Status.SCHEDULED
    with transaction.atomic():
        taken = Slot.objects.filter(pk=slot.pk, consult__isnull=True).update(consult=consult)
        moved = taken and Consult.objects.filter(
            pk=consult.pk, status__in=(Status.ACCEPTED, Status.SCHEDULED)
        ).update(status=Status.SCHEDULED, scheduled_start=slot.start, scheduled_end=slot.end)
        if not moved:
            transaction.set_rollback(True)
        else:
            Slot.objects.filter(consult=consult).exclude(pk=slot.pk).update(consult=None)
            kind = "rescheduled" if rescheduled else "booked"
            event_add(
                consult=consult,
                kind=kind,
                actor=actor,
                detail={
                    "slot": slot.pk,
                    "start": slot.start.isoformat(),
                    "end": slot.end.isoformat(),
                    "previous": previous.isoformat() if previous else None,
                },
            )
            others = [r.user for r in experts_of(consult, ExpertStatus.ACCEPTED)]
            notify(
                [consult.requested_by, *others],
                consult=consult,
                kind=f"consult.{kind}",
                severity=Severity.URGENT if rescheduled else Severity.INFO,
                title=gettext_lazy("Consultation %(number)s for %(name)s moved to %(when)s")
                if rescheduled
                else gettext_lazy("Consultation %(number)s for %(name)s is booked for %(when)s"),
                body=gettext_lazy("Live video with %(expert)s until %(end)s."),
                params={"when": _when(slot.start), "end": _when(slot.end), "expert": str(actor)},
                exclude=actor,
            )
    if not moved:
        raise refuse(
            actor=actor,
            action=action,
            consult=consult,
            message=gettext_lazy("This slot is already booked."),
        )
    audit_consult(
        actor=actor,
        action=action,
        consult=consult,
        detail={"slot": slot.pk, "rescheduled": rescheduled},
    )
    consult.refresh_from_db()
    return consult


def consult_start(*, actor: User, consult_id: int) -> Consult:
    """An accepted expert starts the consult (admits the requester); idempotent.

    Raises
    ------
    AccessDenied, NotFound, InvalidRecord
    """
    action = "consult.start"
    consult = _as_accepted_expert(actor=actor, consult_id=consult_id, action=action)
    if consult.status == Status.IN_PROGRESS:
        return consult
    if consult.status not in (Status.ACCEPTED, Status.SCHEDULED):
        raise refuse(
            actor=actor,
            action=action,
            consult=consult,
            message=gettext_lazy("This consultation cannot be started now."),
        )
    with transaction.atomic():
        started = Consult.objects.filter(
            pk=consult.pk, status__in=(Status.ACCEPTED, Status.SCHEDULED)
        ).update(status=Status.IN_PROGRESS, started_at=timezone.now())
        if started:
            event_add(consult=consult, kind="started", actor=actor)
            notify(
                [consult.requested_by],
                consult=consult,
                kind="consult.started",
                severity=Severity.URGENT,
                title=gettext_lazy("%(expert)s started consultation %(number)s for %(name)s"),
                body=gettext_lazy("Join the consultation room now."),
                params={"expert": str(actor)},
                exclude=actor,
            )
    consult.refresh_from_db()
    if not started and consult.status != Status.IN_PROGRESS:
        raise refuse(
            actor=actor,
            action=action,
            consult=consult,
            message=gettext_lazy("This consultation cannot be started now."),
        )
    if started:
        audit_consult(actor=actor, action=action, consult=consult)
    return consult


# --- Closing early -----------------------------------------------------------------------------


def _reason_problem(reason: str, *, required: bool) -> Promise | None:
    if required and not reason:
        return gettext_lazy("Say why.")
    if len(reason) > MAX_REASON:
        return gettext_lazy("The reason may be at most 500 characters.")
    return None


def consult_cancel(*, actor: User, consult_id: int, reason: str) -> Consult:
    """The requester, a coordinator or the lead expert cancels an open consult.

    Slots are freed, the consult's shares of the record end, everyone involved is told
    and the resident's timeline records it.

    Raises
    ------
    AccessDenied, NotFound, InvalidRecord
    """
    action = "consult.cancel"
    consult, scope = load_consult(actor=actor, consult_id=consult_id, action=action)
    lead = consult.experts.filter(
        user_id=actor.pk, status=ExpertStatus.ACCEPTED, lead=True
    ).exists()
    if not (consult.requested_by_id == actor.pk or lead or is_coordinator_for(scope, consult)):
        raise deny(
            actor=actor,
            action=action,
            consult=consult,
            reason="not requester, coordinator or lead expert",
            message=_(
                "Only the requester, a coordinator or the lead expert can cancel this consultation."
            ),
        )
    reason = reason.strip()
    message = _reason_problem(reason, required=True)
    if message is None and consult.status not in OPEN_STATUSES:
        message = gettext_lazy("Only an open consultation can be cancelled.")
    if message is not None:
        raise refuse(actor=actor, action=action, consult=consult, message=message)
    recipients = involved_users(consult, coordinators=True)
    with transaction.atomic():
        updated = Consult.objects.filter(pk=consult.pk, status__in=OPEN_STATUSES).update(
            status=Status.CANCELLED,
            closed_reason=reason,
            closed_by=actor,
            ended_at=timezone.now(),
        )
        if updated:
            freed = Slot.objects.filter(consult=consult).update(consult=None)
            revoked = shares_revoke(consult=consult)
            event_add(
                consult=consult,
                kind="cancelled",
                actor=actor,
                detail={"reason": reason, "slots_freed": freed, "shares_revoked": revoked},
            )
            timeline_add(
                patient=consult.patient,
                kind="consult.cancelled",
                title=timeline_title("consult.cancelled"),
                summary=f"{consult.number} · {reason}",
                institution=consult.requesting_institution,
                actor=actor,
                link=consult_link(consult.pk),
                data={"consult": consult.pk},
            )
            notify(
                recipients,
                consult=consult,
                kind="consult.cancelled",
                title=gettext_lazy("Consultation %(number)s for %(name)s was cancelled"),
                body=gettext_lazy("%(who)s gave the reason: %(reason)s"),
                params={"who": str(actor), "reason": reason},
                exclude=actor,
            )
    if not updated:
        raise refuse(
            actor=actor,
            action=action,
            consult=consult,
            message=gettext_lazy("Only an open consultation can be cancelled."),
        )
    audit_consult(actor=actor, action=action, consult=consult, detail={"reason": reason})
    consult.refresh_from_db()
    return consult


def consult_no_show(*, actor: User, consult_id: int, reason: str = "") -> Consult:
    """An accepted expert records that the requester did not come to the booked consult.

    Raises
    ------
    AccessDenied, NotFound, InvalidRecord
    """
    action = "consult.no_show"
    consult = _as_accepted_expert(actor=actor, consult_id=consult_id, action=action)
    reason = reason.strip()
    message = _reason_problem(reason, required=False)
    now = timezone.now()
    if message is None and consult.status != Status.SCHEDULED:
        message = gettext_lazy("Only a booked consultation can be marked as a no-show.")
    elif message is None and (consult.scheduled_start is None or consult.scheduled_start > now):
        message = gettext_lazy("A no-show can be recorded only after the appointment started.")
    if message is not None:
        raise refuse(actor=actor, action=action, consult=consult, message=message)
    recipients = involved_users(consult, coordinators=True)
    with transaction.atomic():
        updated = Consult.objects.filter(pk=consult.pk, status=Status.SCHEDULED).update(
            status=Status.NO_SHOW, closed_reason=reason, closed_by=actor, ended_at=now
        )
        if updated:
            shares_revoke(consult=consult)
            event_add(consult=consult, kind="no_show", actor=actor, detail={"reason": reason})
            notify(
                recipients,
                consult=consult,
                kind="consult.no_show",
                severity=Severity.URGENT,
                title=gettext_lazy("Consultation %(number)s for %(name)s: no-show recorded"),
                body=gettext_lazy("Recorded by %(who)s. %(reason)s"),
                params={"who": str(actor), "reason": reason},
                exclude=actor,
            )
    if not updated:
        raise refuse(
            actor=actor,
            action=action,
            consult=consult,
            message=gettext_lazy("Only a booked consultation can be marked as a no-show."),
        )
    audit_consult(actor=actor, action=action, consult=consult, detail={"reason": reason})
    consult.refresh_from_db()
    return consult


__all__ = [
    "InvalidRecord",
    "consult_book",
    "consult_cancel",
    "consult_no_show",
    "consult_start",
    "slot_create",
    "slot_delete",
]
