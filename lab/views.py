"""The lab pages people work from: the centre's queue, the clinic's orders, the dashboard.

Thin: the lists come from ``lab.queue_selectors`` and ``lab.selectors``, the figures from
``lab.stats`` (all audit their reads and denials); these views only validate the query
string and turn domain errors into HTTP. A bad filter shows the default list with a
message, as a 400.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET

from accounts.views import session_required
from association.selectors import actor_scope
from audit.models import Outcome
from audit.services import audit_record
from core.views import audit_invalid_form, domain_errors, error_page
from lab.access import lab_centre_ids
from lab.models import Priority
from lab.queue_selectors import NEAR_TARGET, QUEUE_TABS, queue_for_user
from lab.selectors import CLINIC_FILTERS, orders_for_clinic
from lab.stats import (
    DEFAULT_DAYS,
    PERIOD_DAYS,
    LabStats,
    institutions_of,
    lab_stats,
    period,
    stats_centres_for,
)
from records.selectors import AccessDenied, NotFound

# --- Filters -------------------------------------------------------------------------------


def _priority_choices() -> list[tuple[str, Any]]:
    order = (Priority.EMERGENCY, Priority.URGENT, Priority.ROUTINE)
    return [("", gettext_lazy("Any priority")), *((p.value, p.label) for p in order)]


class QueueFilterForm(forms.Form):
    tab = forms.ChoiceField(
        label=gettext_lazy("Show"), choices=[(t.key, t.label) for t in QUEUE_TABS], required=False
    )


class ClinicFilterForm(forms.Form):
    status = forms.ChoiceField(
        label=gettext_lazy("Status"),
        choices=[(t.key, t.label) for t in CLINIC_FILTERS],
        required=False,
    )
    priority = forms.ChoiceField(
        label=gettext_lazy("Priority"), choices=_priority_choices, required=False
    )
    name = forms.CharField(label=gettext_lazy("Resident"), max_length=100, required=False)

    def clean_name(self) -> str:
        return str(self.cleaned_data.get("name") or "").strip()


class DashboardForm(forms.Form):
    centre = forms.IntegerField(label=gettext_lazy("Lab centre"), min_value=1, required=False)
    days = forms.TypedChoiceField(
        label=gettext_lazy("Period"),
        choices=[(str(d), str(d)) for d in PERIOD_DAYS],
        coerce=int,
        required=False,
        empty_value=None,
    )


# --- /lab/ -------------------------------------------------------------------------------------


@session_required
@require_GET
def lab_home(request: HttpRequest) -> HttpResponse:
    """Send each person to the lab page of their work."""
    scope = actor_scope(request.user)
    if lab_centre_ids(scope):
        return redirect("lab:queue")
    if scope.care_institution_ids:
        return redirect("lab:orders")
    if scope.admin_association_ids or scope.audit_association_ids:
        return redirect("lab:dashboard")
    audit_record(
        actor=request.user,
        action="lab.home",
        outcome=Outcome.DENIED,
        resource_type="lab",
        reason="no lab role",
    )
    return error_page(
        request, status=403, message=_("The lab pages are for clinicians and lab staff.")
    )


# --- The centre's queue ------------------------------------------------------------------------


@session_required
@require_GET
@domain_errors
def queue(request: HttpRequest) -> HttpResponse:
    form = QueueFilterForm(request.GET)
    status, error, tab = 200, "", "open"
    if form.is_valid():
        tab = form.cleaned_data["tab"] or "open"
    else:
        audit_invalid_form(request, form, action="lab.queue")
        status, error = 400, _("Unknown list; showing all open orders.")
    data = queue_for_user(actor=request.user, tab=tab)
    context = {"queue": data, "error": error, "near_percent": int(NEAR_TARGET * 100)}
    return render(request, "lab/queue.html", context, status=status)


# --- The clinic's orders -----------------------------------------------------------------------


@session_required
@require_GET
@domain_errors
def orders(request: HttpRequest) -> HttpResponse:
    form = ClinicFilterForm(request.GET)
    status, error = 200, ""
    filters: dict[str, str] = {"status": "open", "priority": "", "name": ""}
    if form.is_valid():
        filters.update({k: v for k, v in form.cleaned_data.items() if v})
    else:
        audit_invalid_form(request, form, action="lab.order.list")
        status, error = 400, _("Unknown filter; showing the open orders.")
        form = ClinicFilterForm(initial=filters)
    data = orders_for_clinic(
        actor=request.user,
        status=filters["status"],
        priority=filters["priority"],
        name=filters["name"],
    )
    context = {"orders": data, "form": form, "error": error}
    return render(request, "lab/orders.html", context, status=status)


# --- The dashboard -----------------------------------------------------------------------------


def _dashboard_stats(request: HttpRequest, form: DashboardForm) -> tuple[LabStats, int]:
    """The figures the (valid) form asks for; the first visible centre by default."""
    days = form.cleaned_data.get("days") or DEFAULT_DAYS
    centre_id = form.cleaned_data.get("centre")
    if centre_id is None:
        centres = stats_centres_for(actor_scope(request.user))
        if not centres:
            audit_record(
                actor=request.user,
                action="lab.stats",
                outcome=Outcome.DENIED,
                resource_type="lab_stats",
                reason="no lab centre visible",
            )
            raise AccessDenied(_("You may not see the statistics of any lab centre."))
        centre_id = centres[0].pk
    since, until = period(days)
    return lab_stats(actor=request.user, centre_id=centre_id, since=since, until=until), days


@session_required
@require_GET
@domain_errors
def dashboard(request: HttpRequest) -> HttpResponse:
    form = DashboardForm(request.GET)
    status, error = 200, ""
    if not form.is_valid():
        audit_invalid_form(request, form, action="lab.stats")
        status, error = 400, _("Unknown period or centre; showing the last 30 days.")
        form = DashboardForm({})
        form.is_valid()
    stats, days = _dashboard_stats(request, form)
    context = {
        "stats": stats,
        "rows": list(institutions_of(stats)),
        "days": days,
        "period_days": PERIOD_DAYS,
        "centres": stats_centres_for(actor_scope(request.user)),
        "error": error,
        "stats_json": stats.as_json(),
        "chart_labels": _chart_labels(),
    }
    return render(request, "lab/dashboard.html", context, status=status)


def _chart_labels() -> dict[str, str]:
    """The charts' words, in the page's language (dashboard.js has none of its own)."""
    return {
        "median": _("Median"),
        "p90": _("90th percentile"),
        "target": _("Target"),
        "minutes": _("Minutes"),
        "tat_title": _("Turnaround, receipt to report (minutes)"),
        "ack_title": _("Critical values acknowledged in time (%)"),
        "ack_in_time": _("Acknowledged in time"),
        "percent": _("Per cent"),
        "daily_title": _("Orders and reports per day"),
        "orders": _("Orders"),
        "reports": _("Reports"),
        "no_data": _("No data in this period."),
    }


@session_required
@require_GET
def dashboard_data(request: HttpRequest) -> JsonResponse:
    """The dashboard's figures as JSON (the same numbers as the page's table)."""
    form = DashboardForm(request.GET)
    if not form.is_valid():
        audit_invalid_form(request, form, action="lab.stats")
        return JsonResponse(
            {"error": _("Unknown period or centre."), "fields": list(form.errors)}, status=400
        )
    try:
        stats, _days = _dashboard_stats(request, form)
    except AccessDenied as exc:
        return JsonResponse({"error": str(exc)}, status=403)
    except NotFound as exc:
        return JsonResponse({"error": str(exc)}, status=404)
    return JsonResponse(stats.as_json())
