"""Writing audit events. The only way in."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ParamSpec

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.utils import translation
from django.utils.functional import Promise

from audit.context import current_context
from audit.models import AuditEvent, Outcome

_P = ParamSpec("_P")


def audit_event(
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
    """One event, not yet written; the request origin is taken from the bound context.

    :func:`audit_record` writes one; :func:`audit_record_many` writes several at once.
    """
    if isinstance(reason, Promise):
        # The trail reads the same for every auditor: store reasons in the source language.
        with translation.override("en"):
            reason = str(reason)
    ctx = current_context()
    known = actor is not None and actor.is_authenticated
    return AuditEvent(
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


def _written(build: Callable[_P, AuditEvent]) -> Callable[_P, AuditEvent]:
    def record(*args: _P.args, **kwargs: _P.kwargs) -> AuditEvent:
        event = build(*args, **kwargs)
        event.save(force_insert=True)
        return event

    record.__doc__ = "Append one event (the arguments of :func:`audit_event`)."
    return record


audit_record = _written(audit_event)


def audit_record_many(events: Sequence[AuditEvent]) -> None:
    """Append events built by :func:`audit_event` with one INSERT."""
    AuditEvent.objects.bulk_create(events)
