"""The consult room's database side: entering, admission, chat, and the room's group.

Synchronous and typed like every service; the consumer calls them through
``realtime.security.db_async``. Each checks the actor with :func:`consult.access.room_role`
(re-read from the database) and audits what it allows and refuses.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext_lazy as _

from accounts.models import User
from association.models import Institution, Membership
from audit.models import Outcome
from audit.services import audit_record
from consult.access import ROOM_STATUSES, RoomRole, room_role
from consult.ice import ice_servers_for
from consult.models import (
    Attachment,
    ChatMessage,
    Consult,
    ConsultEvent,
    ConsultExpert,
    ExpertStatus,
    MessageKind,
)
from consult.room.presence import Participant, peer_id
from consult.services import consult_start
from realtime.security import SocketStanding, socket_user_standing
from records.selectors import AccessDenied
from records.services import InvalidRecord, refused

logger = logging.getLogger(__name__)

ADMITTED_EVENT = "room.admitted"
REPLAY_LIMIT = 200
SEQ_RETRIES = 5
DEFAULT_VIDEO_MAX_KBPS = 400

NOT_A_MEMBER = _("You are not a participant of this consult, or its room is not open.")
ONLY_EXPERTS_ADMIT = _("Only an expert of this consult can let people in.")
ADMIT_WHOM = _("Only the requesting doctor waits to be let in.")
NOT_ADMITTED = _("Please wait until the expert lets you in.")


def room_group(consult_id: int) -> str:
    """The channel-layer group of a consult's room."""
    return f"consult-room.{consult_id}"


# --- entering ------------------------------------------------------------------------


@dataclass(frozen=True)
class RoomEntry:
    """What a connection needs to start: the ``welcome`` message's content."""

    consult: Consult
    role: RoomRole
    name: str
    admitted: bool
    members: list[Participant]
    ice_servers: list[dict[str, Any]]
    video_max_kbps: int
    last_seq: int

    def welcome(self, user_id: int) -> dict[str, Any]:
        return {
            "you": {
                "user_id": user_id,
                "name": self.name,
                "role": str(self.role),
                "peer": peer_id(user_id),
                "admitted": self.admitted,
            },
            "consult": {
                "id": self.consult.pk,
                "number": self.consult.number,
                "status": self.consult.status,
                "mode": self.consult.mode,
            },
            "ice_servers": self.ice_servers,
            "video_max_kbps": self.video_max_kbps,
            "recording": self.consult.recording_consent,
            "last_seq": self.last_seq,
        }


def audit_in_room(
    *,
    actor: User,
    action: str,
    consult: Consult | None,
    consult_id: int,
    outcome: Outcome = Outcome.ALLOWED,
    reason: str = "",
    detail: dict[str, Any] | None = None,
) -> None:
    audit_record(
        actor=actor,
        action=action,
        outcome=outcome,
        resource_type="consult",
        resource_id=consult_id,
        patient_id=consult.patient_id if consult is not None else None,
        reason=reason,
        detail=detail,
    )


def _consult(consult_id: int) -> Consult | None:
    return Consult.objects.select_related("requesting_institution").filter(pk=consult_id).first()


def room_admitted(*, consult_id: int, user_id: int) -> bool:
    """Whether ``user_id`` was let into the room (experts are in without it)."""
    return ConsultEvent.objects.filter(
        consult_id=consult_id, kind=ADMITTED_EVENT, detail__user_id=user_id
    ).exists()


def room_members(*, consult: Consult) -> list[Participant]:
    """The requester and the accepted experts, all offline, as a roster starts."""
    requester = consult.requested_by
    people = [
        Participant(
            user_id=requester.pk,
            name=str(requester),
            role=str(RoomRole.REQUESTER),
            admitted=room_admitted(consult_id=consult.pk, user_id=requester.pk),
        )
    ]
    experts = (
        ConsultExpert.objects.filter(
            consult=consult, status=ExpertStatus.ACCEPTED, user__is_active=True
        )
        .select_related("user")
        .order_by("user_id")
    )
    people += [
        Participant(user_id=e.user_id, name=str(e.user), role=str(RoomRole.EXPERT), admitted=True)
        for e in experts
    ]
    return people


def video_max_kbps_for(*, user_id: int, role: RoomRole, consult: Consult) -> int:
    """The send cap of the user's institution: the requesting one, or the expert's own."""
    if role is RoomRole.REQUESTER:
        return consult.requesting_institution.video_max_kbps
    invited_at = (
        ConsultExpert.objects.filter(consult=consult, user_id=user_id)
        .values_list("institution_id", flat=True)
        .first()
    )
    memberships = list(
        Membership.objects.filter(user_id=user_id, active=True)
        .order_by("pk")
        .values_list("institution_id", flat=True)
    )
    institution_id = invited_at if invited_at in memberships or not memberships else memberships[0]
    if institution_id is None:
        return DEFAULT_VIDEO_MAX_KBPS
    kbps = (
        Institution.objects.filter(pk=institution_id)
        .values_list("video_max_kbps", flat=True)
        .first()
    )
    return int(kbps) if kbps else DEFAULT_VIDEO_MAX_KBPS


def chat_last_seq(*, consult_id: int) -> int:
    found = ChatMessage.objects.filter(consult_id=consult_id).aggregate(last=Max("seq"))["last"]
    return int(found or 0)


def room_enter(*, actor: User, consult_id: int) -> RoomEntry:
    """Let ``actor`` open the room's socket, or raise ``AccessDenied``; audited either way."""
    consult = _consult(consult_id)
    role = room_role(user_id=actor.pk, consult_id=consult_id)
    if consult is None or role is None:
        audit_in_room(
            actor=actor,
            action="consult.room.join",
            consult=consult,
            consult_id=consult_id,
            outcome=Outcome.DENIED,
            reason="no such consult" if consult is None else "not a member or room not open",
            detail={"status": consult.status} if consult is not None else None,
        )
        raise AccessDenied(NOT_A_MEMBER)
    admitted = role is RoomRole.EXPERT or room_admitted(consult_id=consult_id, user_id=actor.pk)
    audit_in_room(
        actor=actor,
        action="consult.room.join",
        consult=consult,
        consult_id=consult_id,
        detail={"role": str(role), "admitted": admitted},
    )
    return RoomEntry(
        consult=consult,
        role=role,
        name=str(actor),
        admitted=admitted,
        members=room_members(consult=consult),
        ice_servers=ice_servers_for(actor.pk),
        video_max_kbps=video_max_kbps_for(user_id=actor.pk, role=role, consult=consult),
        last_seq=chat_last_seq(consult_id=consult_id),
    )


@dataclass(frozen=True)
class RoomStanding:
    """A connection's standing at one message: session, account and room role."""

    session: SocketStanding
    role: RoomRole | None
    consult_open: bool

    @property
    def ok(self) -> bool:
        return self.session is SocketStanding.OK and self.role is not None


def room_standing(*, session_key: str | None, user_id: int, consult_id: int) -> RoomStanding:
    """Re-read, for one message, whether the connection may stay (no audit: the caller's)."""
    session = socket_user_standing(session_key=session_key, user_id=user_id)
    role = (
        room_role(user_id=user_id, consult_id=consult_id) if session is SocketStanding.OK else None
    )
    consult_open = role is not None or (
        Consult.objects.filter(pk=consult_id, status__in=ROOM_STATUSES).exists()
    )
    return RoomStanding(session=session, role=role, consult_open=consult_open)


def room_audit(
    *,
    actor: User,
    consult_id: int,
    action: str,
    outcome: Outcome,
    reason: str = "",
    detail: dict[str, Any] | None = None,
) -> None:
    """An audit event about the room (refusals, lost access, media), with the patient."""
    consult = Consult.objects.filter(pk=consult_id).only("pk", "patient_id").first()
    audit_in_room(
        actor=actor,
        action=action,
        consult=consult,
        consult_id=consult_id,
        outcome=outcome,
        reason=reason,
        detail=detail,
    )


def room_recording(*, consult_id: int) -> bool:
    """Whether the media service records: the patient's consent, never the client's say."""
    return bool(
        Consult.objects.filter(pk=consult_id).values_list("recording_consent", flat=True).first()
    )


# --- admission -----------------------------------------------------------------------


def room_admit(*, actor: User, consult_id: int, user_id: int) -> bool:
    """An expert lets the requester in; persisted, idempotent; starts the consult.

    Returns whether this call admitted them (False: they were already in).
    """
    consult = _consult(consult_id)
    role = room_role(user_id=actor.pk, consult_id=consult_id)
    if consult is None or role is not RoomRole.EXPERT:
        audit_in_room(
            actor=actor,
            action="consult.room.admit",
            consult=consult,
            consult_id=consult_id,
            outcome=Outcome.DENIED,
            reason="not an accepted expert",
            detail={"user_id": user_id},
        )
        raise AccessDenied(ONLY_EXPERTS_ADMIT)
    if room_role(user_id=user_id, consult_id=consult_id) is not RoomRole.REQUESTER:
        raise refused(
            actor=actor,
            action="consult.room.admit",
            message=ADMIT_WHOM,
            resource_type="consult",
            resource_id=consult_id,
            patient_id=consult.patient_id,
        )
    with transaction.atomic():
        consult_start(actor=actor, consult_id=consult_id)
        if room_admitted(consult_id=consult_id, user_id=user_id):
            return False
        ConsultEvent.objects.create(
            consult=consult, actor=actor, kind=ADMITTED_EVENT, detail={"user_id": user_id}
        )
        audit_in_room(
            actor=actor,
            action="consult.room.admit",
            consult=consult,
            consult_id=consult_id,
            detail={"user_id": user_id},
        )
    return True


# --- chat ----------------------------------------------------------------------------


def attachment_url(attachment: Attachment) -> str:
    """The room's download address of a shared file."""
    try:
        return reverse("consult:room-file-download", args=[attachment.consult_id, attachment.pk])
    except NoReverseMatch:  # consult.urls not mounted (yet): the documented address
        return f"/consults/{attachment.consult_id}/room/files/{attachment.pk}/"


def chat_payload(message: ChatMessage) -> dict[str, Any]:
    """A stored message as the ``chat`` server message (without ``type``)."""
    author = message.author
    payload: dict[str, Any] = {
        "seq": message.seq,
        "kind": message.kind,
        "author": {"user_id": author.pk, "name": str(author)} if author is not None else None,
        "text": message.body,
        "at": message.created_at.isoformat(),
    }
    attachment = message.attachment
    if attachment is not None:
        payload["attachment"] = {
            "id": attachment.pk,
            "title": attachment.title,
            "size": attachment.size,
            "content_type": attachment.content_type,
            "url": attachment_url(attachment),
        }
    return payload


def room_require_admitted(*, actor: User, consult_id: int, action: str) -> Consult:
    """The consult if ``actor`` is in its room and admitted; refusals audited."""
    consult = _consult(consult_id)
    role = room_role(user_id=actor.pk, consult_id=consult_id)
    admitted = role is RoomRole.EXPERT or (
        role is RoomRole.REQUESTER and room_admitted(consult_id=consult_id, user_id=actor.pk)
    )
    if consult is None or not admitted:
        audit_in_room(
            actor=actor,
            action=action,
            consult=consult,
            consult_id=consult_id,
            outcome=Outcome.DENIED,
            reason="not admitted" if role is not None else "not a member or room not open",
        )
        raise AccessDenied(NOT_ADMITTED if role is not None else NOT_A_MEMBER)
    return consult


def _insert_numbered(
    *,
    consult: Consult,
    author: User | None,
    kind: MessageKind,
    body: str,
    attachment: Attachment | None,
) -> ChatMessage:
    """Insert with the next ``seq``: the consult row is locked (PostgreSQL) and a lost race
    on the unique (consult, seq) constraint is retried."""
    for attempt in range(SEQ_RETRIES):
        try:
            with transaction.atomic():
                Consult.objects.select_for_update().filter(pk=consult.pk).values_list(
                    "pk", flat=True
                ).first()
                seq = chat_last_seq(consult_id=consult.pk) + 1
                return ChatMessage.objects.create(
                    consult=consult,
                    seq=seq,
                    author=author,
                    kind=kind,
                    body=body,
                    attachment=attachment,
                )
        except IntegrityError:
            if attempt == SEQ_RETRIES - 1:
                raise
            logger.info("chat seq race on consult %s; retrying", consult.pk)
    raise AssertionError("unreachable")


def chat_post(
    *,
    actor: User,
    consult_id: int,
    text: str,
    kind: MessageKind = MessageKind.TEXT,
    attachment: Attachment | None = None,
) -> ChatMessage:
    """Store a room message from an admitted participant; numbered for resume; audited."""
    consult = room_require_admitted(actor=actor, consult_id=consult_id, action="consult.chat.post")
    body = text.strip()
    if not body and attachment is None:
        raise InvalidRecord(_("An empty message was not sent."))
    message = _insert_numbered(
        consult=consult, author=actor, kind=kind, body=body, attachment=attachment
    )
    audit_in_room(
        actor=actor,
        action="consult.chat.post",
        consult=consult,
        consult_id=consult_id,
        detail={"seq": message.seq, "kind": str(kind), "chars": len(body)},
    )
    return message


def chat_since(
    *, actor: User, consult_id: int, after_seq: int, limit: int = REPLAY_LIMIT
) -> tuple[list[dict[str, Any]], bool]:
    """Messages with ``seq > after_seq``, oldest first, and whether more follow; audited."""
    consult = room_require_admitted(actor=actor, consult_id=consult_id, action="consult.chat.read")
    found = list(
        ChatMessage.objects.filter(consult_id=consult_id, seq__gt=after_seq)
        .select_related("author", "attachment")
        .order_by("seq")[: limit + 1]
    )
    audit_in_room(
        actor=actor,
        action="consult.chat.read",
        consult=consult,
        consult_id=consult_id,
        detail={"after_seq": after_seq, "count": min(len(found), limit)},
    )
    return [chat_payload(m) for m in found[:limit]], len(found) > limit


# --- the room's group, from synchronous code -----------------------------------------


def room_send(consult_id: int, event: dict[str, Any]) -> None:
    """Send a group event to every connection of the room after the transaction commits."""

    def send() -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        try:
            async_to_sync(layer.group_send)(room_group(consult_id), event)
        except Exception:  # the message is stored; clients catch up with resume
            logger.exception("room %s: group send failed", consult_id)

    transaction.on_commit(send)


def room_chat_broadcast(message: ChatMessage) -> None:
    """Push a stored message to the room after commit (used by HTTP file sharing)."""
    room_send(message.consult_id, {"type": "room.chat", "message": chat_payload(message)})


def room_recheck(consult_id: int) -> None:
    """Make every connection of the room re-check its access now (call on cancel/complete).

    Without it a connection notices at its next message or push; with it, at once.
    """
    room_send(consult_id, {"type": "room.recheck"})
