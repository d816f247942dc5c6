"""Pages of the catalogue (lab staff of the centre only), mounted under /lab/catalogue/.

Thin: access and writes go through ``lab.catalogue``; these views turn forms and domain
errors into HTTP. A refused change shows the form again with the reason, as a 400.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from accounts.views import acting_user, session_required
from association.models import DiagnosticCentre
from audit.models import Outcome
from audit.services import audit_record
from core.views import audit_invalid_form, domain_errors
from lab.catalogue import (
    RESOURCE,
    catalogue_for_centre,
    catalogue_guard,
    editable_centres,
    lab_test_create,
    lab_test_for_editing,
    lab_test_update,
    panel_create,
    panel_for_editing,
    panel_update,
    range_summary,
)
from lab.forms_catalogue import CentreQueryForm, LabTestForm, PanelForm, range_formset
from lab.models import LabTest, Panel, ValueKind, decimal_or_none
from records.selectors import AccessDenied
from records.services import InvalidRecord


def turnaround_text(minutes: int) -> str:
    """A turnaround target as a person says it: "4 h", "3 d", "90 min"."""
    if minutes % (24 * 60) == 0:
        return _("%(n)d d") % {"n": minutes // (24 * 60)}
    if minutes % 60 == 0:
        return _("%(n)d h") % {"n": minutes // 60}
    return _("%(n)d min") % {"n": minutes}


def _centre(request: HttpRequest, *, action: str) -> DiagnosticCentre:
    """The lab centre asked for (``?centre=``), or the actor's first; lab staff only."""
    form = CentreQueryForm(request.GET)
    chosen = form.cleaned_data.get("centre") if form.is_valid() else None
    if chosen is None:
        centres = editable_centres(request.user)
        if not centres:
            audit_record(
                actor=request.user,
                action=action,
                outcome=Outcome.DENIED,
                resource_type=RESOURCE,
                reason="no lab centre membership",
            )
            raise AccessDenied(_("Only the lab centre's staff can change its catalogue."))
        chosen = centres[0].pk
    return catalogue_guard(actor=request.user, centre_id=chosen, action=action)


def _catalogue_url(centre_id: int) -> str:
    return f"{reverse('lab:catalogue')}?centre={centre_id}"


@session_required
@require_GET
@domain_errors
def catalogue(request: HttpRequest) -> HttpResponse:
    centre = _centre(request, action="lab.catalogue.view")
    found = catalogue_for_centre(centre.pk, active_only=False)
    rows = [
        {
            "test": test,
            "ranges": [range_summary(r) for r in test.ranges.all()],
            "critical_low": decimal_or_none(test.critical_low),
            "critical_high": decimal_or_none(test.critical_high),
            "turnaround": turnaround_text(test.turnaround_minutes),
        }
        for test in found.tests
    ]
    context = {
        "centre": centre,
        "centres": editable_centres(request.user),
        "rows": rows,
        "panels": found.panels,
    }
    return render(request, "lab/catalogue.html", context)


# --- Tests -------------------------------------------------------------------------------------


def _test_page(
    request: HttpRequest,
    *,
    centre: DiagnosticCentre,
    form: LabTestForm,
    formset: Any,
    test: LabTest | None,
    status: int = 200,
) -> HttpResponse:
    context = {"centre": centre, "form": form, "formset": formset, "test": test}
    return render(request, "lab/test_form.html", context, status=status)


def _save_test(
    request: HttpRequest, *, centre: DiagnosticCentre, test: LabTest | None
) -> HttpResponse:
    action = "lab.catalogue.test.update" if test else "lab.catalogue.test.create"
    form = LabTestForm(request.POST, centre_id=centre.pk, instance=test)
    kind = request.POST.get("value_kind", ValueKind.NUMERIC)
    formset = range_formset(data=request.POST, instance=test, value_kind=kind)
    form_ok, formset_ok = form.is_valid(), formset.is_valid()
    if not (form_ok and formset_ok):
        audit_invalid_form(request, form, action=action)
        page = _test_page(request, centre=centre, form=form, formset=formset, test=test)
        page.status_code = 400
        return page
    try:
        if test is None:
            saved = lab_test_create(
                actor=acting_user(request),
                centre_id=centre.pk,
                data=form.data_for_service(),
                ranges=formset.range_data(),
            )
        else:
            saved = lab_test_update(
                actor=acting_user(request),
                test_id=test.pk,
                data=form.data_for_service(),
                ranges=formset.range_data(),
            )
    except InvalidRecord as exc:  # audited by the service
        form.add_error(None, str(exc))
        return _test_page(request, centre=centre, form=form, formset=formset, test=test, status=400)
    messages.success(request, _("Test %(code)s saved.") % {"code": saved.code})
    return redirect(_catalogue_url(centre.pk))


@session_required
@require_http_methods(["GET", "POST"])
@domain_errors
def test_new(request: HttpRequest) -> HttpResponse:
    centre = _centre(request, action="lab.catalogue.test.create")
    if request.method == "POST":
        return _save_test(request, centre=centre, test=None)
    form = LabTestForm(centre_id=centre.pk)
    return _test_page(request, centre=centre, form=form, formset=range_formset(), test=None)


@session_required
@require_http_methods(["GET", "POST"])
@domain_errors
def test_edit(request: HttpRequest, pk: int) -> HttpResponse:
    action = "lab.catalogue.test.update"
    test = lab_test_for_editing(actor=request.user, test_id=pk, action=action)
    centre = test.centre
    if request.method == "POST":
        return _save_test(request, centre=centre, test=test)
    form = LabTestForm(centre_id=centre.pk, instance=test)
    formset = range_formset(instance=test, value_kind=test.value_kind)
    return _test_page(request, centre=centre, form=form, formset=formset, test=test)


# --- Panels ------------------------------------------------------------------------------------


def _panel_page(
    request: HttpRequest,
    *,
    centre: DiagnosticCentre,
    form: PanelForm,
    panel: Panel | None,
    status: int = 200,
) -> HttpResponse:
    context = {"centre": centre, "form": form, "panel": panel}
    return render(request, "lab/panel_form.html", context, status=status)


def _save_panel(
    request: HttpRequest, *, centre: DiagnosticCentre, panel: Panel | None
) -> HttpResponse:
    action = "lab.catalogue.panel.update" if panel else "lab.catalogue.panel.create"
    form = PanelForm(request.POST, centre_id=centre.pk, instance=panel)
    if not form.is_valid():
        audit_invalid_form(request, form, action=action)
        return _panel_page(request, centre=centre, form=form, panel=panel, status=400)
    try:
        if panel is None:
            saved = panel_create(
                actor=acting_user(request), centre_id=centre.pk, data=form.data_for_service()
            )
        else:
            saved = panel_update(
                actor=acting_user(request), panel_id=panel.pk, data=form.data_for_service()
            )
    except InvalidRecord as exc:  # audited by the service
        form.add_error(None, str(exc))
        return _panel_page(request, centre=centre, form=form, panel=panel, status=400)
    messages.success(request, _("Panel %(code)s saved.") % {"code": saved.code})
    return redirect(_catalogue_url(centre.pk))


@session_required
@require_http_methods(["GET", "POST"])
@domain_errors
def panel_new(request: HttpRequest) -> HttpResponse:
    centre = _centre(request, action="lab.catalogue.panel.create")
    if request.method == "POST":
        return _save_panel(request, centre=centre, panel=None)
    form = PanelForm(centre_id=centre.pk, initial={"active": True})
    return _panel_page(request, centre=centre, form=form, panel=None)


@session_required
@require_http_methods(["GET", "POST"])
@domain_errors
def panel_edit(request: HttpRequest, pk: int) -> HttpResponse:
    action = "lab.catalogue.panel.update"
    panel = panel_for_editing(actor=request.user, panel_id=pk, action=action)
    centre = panel.centre
    if request.method == "POST":
        return _save_panel(request, centre=centre, panel=panel)
    form = PanelForm(centre_id=centre.pk, instance=panel)
    return _panel_page(request, centre=centre, form=form, panel=panel)
