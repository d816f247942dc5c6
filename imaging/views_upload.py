"""The upload page: files, folders or a zip from the clinic, resumable, with progress.

The page is a shell; frontend/static/js/upload.js does the work against the upload API
(imaging/upload_api.py). Labels the script shows come from the template, translated.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from accounts.views import acting_user, session_required
from association.selectors import actor_scope
from audit.models import Outcome
from audit.services import audit_record
from core.views import domain_errors
from imaging.models import ImagingRequest
from imaging.selectors import requests_visible_to
from imaging.uploads import MAX_CHUNK_BYTES, MAX_UPLOAD_BYTES, uploads_unfinished_for
from records.selectors import AccessDenied, NotFound

# The browser sends 1 MiB chunks at first and adapts to the link, up to this size.
CHUNK_BYTES = 1024 * 1024
# Files of one study travel as uncompressed zips of at most this size.
PART_BYTES = 256 * 1024 * 1024


def _request_for_page(request: HttpRequest) -> ImagingRequest | None:
    raw = request.GET.get("request", "").strip()
    if not raw:
        return None
    actor = acting_user(request)
    found = (
        requests_visible_to(actor_scope(actor))
        .select_related("patient")
        .filter(pk=int(raw) if raw.isdigit() else 0)
        .first()
    )
    audit_record(
        actor=actor,
        action="imaging.request.view",
        outcome=Outcome.ALLOWED if found else Outcome.FAILED,
        resource_type="imaging_request",
        resource_id=raw[:20],
        patient_id=found.patient_id if found else None,
        reason="" if found else "no such request or not visible",
        detail={"page": "upload"},
    )
    if found is None:
        raise NotFound(_("No such imaging request."))
    return found


def _study_url_pattern() -> str:
    """The study viewer's address with ``{uid}`` for the script to fill, if there is one."""
    try:
        return reverse("imaging:study-view", args=["UID"]).replace("UID", "{uid}")
    except NoReverseMatch:
        return ""


@session_required
@require_GET
@domain_errors
def upload_page(request: HttpRequest) -> HttpResponse:
    actor = acting_user(request)
    imaging_request = _request_for_page(request)
    if imaging_request is None and not actor_scope(actor).care_institution_ids:
        audit_record(
            actor=actor,
            action="imaging.upload",
            outcome=Outcome.DENIED,
            resource_type="upload",
            reason="no clinic to upload for",
            detail={"page": "upload"},
        )
        raise AccessDenied(_("Only doctors of a clinic or hospital can upload images."))
    context = {
        "imaging_request": imaging_request,
        "unfinished": list(uploads_unfinished_for(actor=actor)[:20]),
        "api_url": reverse("api-imaging-uploads"),
        "chunk_bytes": CHUNK_BYTES,
        "max_chunk_bytes": MAX_CHUNK_BYTES,
        "part_bytes": PART_BYTES,
        "max_upload_bytes": MAX_UPLOAD_BYTES,
        "study_url": _study_url_pattern(),
    }
    return render(request, "imaging/upload.html", context)
