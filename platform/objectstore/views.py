"""Downloads through signed links: the local backend's presigned URLs."""

from __future__ import annotations

from django.core import signing
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseBase
from django.utils.translation import gettext
from django.views.decorators.http import require_safe

from objectstore.errors import ObjectNotFound
from objectstore.local import LocalStore
from objectstore.registry import get_store
from objectstore.tokens import unsign_download

# Shown inline by the browser; anything else (HTML, SVG, scripts...) is served as an
# attachment so that an uploaded file can never run as a page of this site.
INLINE_TYPES = frozenset(
    {
        "application/pdf",
        "image/gif",
        "image/jpeg",
        "image/png",
        "image/webp",
        "text/plain",
        "video/mp4",
        "video/webm",
        "audio/mpeg",
        "audio/ogg",
    }
)


def _plain(status: int, message: str) -> HttpResponse:
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


@require_safe
def download(request: HttpRequest, token: str) -> HttpResponseBase:
    """Stream the object a valid, unexpired token grants; 403 otherwise, 404 if gone."""
    try:
        grant = unsign_download(token)
    except signing.SignatureExpired:
        return _plain(403, gettext("This download link has expired. Please request a new one."))
    except signing.BadSignature:
        return _plain(403, gettext("This download link is not valid."))
    store = get_store()
    if not isinstance(store, LocalStore):  # S3 issues its own presigned URLs
        return _plain(404, gettext("This file is not available here."))
    try:
        handle, info = store.open_file(grant.key)
    except ObjectNotFound:
        return _plain(404, gettext("This file no longer exists."))
    base_type = info.content_type.split(";", 1)[0].strip().lower()
    response = FileResponse(
        handle,
        content_type=info.content_type,
        as_attachment=grant.filename is not None or base_type not in INLINE_TYPES,
        filename=grant.filename or "",
    )
    response["Cache-Control"] = "private, no-store"
    return response
