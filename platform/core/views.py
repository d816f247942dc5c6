"""Home page per role, health endpoints, and the small helpers every web view shares."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import wraps
from typing import Any

from django import forms
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.utils import timezone
from django.utils.html import escape
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from accounts.views import acting_user, session_required
from association.models import Membership, Role
from association.selectors import ActorScope, actor_scope, primary_membership
from association.stats import association_stats_for_admin
from audit.models import Outcome
from audit.selectors import audit_denial_count
from audit.services import audit_record
from consult.home import consult_home_context
from core.health import readiness
from imaging.home import imaging_home_context
from lab.lab_home import lab_home_context
from realtime.selectors import notification_list_for_user
from records.models import Patient
from records.selectors import AccessDenied, NotFound, patient_search_for_user

View = Callable[..., HttpResponseBase]

HOME_PATIENT_LIMIT = 20
DENIALS_WINDOW = dt.timedelta(days=7)


# --- Helpers shared by the web views -------------------------------------------------------


def error_page(request: HttpRequest, *, status: int, message: str) -> HttpResponse:
    """A calm error page with a message for a person, in the shell's layout."""
    titles = {
        400: _("The request could not be understood"),
        401: _("Please log in again"),
        403: _("Access denied"),
        404: _("Not found"),
        409: _("Already registered"),
    }
    context = {
        "status": status,
        "title": titles.get(status, _("Something went wrong")),
        "message": message,
    }
    return render(request, "core/error.html", context, status=status)


def domain_errors(view: View) -> View:
    """Turn the selectors' ``AccessDenied`` into a 403 page and ``NotFound`` into a 404 page."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        try:
            return view(request, *args, **kwargs)
        except AccessDenied as exc:
            return error_page(request, status=403, message=str(exc))
        except NotFound as exc:
            return error_page(request, status=404, message=str(exc))

    return wrapper


def audit_invalid_form(
    request: HttpRequest, form: forms.BaseForm, *, action: str, patient_id: int | None = None
) -> None:
    """Record a rejected form: which fields and why (error codes), never the values typed."""
    fields = {
        name: [e.code or "invalid" for e in errors.as_data()]
        for name, errors in form.errors.items()
    }
    audit_record(
        actor=request.user,
        action=action,
        outcome=Outcome.FAILED,
        patient_id=patient_id,
        reason="invalid form: " + ", ".join(sorted(fields)),
        detail={"fields": fields},
    )


def render_invalid(
    request: HttpRequest,
    template: str,
    context: dict[str, Any],
    *,
    form: forms.BaseForm,
    action: str,
    patient_id: int | None = None,
) -> HttpResponse:
    """Audit a rejected form and show it again with its errors, as a 400."""
    audit_invalid_form(request, form, action=action, patient_id=patient_id)
    return render(request, template, {**context, "form": form}, status=400)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """``handler400`` for config/urls.py: Django's own 400s in the shell's layout."""
    return error_page(request, status=400, message=_("Please check what was sent and try again."))


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """``handler403``: a PermissionDenied raised anywhere, in the shell's layout."""
    return error_page(request, status=403, message=_("You do not have access to this page."))


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """``handler404``: an unknown address, in the shell's layout."""
    return error_page(request, status=404, message=_("There is no page at this address."))


def server_error(request: HttpRequest) -> HttpResponse:
    """``handler500``: a plain page that needs neither the database nor the session."""
    message = _("Something went wrong on our side. Please try again; the error was logged.")
    return HttpResponse(
        f"<!doctype html><meta charset=utf-8><title>500</title><p>{escape(message)}</p>",
        status=500,
    )


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A form sent from a stale page (often after the session ended): say what to do."""
    return error_page(
        request,
        status=403,
        message=_(
            "This form has expired. Please reload the page, log in if asked, and send it again."
        ),
    )


# --- Home --------------------------------------------------------------------------------


def _split_own_and_shared(
    patients: list[Patient], scope: ActorScope
) -> tuple[list[Patient], list[Patient]]:
    own = [p for p in patients if p.home_institution_id in scope.care_institution_ids]
    shared = [p for p in patients if p.home_institution_id not in scope.care_institution_ids]
    return own, shared


def _home_context(request: HttpRequest, membership: Membership | None) -> dict[str, Any]:
    """What the home partial of ``membership``'s role draws."""
    if membership is None:
        return {"partial": "none"}
    scope = actor_scope(request.user)
    role = membership.role
    if role in {Role.GRASSROOTS_DOCTOR, Role.SPECIALIST, Role.COORDINATOR}:
        patients = patient_search_for_user(actor=request.user, limit=HOME_PATIENT_LIMIT)
        own, shared = _split_own_and_shared(patients, scope)
        partial = "grassroots" if role == Role.GRASSROOTS_DOCTOR else "clinical"
        return {
            "partial": partial,
            "own_patients": own,
            "shared_patients": shared,
            "patient_limit": HOME_PATIENT_LIMIT,
            "can_register": bool(scope.care_institution_ids),
        }
    if role in {Role.RADIOLOGIST, Role.LAB_TECHNICIAN}:
        patients = patient_search_for_user(actor=request.user, limit=HOME_PATIENT_LIMIT)
        return {
            "partial": "centre",
            "centre_patients": patients,
            "centre": membership.centre,
            "patient_limit": HOME_PATIENT_LIMIT,
        }
    if role == Role.ASSOCIATION_ADMIN:
        return {
            "partial": "admin",
            "association_stats": association_stats_for_admin(scope.admin_association_ids),
        }
    if role == Role.AUDITOR:
        since = timezone.now() - DENIALS_WINDOW
        return {
            "partial": "auditor",
            "window_days": DENIALS_WINDOW.days,
            "recent_denials": audit_denial_count(
                association_ids=scope.audit_association_ids, since=since
            ),
        }
    return {"partial": "other"}


@session_required
@require_GET
@domain_errors
def home(request: HttpRequest) -> HttpResponse:
    membership = primary_membership(request.user)
    context = _home_context(request, membership)
    context.update(imaging_home_context(request, membership))
    context.update(consult_home_context(request, membership))
    context.update(lab_home_context(request, membership))
    context["membership"] = membership
    context["partial_template"] = f"core/home/{context['partial']}.html"
    context["notifications"] = (
        notification_list_for_user(user=acting_user(request), limit=5)
        if membership is not None
        else []
    )
    return render(request, "core/home.html", context)


# --- Health ------------------------------------------------------------------------------


@require_GET
def health_live(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"status": "ok"})


@require_GET
def health_ready(request: HttpRequest) -> HttpResponse:
    checks = readiness()
    ok = all(c["ok"] for c in checks.values())
    return JsonResponse(
        {"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503
    )
