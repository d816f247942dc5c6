"""Resumable upload API under /api/imaging/uploads/ (tus-like; see docs/upload.md).

=============================================  ===============================================
``POST   /api/imaging/uploads/``               announce {filename, size, sha256, request}:
                                               201 new, 200 an existing one to resume or skip
``HEAD   /api/imaging/uploads/{id}/``          ``Upload-Offset`` / ``Upload-Length`` headers
``GET    /api/imaging/uploads/{id}/``          offset, state, progress, per-study outcome
``PATCH  /api/imaging/uploads/{id}/``          raw chunk at ``Upload-Offset``
                                               (``application/offset+octet-stream``): 204
``POST   /api/imaging/uploads/{id}/finish/``   verify the checksum and ingest: 202
=============================================  ===============================================

Thin: every decision is in ``imaging.uploads``; these views translate headers and errors.
"""

from __future__ import annotations

import io
from typing import Any, BinaryIO, cast
from uuid import UUID

from django.utils.translation import get_language
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import acting_user
from imaging import uploads
from imaging.models import Upload
from imaging.upload_ingest import PROBLEM_STATUSES

OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
PROBLEMS_SHOWN = 500

OFFSET_HEADER = OpenApiParameter(
    "Upload-Offset",
    int,
    location=OpenApiParameter.HEADER,
    description="Bytes the server holds: the offset to send the next chunk from.",
    response=True,
)


class UploadStartSerializer(serializers.Serializer[Any]):
    filename = serializers.CharField(max_length=1000)
    size = serializers.IntegerField(min_value=1)
    sha256 = serializers.RegexField(r"^[0-9a-fA-F]{64}$")
    request = serializers.IntegerField(required=False, allow_null=True, default=None)


class UploadFileSerializer(serializers.Serializer[Any]):
    name = serializers.CharField()
    status = serializers.ChoiceField(
        choices=["stored", "duplicate", "rejected", "conflict", "error"]
    )
    code = serializers.CharField(help_text="stable reason code for machines, e.g. not_dicom")
    reason = serializers.CharField(help_text="for a person, in the uploader's language")
    study_uid = serializers.CharField(allow_blank=True)
    sop_uid = serializers.CharField(allow_blank=True)


class UploadStudySerializer(serializers.Serializer[Any]):
    study_uid = serializers.CharField()
    date = serializers.CharField(allow_blank=True)
    description = serializers.CharField(allow_blank=True)
    modalities = serializers.ListField(child=serializers.CharField())
    stored = serializers.IntegerField()
    duplicate = serializers.IntegerField()


class UploadCountsSerializer(serializers.Serializer[Any]):
    stored = serializers.IntegerField()
    duplicate = serializers.IntegerField()
    rejected = serializers.IntegerField()
    conflict = serializers.IntegerField()
    error = serializers.IntegerField()


class UploadSerializer(serializers.Serializer[Any]):
    id = serializers.UUIDField()
    filename = serializers.CharField()
    size = serializers.IntegerField()
    offset = serializers.IntegerField(help_text="bytes received so far")
    status = serializers.ChoiceField(choices=["receiving", "complete", "failed"])
    state = serializers.ChoiceField(
        choices=[
            "receiving",
            "queued",
            "verifying",
            "ingesting",
            "interrupted",
            "done",
            "failed",
        ],
        help_text="interrupted: finish again to resume",
    )
    request = serializers.IntegerField(allow_null=True)
    total = serializers.IntegerField(allow_null=True, help_text="files to ingest, once known")
    processed = serializers.IntegerField(help_text="files ingested so far")
    skipped = serializers.IntegerField(help_text="archive entries ignored (folders, DICOMDIR)")
    counts = UploadCountsSerializer()
    code = serializers.CharField(allow_blank=True, help_text="why the whole upload failed")
    reason = serializers.CharField(allow_blank=True)
    studies = UploadStudySerializer(many=True)
    problems = UploadFileSerializer(many=True, help_text="files not stored, with the reason")
    files = UploadFileSerializer(many=True, required=False, help_text="only with ?files=1")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


def upload_data(upload: Upload, *, with_files: bool = False) -> dict[str, Any]:
    """The JSON view of an upload: offset, progress and the outcome so far."""
    outcome: dict[str, Any] = upload.outcome if isinstance(upload.outcome, dict) else {}
    files: list[dict[str, Any]] = list(outcome.get("files", []))
    counts = dict.fromkeys(("stored", "duplicate", "rejected", "conflict", "error"), 0)
    counts.update(outcome.get("counts", {}))
    data: dict[str, Any] = {
        "id": upload.pk,
        "filename": upload.filename,
        "size": upload.size,
        "offset": upload.received,
        "status": upload.status,
        "state": uploads.ingest_state(upload),
        "request": upload.request_id,
        "total": outcome.get("total"),
        "processed": int(outcome.get("processed", 0)),
        "skipped": int(outcome.get("skipped", 0)),
        "counts": counts,
        "code": str(outcome.get("code", "")),
        "reason": str(outcome.get("reason", "")),
        "studies": [
            {"study_uid": uid, **summary}
            for uid, summary in dict(outcome.get("studies", {})).items()
        ],
        "problems": [f for f in files if f.get("status") in PROBLEM_STATUSES][:PROBLEMS_SHOWN],
        "created_at": upload.created_at,
        "updated_at": upload.updated_at,
    }
    if with_files:
        data["files"] = files
    return cast(dict[str, Any], UploadSerializer(data).data)


def _offset_headers(upload: Upload) -> dict[str, str]:
    return {
        "Upload-Offset": str(upload.received),
        "Upload-Length": str(upload.size),
        "Cache-Control": "no-store",
    }


def _refused(exc: uploads.UploadRefused) -> Response:
    body: dict[str, Any] = {"detail": exc.message, "code": exc.code}
    headers = {"Cache-Control": "no-store"}
    if isinstance(exc, uploads.OffsetMismatch):
        body["offset"] = exc.offset
        headers["Upload-Offset"] = str(exc.offset)
    return Response(body, status=exc.http_status, headers=headers)


def _detail(message: str, code: str, http_status: int) -> Response:
    return Response({"detail": message, "code": code}, status=http_status)


class UploadListApi(APIView):
    @extend_schema(
        request=UploadStartSerializer,
        responses={
            201: UploadSerializer,
            200: OpenApiResponse(
                UploadSerializer,
                description="The same bytes were announced before: resume from `offset`,"
                " or skip them if `status` is `complete`.",
            ),
        },
        summary="Announce a file (a DICOM file or a zip) to upload in chunks",
    )
    def post(self, request: Request) -> Response:
        data = UploadStartSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        try:
            upload, created = uploads.upload_start(
                actor=acting_user(request),
                filename=values["filename"],
                size=values["size"],
                sha256=values["sha256"],
                request_id=values["request"],
            )
        except uploads.UploadRefused as exc:
            return _refused(exc)
        return Response(
            upload_data(upload),
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
            headers={
                **_offset_headers(upload),
                "Location": f"{request.path.rstrip('/')}/{upload.pk}/",
            },
        )


class UploadDetailApi(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("files", bool, description="include every file's outcome")],
        responses={200: UploadSerializer},
        summary="An upload's offset, processing state and outcome",
    )
    def get(self, request: Request, upload_id: UUID) -> Response:
        upload = uploads.upload_status(actor=acting_user(request), upload_id=upload_id)
        with_files = request.query_params.get("files") in ("1", "true")
        return Response(upload_data(upload, with_files=with_files), headers=_offset_headers(upload))

    @extend_schema(
        parameters=[OFFSET_HEADER],
        responses={200: OpenApiResponse(description="Headers only: Upload-Offset, Upload-Length")},
        summary="Where to resume: the offset in the Upload-Offset header",
    )
    def head(self, request: Request, upload_id: UUID) -> Response:
        upload = uploads.upload_status(actor=acting_user(request), upload_id=upload_id)
        return Response(status=status.HTTP_200_OK, headers=_offset_headers(upload))

    @extend_schema(
        request={OFFSET_CONTENT_TYPE: OpenApiTypes.BINARY},
        parameters=[
            OpenApiParameter(
                "Upload-Offset",
                int,
                location=OpenApiParameter.HEADER,
                required=True,
                description="Where this chunk starts; must equal the server's offset.",
            ),
            OFFSET_HEADER,
        ],
        responses={
            204: OpenApiResponse(description="Stored; the new offset is in Upload-Offset"),
            409: OpenApiResponse(description="Wrong offset: resume from `offset` in the body"),
            413: OpenApiResponse(description="Chunk over 8 MiB"),
            415: OpenApiResponse(description="Content-Type is not application/offset+octet-stream"),
        },
        summary="Append one chunk (at most 8 MiB) at Upload-Offset",
    )
    def patch(self, request: Request, upload_id: UUID) -> Response:
        actor = acting_user(request)
        content_type = request.content_type.split(";")[0].strip().lower()
        if content_type != OFFSET_CONTENT_TYPE:
            return _detail(
                _("Send chunks as application/offset+octet-stream."),
                "bad_content_type",
                status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            )
        try:
            offset = int(request.headers.get("Upload-Offset", ""))
            length = int(request.META.get("CONTENT_LENGTH") or "")
        except ValueError:
            return _detail(
                _("Upload-Offset and Content-Length must be whole numbers."),
                "bad_headers",
                status.HTTP_400_BAD_REQUEST,
            )
        if offset < 0 or length < 0:
            return _detail(
                _("Upload-Offset and Content-Length must be whole numbers."),
                "bad_headers",
                status.HTTP_400_BAD_REQUEST,
            )
        # The raw body, read as a stream: never request.body or request.data.
        stream = cast(BinaryIO, request.stream or io.BytesIO())
        try:
            upload = uploads.upload_append(
                actor=actor,
                upload_id=upload_id,
                offset=offset,
                chunk_stream=stream,
                length=length,
            )
        except uploads.UploadRefused as exc:
            return _refused(exc)
        return Response(status=status.HTTP_204_NO_CONTENT, headers=_offset_headers(upload))


class UploadFinishApi(APIView):
    @extend_schema(
        request=None,
        responses={
            202: UploadSerializer,
            409: OpenApiResponse(description="Bytes are missing: resume from `offset`"),
        },
        summary="All bytes sent: verify the SHA-256 and ingest (in the background)",
    )
    def post(self, request: Request, upload_id: UUID) -> Response:
        try:
            upload = uploads.upload_finish(
                actor=acting_user(request), upload_id=upload_id, language=get_language()
            )
        except uploads.UploadRefused as exc:
            return _refused(exc)
        return Response(
            upload_data(upload), status=status.HTTP_202_ACCEPTED, headers=_offset_headers(upload)
        )
