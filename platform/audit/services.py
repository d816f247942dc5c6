"""Writing audit events. The only way in."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.utils import translation
from django.utils.functional import Promise

from audit.context import current_context
from audit.models import AuditEvent, Outcome


def audit_record(
    *,
    actor: AbstractBaseUser | AnonymousUser | None,
    action: str,
    outcome: Outcome | str,
    resource_type: str = "",
    resource_id: object = "",
    patient_id: int | None = None,
    reason: str | Promise = "",
    detail: dict[str, Any] | None = None,
    username: str = "",
) -> AuditEvent:
    """Append one event; the request origin is taken from the bound context."""
    if isinstance(reason, Promise):
        # The trail reads the same for every auditor: store reasons in the source language.
        with translation.override("en"):
            reason = str(reason)
    ctx = current_context()
    known = actor is not None and actor.is_authenticated
    return AuditEvent.objects.create(
        actor_id=actor.pk if known and actor is not None else None,
        actor_username=(actor.get_username() if known and actor is not None else username)[:150],
        action=action,
        resource_type=resource_type,
        resource_id=str(resource_id)[:100],
        patient_id=patient_id,
        outcome=outcome,
        reason=str(reason)[:300],
        ip=ctx.ip,
        user_agent=ctx.user_agent,
        channel=ctx.channel,
        request_id=ctx.request_id,
        detail=detail or {},
    )
