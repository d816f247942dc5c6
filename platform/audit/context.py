"""Where the current request comes from, for the audit trail (HTTP and WebSocket alike)."""

from __future__ import annotations

import uuid
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class RequestContext:
    ip: str | None = None
    user_agent: str = ""
    channel: str = ""
    request_id: str = ""


_EMPTY = RequestContext()
_current: ContextVar[RequestContext] = ContextVar("audit_request_context", default=_EMPTY)


def current_context() -> RequestContext:
    return _current.get()


def set_context(*, ip: str | None, user_agent: str, channel: str) -> object:
    """Bind the context for the running request; returns a token for :func:`reset_context`."""
    ctx = RequestContext(
        ip=ip or None,
        user_agent=user_agent[:300],
        channel=channel,
        request_id=uuid.uuid4().hex[:16],
    )
    return _current.set(ctx)


def reset_context(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]
