"""Pages of critical values: the list, one alert, acknowledge (clinic), log a call (lab).

Thin: reads go through ``lab.critical_selectors`` (which audit), writes through
``lab.critical``. Acknowledging answers JSON when asked (``Accept: application/json``,
the toast's button) and otherwise redirects back, or shows the page again with the reason.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from accounts.views import acting_user, session_required
from core.views import audit_invalid_form, domain_errors
from lab.critical import alert_acknowledge, alert_call_log
from lab.critical_selectors import alert_detail_for_user, critical_list_for_user
from lab.forms_critical import AcknowledgeForm, CallLogForm
from records.selectors import AccessDenied, NotFound
from records.services import InvalidRecord

ACK_ACTION = "lab.critical.acknowledge"
CALL_ACTION = "lab.critical.call"


@session_required
@require_GET
@domain_errors
def critical_list(request: HttpRequest) -> HttpResponse:
    listing = critical_list_for_user(actor=request.user)
    context = {"listing": listing, "ack_form": AcknowledgeForm(), "here": request.get_full_path()}
    return render(request, "lab/critical_list.html", context)


def _detail_page(
    request: HttpRequest,
    pk: int,
    *,
    status: int = 200,
    ack_form: AcknowledgeForm | None = None,
    call_form: CallLogForm | None = None,
) -> HttpResponse:
    detail = alert_detail_for_user(actor=request.user, alert_id=pk)
    context: dict[str, Any] = {
        "detail": detail,
        "alert": detail.alert,
        "row": detail.row,
        "ack_form": ack_form or AcknowledgeForm(),
        "call_form": call_form or CallLogForm(),
    }
    return render(request, "lab/critical_detail.html", context, status=status)


@session_required
@require_GET
@domain_errors
def critical_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _detail_page(request, pk)


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _back(request: HttpRequest, form: AcknowledgeForm, pk: int) -> str:
    target = form.cleaned_data.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return str(target)
    return reverse("lab:critical", args=[pk])


def _ack_json(request: HttpRequest, pk: int) -> JsonResponse:
    form = AcknowledgeForm(request.POST)
    if not form.is_valid():
        audit_invalid_form(request, form, action=ACK_ACTION)
        errors = [str(e) for errs in form.errors.values() for e in errs]
        return JsonResponse({"ok": False, "message": " ".join(errors)}, status=400)
    try:
        alert = alert_acknowledge(
            actor=acting_user(request), alert_id=pk, note=form.cleaned_data["note"]
        )
    except AccessDenied as exc:
        return JsonResponse({"ok": False, "message": str(exc)}, status=403)
    except NotFound as exc:
        return JsonResponse({"ok": False, "message": str(exc)}, status=404)
    except InvalidRecord as exc:  # audited by the service
        return JsonResponse({"ok": False, "message": str(exc)}, status=409)
    return JsonResponse(
        {
            "ok": True,
            "message": _("Acknowledged"),
            "status": alert.status,
            "acknowledged_at": alert.acknowledged_at.isoformat() if alert.acknowledged_at else None,
        }
    )


@domain_errors
def _ack_page(request: HttpRequest, pk: int) -> HttpResponse:
    form = AcknowledgeForm(request.POST)
    if not form.is_valid():
        audit_invalid_form(request, form, action=ACK_ACTION)
        return _detail_page(request, pk, status=400, ack_form=form)
    try:
        alert_acknowledge(actor=acting_user(request), alert_id=pk, note=form.cleaned_data["note"])
    except InvalidRecord as exc:  # audited by the service
        form.add_error(None, str(exc))
        return _detail_page(request, pk, status=400, ack_form=form)
    messages.success(request, _("Critical value acknowledged. The lab has been told."))
    return redirect(_back(request, form, pk))


@session_required
@require_POST
def critical_ack(request: HttpRequest, pk: int) -> HttpResponseBase:
    if _wants_json(request):
        return _ack_json(request, pk)
    return _ack_page(request, pk)


@session_required
@require_POST
@domain_errors
def critical_call(request: HttpRequest, pk: int) -> HttpResponse:
    form = CallLogForm(request.POST)
    if not form.is_valid():
        audit_invalid_form(request, form, action=CALL_ACTION)
        return _detail_page(request, pk, status=400, call_form=form)
    try:
        alert_call_log(actor=acting_user(request), alert_id=pk, **form.cleaned_data)
    except InvalidRecord as exc:  # audited by the service
        form.add_error(None, str(exc))
        return _detail_page(request, pk, status=400, call_form=form)
    if form.cleaned_data["acknowledged"]:
        messages.success(request, _("Call logged; the critical value is acknowledged."))
    else:
        messages.success(request, _("Call logged."))
    return redirect("lab:critical", pk=pk)
