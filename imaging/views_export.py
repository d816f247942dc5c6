"""Download a study de-identified."""

from __future__ import annotations

from django.http import HttpRequest, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.http import require_GET

from accounts.views import acting_user, session_required
from core.views import domain_errors
from imaging.export import study_export_for_user


@session_required
@require_GET
@domain_errors
def study_export(request: HttpRequest, study_uid: str) -> HttpResponseBase:
    study, stream = study_export_for_user(actor=acting_user(request), study_uid=study_uid)
    response = StreamingHttpResponse(stream, content_type="application/zip")
    name = f"study-{study.pk}-deidentified.zip"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["Cache-Control"] = "private, no-store"
    return response
