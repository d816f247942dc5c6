"""Who a user is in a consult: the cheap membership check run on every room message.

This module answers "what part does this user play in this consult now" from the consult
row and its experts, without auditing; ``consult.selectors`` builds the audited reads on
top of it, and the room consumer calls :func:`room_role` on every message it receives.
"""

from __future__ import annotations

from enum import StrEnum

from django.db.models import Exists, OuterRef

from association.models import Membership, Role
from consult.models import Consult, ConsultExpert, ExpertStatus, Status

# Statuses in which the consult room is open for live talk and chat.
ROOM_STATUSES = frozenset({Status.ACCEPTED, Status.SCHEDULED, Status.IN_PROGRESS})


class RoomRole(StrEnum):
    REQUESTER = "requester"  # the requesting doctor: waits in the waiting room until admitted
    EXPERT = "expert"  # an accepted expert: enters directly and admits the requester


def consult_role(*, user_id: int | None, consult: Consult) -> str | None:
    """The user's part in ``consult``: requester, expert, invited, coordinator or None."""
    if user_id is None:
        return None
    if consult.requested_by_id == user_id:
        return "requester"
    status = (
        consult.experts.filter(user_id=user_id)
        .exclude(status=ExpertStatus.WITHDRAWN)
        .values_list("status", flat=True)
        .first()
    )
    if status == ExpertStatus.ACCEPTED:
        return "expert"
    if status == ExpertStatus.INVITED:
        return "invited"
    if Membership.objects.filter(
        user_id=user_id,
        active=True,
        role=Role.COORDINATOR,
        institution__association_id=consult.requesting_institution.association_id,
    ).exists():
        return "coordinator"
    return None


def room_role(*, user_id: int | None, consult_id: int) -> RoomRole | None:
    """The user's role in the consult room now, or None when they may not be in it.

    Re-read from the database on every call: a declined expert, a cancelled or completed
    consult or a deactivated account loses the room at their next message.
    """
    if user_id is None:
        return None
    accepted = ConsultExpert.objects.filter(
        consult_id=OuterRef("pk"),
        user_id=user_id,
        user__is_active=True,
        status=ExpertStatus.ACCEPTED,
    )
    row = (  # one query: this runs for every message of every room
        Consult.objects.filter(
            pk=consult_id, status__in=ROOM_STATUSES, requested_by__is_active=True
        )
        .annotate(expert=Exists(accepted))
        .values_list("requested_by_id", "expert")
        .first()
    )
    if row is None:
        return None
    requested_by_id, expert = row
    if requested_by_id == user_id:
        return RoomRole.REQUESTER
    return RoomRole.EXPERT if expert else None
