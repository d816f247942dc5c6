"""Values every page of the web shell needs."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest


def shell(request: HttpRequest) -> dict[str, Any]:
    from association.selectors import primary_membership
    from realtime.selectors import unread_count

    user = request.user
    if not user.is_authenticated:
        return {}
    return {
        "current_membership": primary_membership(user),
        "unread_notifications": unread_count(user=user),
    }
