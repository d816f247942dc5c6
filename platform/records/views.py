"""Residents' pages: search, registration, the record with consents and timeline, edits.

Thin: reads go through ``records.selectors`` (which audit), writes through
``records.services``; these views only turn forms and domain errors into HTTP.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.views import acting_user, session_required
from association.models import Association, Institution
from association.selectors import actor_scope
from audit.models import Outcome
from audit.services import audit_record
from consult.home import patient_consult_context
from core.views import audit_invalid_form, domain_errors, error_page, render_invalid
from imaging.home import patient_imaging_context
from lab.home import patient_lab_context
from records.forms import (
    ConsentForm,
    ConsentWithdrawForm,
    PatientEditForm,
    PatientRegistrationForm,
    PatientSearchForm,
)
from records.selectors import (
    patient_get_for_edit,
    patient_record_for_user,
    patient_search_for_user,
)
from records.services import (
    DuplicateResident,
    InvalidRecord,
    patient_find_or_register,
    patient_update,
)
from records.sharing import consent_record, consent_withdraw

SEARCH_LIMIT = 50


@session_required
@require_GET
@domain_errors
def patient_search(request: HttpRequest) -> HttpResponse:
    form = PatientSearchForm(request.GET)
    if not form.is_valid():
        return render_invalid(
            request, "records/search.html", {"results": []}, form=form, action="patient.search"
        )
    query = form.cleaned_data["q"].strip()
    results = patient_search_for_user(actor=request.user, query=query, limit=SEARCH_LIMIT)
    context = {
        "form": form,
        "query": query,
        "results": results,
        "limit": SEARCH_LIMIT,
        "can_register": bool(actor_scope(request.user).care_institution_ids),
    }
    return render(request, "records/search.html", context)


def _care_institutions(request: HttpRequest) -> list[Institution]:
    """The institutions where the actor may register residents, from their memberships."""
    scope = actor_scope(request.user)
    seen: dict[int, Institution] = {}
    for m in scope.memberships:
        if m.institution_id in scope.care_institution_ids:
            seen.setdefault(m.institution_id, m.institution)
    return sorted(seen.values(), key=lambda i: i.name)


@session_required
@require_http_methods(["GET", "POST"])
@domain_errors
def patient_register(request: HttpRequest) -> HttpResponse:
    institutions = _care_institutions(request)
    if not institutions:
        audit_record(
            actor=request.user,
            action="patient.register",
            outcome=Outcome.DENIED,
            resource_type="patient",
            reason="no clinical membership",
        )
        return error_page(
            request,
            status=403,
            message=_("Only clinicians of an institution can register residents."),
        )
    template = "records/register.html"
    if request.method != "POST":
        return render(
            request, template, {"form": PatientRegistrationForm(institutions=institutions)}
        )
    form = PatientRegistrationForm(request.POST, institutions=institutions)
    if not form.is_valid():
        return render_invalid(request, template, {}, form=form, action="patient.register")
    try:
        registration = patient_find_or_register(actor=acting_user(request), **form.service_kwargs())
    except InvalidRecord as exc:  # audited by the service
        form.add_error(None, str(exc))
        return render(request, template, {"form": form}, status=400)
    except DuplicateResident as exc:  # audited by the service
        form.add_error("resident_id", str(exc))
        return render(request, template, {"form": form, "duplicate": True}, status=409)
    patient = registration.patient
    if registration.created:
        messages.success(request, _("Resident registered."))
    else:
        messages.info(request, _("This resident is already registered; here is the record."))
    return redirect("records:detail", patient_id=patient.pk)


def _patient_page(
    request: HttpRequest,
    patient_id: int,
    *,
    status: int = 200,
    consent_form: ConsentForm | None = None,
    withdraw_error: str = "",
) -> HttpResponse:
    """The record, its consents and its timeline (raises the selectors' errors)."""
    record = patient_record_for_user(actor=request.user, patient_id=patient_id)
    patient, editable = record.patient, record.can_edit
    if editable and consent_form is None:
        association = Association.objects.get(pk=patient.home_institution.association_id)
        consent_form = ConsentForm(association=association)
    context: dict[str, Any] = {
        "patient": patient,
        "consents": record.consents,
        "timeline": record.timeline,
        "can_edit": editable,
        **patient_imaging_context(request.user, patient),
        **patient_lab_context(request.user, patient),
        **patient_consult_context(request.user, patient),
        "consent_form": consent_form,
        "withdraw_error": withdraw_error,
    }
    return render(request, "records/detail.html", context, status=status)


@session_required
@require_GET
@domain_errors
def patient_detail(request: HttpRequest, patient_id: int) -> HttpResponse:
    return _patient_page(request, patient_id)


@session_required
@require_POST
@domain_errors
def consent_add(request: HttpRequest, patient_id: int) -> HttpResponse:
    patient = patient_get_for_edit(actor=request.user, patient_id=patient_id)
    association = Association.objects.get(pk=patient.home_institution.association_id)
    form = ConsentForm(request.POST, association=association)
    if not form.is_valid():
        audit_invalid_form(request, form, action="consent.record", patient_id=patient_id)
        return _patient_page(request, patient_id, status=400, consent_form=form)
    try:
        consent_record(actor=acting_user(request), patient_id=patient_id, **form.service_kwargs())
    except InvalidRecord as exc:  # audited by the service
        form.add_error(None, str(exc))
        return _patient_page(request, patient_id, status=400, consent_form=form)
    messages.success(request, _("Consent recorded."))
    return redirect("records:detail", patient_id=patient_id)


@session_required
@require_POST
@domain_errors
def consent_withdraw_view(request: HttpRequest, patient_id: int, consent_id: int) -> HttpResponse:
    form = ConsentWithdrawForm(request.POST)
    if not form.is_valid():
        audit_invalid_form(request, form, action="consent.withdraw", patient_id=patient_id)
        return _patient_page(
            request, patient_id, status=400, withdraw_error=_("The reason is too long.")
        )
    try:
        consent = consent_withdraw(
            actor=acting_user(request), consent_id=consent_id, reason=form.cleaned_data["reason"]
        )
    except InvalidRecord as exc:  # audited by the service
        return _patient_page(request, patient_id, status=400, withdraw_error=str(exc))
    messages.success(request, _("Consent withdrawn."))
    return redirect("records:detail", patient_id=consent.patient_id)


@session_required
@require_http_methods(["GET", "POST"])
@domain_errors
def patient_edit(request: HttpRequest, patient_id: int) -> HttpResponse:
    patient = patient_get_for_edit(actor=request.user, patient_id=patient_id)
    template = "records/edit.html"
    if request.method != "POST":
        return render(
            request, template, {"patient": patient, "form": PatientEditForm(patient=patient)}
        )
    form = PatientEditForm(request.POST, patient=patient)
    if not form.is_valid():
        return render_invalid(
            request,
            template,
            {"patient": patient},
            form=form,
            action="patient.update",
            patient_id=patient_id,
        )
    changes = form.changes()
    if not changes:
        messages.info(request, _("Nothing was changed."))
        return redirect("records:detail", patient_id=patient_id)
    try:
        patient_update(actor=acting_user(request), patient_id=patient_id, **changes)
    except InvalidRecord as exc:
        form.add_error(None, str(exc))
        audit_invalid_form(request, form, action="patient.update", patient_id=patient_id)
        return render(request, template, {"patient": patient, "form": form}, status=400)
    messages.success(request, _("The record was updated."))
    return redirect("records:detail", patient_id=patient_id)
