"""Reads of critical values: the list pages, one alert with its log, the banner, an order's.

Lab staff see the alerts of their centres; clinicians those of their institutions' orders
(and an alert of an order they may otherwise see, read-only). Lists and reads are audited
here, denials too.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Count, Min, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from association.models import CLINICAL_ROLES, CentreKind, Membership, Role
from association.selectors import actor_scope
from audit.models import Outcome
from audit.services import audit_record
from lab.access import lab_centre_ids
from lab.critical_common import (
    ALERT_RELATED,
    RESOURCE,
    StepKind,
    alert_deny,
    alert_load,
    may_acknowledge,
    may_call,
    may_see,
)
from lab.models import (
    AlertLevel,
    AlertStatus,
    AlertStep,
    CriticalAlert,
    LabTest,
    decimal_or_none,
)
from lab.workflow_common import order_link, policy_for
from records.selectors import AccessDenied

User = AbstractBaseUser | AnonymousUser

CLOSED_LIMIT = 50
OPEN_LIMIT = 200


@dataclass
class AlertRow:
    """An alert as drawn: its clock against the acknowledgement deadline, who was told."""

    alert: CriticalAlert
    test: LabTest
    deadline: dt.datetime
    ack_minutes: int
    minutes_open: int
    overdue: bool
    told: list[str]

    @property
    def is_open(self) -> bool:
        return self.alert.status == AlertStatus.OPEN

    @property
    def percent(self) -> int:
        """How much of the acknowledgement time is used (the drawn bar), at most 100."""
        return min(100, self.minutes_open * 100 // max(1, self.ack_minutes))

    @property
    def order_url(self) -> str:
        return order_link(self.alert.order_id)


@dataclass
class CriticalList:
    """Open alerts the clinic must acknowledge, those the lab watches, and recent closed ones."""

    is_lab: bool
    is_clinic: bool
    to_acknowledge: list[AlertRow]
    lab_open: list[AlertRow]
    closed: list[AlertRow]


@dataclass
class StepEntry:
    """One line of the drawn log."""

    step: AlertStep
    label: str
    who: str
    tone: str
    after_minutes: int


@dataclass
class AlertDetail:
    row: AlertRow
    steps: list[StepEntry]
    is_lab: bool
    is_clinic: bool
    can_acknowledge: bool
    can_call: bool
    ladder: list[dict[str, object]] = field(default_factory=list)
    reference: str = ""

    @property
    def alert(self) -> CriticalAlert:
        return self.row.alert


# --- Rows --------------------------------------------------------------------------------------


def _with_log(qs: QuerySet[CriticalAlert]) -> QuerySet[CriticalAlert]:
    return qs.select_related(*ALERT_RELATED).prefetch_related("steps__recipient", "steps__actor")


def _ack_minutes(centre_id: int, cache: dict[int, int]) -> int:
    if centre_id not in cache:
        cache[centre_id] = policy_for(centre_id).ack_minutes
    return cache[centre_id]


def alert_row(
    alert: CriticalAlert, *, now: dt.datetime | None = None, policies: dict[int, int] | None = None
) -> AlertRow:
    """The row of an alert whose steps are prefetched (``steps__recipient``)."""
    now = now or timezone.now()
    ack_minutes = _ack_minutes(alert.order.centre_id, {} if policies is None else policies)
    deadline = alert.raised_at + dt.timedelta(minutes=ack_minutes)
    end = alert.acknowledged_at if alert.status == AlertStatus.ACKNOWLEDGED else None
    if alert.status == AlertStatus.WITHDRAWN:
        end = max((s.at for s in alert.steps.all()), default=alert.raised_at)
    until = end or now
    told: list[str] = []
    for step in alert.steps.all():
        if step.kind == StepKind.NOTIFIED and step.recipient is not None:
            name = str(step.recipient)
            if name not in told:
                told.append(name)
        elif step.kind == StepKind.CALLED and step.recipient_text:
            told.append(_("%(who)s (telephone)") % {"who": step.recipient_text})
    return AlertRow(
        alert=alert,
        test=alert.result.item.test,
        deadline=deadline,
        ack_minutes=ack_minutes,
        minutes_open=max(0, int((until - alert.raised_at).total_seconds() // 60)),
        overdue=until > deadline,
        told=told,
    )


def _rows(alerts: list[CriticalAlert]) -> list[AlertRow]:
    now = timezone.now()
    policies: dict[int, int] = {}
    return [alert_row(a, now=now, policies=policies) for a in alerts]


def critical_list_for_user(*, actor: User) -> CriticalList:
    """Lab staff: their centres' alerts; clinicians: their institutions' (audited).

    Raises
    ------
    AccessDenied
        Neither lab staff nor a clinician of an institution (audited).
    """
    scope = actor_scope(actor)
    centres = lab_centre_ids(scope)
    if not centres and not scope.care_institution_ids:
        audit_record(
            actor=actor,
            action="lab.critical.list",
            outcome=Outcome.DENIED,
            resource_type=RESOURCE,
            reason="neither lab staff nor a clinician",
        )
        raise AccessDenied(_("Critical values are for the lab centre and the ordering clinics."))
    mine = Q(order__centre_id__in=centres) | Q(
        order__requesting_institution_id__in=scope.care_institution_ids
    )
    base = CriticalAlert.objects.filter(mine)
    open_alerts = list(
        _with_log(base.filter(status=AlertStatus.OPEN)).order_by("-level", "raised_at", "id")[
            :OPEN_LIMIT
        ]
    )
    closed = list(
        _with_log(base.exclude(status=AlertStatus.OPEN)).order_by("-raised_at", "-id")[
            :CLOSED_LIMIT
        ]
    )
    rows = _rows(open_alerts)
    result = CriticalList(
        is_lab=bool(centres),
        is_clinic=bool(scope.care_institution_ids),
        to_acknowledge=[
            r for r in rows if r.alert.order.requesting_institution_id in scope.care_institution_ids
        ],
        lab_open=[r for r in rows if r.alert.order.centre_id in centres],
        closed=_rows(closed),
    )
    audit_record(
        actor=actor,
        action="lab.critical.list",
        outcome=Outcome.ALLOWED,
        resource_type=RESOURCE,
        detail={"open": len(rows), "closed": len(result.closed)},
    )
    return result


# --- One alert ---------------------------------------------------------------------------------


def _step_label(step: AlertStep) -> tuple[str, str, str]:
    """What a step says, who did or got it, and its tone (the dot's colour)."""
    level = AlertLevel(step.level).label if step.level in AlertLevel.values else step.level
    recipient = str(step.recipient) if step.recipient else step.recipient_text
    actor = str(step.actor) if step.actor else ""
    if step.kind == StepKind.RAISED:
        return _("Critical value found"), actor or _("the system"), "raised"
    if step.kind == StepKind.NOTIFIED:
        return _("Told %(who)s") % {"who": recipient}, "", "notified"
    if step.kind == StepKind.ESCALATED:
        return _("Escalated: %(level)s") % {"level": level}, "", "escalated"
    if step.kind == StepKind.CALLED:
        return _("Telephone call: reached %(who)s") % {"who": recipient}, actor, "called"
    if step.kind == StepKind.ACKNOWLEDGED and step.recipient_text:
        label = _("Acknowledged by telephone: %(who)s read the value back")
        return label % {"who": step.recipient_text}, actor, "acknowledged"
    if step.kind == StepKind.ACKNOWLEDGED:
        return _("Acknowledged by %(who)s") % {"who": actor}, "", "acknowledged"
    if step.kind == StepKind.WITHDRAWN:
        return _("Withdrawn: the result was corrected"), actor, "withdrawn"
    return step.kind, actor, ""


def _step_entry(step: AlertStep, raised_at: dt.datetime) -> StepEntry:
    label, who, tone = _step_label(step)
    return StepEntry(
        step=step,
        label=str(label),
        who=str(who),
        tone=tone,
        after_minutes=max(0, int((step.at - raised_at).total_seconds() // 60)),
    )


def _reference(alert: CriticalAlert) -> str:
    """The reference range applied to the result, as printed ("3.5–5.3")."""
    result = alert.result
    if result.reference_text:
        return result.reference_text
    if result.reference_low is None and result.reference_high is None:
        return ""
    return f"{decimal_or_none(result.reference_low)}–{decimal_or_none(result.reference_high)}"


def _ladder(alert: CriticalAlert) -> list[dict[str, object]]:
    """The escalation levels, drawn as steps: reached, current, or still ahead."""
    done = alert.status != AlertStatus.OPEN
    return [
        {
            "level": level.value,
            "label": level.label,
            "reached": alert.level >= level.value,
            "current": not done and alert.level == level.value,
        }
        for level in AlertLevel
    ]


def alert_detail_for_user(*, actor: User, alert_id: int) -> AlertDetail:
    """One alert with its full log, for whoever may see its order (audited).

    Raises
    ------
    AccessDenied, NotFound
    """
    action = "lab.critical.view"
    alert, scope = alert_load(actor=actor, alert_id=alert_id, action=action)
    if not may_see(scope, alert.order):
        raise alert_deny(
            actor=actor,
            action=action,
            alert=alert,
            reason="not visible to actor",
            message=_("You do not have access to this critical value."),
        )
    alert = _with_log(CriticalAlert.objects.filter(pk=alert.pk)).get()
    row = alert_row(alert)
    is_clinic = may_acknowledge(scope, alert.order)
    is_lab = may_call(scope, alert.order)
    audit_record(
        actor=actor,
        action=action,
        outcome=Outcome.ALLOWED,
        resource_type=RESOURCE,
        resource_id=alert.pk,
        patient_id=alert.patient_id,
    )
    return AlertDetail(
        row=row,
        steps=[_step_entry(s, alert.raised_at) for s in alert.steps.all()],
        is_lab=is_lab,
        is_clinic=is_clinic,
        can_acknowledge=is_clinic and alert.status == AlertStatus.OPEN,
        can_call=is_lab and alert.status != AlertStatus.WITHDRAWN,
        ladder=_ladder(alert),
        reference=_reference(alert),
    )


def alerts_of_order(order_id: int) -> list[CriticalAlert]:
    """An order's alerts, newest first, for the order page (the caller checked access)."""
    return list(
        CriticalAlert.objects.filter(order_id=order_id)
        .select_related("result__item__test", "acknowledged_by")
        .order_by("-raised_at", "-id")
    )


# --- The banner on every page ------------------------------------------------------------------


@dataclass(frozen=True)
class Banner:
    """Open alerts the user's clinic must acknowledge, or the user's lab centre must call."""

    to_acknowledge: int = 0
    to_call: int = 0
    first_id: int | None = None

    @property
    def total(self) -> int:
        return self.to_acknowledge + self.to_call


def critical_banner_for(user: User) -> Banner:
    """One query: counts of the open alerts waiting for the user (mirrors ``actor_scope``)."""
    if not user.is_authenticated or not user.is_active:
        return Banner()
    memberships = Membership.objects.filter(user_id=user.pk, active=True, institution__active=True)
    clinics = memberships.filter(role__in=CLINICAL_ROLES, centre__isnull=True).values(
        "institution_id"
    )
    centres = memberships.filter(role=Role.LAB_TECHNICIAN, centre__kind=CentreKind.LAB).values(
        "centre_id"
    )
    ack = Q(order__requesting_institution_id__in=clinics)
    call = Q(level=AlertLevel.CENTRE_CALLS, order__centre_id__in=centres)
    counts = CriticalAlert.objects.filter(status=AlertStatus.OPEN).aggregate(
        ack=Count("pk", filter=ack),
        call=Count("pk", filter=call),
        first=Min("pk", filter=ack | call),
    )
    to_acknowledge, to_call = counts["ack"] or 0, counts["call"] or 0
    return Banner(
        to_acknowledge=to_acknowledge,
        to_call=to_call,
        # With a single alert waiting, the banner links straight to it.
        first_id=counts["first"] if to_acknowledge + to_call == 1 else None,
    )
