"""The auditor's search of the audit trail."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts.views import session_required
from audit.forms import AuditSearchForm
from audit.selectors import audit_event_search, auditor_association_ids
from core.views import domain_errors, render_invalid

PAGE_SIZE = 50
TEMPLATE = "audit/search.html"


@session_required
@require_GET
@domain_errors
def audit_search(request: HttpRequest) -> HttpResponse:
    filters = {k: v for k, v in request.GET.items() if k != "page"}
    form = AuditSearchForm(filters or None)
    if form.is_bound and not form.is_valid():
        auditor_association_ids(actor=request.user)  # a non-auditor gets 403 first
        return render_invalid(request, TEMPLATE, {"page": None}, form=form, action="audit.search")
    events = audit_event_search(actor=request.user, filters=form.filters())
    page = Paginator(events, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, TEMPLATE, {"form": form, "page": page, "filtered": form.is_bound})
