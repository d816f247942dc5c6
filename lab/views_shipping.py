"""Pages of the shipment: boxes at the clinic, the receiving desk, the discrepancies.

Thin: reads go through ``lab.shipping_selectors`` and ``lab.discrepancies`` (which audit),
writes through ``lab.shipping`` (packing) and ``lab.receipt`` (at the lab centre). A scan
posted by ``scan.js`` (``Accept: application/json``) gets a JSON line back — ``{"ok",
"level", "message", "warnings"}`` with 200, 400, 403 or 404 — so the scanning page keeps
its focus; the same form posted without JavaScript gets the page back (a redirect with a
message, or the page with the error as a 400).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.views import acting_user, session_required
from association.selectors import actor_scope
from audit.models import Outcome
from audit.services import audit_record
from core.views import audit_invalid_form, domain_errors, error_page
from lab.discrepancies import (
    UNSHIPPED_WINDOW,
    Discrepancies,
    discrepancies_for_centre,
    discrepancy_centres_for,
)
from lab.forms_shipping import (
    BoxQueryForm,
    CentreFilterForm,
    OpenBoxForm,
    ReceiveScanForm,
    RejectForm,
    ScanForm,
    ShipForm,
)
from lab.manifest import manifest_pdf_render
from lab.models import BoxStatus, RejectionReason, SpecimenStatus
from lab.receipt import box_receive, specimen_receive, specimen_reject
from lab.shipping import box_add, box_open, box_remove, box_ship, is_box_number
from lab.shipping_selectors import (
    box_detail_for_user,
    boxes_for_user,
    open_box_centres,
    receive_desk_for_user,
)
from records.selectors import AccessDenied, NotFound
from records.services import InvalidRecord

SESSION_BOX = "lab_receive_box"
SESSION_LAST = "lab_receive_last"


# --- Scan answers --------------------------------------------------------------------------------


def _wants_json(request: HttpRequest) -> bool:
    return request.headers.get("Accept", "").startswith("application/json")


def _scan_json(
    *, ok: bool, message: str, status: int = 200, warnings: list[str] | None = None
) -> JsonResponse:
    level = "error" if not ok else ("warning" if warnings else "success")
    return JsonResponse(
        {"ok": ok, "level": level, "message": message, "warnings": warnings or []},
        status=status,
    )


def _first_error(form: forms.BaseForm) -> str:
    for errors in form.errors.values():
        for error in errors:
            return str(error)
    return _("Please check what was sent and try again.")


# --- Boxes at the clinic -------------------------------------------------------------------------


def _box_list_page(
    request: HttpRequest, *, form: OpenBoxForm | None = None, status: int = 200
) -> HttpResponse:
    lists = boxes_for_user(actor=request.user)
    context = {
        "lists": lists,
        "form": form or OpenBoxForm(centres=lists.centres),
        "BoxStatus": BoxStatus,
    }
    return render(request, "lab/box_list.html", context, status=status)


@session_required
@require_GET
@domain_errors
def box_list(request: HttpRequest) -> HttpResponse:
    return _box_list_page(request)


@session_required
@require_POST
@domain_errors
def box_new(request: HttpRequest) -> HttpResponse:
    form = OpenBoxForm(request.POST, centres=open_box_centres(actor_scope(request.user)))
    if not form.is_valid():
        audit_invalid_form(request, form, action="lab.box.open")
        return _box_list_page(request, form=form, status=400)
    box = box_open(actor=acting_user(request), centre_id=form.cleaned_data["centre"])
    messages.success(
        request,
        _("Box %(number)s is open. Scan the specimens you put in it.") % {"number": box.number},
    )
    return redirect("lab:box", pk=box.pk)


def _box_page(
    request: HttpRequest,
    pk: int,
    *,
    status: int = 200,
    scan_form: ScanForm | None = None,
    ship_form: ShipForm | None = None,
    error: str = "",
) -> HttpResponse:
    detail = box_detail_for_user(actor=request.user, box_id=pk)
    context = {
        "detail": detail,
        "box": detail.box,
        "scan_form": scan_form or ScanForm(),
        "ship_form": ship_form or ShipForm(),
        "error": error,
    }
    return render(request, "lab/box_detail.html", context, status=status)


@session_required
@require_GET
@domain_errors
def box_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _box_page(request, pk)


@session_required
@require_POST
@domain_errors
def box_add_view(request: HttpRequest, pk: int) -> HttpResponse:
    form = ScanForm(request.POST)
    as_json = _wants_json(request)
    if not form.is_valid():
        audit_invalid_form(request, form, action="lab.box.add")
        if as_json:
            return _scan_json(ok=False, message=_first_error(form), status=400)
        return _box_page(request, pk, status=400, scan_form=form)
    try:
        specimen = box_add(
            actor=acting_user(request), box_id=pk, barcode=form.cleaned_data["barcode"]
        )
    except InvalidRecord as exc:  # audited by the service
        if as_json:
            return _scan_json(ok=False, message=str(exc), status=400)
        form.add_error(None, str(exc))
        return _box_page(request, pk, status=400, scan_form=form)
    except (AccessDenied, NotFound) as exc:  # audited by the guard
        if as_json:
            status = 403 if isinstance(exc, AccessDenied) else 404
            return _scan_json(ok=False, message=str(exc), status=status)
        raise
    message = _("Specimen %(barcode)s (%(name)s) is in the box.") % {
        "barcode": specimen.barcode,
        "name": specimen.order.patient.name,
    }
    if as_json:
        return _scan_json(ok=True, message=message)
    messages.success(request, message)
    return redirect("lab:box", pk=pk)


@session_required
@require_POST
@domain_errors
def box_remove_view(request: HttpRequest, pk: int) -> HttpResponse:
    form = ScanForm(request.POST)
    if not form.is_valid():
        audit_invalid_form(request, form, action="lab.box.remove")
        return _box_page(request, pk, status=400, error=_first_error(form))
    try:
        specimen = box_remove(
            actor=acting_user(request), box_id=pk, barcode=form.cleaned_data["barcode"]
        )
    except InvalidRecord as exc:  # audited by the service
        return _box_page(request, pk, status=400, error=str(exc))
    messages.info(
        request, _("Specimen %(barcode)s was taken out of the box.") % {"barcode": specimen.barcode}
    )
    return redirect("lab:box", pk=pk)


@session_required
@require_POST
@domain_errors
def box_ship_view(request: HttpRequest, pk: int) -> HttpResponse:
    form = ShipForm(request.POST)
    if not form.is_valid():
        audit_invalid_form(request, form, action="lab.box.ship")
        return _box_page(request, pk, status=400, ship_form=form)
    try:
        box = box_ship(
            actor=acting_user(request),
            box_id=pk,
            scanned_number=form.cleaned_data["scanned_number"],
            courier=form.cleaned_data["courier"],
        )
    except InvalidRecord as exc:  # audited by the service
        form.add_error(None, str(exc))
        return _box_page(request, pk, status=400, ship_form=form)
    messages.success(
        request,
        _("Box %(number)s was handed to %(courier)s. The lab centre has been told it is coming.")
        % {"number": box.number, "courier": box.courier},
    )
    return redirect("lab:box", pk=pk)


@session_required
@require_GET
@domain_errors
def manifest(request: HttpRequest, pk: int) -> HttpResponse:
    detail = box_detail_for_user(actor=request.user, box_id=pk, action="lab.box.manifest")
    pdf = manifest_pdf_render(box=detail.box, specimens=detail.specimens)
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="{detail.box.number}.pdf"'
    response["Cache-Control"] = "private, no-store"
    return response


# --- The receiving desk --------------------------------------------------------------------------


def _current_box(request: HttpRequest) -> int | None:
    query = BoxQueryForm(request.GET)
    if query.is_valid() and query.cleaned_data["box"]:
        box_id: int = query.cleaned_data["box"]
        request.session[SESSION_BOX] = box_id
        return box_id
    stored = request.session.get(SESSION_BOX)
    return stored if isinstance(stored, int) else None


def _receive_page(
    request: HttpRequest,
    *,
    status: int = 200,
    scan_form: ReceiveScanForm | None = None,
    reject_form: RejectForm | None = None,
) -> HttpResponse:
    desk = receive_desk_for_user(actor=request.user, box_id=_current_box(request))
    last = request.session.get(SESSION_LAST, "")
    context: dict[str, Any] = {
        "desk": desk,
        "scan_form": scan_form or ReceiveScanForm(),
        "reject_form": reject_form or RejectForm(initial={"barcode": last}),
        "last_barcode": last,
        "reasons": RejectionReason,
        "SpecimenStatus": SpecimenStatus,
    }
    return render(request, "lab/receive.html", context, status=status)


def _scan_box(request: HttpRequest, code: str, note: str) -> tuple[str, list[str]]:
    box = box_receive(actor=acting_user(request), scanned_number=code, condition_note=note)
    request.session[SESSION_BOX] = box.pk
    count = box.specimens.count()
    return (
        _("Box %(number)s from %(clinic)s received: check its %(count)s specimens.")
        % {"number": box.number, "clinic": box.from_institution.name, "count": count},
        [],
    )


def _scan_specimen(request: HttpRequest, code: str) -> tuple[str, list[str]]:
    outcome = specimen_receive(actor=acting_user(request), barcode=code)
    specimen = outcome.specimen
    request.session[SESSION_LAST] = specimen.barcode
    warnings = list(outcome.warnings)
    current = request.session.get(SESSION_BOX)
    if specimen.box_id is not None and current not in (None, specimen.box_id) and specimen.box:
        warnings.append(
            _("This specimen came in box %(box)s, not in the box being checked.")
            % {"box": specimen.box.number}
        )
    elif specimen.box_id is not None and current is None:
        request.session[SESSION_BOX] = specimen.box_id
    message = _("Specimen %(barcode)s received (%(name)s, order %(order)s).") % {
        "barcode": specimen.barcode,
        "name": specimen.order.patient.name,
        "order": specimen.order.number,
    }
    return message, warnings


@session_required
@require_http_methods(["GET", "HEAD", "POST"])
@domain_errors
def receive(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _receive_page(request)
    form = ReceiveScanForm(request.POST)
    as_json = _wants_json(request)
    if not form.is_valid():
        audit_invalid_form(request, form, action="lab.receive.scan")
        if as_json:
            return _scan_json(ok=False, message=_first_error(form), status=400)
        return _receive_page(request, status=400, scan_form=form)
    code = form.cleaned_data["code"]
    try:
        if is_box_number(code):
            message, warnings = _scan_box(request, code, form.cleaned_data["condition_note"])
        else:
            message, warnings = _scan_specimen(request, code)
    except (InvalidRecord, AccessDenied, NotFound) as exc:  # audited by the services
        status = 400
        if isinstance(exc, AccessDenied):
            status = 403
        elif isinstance(exc, NotFound):
            status = 404
        if as_json:
            return _scan_json(ok=False, message=str(exc), status=status)
        if isinstance(exc, InvalidRecord):
            form.add_error(None, str(exc))
            return _receive_page(request, status=status, scan_form=form)
        raise
    if as_json:
        return _scan_json(ok=True, message=message, warnings=warnings)
    if warnings:
        messages.warning(request, " ".join([message, *warnings]))
    else:
        messages.success(request, message)
    return redirect("lab:receive")


@session_required
@require_POST
@domain_errors
def reject(request: HttpRequest) -> HttpResponse:
    form = RejectForm(request.POST)
    if not form.is_valid():
        audit_invalid_form(request, form, action="lab.specimen.reject")
        return _receive_page(request, status=400, reject_form=form)
    try:
        specimen = specimen_reject(
            actor=acting_user(request),
            barcode=form.cleaned_data["barcode"],
            reason=form.cleaned_data["reason"],
            note=form.cleaned_data["note"],
        )
    except InvalidRecord as exc:  # audited by the service
        form.add_error(None, str(exc))
        return _receive_page(request, status=400, reject_form=form)
    messages.warning(
        request,
        _("Specimen %(barcode)s was rejected (%(reason)s). The clinic has been notified.")
        % {"barcode": specimen.barcode, "reason": specimen.get_rejection_reason_display()},
    )
    return redirect("lab:receive")


# --- Discrepancies -------------------------------------------------------------------------------


def _discrepancy_sections(result: Discrepancies) -> list[dict[str, Any]]:
    """The three tables of the page, most urgent first."""
    return [
        {
            "key": "missing",
            "rows": result.missing,
            "badge": _("Missing"),
            "badge_class": "missing",
            "title": _("Shipped and not received"),
            "help": _(
                "The box was handed to the courier and has not been received at the lab."
                " Ask the courier and the clinic where it is."
            ),
            "since": _("Handed over"),
        },
        {
            "key": "not-scanned",
            "rows": result.not_scanned,
            "badge": _("Not scanned"),
            "badge_class": "notscanned",
            "title": _("In a received box, never scanned"),
            "help": _(
                "The box arrived, but these specimens were not scanned at receipt: look for"
                " them in the box or at the desk."
            ),
            "since": _("Box received"),
        },
        {
            "key": "unshipped",
            "rows": result.received_unshipped,
            "badge": _("Not shipped"),
            "badge_class": "unshipped",
            "title": _("Received without being shipped"),
            "help": _(
                "These specimens reached the lab without a recorded hand-over to the courier"
                " (last %(days)s days)."
            )
            % {"days": UNSHIPPED_WINDOW.days},
            "since": _("Received"),
        },
    ]


@session_required
@require_GET
@domain_errors
def discrepancies(request: HttpRequest) -> HttpResponse:
    form = CentreFilterForm(request.GET)
    if not form.is_valid():
        audit_invalid_form(request, form, action="lab.discrepancies")
        return error_page(request, status=400, message=_("Unknown lab centre."))
    centres = discrepancy_centres_for(request.user)
    chosen = form.cleaned_data["centre"] or (centres[0].pk if centres else None)
    if chosen is None:
        audit_record(
            actor=request.user,
            action="lab.discrepancies",
            outcome=Outcome.DENIED,
            resource_type="lab_centre",
            reason="neither staff of a lab centre nor a clinic it serves",
        )
        raise AccessDenied(_("Only lab centres and the clinics they serve see discrepancies."))
    result = discrepancies_for_centre(actor=request.user, centre_id=chosen)
    context = {
        "result": result,
        "centres": centres,
        "chosen": chosen,
        "sections": _discrepancy_sections(result),
    }
    return render(request, "lab/discrepancies.html", context)
