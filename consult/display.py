"""How the consult pages draw a consult: its clock, where it stands, its events in words.

Presentation only: nothing here reads the database beyond the objects it is given, and
nothing checks access (the selectors did).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from consult.models import Consult, ConsultEvent, Mode, Status
from consult.sla import (
    WAITING_STATUSES,
    WORKING_STATUSES,
    SlaClock,
    opinion_clock,
    opinion_target,
    respond_clock,
    respond_target,
)

# What each event of a consult's timeline says (ConsultEvent.kind -> label).
EVENT_LABELS: dict[str, Promise] = {
    "requested": _("Consultation requested"),
    "resubmitted": _("Completed and sent again"),
    "attached": _("Attachment added"),
    "returned": _("Returned to the requester"),
    "routed": _("Sent to the experts"),
    "accepted": _("Accepted"),
    "declined": _("Declined"),
    "lead_changed": _("Another expert leads the consultation"),
    "all_declined": _("Every expert declined"),
    "booked": _("Slot booked"),
    "rescheduled": _("Rescheduled"),
    "started": _("Consultation started"),
    "cancelled": _("Cancelled"),
    "no_show": _("No-show"),
    "escalated": _("Overdue: escalated"),
    "signed": _("Opinion signed"),
    "amended": _("Opinion amended"),
    "draft_saved": _("Opinion draft saved"),
    "recorded": _("Recording kept"),
}
OTHER_EVENT = _("Event")

# Event kinds drawn as a warning or as the good end on the timeline.
WARNING_EVENTS = frozenset(
    {"returned", "declined", "all_declined", "cancelled", "no_show", "escalated"}
)
GOOD_EVENTS = frozenset({"accepted", "booked", "started", "signed"})

# Details of an event shown as typed by a person (reasons and notes).
_EVENT_TEXT_KEYS = ("reason", "note", "title")


@dataclass(frozen=True)
class Clock:
    """An SLA clock as the page draws it (a countdown while it runs)."""

    sla: SlaClock
    label: Promise
    target_minutes: int

    @property
    def running(self) -> bool:
        return self.sla.running

    @property
    def overdue(self) -> bool:
        return self.sla.overdue

    @property
    def display(self) -> str:
        return self.sla.display

    @property
    def due_at(self) -> dt.datetime | None:
        return self.sla.due_at

    @property
    def near(self) -> bool:
        """Less than a fifth of the target left."""
        return self.running and not self.overdue and self.sla.minutes_left * 5 < self.target_minutes


def respond_clock_of(consult: Consult, *, now: dt.datetime | None = None) -> Clock:
    return Clock(
        sla=respond_clock(consult, now=now),
        label=_("Answer due"),
        target_minutes=int(respond_target(consult.priority).total_seconds() // 60),
    )


def opinion_clock_of(consult: Consult, *, now: dt.datetime | None = None) -> Clock:
    return Clock(
        sla=opinion_clock(consult, now=now),
        label=_("Opinion due"),
        target_minutes=int(opinion_target(consult.priority).total_seconds() // 60),
    )


def current_clock(consult: Consult, *, now: dt.datetime | None = None) -> Clock | None:
    """The clock that matters now: the answer clock while nobody took the consult, then
    the opinion clock; none once it is closed."""
    if consult.status in WAITING_STATUSES:
        return respond_clock_of(consult, now=now)
    if consult.status in WORKING_STATUSES:
        return opinion_clock_of(consult, now=now)
    return None


@dataclass(frozen=True)
class Stage:
    label: Promise
    state: str  # "done", "current", "todo" or "stopped"


STOPPED_STATUSES = frozenset({Status.DECLINED, Status.CANCELLED, Status.NO_SHOW})


def _reached(consult: Consult) -> int:
    """How far the consult got, as the index of its current stage."""
    status = consult.status
    order: dict[str, int] = {
        Status.PENDING_REVIEW: 0,
        Status.RETURNED: 0,
        Status.PENDING_EXPERT: 1,
        Status.ACCEPTED: 2,
        Status.SCHEDULED: 3,
        Status.IN_PROGRESS: 3,
        Status.COMPLETED: 4,
    }
    if status in order:
        return order[status]
    if consult.scheduled_start is not None:
        return 3
    if consult.reviewed_at is not None or status == Status.DECLINED:
        return 1
    return 0


def progress(consult: Consult) -> list[Stage]:
    """The consult's way as a row of stages (drawn as a small bar in lists and on its page)."""
    labels: list[Promise] = [
        _("Requested"),
        _("To the experts"),
        _("Accepted"),
        _("Meeting") if consult.mode == Mode.VIDEO else _("Being answered"),
        _("Opinion"),
    ]
    reached = _reached(consult)
    stopped = consult.status in STOPPED_STATUSES
    stages = []
    for index, label in enumerate(labels):
        if index < reached or consult.status == Status.COMPLETED:
            state = "done"
        elif index == reached:
            state = "stopped" if stopped else "current"
        else:
            state = "todo"
        stages.append(Stage(label=label, state=state))
    return stages


@dataclass(frozen=True)
class ListRow:
    """One consult in a list: its clock that matters now and where it stands."""

    consult: Consult
    clock: Clock | None
    stages: list[Stage]

    @property
    def overdue(self) -> bool:
        return self.clock is not None and self.clock.overdue


def list_rows(consults: list[Consult]) -> list[ListRow]:
    now = timezone.now()
    return [
        ListRow(consult=c, clock=current_clock(c, now=now), stages=progress(c)) for c in consults
    ]


@dataclass(frozen=True)
class TimelineEntry:
    event: ConsultEvent
    label: Promise
    text: str
    tone: str  # "", "warning" or "good"


def timeline(events: list[ConsultEvent]) -> list[TimelineEntry]:
    """The consult's events in words, oldest first."""
    entries = []
    for event in events:
        detail: dict[str, Any] = event.detail if isinstance(event.detail, dict) else {}
        text = next((str(detail[k]) for k in _EVENT_TEXT_KEYS if detail.get(k)), "")
        tone = (
            "warning"
            if event.kind in WARNING_EVENTS
            else "good"
            if event.kind in GOOD_EVENTS
            else ""
        )
        entries.append(
            TimelineEntry(
                event=event,
                label=EVENT_LABELS.get(event.kind, OTHER_EVENT),
                text=text[:500],
                tone=tone,
            )
        )
    return entries


def optional_url(name: str, *args: Any) -> str:
    """The URL of a page another part of the app provides, or "" while it is not there."""
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return ""


def server_now() -> dt.datetime:
    return timezone.now()
