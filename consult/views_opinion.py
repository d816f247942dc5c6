"""Pages of the consult opinion and recordings, mounted under /consults/.

Thin: reads go through ``consult.opinion`` / ``consult.recordings`` selectors (which audit),
writes through their services; these views only turn forms and domain errors into HTTP. A
refused write shows the page again with the reason, as a 400.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_safe

from accounts.views import acting_user, session_required
from consult.forms_opinion import AmendForm, DraftForm, OpinionForm, PdfQueryForm
from consult.opinion import (
    ACTION_AMEND,
    ACTION_PDF,
    ACTION_SAVE,
    ACTION_SIGN,
    OpinionContent,
    OpinionPage,
    opinion_amend,
    opinion_page_for_user,
    opinion_pdf_for_user,
    opinion_save_draft,
    opinion_sign,
)
from consult.recordings import (
    RangeNotSatisfiable,
    recording_open_for_user,
    recordings_page_for_user,
)
from consult.workflow_common import consult_link
from core.views import audit_invalid_form, domain_errors, error_page
from objectstore import ObjectStoreError
from records.services import InvalidRecord

TEMPLATE = "consult/opinion_form.html"


def _initial(page: OpinionPage) -> dict[str, object]:
    if page.opinion is None:
        return {}
    content = OpinionContent.of(page.opinion)
    return {name: getattr(content, name) for name in OpinionContent.__dataclass_fields__}


def _page(
    request: HttpRequest, page: OpinionPage, *, form: OpinionForm | None, status: int = 200
) -> HttpResponse:
    context = {
        "page": page,
        "consult": page.consult,
        "opinion": page.opinion,
        "form": form,
        "amending": isinstance(form, AmendForm),
        "back": consult_link(page.consult.pk),
    }
    return render(request, TEMPLATE, context, status=status)


def _unavailable(request: HttpRequest) -> HttpResponse:
    return error_page(
        request,
        status=503,
        message=_("The signed PDF could not be stored just now. Nothing was signed; try again."),
    )


@session_required
@require_http_methods(["GET", "POST"])
@domain_errors
def opinion(request: HttpRequest, pk: int) -> HttpResponse:
    """The expert's draft and signature, the amendment form once signed; read-only otherwise."""
    actor = acting_user(request)
    page = opinion_page_for_user(actor=actor, consult_id=pk)
    amending = page.can_amend and (request.method == "POST" or request.GET.get("amend") == "1")
    form_class = AmendForm if amending else DraftForm
    if request.method != "POST":
        form = form_class(initial=_initial(page)) if page.can_write or amending else None
        return _page(request, page, form=form)
    form = form_class(request.POST)
    action = ACTION_AMEND if amending else ACTION_SAVE
    if not amending and request.POST.get("action") == "sign":
        action = ACTION_SIGN
    if not form.is_valid():
        audit_invalid_form(request, form, action=action, patient_id=page.consult.patient_id)
        return _page(request, page, form=form, status=400)
    try:
        if isinstance(form, AmendForm):
            opinion_amend(
                actor=actor, consult_id=pk, reason=form.cleaned_data["reason"], **form.content()
            )
            messages.success(
                request, _("Amendment signed. The requesting doctor has been notified.")
            )
            return redirect(consult_link(pk))
        if form.cleaned_data["action"] == "sign":
            opinion_sign(actor=actor, consult_id=pk, **form.content())
            messages.success(request, _("Opinion signed. The requesting doctor has been notified."))
            return redirect(consult_link(pk))
        opinion_save_draft(actor=actor, consult_id=pk, **form.content())
    except InvalidRecord as exc:  # audited by the service
        form.add_error(None, str(exc))
        page = opinion_page_for_user(actor=actor, consult_id=pk)
        return _page(request, page, form=form, status=400)
    except ObjectStoreError:
        return _unavailable(request)
    messages.success(request, _("Draft saved."))
    return redirect("consult:opinion", pk=pk)


@session_required
@require_GET
@domain_errors
def opinion_pdf(request: HttpRequest, pk: int) -> HttpResponseBase:
    """The signed opinion's PDF (``?version=N`` for an earlier version)."""
    query = PdfQueryForm(request.GET)
    if not query.is_valid():
        audit_invalid_form(request, query, action=ACTION_PDF)
        return error_page(request, status=400, message=_("The version must be a whole number."))
    chunks, filename = opinion_pdf_for_user(
        actor=acting_user(request), consult_id=pk, version=query.cleaned_data["version"]
    )
    response = StreamingHttpResponse(chunks, content_type="application/pdf")
    response["Content-Disposition"] = content_disposition_header(False, filename) or "inline"
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


@session_required
@require_GET
@domain_errors
def recordings(request: HttpRequest, pk: int) -> HttpResponse:
    """The consult's recordings, with a player each (participants only)."""
    consult, rows = recordings_page_for_user(actor=acting_user(request), consult_id=pk)
    context = {"consult": consult, "recordings": rows, "back": consult_link(pk)}
    return render(request, "consult/recordings.html", context)


@session_required
@require_safe
@domain_errors
def recording(request: HttpRequest, pk: int) -> HttpResponseBase:
    """Stream a recording, honouring ``Range`` so the player can seek; each open is audited."""
    try:
        playback = recording_open_for_user(
            actor=acting_user(request),
            recording_id=pk,
            byte_range=request.headers.get("Range", ""),
        )
    except RangeNotSatisfiable as exc:
        refusal = HttpResponse(status=416)
        refusal["Content-Range"] = f"bytes */{exc.total}"
        return refusal
    response = StreamingHttpResponse(
        playback.chunks if request.method == "GET" else iter(()),
        status=206 if playback.partial else 200,
        content_type=playback.recording.content_type or "video/webm",
    )
    if request.method != "GET":
        playback.close()
    response["Content-Length"] = str(playback.length)
    response["Accept-Ranges"] = "bytes"
    if playback.partial:
        response["Content-Range"] = f"bytes {playback.start}-{playback.end}/{playback.total}"
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response
