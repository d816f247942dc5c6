"""Who is calling DICOMweb: a browser session, HTTP Basic or a bearer token.

Machine clients (dicomweb-client, DICOM tools, scripts) send ``Authorization: Basic`` or
``Authorization: Bearer <token>`` (DRF authtoken) on every request; browsers (the viewer)
send their session cookie. When an ``Authorization`` header is present it alone decides;
a wrong one is a 401, never a silent fall-back to the session.

Basic authentication runs the password hasher, which is deliberately slow (hundreds of
milliseconds). A viewer fetching 300 frames would pay that 300 times, so a successful
Basic login is remembered for a few minutes under an HMAC of the credentials (keyed with
``SECRET_KEY``, never the password itself) together with a digest of the user's stored
password hash: a password change or deactivation ends it at once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable
from functools import wraps
from typing import Any, cast

from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.middleware.csrf import CsrfViewMiddleware
from django.utils.translation import gettext as _
from rest_framework.authtoken.models import Token

from accounts.models import User
from audit.models import Outcome
from audit.services import audit_record
from core.precompiled import Precompiled

REALM = 'Basic realm="telemed DICOMweb"'
BASIC_CACHE_SECONDS = 300
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})

View = Callable[..., HttpResponseBase]


def unauthorized(message: str) -> JsonResponse:
    """401 with the Basic challenge machine clients expect."""
    response = JsonResponse({"detail": message}, status=401)
    response["WWW-Authenticate"] = REALM
    return response


def _password_digest(user: AbstractBaseUser) -> str:
    return hashlib.sha256(user.password.encode()).hexdigest()


def _basic_cache_key(username: str, password: str) -> str:
    mac = hmac.new(settings.SECRET_KEY.encode(), f"{username}\0{password}".encode(), hashlib.sha256)
    return f"dicomweb:basic:{mac.hexdigest()}"


# A remembered login's user, read afresh on every request (deactivation ends it at once);
# compiled once, as the look-up runs for every request of a DICOMweb client.
_ACTIVE_USER: Precompiled[User] = Precompiled(
    lambda pk: User.objects.filter(pk=pk, is_active=True).order_by()[:1], -7_000_000_001
)


def _basic_user(request: HttpRequest, credentials: str) -> AbstractBaseUser | None:
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, sep, password = decoded.partition(":")
    if not sep or not username:
        return None
    key = _basic_cache_key(username, password)
    remembered = cache.get(key)
    if remembered is not None:
        user_id, digest = remembered
        user = _ACTIVE_USER.first(user_id)
        if user is not None and hmac.compare_digest(digest, _password_digest(user)):
            return user
        cache.delete(key)
    # Goes through the backends; a failure is audited by accounts.signals.
    user = authenticate(request, username=username, password=password)
    if user is None or not user.is_active:
        return None
    cache.set(key, (user.pk, _password_digest(user)), BASIC_CACHE_SECONDS)
    return user


def _token_user(key: str) -> AbstractBaseUser | None:
    key = key.strip()
    if not key or len(key) > 64:
        return None
    token = Token.objects.select_related("user").filter(key=key).first()
    if token is None or not token.user.is_active:
        return None
    return token.user


def _audit_refusal(request: HttpRequest, *, outcome: Outcome, reason: str) -> None:
    audit_record(
        actor=None,
        action="dicomweb.auth",
        outcome=outcome,
        resource_type="dicomweb",
        resource_id=request.path[:100],
        reason=reason,
        detail={"method": request.method},
    )


class _CsrfCheck(CsrfViewMiddleware):
    """Django's own CSRF check, returning the reason instead of a page."""

    def _reject(self, request: HttpRequest, reason: str) -> Any:
        return reason


def _csrf_failure(request: HttpRequest) -> str | None:
    check = _CsrfCheck(lambda _request: HttpResponse())
    check.process_request(request)
    reason = check.process_view(request, lambda _request: HttpResponse(), (), {})
    return reason if isinstance(reason, str) else None


def authenticate_request(request: HttpRequest) -> HttpResponse | None:
    """Set ``request.user`` from the credentials, or return the refusal to send.

    Returns
    -------
    HttpResponse | None
        ``None`` when the caller is known; otherwise a 401 (no or wrong credentials) or a
        403 (a session-only write without a valid CSRF token).
    """
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header:
        scheme, _sep, credentials = header.partition(" ")
        scheme = scheme.lower()
        if scheme == "basic":
            user = _basic_user(request, credentials)
            if user is None:
                return unauthorized(_("Wrong username or password."))
        elif scheme == "bearer":
            user = _token_user(credentials)
            if user is None:
                _audit_refusal(request, outcome=Outcome.FAILED, reason="unknown or inactive token")
                return unauthorized(_("The access token is not valid."))
        else:
            _audit_refusal(request, outcome=Outcome.FAILED, reason="unsupported scheme")
            return unauthorized(_("Use HTTP Basic or a bearer token."))
        request.user = cast(User, user)
        return None
    if not request.user.is_authenticated:
        _audit_refusal(request, outcome=Outcome.DENIED, reason="no credentials")
        return unauthorized(_("Please log in (session, HTTP Basic or a bearer token)."))
    if request.method not in SAFE_METHODS:
        reason = _csrf_failure(request)
        if reason is not None:
            _audit_refusal(request, outcome=Outcome.DENIED, reason=f"csrf: {reason}"[:300])
            return JsonResponse(
                {"detail": _("The CSRF token is missing or wrong; reload the page.")},
                status=403,
            )
    return None


def dicomweb_auth(view: View) -> View:
    """Let the view run only for a known caller (see :func:`authenticate_request`)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        refusal = authenticate_request(request)
        if refusal is not None:
            return refusal
        return view(request, *args, **kwargs)

    return wrapper
