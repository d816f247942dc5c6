"""File sharing in the consult room over HTTP (the socket carries only the announcement).

``POST consults/<id>/room/files/`` (multipart, one ``file``) answers JSON for
the room page's script: 201 with the ``chat`` message, or ``{"error", "message"}`` with
400/403/404/413/503. ``GET consults/<id>/room/files/<attachment id>/`` streams the file.
"""

from __future__ import annotations

from django import forms
from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from accounts.views import acting_user, session_required
from audit.models import Outcome
from consult.room import files
from consult.room.services import chat_payload, room_audit
from core.views import domain_errors
from objectstore import StoreUnavailable
from records.selectors import AccessDenied
from records.services import InvalidRecord

# Room for the multipart envelope around the file.
MULTIPART_OVERHEAD = 64 * 1024


class RoomFileForm(forms.Form):
    file = forms.FileField()


def _error(code: str, message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": code, "message": message}, status=status)


def _too_large() -> JsonResponse:
    limit = files.MAX_ROOM_FILE_BYTES // 2**20
    return _error("too_large", _("The file is larger than %(limit)d MB.") % {"limit": limit}, 413)


@session_required
@require_POST
def room_file_upload(request: HttpRequest, consult_id: int) -> HttpResponseBase:
    actor = acting_user(request)
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > files.MAX_ROOM_FILE_BYTES + MULTIPART_OVERHEAD:
        # Refused before a byte of the body is read.
        room_audit(
            actor=actor,
            consult_id=consult_id,
            action="consult.room.file.upload",
            outcome=Outcome.FAILED,
            reason="file too large",
            detail={"content_length": declared},
        )
        return _too_large()
    form = RoomFileForm(request.POST, request.FILES)
    if not form.is_valid():
        room_audit(
            actor=actor,
            consult_id=consult_id,
            action="consult.room.file.upload",
            outcome=Outcome.FAILED,
            reason="invalid form: " + ", ".join(sorted(form.errors)),
        )
        return _error("invalid", _("Please choose one file to share."), 400)
    upload = form.cleaned_data["file"]
    try:
        message = files.room_file_share(
            actor=actor,
            consult_id=consult_id,
            name=upload.name or "",
            fileobj=upload,
            size=upload.size or 0,
            content_type=upload.content_type,
        )
    except AccessDenied as exc:
        return _error("forbidden", str(exc), 403)
    except files.FileTooLarge:
        return _too_large()
    except InvalidRecord as exc:
        return _error("invalid", str(exc), 400)
    except StoreUnavailable:
        return _error(
            "unavailable", _("The file store cannot be reached. Please try again later."), 503
        )
    return JsonResponse({"type": "chat", **chat_payload(message)}, status=201)


@session_required
@require_GET
@domain_errors
def room_file_download(
    request: HttpRequest, consult_id: int, attachment_id: int
) -> HttpResponseBase:
    attachment, stream = files.room_file_open(
        actor=acting_user(request), consult_id=consult_id, attachment_id=attachment_id
    )
    response = StreamingHttpResponse(
        stream, content_type=attachment.content_type or files.DEFAULT_CONTENT_TYPE
    )
    response["Content-Disposition"] = (
        content_disposition_header(as_attachment=True, filename=attachment.title) or "attachment"
    )
    response["Content-Length"] = str(attachment.size)
    response["X-Content-Type-Options"] = "nosniff"
    # Whatever was uploaded, it never runs as a page of ours.
    response["Content-Security-Policy"] = "sandbox; default-src 'none'"
    response["Cache-Control"] = "private, no-store"
    return response
