"""Pages of the reading workflow, mounted at /imaging/.

Thin: reads go through ``imaging.workflow_selectors`` and ``imaging.selectors`` (which
audit), writes through ``imaging.services``; these views only turn forms and domain
errors into HTTP. A refused write shows the page again with the reason, as a 400.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.db.models import prefetch_related_objects
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.views import acting_user, session_required
from association.selectors import actor_scope
from audit.models import Outcome
from audit.services import audit_record
from core.views import audit_invalid_form, domain_errors, error_page, render_invalid
from imaging.forms import (
    AmendForm,
    AttachStudyForm,
    CancelRequestForm,
    ImagingRequestForm,
    PatientQueryForm,
    ReadingForm,
    ReportForm,
    WorklistFilterForm,
)
from imaging.models import ImagingRequest, Priority, RequestStatus
from imaging.report_templates import default_valid_until, templates_for_modality
from imaging.selectors import priors_for_study, study_get_for_user
from imaging.services import (
    InvalidRecord,
    imaging_request_attach_study,
    imaging_request_cancel,
    imaging_request_create,
    report_amend,
    report_save_draft,
    report_sign,
    worklist_claim,
    worklist_release,
)
from imaging.viewer_context import viewer_assets, viewer_options
from imaging.workflow_selectors import (
    TURNAROUND_TARGETS,
    ReadingCase,
    WorklistItem,
    can_record_consent,
    imaging_centres_for,
    imaging_consent_for,
    reading_case_for_user,
    request_detail_for_user,
    requests_for_clinic,
    signed_reports_of,
    worklist_for_user,
    worklist_item,
)
from records.selectors import patient_get_for_user

# --- Requests (the clinic) ---------------------------------------------------------------------


@session_required
@require_GET
@domain_errors
def request_list(request: HttpRequest) -> HttpResponse:
    requests = requests_for_clinic(actor=request.user)
    return render(request, "imaging/request_list.html", {"requests": requests})


@session_required
@require_http_methods(["GET", "POST"])
@domain_errors
def request_new(request: HttpRequest) -> HttpResponse:
    query = PatientQueryForm(request.POST if request.method == "POST" else request.GET)
    if not query.is_valid():
        audit_invalid_form(request, query, action="imaging.request.create")
        return error_page(
            request,
            status=400,
            message=_("Open the resident's record and request imaging from there."),
        )
    patient = patient_get_for_user(actor=request.user, patient_id=query.cleaned_data["patient"])
    scope = actor_scope(request.user)
    if not scope.care_institution_ids:
        audit_record(
            actor=request.user,
            action="imaging.request.create",
            outcome=Outcome.DENIED,
            resource_type="imaging_request",
            patient_id=patient.pk,
            reason="no clinical membership",
        )
        return error_page(
            request, status=403, message=_("Only clinicians of an institution can request imaging.")
        )
    centres = imaging_centres_for(patient)
    unconsented = [c for c in centres if imaging_consent_for(patient=patient, centre=c) is None]
    may_consent = can_record_consent(actor=request.user, patient=patient)
    context: dict[str, Any] = {
        "patient": patient,
        "centres": centres,
        "unconsented": unconsented,
        "may_consent": may_consent,
        "exam_suggestions": [str(t.name) for t in templates_for_modality("") if t.modalities],
    }
    template = "imaging/request_form.html"
    ask_consent = bool(unconsented) and may_consent
    if request.method != "POST":
        form = ImagingRequestForm(centres=centres, ask_consent=ask_consent)
        return render(request, template, {**context, "form": form})
    form = ImagingRequestForm(request.POST, centres=centres, ask_consent=ask_consent)
    if not form.is_valid():
        return render_invalid(
            request,
            template,
            context,
            form=form,
            action="imaging.request.create",
            patient_id=patient.pk,
        )
    try:
        created = imaging_request_create(
            actor=acting_user(request), patient_id=patient.pk, **form.service_kwargs()
        )
    except InvalidRecord as exc:  # audited by the service
        form.add_error(None, str(exc))
        return render(request, template, {**context, "form": form}, status=400)
    messages.success(
        request,
        _("Imaging requested. Accession number %(accession)s: give it to the modality.")
        % {"accession": created.accession_number},
    )
    return redirect("imaging:request", request_id=created.pk)


def _request_page(
    request: HttpRequest,
    request_id: int,
    *,
    status: int = 200,
    attach_form: AttachStudyForm | None = None,
    cancel_form: CancelRequestForm | None = None,
) -> HttpResponse:
    detail = request_detail_for_user(actor=request.user, request_id=request_id)
    context = {
        "detail": detail,
        "imaging_request": detail.request,
        "current": detail.current,
        "attach_form": attach_form or AttachStudyForm(),
        "cancel_form": cancel_form or CancelRequestForm(),
        "clock": _clock(detail.request),
        "upload_url": _upload_url(),
    }
    return render(request, "imaging/request_detail.html", context, status=status)


def _upload_url() -> str:
    """The browser upload page, when that part of the app is installed."""
    try:
        return reverse("imaging:upload")
    except NoReverseMatch:
        return ""


def _clock(imaging_request: ImagingRequest) -> WorklistItem:
    return worklist_item(imaging_request)


@session_required
@require_GET
@domain_errors
def request_detail(request: HttpRequest, request_id: int) -> HttpResponse:
    return _request_page(request, request_id)


@session_required
@require_POST
@domain_errors
def request_attach(request: HttpRequest, request_id: int) -> HttpResponse:
    form = AttachStudyForm(request.POST)
    if not form.is_valid():
        audit_invalid_form(request, form, action="imaging.request.attach")
        return _request_page(request, request_id, status=400, attach_form=form)
    try:
        imaging_request_attach_study(
            actor=acting_user(request),
            request_id=request_id,
            study_uid=form.cleaned_data["study_uid"],
        )
    except InvalidRecord as exc:  # audited by the service
        form.add_error(None, str(exc))
        return _request_page(request, request_id, status=400, attach_form=form)
    messages.success(request, _("The study is attached; the imaging centre can read it now."))
    return redirect("imaging:request", request_id=request_id)


@session_required
@require_POST
@domain_errors
def request_cancel(request: HttpRequest, request_id: int) -> HttpResponse:
    form = CancelRequestForm(request.POST)
    if not form.is_valid():
        audit_invalid_form(request, form, action="imaging.request.cancel")
        return _request_page(request, request_id, status=400, cancel_form=form)
    try:
        imaging_request_cancel(
            actor=acting_user(request), request_id=request_id, reason=form.cleaned_data["reason"]
        )
    except InvalidRecord as exc:  # audited by the service
        form.add_error(None, str(exc))
        return _request_page(request, request_id, status=400, cancel_form=form)
    messages.success(request, _("The request was cancelled."))
    return redirect("imaging:request", request_id=request_id)


# --- The worklist (the centre) -----------------------------------------------------------------


def _worklist_page(
    request: HttpRequest, *, form: WorklistFilterForm, status: int = 200, error: str = ""
) -> HttpResponse:
    chosen = form.cleaned_data.get("status") if form.is_bound and form.is_valid() else ""
    items = worklist_for_user(actor=request.user, status=chosen or None)
    context = {
        "items": items,
        "form": form,
        "status_filter": chosen,
        "error": error,
        "server_now": timezone.now(),
        "targets": [_target(value, label) for value, label in _priority_choices()],
    }
    return render(request, "imaging/worklist.html", context, status=status)


def _target(priority: str, label: str) -> tuple[str, int, int]:
    """(label, minutes, whole hours or 0) of a priority's turnaround target."""
    minutes = int(TURNAROUND_TARGETS[priority].total_seconds() // 60)
    return label, minutes, minutes // 60 if minutes % 60 == 0 else 0


def _priority_choices() -> list[tuple[str, str]]:
    return [
        (p.value, str(p.label)) for p in (Priority.EMERGENCY, Priority.URGENT, Priority.ROUTINE)
    ]


@session_required
@require_GET
@domain_errors
def worklist(request: HttpRequest) -> HttpResponse:
    form = WorklistFilterForm(request.GET)
    if not form.is_valid():
        audit_invalid_form(request, form, action="imaging.worklist")
        return _worklist_page(
            request,
            form=WorklistFilterForm(),
            status=400,
            error=_("Unknown status filter; showing the open requests."),
        )
    return _worklist_page(request, form=form)


@session_required
@require_POST
@domain_errors
def claim(request: HttpRequest, request_id: int) -> HttpResponse:
    try:
        worklist_claim(actor=acting_user(request), request_id=request_id)
    except InvalidRecord as exc:  # audited by the service
        return _worklist_page(request, form=WorklistFilterForm(), status=409, error=str(exc))
    return redirect("imaging:read", request_id=request_id)


@session_required
@require_POST
@domain_errors
def release(request: HttpRequest, request_id: int) -> HttpResponse:
    try:
        worklist_release(actor=acting_user(request), request_id=request_id)
    except InvalidRecord as exc:  # audited by the service
        return _worklist_page(request, form=WorklistFilterForm(), status=409, error=str(exc))
    messages.info(request, _("The study is back on the worklist."))
    return redirect("imaging:worklist")


# --- Reading and amending (the radiologist) ----------------------------------------------------


def _report_initial(case: ReadingCase) -> dict[str, Any]:
    report = case.report
    if report is None:
        return {
            "mutual_recognition": True,
            "valid_until": default_valid_until(timezone.localdate()),
            "measurements": [],
            "key_images": [],
        }
    return {
        "template": report.template,
        "findings": report.findings,
        "impression": report.impression,
        "critical": report.critical,
        "mutual_recognition": report.mutual_recognition,
        "valid_until": report.valid_until,
        "measurements": report.measurements,
        "key_images": report.key_images,
    }


def _count(form: ReportForm, name: str) -> int:
    """How many measurements or key images the form carries (shown beside the buttons)."""
    value = form[name].value()
    if isinstance(value, str):
        try:
            value = json.loads(value or "[]")
        except ValueError:
            return 0
    return len(value) if isinstance(value, list) else 0


def _reading_page(
    request: HttpRequest,
    case: ReadingCase,
    *,
    form: ReadingForm | AmendForm,
    mode: str,
    status: int = 200,
) -> HttpResponse:
    report = case.report
    context = {
        "case": case,
        "imaging_request": case.request,
        "form": form,
        "mode": mode,
        "clock": _clock(case.request),
        "viewer": viewer_assets(),
        "viewer_options": viewer_options(
            study=case.study,
            priors=case.priors,
            read_only=mode == "read" and not case.editable,
            measurements=report.measurements if report else [],
            key_images=report.key_images if report else [],
        ),
        "templates_json": [t.as_json() for t in templates_for_modality(case.request.modality)],
        "editable": case.editable if mode == "read" else True,
        "counts": {name: _count(form, name) for name in ("measurements", "key_images")},
    }
    return render(request, "imaging/read.html", context, status=status)


@session_required
@require_http_methods(["GET", "POST"])
@domain_errors
def read(request: HttpRequest, request_id: int) -> HttpResponse:
    case = reading_case_for_user(actor=request.user, request_id=request_id)
    modality = case.request.modality
    if request.method != "POST":
        form = ReadingForm(initial=_report_initial(case), modality=modality)
        return _reading_page(request, case, form=form, mode="read")
    form = ReadingForm(request.POST, modality=modality)
    if not form.is_valid():
        audit_invalid_form(
            request, form, action="imaging.report.save", patient_id=case.request.patient_id
        )
        return _reading_page(request, case, form=form, mode="read", status=400)
    actor = acting_user(request)
    try:
        report_save_draft(actor=actor, request_id=request_id, **form.content())
        if form.cleaned_data["action"] == "sign":
            report_sign(actor=actor, request_id=request_id)
    except InvalidRecord as exc:  # audited by the service
        form.add_error(None, str(exc))
        case = reading_case_for_user(actor=request.user, request_id=request_id)
        return _reading_page(request, case, form=form, mode="read", status=400)
    if form.cleaned_data["action"] == "sign":
        messages.success(request, _("Report signed. The requesting doctor has been notified."))
        return redirect("imaging:request", request_id=request_id)
    messages.success(request, _("Draft saved."))
    return redirect("imaging:read", request_id=request_id)


@session_required
@require_http_methods(["GET", "POST"])
@domain_errors
def amend(request: HttpRequest, request_id: int) -> HttpResponse:
    case = reading_case_for_user(actor=request.user, request_id=request_id)
    if case.request.status != RequestStatus.REPORTED or case.report is None:
        messages.info(request, _("Only a signed report can be amended."))
        return redirect("imaging:read", request_id=request_id)
    modality = case.request.modality
    if request.method != "POST":
        form = AmendForm(initial=_report_initial(case), modality=modality)
        return _reading_page(request, case, form=form, mode="amend")
    form = AmendForm(request.POST, modality=modality)
    if not form.is_valid():
        audit_invalid_form(
            request, form, action="imaging.report.amend", patient_id=case.request.patient_id
        )
        return _reading_page(request, case, form=form, mode="amend", status=400)
    try:
        report_amend(
            actor=acting_user(request),
            request_id=request_id,
            reason=form.cleaned_data["reason"],
            **form.content(),
        )
    except InvalidRecord as exc:  # audited by the service
        form.add_error(None, str(exc))
        return _reading_page(request, case, form=form, mode="amend", status=400)
    messages.success(request, _("Amendment signed. The requesting doctor has been notified."))
    return redirect("imaging:request", request_id=request_id)


# --- Images, read-only -------------------------------------------------------------------------


@session_required
@require_GET
@domain_errors
def study_view(request: HttpRequest, study_uid: str) -> HttpResponse:
    study = study_get_for_user(actor=request.user, study_uid=study_uid)
    priors = priors_for_study(actor=request.user, study=study)
    prefetch_related_objects(priors, "source_institution")
    report = None
    if study.request_id is not None:
        report = getattr(study.request, "report", None)
    signed = report is not None and report.version > 0
    reports = signed_reports_of(priors)
    context = {
        "study": study,
        "prior_rows": [(p, reports.get(p.pk)) for p in priors],
        "viewer": viewer_assets(),
        "viewer_options": viewer_options(
            study=study,
            priors=priors,
            read_only=True,
            measurements=report.measurements if signed and report else [],
            key_images=report.key_images if signed and report else [],
        ),
        "back": reverse("imaging:request", args=[study.request_id]) if study.request_id else "",
    }
    return render(request, "imaging/study_view.html", context)
