"""The critical-value banner on every page (``lab/_critical_banner.html`` in base.html)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject


def critical_alerts(request: HttpRequest) -> dict[str, Any]:
    """``critical_banner``: open alerts waiting for the user, counted only if a page asks."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}

    def banner() -> Any:
        from lab.critical_selectors import critical_banner_for

        return critical_banner_for(user)

    return {"critical_banner": SimpleLazyObject(banner)}
