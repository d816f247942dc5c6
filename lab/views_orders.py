"""Pages of ordering, the order itself, collection and labels, mounted under /lab/.

Thin: reads go through ``lab.order_detail`` / ``lab.labels`` (which check access and
audit), writes through ``lab.ordering``; these views only turn forms and domain errors
into HTTP. A refused write shows the page again with the reason, as a 400.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.views import acting_user, session_required
from association.selectors import actor_scope
from audit.models import Outcome
from audit.services import audit_record
from core.views import audit_invalid_form, domain_errors, error_page
from lab.catalogue import Catalogue, catalogue_for_centre
from lab.forms_order import (
    CancelOrderForm,
    CollectForm,
    OrderForm,
    PatientQueryForm,
    ReprintForm,
)
from lab.labels import LabelSheet, label_sheet_for_order, label_sheet_for_specimen
from lab.models import Container, Priority, SpecimenType
from lab.ordering import (
    lab_centres_for,
    lab_consent_for,
    label_print,
    order_cancel,
    order_create,
    order_detail_for_user,
    specimens_collect,
)
from lab.workflow_common import policy_for
from records.models import Patient
from records.selectors import can_edit_patient, patient_get_for_user
from records.services import InvalidRecord

# --- Ordering ----------------------------------------------------------------------------------


def _test_groups(catalogue: Catalogue, chosen: set[int]) -> list[dict[str, Any]]:
    """The centre's tests grouped by specimen type, for the checkboxes."""
    return [
        {
            "specimen_type": SpecimenType(kind).label,
            "tests": [{"test": t, "checked": t.pk in chosen} for t in tests],
        }
        for kind, tests in catalogue.tests_by_specimen()
    ]


def _tests_json(catalogue: Catalogue) -> dict[str, Any]:
    """What order.js needs to count tests and name the tubes."""
    return {
        "tests": {
            str(t.pk): {
                "code": t.code,
                "tube": t.container,
                "specimen": t.specimen_type,
            }
            for t in catalogue.tests
        },
        "panels": {str(p.pk): [t.pk for t in p.tests.all()] for p in catalogue.panels},
        "tubes": {value: str(label) for value, label in Container.choices},
        "specimens": {value: str(label) for value, label in SpecimenType.choices},
    }


def _order_context(
    request: HttpRequest, patient: Patient, centre_id: int | None
) -> tuple[dict[str, Any], Catalogue | None, bool]:
    centres = lab_centres_for(patient)
    chosen = next((c for c in centres if c.pk == centre_id), centres[0] if centres else None)
    catalogue = catalogue_for_centre(chosen.pk) if chosen is not None else None
    unconsented = chosen is not None and lab_consent_for(patient=patient, centre=chosen) is None
    may_consent = can_edit_patient(actor_scope(request.user), patient)
    context: dict[str, Any] = {
        "patient": patient,
        "centres": centres,
        "centre": chosen,
        "catalogue": catalogue,
        "unconsented": unconsented,
        "may_consent": may_consent,
        "order_data": _tests_json(catalogue) if catalogue is not None else {},
        "priorities": Priority,
    }
    return context, catalogue, unconsented and may_consent


def _render_order_form(
    request: HttpRequest, context: dict[str, Any], form: OrderForm, *, status: int = 200
) -> HttpResponse:
    catalogue: Catalogue | None = context["catalogue"]
    groups = _test_groups(catalogue, form.chosen("tests")) if catalogue else []
    panels = (
        [{"panel": p, "checked": p.pk in form.chosen("panels")} for p in catalogue.panels]
        if catalogue
        else []
    )
    full = {**context, "form": form, "groups": groups, "panel_rows": panels}
    return render(request, "lab/order_form.html", full, status=status)


@session_required
@require_http_methods(["GET", "POST"])
@domain_errors
def order_new(request: HttpRequest) -> HttpResponse:
    action = "lab.order.create"
    query = PatientQueryForm(request.POST if request.method == "POST" else request.GET)
    if not query.is_valid():
        audit_invalid_form(request, query, action=action)
        return error_page(
            request,
            status=400,
            message=_("Open the resident's record and order lab tests from there."),
        )
    patient = patient_get_for_user(actor=request.user, patient_id=query.cleaned_data["patient"])
    if not actor_scope(request.user).care_institution_ids:
        audit_record(
            actor=request.user,
            action=action,
            outcome=Outcome.DENIED,
            resource_type="lab_order",
            patient_id=patient.pk,
            reason="no clinical membership",
        )
        return error_page(
            request, status=403, message=_("Only clinicians of an institution can order lab tests.")
        )
    context, catalogue, ask_consent = _order_context(
        request, patient, query.cleaned_data.get("centre")
    )
    centres = context["centres"]
    if request.method != "POST":
        form = OrderForm(centres=centres, catalogue=catalogue, ask_consent=ask_consent)
        return _render_order_form(request, context, form)
    form = OrderForm(request.POST, centres=centres, catalogue=catalogue, ask_consent=ask_consent)
    if not form.is_valid():
        audit_invalid_form(request, form, action=action, patient_id=patient.pk)
        return _render_order_form(request, context, form, status=400)
    try:
        created = order_create(
            actor=acting_user(request), patient_id=patient.pk, **form.service_kwargs()
        )
    except InvalidRecord as exc:  # audited by the service
        form.add_error(None, str(exc))
        return _render_order_form(request, context, form, status=400)
    messages.success(
        request,
        _("Lab tests ordered: order %(number)s. Collect the specimens and print the labels.")
        % {"number": created.number},
    )
    return redirect("lab:order", pk=created.pk)


# --- The order page ----------------------------------------------------------------------------


def _order_page(
    request: HttpRequest,
    pk: int,
    *,
    status: int = 200,
    cancel_form: CancelOrderForm | None = None,
    collect_form: CollectForm | None = None,
) -> HttpResponse:
    detail = order_detail_for_user(actor=request.user, order_id=pk)
    context = {
        **detail.as_context(),
        "cancel_form": cancel_form or CancelOrderForm(),
        "collect_form": collect_form or CollectForm(),
        "max_age_hours": policy_for(detail.order.centre_id).specimen_max_age_hours,
    }
    return render(request, "lab/order_detail.html", context, status=status)


@session_required
@require_GET
@domain_errors
def order_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _order_page(request, pk)


@session_required
@require_POST
@domain_errors
def order_cancel_view(request: HttpRequest, pk: int) -> HttpResponse:
    form = CancelOrderForm(request.POST)
    if not form.is_valid():
        audit_invalid_form(request, form, action="lab.order.cancel")
        return _order_page(request, pk, status=400, cancel_form=form)
    try:
        order_cancel(actor=acting_user(request), order_id=pk, reason=form.cleaned_data["reason"])
    except InvalidRecord as exc:  # audited by the service
        form.add_error(None, str(exc))
        return _order_page(request, pk, status=400, cancel_form=form)
    messages.success(request, _("The order was cancelled."))
    return redirect("lab:order", pk=pk)


@session_required
@require_POST
@domain_errors
def collect(request: HttpRequest, pk: int) -> HttpResponse:
    form = CollectForm(request.POST)
    if not form.is_valid():
        audit_invalid_form(request, form, action="lab.specimen.collect")
        return _order_page(request, pk, status=400, collect_form=form)
    try:
        specimens = specimens_collect(
            actor=acting_user(request), order_id=pk, collected_at=form.collected_at()
        )
    except InvalidRecord as exc:  # audited by the service
        form.add_error(None, str(exc))
        return _order_page(request, pk, status=400, collect_form=form)
    messages.success(
        request,
        _("Collection recorded: %(n)d tube(s). Print the labels and stick them on now.")
        % {"n": len(specimens)},
    )
    return redirect("lab:order", pk=pk)


# --- Labels ------------------------------------------------------------------------------------


def _labels_page(
    request: HttpRequest,
    sheet: LabelSheet,
    *,
    show: bool,
    form: ReprintForm | None = None,
    error: str = "",
    status: int = 200,
) -> HttpResponse:
    context = {
        "order": sheet.order,
        "sheet": sheet,
        "labels": sheet.labels() if show else [],
        "reprint_form": form or ReprintForm(),
        "asks_reason": not show and bool(sheet.specimens) and not error,
        "error": error,
        "single": len(sheet.specimens) == 1,
    }
    return render(request, "lab/labels.html", context, status=status)


def _print_sheet(request: HttpRequest, sheet: LabelSheet) -> HttpResponse:
    """GET prints labels never printed; printing again asks for a reason first (POST)."""
    if not sheet.specimens:
        return _labels_page(request, sheet, show=False)
    reason = ""
    if request.method == "POST":
        form = ReprintForm(request.POST)
        if not form.is_valid():
            audit_invalid_form(request, form, action="lab.label.reprint")
            return _labels_page(request, sheet, show=False, form=form, status=400)
        reason = form.cleaned_data["reason"]
    elif sheet.printed_before:
        return _labels_page(request, sheet, show=False)
    try:
        for specimen in sheet.specimens:
            label_print(actor=acting_user(request), specimen_id=specimen.pk, reprint_reason=reason)
    except InvalidRecord as exc:  # audited by the service
        return _labels_page(request, sheet, show=False, error=str(exc), status=400)
    return _labels_page(request, sheet, show=True)


@session_required
@require_http_methods(["GET", "POST"])
@domain_errors
def labels(request: HttpRequest, pk: int) -> HttpResponse:
    return _print_sheet(request, label_sheet_for_order(actor=request.user, order_id=pk))


@session_required
@require_http_methods(["GET", "POST"])
@domain_errors
def label(request: HttpRequest, pk: int) -> HttpResponse:
    return _print_sheet(request, label_sheet_for_specimen(actor=request.user, specimen_id=pk))
