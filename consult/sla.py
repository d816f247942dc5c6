"""SLA clocks of a consult: by when an expert must answer, and by when the opinion is due.

Both clocks start when the consult reaches the experts: at the request when the
association has no pre-review, at the coordinator's routing otherwise (while a request
waits for pre-review, its answer clock runs from the request, so an idle pre-review is
escalated too). The targets follow the priority the requester chose.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.utils import timezone

from consult.models import Consult, Priority, Status

RESPOND_TARGETS: dict[str, dt.timedelta] = {
    Priority.EMERGENCY: dt.timedelta(minutes=30),
    Priority.URGENT: dt.timedelta(hours=4),
    Priority.ROUTINE: dt.timedelta(hours=48),
}
OPINION_TARGETS: dict[str, dt.timedelta] = {
    Priority.EMERGENCY: dt.timedelta(hours=2),
    Priority.URGENT: dt.timedelta(hours=24),
    Priority.ROUTINE: dt.timedelta(days=7),
}

# Statuses in which nobody has taken the consult yet: the answer clock runs.
WAITING_STATUSES = frozenset({Status.PENDING_REVIEW, Status.RETURNED, Status.PENDING_EXPERT})
# Statuses in which an expert has taken it and the opinion is being worked on.
WORKING_STATUSES = frozenset({Status.ACCEPTED, Status.SCHEDULED, Status.IN_PROGRESS})


def respond_target(priority: str) -> dt.timedelta:
    return RESPOND_TARGETS.get(priority, RESPOND_TARGETS[Priority.ROUTINE])


def opinion_target(priority: str) -> dt.timedelta:
    return OPINION_TARGETS.get(priority, OPINION_TARGETS[Priority.ROUTINE])


def due_times(priority: str, start: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """``(respond_due_at, complete_due_at)`` for a consult reaching the experts at ``start``."""
    return start + respond_target(priority), start + opinion_target(priority)


def hhmm(seconds: float) -> str:
    """A duration as ``HH:MM`` (hours may pass 24), the clock's format in every language."""
    minutes = int(abs(seconds) // 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass(frozen=True)
class SlaClock:
    """One clock at the time of reading.

    ``running`` is False once the clock is stopped (answered, signed or closed);
    ``remaining`` is negative when overdue.
    """

    name: str  # "respond" or "opinion"
    due_at: dt.datetime | None
    remaining: dt.timedelta
    running: bool

    @property
    def overdue(self) -> bool:
        return self.running and self.remaining < dt.timedelta(0)

    @property
    def minutes_left(self) -> int:
        return int(self.remaining.total_seconds() // 60)

    @property
    def display(self) -> str:
        """``02:15`` left, or ``-00:40`` when overdue by forty minutes."""
        seconds = self.remaining.total_seconds()
        return ("-" if seconds < 0 else "") + hhmm(seconds)


def _clock(name: str, due_at: dt.datetime | None, running: bool, now: dt.datetime) -> SlaClock:
    remaining = (due_at - now) if due_at is not None else dt.timedelta(0)
    return SlaClock(name=name, due_at=due_at, remaining=remaining, running=running and bool(due_at))


def respond_clock(consult: Consult, *, now: dt.datetime | None = None) -> SlaClock:
    """The answer clock: runs until an expert accepts (or the consult closes)."""
    now = now or timezone.now()
    running = consult.status in WAITING_STATUSES
    return _clock("respond", consult.respond_due_at, running, now)


def opinion_clock(consult: Consult, *, now: dt.datetime | None = None) -> SlaClock:
    """The opinion clock: runs until the opinion is signed (or the consult closes)."""
    now = now or timezone.now()
    running = consult.status in WAITING_STATUSES | WORKING_STATUSES
    return _clock("opinion", consult.complete_due_at, running, now)
