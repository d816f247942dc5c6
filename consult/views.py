"""Pages of the consult workflow, mounted at /consults/.

Thin: reads go through ``consult.selectors`` (which audit), writes through
``consult.services``; these views turn forms and domain errors into HTTP. ``AccessDenied``
is a 403 page, ``NotFound`` a 404 page (``core.views.domain_errors``), and a refused change
(``InvalidRecord``) shows the form again with the reason, as a 400.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, BinaryIO, cast

from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.template import TemplateDoesNotExist
from django.template.loader import get_template
from django.utils.functional import Promise
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from accounts.views import acting_user, session_required
from association.models import Role
from association.selectors import ActorScope, actor_scope
from audit.models import Outcome
from audit.services import audit_record
from consult import display
from consult.forms import (
    SCOPES,
    ConsultRequestForm,
    ListFilterForm,
    PatientQueryForm,
)
from consult.models import AttachmentKind, Consult
from consult.selectors import (
    ConsultDetail,
    ListScope,
    consult_detail_for_user,
    consult_list_for_user,
)
from consult.services import REQUESTER_ROLES, consult_attach_file, consult_request
from consult.views_common import (
    attachment_for_user,
    deny_page,
    expert_choices,
    study_choices,
    target_choices,
)
from core.views import audit_invalid_form, domain_errors, error_page, render_invalid
from objectstore import get_store
from objectstore.errors import ObjectNotFound
from objectstore.views import INLINE_TYPES
from records.forms import PatientSearchForm
from records.models import Patient
from records.selectors import (
    AccessDenied,
    NotFound,
    patient_get_for_user,
    patient_search_for_user,
)
from records.services import InvalidRecord


def _tab_label(scope: str) -> str:
    return {
        "mine": _("My requests"),
        "review": _("To pre-review"),
        "invited": _("Asked of me"),
        "all": _("All I can see"),
    }[scope]


def _tabs_for(roles: frozenset[str]) -> list[str]:
    """The list tabs a person's roles give them, the default one first."""
    tabs: list[str] = []
    if Role.COORDINATOR in roles:
        tabs.append("review")
    if Role.SPECIALIST in roles:
        tabs.append("invited")
    if roles & REQUESTER_ROLES:
        tabs.append("mine")
    tabs.append("all")
    return tabs


# --- The list --------------------------------------------------------------------------------


@session_required
@require_GET
@domain_errors
def consult_list(request: HttpRequest) -> HttpResponse:
    actor = actor_scope(request.user)
    tabs = _tabs_for(actor.roles)
    form = ListFilterForm(request.GET)
    status = 200
    error = ""
    if not form.is_valid():
        audit_invalid_form(request, form, action="consult.list")
        form, status = ListFilterForm({"scope": tabs[0]}), 400
        form.is_valid()
        error = _("Unknown filter; showing the whole list.")
    scope = form.cleaned_data.get("scope") or tabs[0]
    if scope not in SCOPES:
        scope = tabs[0]
    chosen_status = form.cleaned_data.get("status") or None
    chosen_priority = form.cleaned_data.get("priority") or ""
    consults = consult_list_for_user(
        actor=request.user, scope=cast(ListScope, scope), status=chosen_status
    )
    if chosen_priority:
        consults = [c for c in consults if c.priority == chosen_priority]
    now = display.server_now()
    rows = display.list_rows(consults)
    context = {
        "tabs": [
            {"scope": s, "label": _tab_label(s), "active": s == scope}
            for s in (tabs if scope in tabs else [*tabs, scope])
        ],
        "scope": scope,
        "form": form,
        "rows": rows,
        "error": error,
        "server_now": now,
        "can_request": _may_request(actor),
        "can_offer": Role.SPECIALIST in actor.roles,
    }
    return render(request, "consult/list.html", context, status=status)


# --- The request -----------------------------------------------------------------------------


def _may_request(scope: ActorScope) -> bool:
    return any(m.role in REQUESTER_ROLES and m.centre_id is None for m in scope.memberships)


def _patient_picker(request: HttpRequest) -> HttpResponse:
    """No resident chosen yet: search the residents the actor may see."""
    search = PatientSearchForm(request.GET)
    query = search.cleaned_data["q"] if search.is_valid() else ""
    patients = (
        patient_search_for_user(actor=acting_user(request), query=query, limit=20) if query else []
    )
    context = {"search": search, "query": query, "patients": patients, "patient": None}
    return render(request, "consult/request_form.html", context)


def _request_context(request: HttpRequest, patient: Patient) -> dict[str, Any]:
    actor = acting_user(request)
    institutions, specialties = target_choices(actor)
    return {
        "patient": patient,
        "choices": {
            "institutions": institutions,
            "specialties": specialties,
            "experts": expert_choices(actor),
            "studies": study_choices(actor, patient),
        },
    }


def _request_form(context: dict[str, Any], *args: Any, **kwargs: Any) -> ConsultRequestForm:
    return ConsultRequestForm(*args, **context["choices"], **kwargs)


@session_required
@require_http_methods(["GET", "POST"])
@domain_errors
def consult_new(request: HttpRequest) -> HttpResponse:
    action = "consult.request"
    if not _may_request(actor_scope(request.user)):
        return deny_page(
            request,
            action=action,
            reason="no requesting membership",
            message=_("Only doctors of an institution can request a consultation."),
        )
    source = request.POST if request.method == "POST" else request.GET
    if request.method == "GET" and "patient" not in source:
        return _patient_picker(request)
    query = PatientQueryForm(source)
    if not query.is_valid():
        audit_invalid_form(request, query, action=action)
        return error_page(
            request,
            status=400,
            message=_("Choose the resident first: open their record, or search for them here."),
        )
    patient = patient_get_for_user(
        actor=request.user, patient_id=query.cleaned_data["patient"], purpose="consult_form"
    )
    context = _request_context(request, patient)
    template = "consult/request_form.html"
    if request.method != "POST":
        return render(request, template, {**context, "form": _request_form(context)})
    form = _request_form(context, request.POST, request.FILES)
    if not form.is_valid():
        return render_invalid(
            request, template, context, form=form, action=action, patient_id=patient.pk
        )
    try:
        created = _create_with_files(request, patient, form)
    except InvalidRecord as exc:
        form.add_error(None, str(exc))
        return render(request, template, {**context, "form": form}, status=400)
    messages.success(
        request,
        _("Consultation %(number)s requested. You are notified as soon as it moves on.")
        % {"number": created.number},
    )
    return redirect("consult:detail", consult_id=created.pk)


def _create_with_files(request: HttpRequest, patient: Patient, form: ConsultRequestForm) -> Consult:
    """The consult and its files, all or nothing.

    Without files the service's own checks and transaction suffice. With files, a file
    refused after the consult was written rolls everything back (the stored files are
    removed); the refusal's audit event, rolled back with it, is written again.
    """
    actor = acting_user(request)
    request_kwargs = {
        "actor": actor,
        "patient_id": patient.pk,
        "consent_given": bool(form.cleaned_data["share_consent"]),
        **form.service_kwargs(),
    }
    uploads = form.uploads()
    if not uploads:
        return consult_request(**request_kwargs)
    stored: list[str] = []
    try:
        with transaction.atomic():
            consult = consult_request(**request_kwargs)
            for upload in uploads:
                attachment = consult_attach_file(
                    actor=actor,
                    consult_id=consult.pk,
                    name=upload.name or "",
                    fileobj=cast(BinaryIO, upload),
                    content_type=upload.content_type or "",
                    size=upload.size or 0,
                )
                stored.append(attachment.object_key)
    except (InvalidRecord, AccessDenied, NotFound) as exc:
        store = get_store()
        for key in stored:
            store.delete(key)
        reason = exc.args[0] if exc.args and isinstance(exc.args[0], Promise) else str(exc)
        audit_record(
            actor=actor,
            action="consult.request",
            outcome=Outcome.DENIED if isinstance(exc, AccessDenied) else Outcome.FAILED,
            resource_type="consult",
            patient_id=patient.pk,
            reason=reason,
            detail={"rolled_back": True, "files": len(uploads)},
        )
        raise
    return consult


# --- The consult page ------------------------------------------------------------------------


def _has_template(name: str) -> bool:
    try:
        get_template(name)
    except TemplateDoesNotExist:
        return False
    return True


def detail_context(detail: ConsultDetail) -> dict[str, Any]:
    """What the consult page (and the action pages beside it) draw."""
    consult = detail.consult
    now = display.server_now()
    files = [a for a in detail.attachments if a.kind == AttachmentKind.FILE]
    return {
        "detail": detail,
        "consult": consult,
        "clocks": [
            display.respond_clock_of(consult, now=now),
            display.opinion_clock_of(consult, now=now),
        ],
        "stages": display.progress(consult),
        "timeline": display.timeline(detail.events),
        "files": files,
        "studies": [a for a in detail.attachments if a.kind == AttachmentKind.STUDY],
        "labs": [a for a in detail.attachments if a.kind == AttachmentKind.LAB],
        "server_now": now,
        "opinion_partial": _has_template("consult/_opinion.html"),
        "room_url": display.optional_url("consult:room", consult.pk),
        "opinion_url": display.optional_url("consult:opinion", consult.pk),
        "recordings_url": display.optional_url("consult:recordings", consult.pk)
        if consult.recording_consent and consult.started_at is not None
        else "",
    }


@session_required
@require_GET
@domain_errors
def consult_detail(request: HttpRequest, consult_id: int) -> HttpResponse:
    detail = consult_detail_for_user(actor=request.user, consult_id=consult_id)
    return detail_page(request, detail)


def detail_page(
    request: HttpRequest, detail: ConsultDetail, *, status: int = 200, attach_error: str = ""
) -> HttpResponse:
    """The consult page; with the resident's studies not yet attached when one may attach."""
    context = detail_context(detail)
    if detail.can_attach:
        attached = {a.study_id for a in detail.attachments if a.study_id}
        context["attach_studies"] = [
            (pk, label)
            for pk, label in study_choices(acting_user(request), detail.consult.patient)
            if pk not in attached
        ]
    context["attach_error"] = attach_error
    return render(request, "consult/detail.html", context, status=status)


@session_required
@require_GET
@domain_errors
def attachment_download(
    request: HttpRequest, consult_id: int, attachment_id: int
) -> HttpResponseBase:
    attachment = attachment_for_user(
        actor=acting_user(request), consult_id=consult_id, attachment_id=attachment_id
    )
    try:
        chunks: Iterator[bytes] = get_store().open(
            attachment.object_key, expected_sha256=attachment.sha256 or None
        )
    except ObjectNotFound:
        return error_page(request, status=404, message=_("This file no longer exists."))
    content_type = attachment.content_type or "application/octet-stream"
    inline = content_type.split(";", 1)[0].strip().lower() in INLINE_TYPES
    response = StreamingHttpResponse(chunks, content_type=content_type)
    response["Content-Length"] = str(attachment.size)
    response["Content-Disposition"] = content_disposition_header(
        as_attachment=not inline, filename=attachment.title
    ) or ("inline" if inline else "attachment")
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    return response
