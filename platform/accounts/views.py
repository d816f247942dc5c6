"""Logging in and out of the web shell, and the guard every page sits behind."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth import views as auth_views
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.utils.translation import gettext as _

from accounts.forms import LoginForm
from accounts.models import User
from audit.models import Outcome
from audit.services import audit_record

View = Callable[..., HttpResponseBase]


def acting_user(request: HttpRequest) -> User:
    """The logged-in user of a request that passed :func:`session_required`."""
    user = request.user
    if not isinstance(user, User) or not user.is_authenticated:
        raise PermissionDenied
    return user


def _session_expired(request: HttpRequest) -> bool:
    """The browser sent a session cookie, but no live session answers to it any more.

    Call after ``request.user`` has been looked at: loading the session clears its key
    when the stored session is missing or past its expiry date.
    """
    return settings.SESSION_COOKIE_NAME in request.COOKIES and request.session.session_key is None


def session_required(view: View) -> View:
    """Like ``login_required``, but an expired session is said so, and audited.

    A page (GET) redirects to the login page with a message. A form sent after the
    session expired (POST) gets a 401 page: redirecting would silently drop what was typed.
    """

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.user.is_authenticated:
            return view(request, *args, **kwargs)
        if not _session_expired(request):
            return redirect_to_login(
                request.get_full_path(), settings.LOGIN_URL, REDIRECT_FIELD_NAME
            )
        audit_record(
            actor=None,
            action="auth.session",
            outcome=Outcome.FAILED,
            resource_type="session",
            reason="session expired",
            detail={"method": request.method, "path": request.path[:200]},
        )
        message = _("Your session has expired. Please log in again.")
        if request.method in {"GET", "HEAD"}:
            messages.info(request, message)
            return redirect_to_login(
                request.get_full_path(), settings.LOGIN_URL, REDIRECT_FIELD_NAME
            )
        context = {
            "status": 401,
            "title": _("Please log in again"),
            "message": message,
            "login_next": request.path,
        }
        return render(request, "core/error.html", context, status=401)

    return wrapper


class LoginView(auth_views.LoginView):
    """Django's login with our page; afterwards the UI speaks the user's preferred language.

    A language chosen on the login page (Django's language cookie) wins over the
    preference; logging out forgets the choice so the next person on a shared clinic PC
    starts from their own preference.
    """

    template_name = "registration/login.html"
    form_class = LoginForm
    redirect_authenticated_user = True

    def form_valid(self, form: LoginForm) -> HttpResponse:  # type: ignore[override]
        response = super().form_valid(form)
        preferred = getattr(form.get_user(), "preferred_language", "")
        if settings.LANGUAGE_COOKIE_NAME not in self.request.COOKIES and preferred in dict(
            settings.LANGUAGES
        ):
            response.set_cookie(
                settings.LANGUAGE_COOKIE_NAME,
                preferred,
                max_age=settings.LANGUAGE_COOKIE_AGE,
                path=settings.LANGUAGE_COOKIE_PATH,
                domain=settings.LANGUAGE_COOKIE_DOMAIN,
                secure=settings.LANGUAGE_COOKIE_SECURE,
                httponly=settings.LANGUAGE_COOKIE_HTTPONLY,
                samesite=settings.LANGUAGE_COOKIE_SAMESITE,
            )
        return response

    def form_invalid(self, form: LoginForm) -> HttpResponse:  # type: ignore[override]
        response = super().form_invalid(form)
        missing = [name for name in ("username", "password") if name in form.errors]
        if missing:
            # Wrong credentials are audited by accounts.signals; a form that is not even
            # complete never reaches authenticate(), so it is audited here.
            audit_record(
                actor=None,
                action="auth.login",
                outcome=Outcome.FAILED,
                resource_type="session",
                reason="incomplete login form",
                username=str(form.data.get("username", ""))[:150],
                detail={"fields": missing},
            )
            response.status_code = 400
        return response


class LogoutView(auth_views.LogoutView):
    """POST-only logout (Django refuses GET with 405); forgets the language choice too."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = super().post(request, *args, **kwargs)
        messages.info(request, _("You have logged out."))
        response.delete_cookie(
            settings.LANGUAGE_COOKIE_NAME,
            path=settings.LANGUAGE_COOKIE_PATH,
            domain=settings.LANGUAGE_COOKIE_DOMAIN,
            samesite=settings.LANGUAGE_COOKIE_SAMESITE,
        )
        return response
