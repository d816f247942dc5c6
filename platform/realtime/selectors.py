"""Reading a user's own notifications."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from realtime.models import Notification


def notification_list_for_user(
    *, user: AbstractBaseUser, after_id: int = 0, unread_only: bool = False, limit: int = 100
) -> list[Notification]:
    """Newest first; with ``after_id``, the ones after it oldest first (to page forward)."""
    qs: QuerySet[Notification] = Notification.objects.filter(recipient_id=user.pk)
    if unread_only:
        qs = qs.filter(read_at__isnull=True)
    if after_id:
        return list(qs.filter(pk__gt=after_id).order_by("id")[:limit])
    return list(qs.order_by("-id")[:limit])


def unread_count(*, user: AbstractBaseUser) -> int:
    return Notification.objects.filter(recipient_id=user.pk, read_at__isnull=True).count()
