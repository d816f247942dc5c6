"""API-wide error handling: every failure is a 4xx with a message a person understands."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from rest_framework import status
from rest_framework.exceptions import APIException, AuthenticationFailed, NotAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from accounts.models import User
from audit.models import Outcome
from audit.services import audit_record
from records.selectors import AccessDenied, NotFound


def acting_user(request: Request) -> User:
    """The authenticated user of an API request (views require authentication)."""
    user = request.user
    if not isinstance(user, User) or not user.is_authenticated:
        raise NotAuthenticated()
    return user


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Map domain errors to HTTP; let DRF handle its own, and audit what DRF refused.

    Domain errors (``AccessDenied``, ``NotFound``) were audited by the selector that
    raised them; DRF's own refusals (bad JSON, invalid fields, no or bad credentials,
    throttling) are audited here, with field names but never the values sent.
    """
    if isinstance(exc, AccessDenied):
        return Response({"detail": str(exc)}, status=status.HTTP_403_FORBIDDEN)
    if isinstance(exc, NotFound):
        return Response({"detail": str(exc)}, status=status.HTTP_404_NOT_FOUND)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if response.status_code == 400 and isinstance(response.data, dict):
        response.data.setdefault("detail", _("Some fields are not valid; see the messages below."))
    if isinstance(exc, APIException):
        _audit_refusal(exc, context, response)
    return response


def _audit_refusal(exc: APIException, context: dict[str, Any], response: Response) -> None:
    request = context.get("request")
    unauthenticated = isinstance(exc, NotAuthenticated | AuthenticationFailed)
    fields = (
        sorted(k for k in response.data if k != "detail") if isinstance(response.data, dict) else []
    )
    audit_record(
        actor=getattr(request, "user", None) if request is not None else None,
        action="api.auth" if unauthenticated else "api.refused",
        outcome=Outcome.DENIED
        if unauthenticated or response.status_code == 403
        else Outcome.FAILED,
        resource_type="api",
        resource_id=request.path[:100] if request is not None else "",
        reason=f"{response.status_code} {exc.default_code}",
        detail={"method": request.method if request is not None else "", "fields": fields},
    )
