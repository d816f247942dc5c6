"""Analyser import pages: upload a CSV, look at the preview, save all of it or discard it.

Thin: ``lab.importing`` parses, checks and saves; these views turn forms and domain errors
into HTTP. A refused file shows the upload page again with the reason, as a 400.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_http_methods, require_POST

from accounts.views import acting_user, session_required
from association.models import DiagnosticCentre
from association.selectors import actor_scope
from audit.models import Outcome
from audit.services import audit_record
from core.views import audit_invalid_form, domain_errors, error_page
from lab.access import lab_centre_ids
from lab.forms_results import ImportUploadForm
from lab.importing import (
    ACTION_PREVIEW,
    ACTION_VIEW,
    batch_get_for_user,
    batches_for_user,
    error_count,
    import_apply,
    import_discard,
    import_preview,
    row_error,
)
from lab.models import BatchStatus, ImportBatch
from records.services import InvalidRecord

UPLOAD_TEMPLATE = "lab/import_upload.html"
PREVIEW_TEMPLATE = "lab/import_preview.html"


def _centres(request: HttpRequest) -> list[DiagnosticCentre]:
    ids = lab_centre_ids(actor_scope(request.user))
    return list(DiagnosticCentre.objects.filter(pk__in=ids).order_by("name"))


@session_required
@require_http_methods(["GET", "POST"])
@domain_errors
def import_upload(request: HttpRequest) -> HttpResponse:
    centres = _centres(request)
    if not centres:
        audit_record(
            actor=request.user,
            action=ACTION_PREVIEW,
            outcome=Outcome.DENIED,
            resource_type="lab_import",
            reason="not lab staff",
        )
        return error_page(
            request, status=403, message=_("Only staff of a lab centre can import results.")
        )
    context: dict[str, Any] = {"batches": batches_for_user(actor=acting_user(request))}
    if request.method != "POST":
        return render(
            request, UPLOAD_TEMPLATE, {**context, "form": ImportUploadForm(centres=centres)}
        )
    form = ImportUploadForm(request.POST, request.FILES, centres=centres)
    if not form.is_valid():
        audit_invalid_form(request, form, action=ACTION_PREVIEW)
        return render(request, UPLOAD_TEMPLATE, {**context, "form": form}, status=400)
    upload = form.cleaned_data["file"]
    try:
        batch = import_preview(
            actor=acting_user(request),
            centre_id=form.cleaned_data["centre"],
            filename=upload.name or "",
            data=form.data_bytes(),
        )
    except InvalidRecord as exc:  # audited by the service
        form.add_error("file", str(exc))
        return render(request, UPLOAD_TEMPLATE, {**context, "form": form}, status=400)
    return redirect("lab:import_preview", pk=batch.pk)


def _preview(
    request: HttpRequest, batch: ImportBatch, *, status: int = 200, error: str = ""
) -> HttpResponse:
    rows = [{**row, "message": row_error(row)} for row in batch.rows]
    flags = Counter(row.get("flag") for row in rows if not row.get("error"))
    errors = error_count(rows)
    context = {
        "batch": batch,
        "rows": rows,
        "errors": errors,
        "ok": len(rows) - errors,
        "critical": flags["HH"] + flags["LL"],
        "abnormal": flags["H"] + flags["L"] + flags["A"],
        "can_apply": batch.status == BatchStatus.PREVIEW and not errors and bool(rows),
        "is_preview": batch.status == BatchStatus.PREVIEW,
        "error": error,
    }
    return render(request, PREVIEW_TEMPLATE, context, status=status)


@session_required
@require_http_methods(["GET"])
@domain_errors
def import_preview_view(request: HttpRequest, pk: int) -> HttpResponse:
    batch = batch_get_for_user(actor=acting_user(request), batch_id=pk)
    audit_record(
        actor=request.user,
        action=ACTION_VIEW,
        outcome=Outcome.ALLOWED,
        resource_type="lab_import",
        resource_id=batch.pk,
        detail={"batch": batch.pk, "file": batch.filename, "sha256": batch.sha256},
    )
    return _preview(request, batch)


@session_required
@require_POST
@domain_errors
def import_apply_view(request: HttpRequest, pk: int) -> HttpResponse:
    actor = acting_user(request)
    try:
        count = import_apply(actor=actor, batch_id=pk)
    except InvalidRecord as exc:  # audited by the service
        batch = batch_get_for_user(actor=actor, batch_id=pk)
        return _preview(request, batch, status=400, error=str(exc))
    messages.success(
        request,
        ngettext("%(n)s result saved.", "%(n)s results saved.", count) % {"n": count},
    )
    return redirect("lab:import_preview", pk=pk)


@session_required
@require_POST
@domain_errors
def import_discard_view(request: HttpRequest, pk: int) -> HttpResponse:
    actor = acting_user(request)
    try:
        import_discard(actor=actor, batch_id=pk)
    except InvalidRecord as exc:  # audited by the service
        batch = batch_get_for_user(actor=actor, batch_id=pk)
        return _preview(request, batch, status=400, error=str(exc))
    messages.info(request, _("The import was discarded; nothing was saved."))
    return redirect("lab:import")
