"""The results entry page and its actions, and the signed report's PDF.

Thin: the page comes from ``lab.results_page.results_page_for_user`` (lab staff only,
audited), writes go through the services of ``lab.results`` and ``lab.reports``. A refused
write shows the page again with the reason, as a 400.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_POST

from accounts.views import acting_user, session_required
from core.views import audit_invalid_form, domain_errors
from lab.forms_results import AmendForm, ResultsEntryForm, SignForm, ValidateForm
from lab.models import ItemStatus
from lab.reports import ACTION_AMEND, ACTION_SIGN, report_amend, report_pdf_for_user, report_sign
from lab.results import (
    ACTION_SAVE,
    ACTION_VALIDATE,
    ResultsRefused,
    results_save,
    results_validate_technical,
)
from lab.results_page import ResultsPage, results_page_for_user
from lab.workflow_common import order_link
from objectstore import StoreUnavailable
from records.services import InvalidRecord

TEMPLATE = "lab/results.html"


def _render(
    request: HttpRequest,
    page: ResultsPage,
    *,
    status: int = 200,
    entry: ResultsEntryForm | None = None,
    validate: ValidateForm | None = None,
    sign: SignForm | None = None,
    amend: AmendForm | None = None,
) -> HttpResponse:
    report_comment = page.report.comment if page.report is not None else ""
    entry = entry or ResultsEntryForm(rows=page.editable_rows)
    validate = validate or ValidateForm(rows=page.to_validate)
    lines = entry.lines()
    groups = [
        {"specimen": g.specimen, "rows": [{"row": r, "line": lines.get(r.item.pk)} for r in g.rows]}
        for g in page.groups
    ]
    ticked = {str(v) for v in (validate["items"].value() or [])}
    context: dict[str, Any] = {
        "page": page,
        "order": page.order,
        "groups": groups,
        "entry_form": entry,
        "validate_form": validate,
        "validate_rows": [
            {"row": r, "checked": str(r.item.pk) in ticked} for r in page.to_validate
        ],
        "sign_form": sign or SignForm(),
        "amend_form": amend or AmendForm(rows=page.amendable_rows, comment=report_comment),
        "order_url": order_link(page.order),
        "progress": _progress(page),
    }
    return render(request, TEMPLATE, context, status=status)


def _progress(page: ResultsPage) -> dict[str, int]:
    """How far the order's tests are: counts for the progress bar (percent of active tests)."""
    statuses = [row.item.status for row in page.rows]
    active = [s for s in statuses if s not in (ItemStatus.CANCELLED, ItemStatus.REJECTED)]
    total = len(active) or 1
    entered = sum(1 for s in active if s != ItemStatus.PENDING)
    checked = sum(1 for s in active if s in (ItemStatus.TECH_VALIDATED, ItemStatus.VALIDATED))
    signed = sum(1 for s in active if s == ItemStatus.VALIDATED)
    return {
        "total": len(active),
        "entered": entered,
        "checked": checked,
        "signed": signed,
        "entered_pct": round(100 * entered / total),
        "checked_pct": round(100 * checked / total),
        "signed_pct": round(100 * signed / total),
    }


def _page(request: HttpRequest, pk: int) -> ResultsPage:
    return results_page_for_user(actor=acting_user(request), order_id=pk)


@session_required
@require_GET
@domain_errors
def results(request: HttpRequest, pk: int) -> HttpResponse:
    return _render(request, _page(request, pk))


@session_required
@require_POST
@domain_errors
def results_save_view(request: HttpRequest, pk: int) -> HttpResponse:
    page = _page(request, pk)
    form = ResultsEntryForm(request.POST, rows=page.editable_rows)
    if not form.is_valid():
        audit_invalid_form(request, form, action=ACTION_SAVE, patient_id=page.order.patient_id)
        return _render(request, page, status=400, entry=form)
    try:
        saved = results_save(actor=acting_user(request), order_id=pk, entries=form.entries())
    except ResultsRefused as exc:  # audited by the service
        for item_id, message in exc.errors.items():
            name = form.field_for(item_id)
            form.add_error(name if name in form.fields else None, str(message))
        if not exc.errors:
            form.add_error(None, str(exc))
        return _render(request, page, status=400, entry=form)
    except InvalidRecord as exc:
        form.add_error(None, str(exc))
        return _render(request, page, status=400, entry=form)
    if saved:
        messages.success(
            request,
            ngettext("%(n)s result saved.", "%(n)s results saved.", len(saved)) % {"n": len(saved)},
        )
    else:
        messages.info(request, _("Nothing was changed."))
    return redirect("lab:results", pk=pk)


@session_required
@require_POST
@domain_errors
def validate_tech(request: HttpRequest, pk: int) -> HttpResponse:
    page = _page(request, pk)
    form = ValidateForm(request.POST, rows=page.to_validate)
    if not form.is_valid():
        audit_invalid_form(request, form, action=ACTION_VALIDATE, patient_id=page.order.patient_id)
        return _render(request, page, status=400, validate=form)
    try:
        count = results_validate_technical(
            actor=acting_user(request), order_id=pk, item_ids=form.cleaned_data["items"]
        )
    except InvalidRecord as exc:  # audited by the service
        form.add_error(None, str(exc))
        return _render(request, page, status=400, validate=form)
    messages.success(
        request,
        ngettext(
            "%(n)s result validated technically.", "%(n)s results validated technically.", count
        )
        % {"n": count},
    )
    return redirect("lab:results", pk=pk)


@session_required
@require_POST
@domain_errors
def sign(request: HttpRequest, pk: int) -> HttpResponse:
    page = _page(request, pk)
    form = SignForm(request.POST)
    if not form.is_valid():
        audit_invalid_form(request, form, action=ACTION_SIGN, patient_id=page.order.patient_id)
        return _render(request, page, status=400, sign=form)
    data = form.cleaned_data
    try:
        report_sign(
            actor=acting_user(request),
            order_id=pk,
            mutual_recognition=bool(data["mutual_recognition"]),
            valid_until=data["valid_until"],
            comment=data["comment"],
        )
    except InvalidRecord as exc:  # audited by the service
        form.add_error(None, str(exc))
        return _render(request, page, status=400, sign=form)
    except StoreUnavailable:
        form.add_error(
            None, _("The report could not be stored just now; nothing was signed. Try again.")
        )
        return _render(request, page, status=503, sign=form)
    messages.success(request, _("The report is signed; the ordering doctor has been notified."))
    return redirect("lab:results", pk=pk)


@session_required
@require_POST
@domain_errors
def amend(request: HttpRequest, pk: int) -> HttpResponse:
    page = _page(request, pk)
    comment = page.report.comment if page.report is not None else ""
    form = AmendForm(request.POST, rows=page.amendable_rows, comment=comment)
    if not form.is_valid():
        audit_invalid_form(request, form, action=ACTION_AMEND, patient_id=page.order.patient_id)
        return _render(request, page, status=400, amend=form)
    try:
        report = report_amend(
            actor=acting_user(request),
            order_id=pk,
            reason=form.cleaned_data["reason"],
            values=form.values(),
            comment=form.new_comment(),
        )
    except InvalidRecord as exc:  # audited by the service
        form.add_error(None, str(exc))
        return _render(request, page, status=400, amend=form)
    except StoreUnavailable:
        form.add_error(
            None, _("The report could not be stored just now; nothing was changed. Try again.")
        )
        return _render(request, page, status=503, amend=form)
    messages.success(
        request,
        _("Version %(n)s of the report is signed; the ordering doctor has been notified.")
        % {"n": report.version},
    )
    return redirect("lab:results", pk=pk)


@session_required
@require_GET
@domain_errors
def report_pdf(request: HttpRequest, pk: int, version: int) -> HttpResponseBase:
    """A signed version's PDF, shown in the browser."""
    chunks, filename = report_pdf_for_user(actor=acting_user(request), order_id=pk, version=version)
    response = StreamingHttpResponse(chunks, content_type="application/pdf")
    response["Content-Disposition"] = content_disposition_header(False, filename) or "inline"
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response
