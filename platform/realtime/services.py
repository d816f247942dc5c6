"""Sending notifications: store first, push after commit, so a missed push loses nothing."""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from realtime.models import Notification, Severity

logger = logging.getLogger(__name__)


def user_group(user_id: int) -> str:
    """The channel-layer group of one user's notification sockets."""
    return f"user.{user_id}"


def notification_push(notification: Notification) -> None:
    """Push a stored notification to the recipient's open sockets; failures only log."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(
            user_group(notification.recipient_id),
            {"type": "notification.push", "notification": notification.as_message()},
        )
    except Exception:  # a missed push is recovered from the inbox on reconnect
        logger.exception("push of notification %s failed", notification.pk)


def standing_group(user_id: int) -> str:
    """The group of a user's sockets other than notifications (the consult room's)."""
    return f"standing.{user_id}"


def standing_changed(user_id: int) -> None:
    """Tell every socket of ``user_id`` to re-read its standing now (after commit).

    Sent on logout, password change and deactivation: sockets that check their standing
    less often than per message (the consult room) hear of it at once.
    """

    def send() -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        try:
            for group in (user_group(user_id), standing_group(user_id)):
                async_to_sync(layer.group_send)(group, {"type": "standing.changed"})
        except Exception:  # sockets still re-read within their bounded interval
            logger.exception("standing push for user %s failed", user_id)

    transaction.on_commit(send)


def notification_send(
    *,
    recipient: User,
    kind: str,
    title: str,
    body: str = "",
    link: str = "",
    severity: Severity = Severity.INFO,
    patient_id: int | None = None,
    payload: dict[str, Any] | None = None,
) -> Notification:
    """Store a notification and push it once the surrounding transaction commits."""
    notification = Notification.objects.create(
        recipient=recipient,
        kind=kind,
        title=title,
        body=body,
        link=link,
        severity=severity,
        patient_id=patient_id,
        payload=payload or {},
    )
    transaction.on_commit(lambda: notification_push(notification))
    return notification


def notification_mark_read(*, user: User, notification_ids: list[int]) -> int:
    """Mark the user's own notifications read; returns how many changed."""
    return Notification.objects.filter(
        recipient_id=user.pk, pk__in=notification_ids, read_at__isnull=True
    ).update(read_at=timezone.now())
