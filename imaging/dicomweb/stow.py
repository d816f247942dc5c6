"""STOW-RS, the Studies Store transaction (PS3.18 §10.5): DICOM instances over HTTP.

``POST /dicomweb/studies[/{study}]`` with ``Content-Type: multipart/related;
type="application/dicom"; boundary=...``, one Part 10 file per part. The body is read as
a stream, one part at a time into a temporary file (in memory up to
:data:`SPOOL_BYTES`, then on disk); each part is validated and its bytes stored
(:func:`imaging.ingest.instance_prepare`) as it arrives, and the parts are indexed
together, :data:`imaging.ingest_batch.BATCH_SIZE` at a time
(:func:`imaging.ingest_batch.instances_index`), for the uploader's institution. Ingest
audits every instance it stores or refuses.

The answer is a Store Instances Response Module (PS3.18 Annex I) in DICOM JSON:
Referenced SOP Sequence for the instances stored (a duplicate of an instance already held
counts as stored), Failed SOP Sequence with a Failure Reason
(:class:`imaging.dicom.failures.FailureReason`) for the others. Status 200 when every
part was stored, 202 when some were, 409 when none were; 400 for a body that is not
valid multipart, 415 for another media type.

The standard has no attribute for a sentence a person can read, so each Failed SOP
Sequence item also carries a private block (PS3.5 §7.8) reserved by
``(0009,0010) = "TELEMED 1"``: ``(0009,1001)`` LO the stable reason code (``truncated``,
``other_patient``, ...) and ``(0009,1002)`` UT the reason in the request's language.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from typing import Any, BinaryIO, cast

import pydicom
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext as _
from pydicom.uid import DeflatedExplicitVRLittleEndian

from accounts.models import User
from association.models import Institution
from association.selectors import actor_scope
from audit.models import Outcome
from audit.services import audit_record
from imaging.dicom.failures import FailureReason, rejected_reason
from imaging.dicom.validate import DEFAULT_LIMITS, Rejected, is_valid_uid
from imaging.dicomweb.multipart_related import (
    MalformedMultipart,
    MultipartReader,
    is_valid_boundary,
)
from imaging.dicomweb.responses import error_response
from imaging.ingest import Conflict, IngestResult, Origin, Prepared, instance_prepare
from imaging.ingest_batch import BATCH_SIZE, instances_index
from objectstore import get_store
from objectstore.errors import ObjectStoreError

logger = logging.getLogger(__name__)

DICOM = "application/dicom"
DICOM_JSON = "application/dicom+json"
SPOOL_BYTES = 4 * 1024 * 1024
PRIVATE_CREATOR = "TELEMED 1"
_PEEK_TAGS = [0x00080016, 0x00080018, 0x0020000D]  # SOP Class, SOP Instance, Study UIDs


@dataclass(frozen=True)
class _Uids:
    sop_class: str = ""
    sop_instance: str = ""
    study: str = ""


@dataclass(frozen=True)
class _Stored:
    sop_class: str
    sop_instance: str
    series: str
    study: str


@dataclass(frozen=True)
class _Failed:
    reason: FailureReason
    code: str
    message: str
    uids: _Uids = field(default_factory=_Uids)


def stow(request: HttpRequest, study_uid: str | None) -> HttpResponse:
    """Store the instances of a STOW-RS request; the caller has authenticated the user."""
    user = request.user
    if not isinstance(user, User) or not user.is_authenticated:
        return error_response(401, _("Authentication is required."))
    if request.method != "POST":
        response = error_response(405, _("Use POST to store instances."))
        response["Allow"] = "POST"
        return response
    if study_uid is not None and not is_valid_uid(study_uid):
        return error_response(400, _("The Study Instance UID in the URL is not a valid UID."))
    params = request.content_params or {}
    if request.content_type != "multipart/related" or params.get("type", DICOM).lower() != DICOM:
        return error_response(
            415, _('Send multipart/related; type="application/dicom", one DICOM file per part.')
        )
    boundary = params.get("boundary", "")
    if not is_valid_boundary(boundary):
        return error_response(400, _("The multipart boundary is missing or not valid."))
    media_type = _response_media_type(request)
    if media_type is None:
        return error_response(406, _("The response is DICOM JSON (application/dicom+json)."))
    institution = _uploader_institution(user)
    if institution is None:
        return error_response(403, _("Only doctors of a care institution may store images."))

    origin = Origin(institution=institution, channel="stow", user=user)
    parts = _Parts(origin)
    reader = MultipartReader(request, boundary)
    try:
        while (headers := reader.next_part()) is not None:
            parts.add(_store_part(reader, headers, origin=origin, study_uid=study_uid))
    except MalformedMultipart as exc:
        logger.info("STOW-RS body is not valid multipart: %s", exc)
        outcomes = parts.finish()
        if not any(isinstance(o, _Stored) for o in outcomes):
            return error_response(400, _("The request body is not valid multipart/related."))
        message = _("The request body ends early or is not valid multipart; later parts lost.")
        outcomes.append(_Failed(FailureReason.CANNOT_UNDERSTAND, "malformed_multipart", message))
    except BaseException:
        parts.abandon()
        raise
    else:
        outcomes = parts.finish()
    if not outcomes:
        return error_response(400, _("The request has no parts."))
    return _answer(request, outcomes, study_uid=study_uid, media_type=media_type)


def _response_media_type(request: HttpRequest) -> str | None:
    for media_type in (DICOM_JSON, "application/json"):
        if request.accepts(media_type):
            return media_type
    return None


def _uploader_institution(user: User) -> Institution | None:
    """The first institution the user treats at: the one the images are sent for."""
    scope = actor_scope(user)
    for membership in scope.memberships:
        if membership.institution_id in scope.care_institution_ids:
            return membership.institution
    return None


def _store_part(
    reader: MultipartReader, headers: dict[str, str], *, origin: Origin, study_uid: str | None
) -> Prepared | _Failed:
    media_type = headers.get("content-type", DICOM).split(";", 1)[0].strip().lower()
    if media_type != DICOM:
        reader.copy_body(None)
        return _refuse(
            origin,
            _Failed(
                FailureReason.CANNOT_UNDERSTAND,
                "not_application_dicom",
                _("This part is not application/dicom."),
            ),
        )
    limit = DEFAULT_LIMITS.max_file_bytes
    with tempfile.SpooledTemporaryFile(SPOOL_BYTES, dir=settings.FILE_UPLOAD_TEMP_DIR) as spool:
        size = reader.copy_body(spool, limit=limit)
        fileobj = cast(BinaryIO, spool)
        if size > limit:
            too_large = _("The file is larger than the size limit.")
            return _refuse(origin, _Failed(FailureReason.OUT_OF_RESOURCES, "too_large", too_large))
        if study_uid is not None:
            uids = _peek(fileobj)
            if uids.study and uids.study != study_uid:
                message = _("This instance belongs to another study than the one in the URL.")
                failed = _Failed(FailureReason.STUDY_MISMATCH, "study_mismatch", message, uids)
                return _refuse(origin, failed)
        return _prepare(fileobj, origin=origin)


def _prepare(fileobj: BinaryIO, *, origin: Origin) -> Prepared | _Failed:
    try:
        return instance_prepare(fileobj, origin=origin)
    except Rejected as exc:  # audited by ingest
        return _Failed(rejected_reason(exc), exc.code, str(exc.message), _peek(fileobj))
    except Exception as exc:
        return _failure(origin, exc, _peek(fileobj))


def _failure(origin: Origin, exc: Exception, uids: _Uids) -> _Failed:
    """The answer for an instance that failed while stored or indexed."""
    if isinstance(exc, Conflict):  # audited by ingest
        return _Failed(FailureReason.UID_CONFLICT, exc.code, str(exc.message), uids)
    if isinstance(exc, ObjectStoreError):
        logger.error("STOW-RS: the object store failed", exc_info=exc)
        message = _("The image store is not available; try again later.")
        failed = _Failed(FailureReason.OUT_OF_RESOURCES, "store_unavailable", message)
        return _refuse(origin, failed, uids=uids)
    logger.error("STOW-RS: ingest failed", exc_info=exc)
    message = _("The server failed to store this instance.")
    failed = _Failed(FailureReason.PROCESSING_FAILURE, "processing_failure", message)
    return _refuse(origin, failed, uids=uids)


class _Parts:
    """The outcome of each part in order; prepared parts are indexed a batch at a time."""

    def __init__(self, origin: Origin) -> None:
        self._origin = origin
        self._outcomes: list[_Stored | _Failed | None] = []
        self._pending: list[tuple[int, Prepared]] = []

    def add(self, outcome: Prepared | _Failed) -> None:
        if isinstance(outcome, _Failed):
            self._outcomes.append(outcome)
            return
        self._pending.append((len(self._outcomes), outcome))
        self._outcomes.append(None)
        if len(self._pending) >= BATCH_SIZE:
            self._index()

    def finish(self) -> list[_Stored | _Failed]:
        self._index()
        return [o for o in self._outcomes if o is not None]

    def abandon(self) -> None:
        """The request failed midway: remove what was stored and not indexed."""
        store = get_store()
        for _position, item in self._pending:
            store.delete(item.key)
        self._pending.clear()

    def _index(self) -> None:
        pending, self._pending = self._pending, []
        if not pending:
            return
        items = [item for _position, item in pending]
        try:
            results: list[IngestResult | Exception] = list(
                instances_index(items, origin=self._origin)
            )
        except Exception as exc:  # the batch's objects are already removed
            results = [exc] * len(items)
        for (position, item), result in zip(pending, results, strict=True):
            self._outcomes[position] = _answer_for(self._origin, item, result)


def _answer_for(
    origin: Origin, item: Prepared, result: IngestResult | Exception
) -> _Stored | _Failed:
    valid = item.header
    if isinstance(result, Exception):
        return _failure(origin, result, _Uids(valid.sop_class_uid, valid.sop_uid, valid.study_uid))
    instance = result.instance
    series = instance.series
    return _Stored(
        instance.sop_class_uid, instance.sop_uid, series.series_uid, series.study.study_uid
    )


def _refuse(origin: Origin, failed: _Failed, *, uids: _Uids | None = None) -> _Failed:
    """Audit a part refused before or around ingest (ingest audits its own refusals)."""
    if uids is not None:
        failed = _Failed(failed.reason, failed.code, failed.message, uids)
    audit_record(
        actor=origin.user,
        action="imaging.ingest",
        outcome=Outcome.FAILED,
        resource_type="instance",
        resource_id=failed.uids.sop_instance,
        reason=failed.code,
        detail={"channel": origin.channel, "institution": origin.institution.pk},
    )
    return failed


def _peek(fileobj: BinaryIO) -> _Uids:
    """The SOP Class, SOP Instance and Study UIDs if they can be read cheaply and are valid.

    Deflated data sets are not peeked into: inflating them here would bypass the
    inflated-size cap that validation applies.
    """
    try:
        fileobj.seek(0)
        pydicom.filereader.read_preamble(fileobj, False)
        # Reads the group-2 meta only (no public equivalent for an open file).
        meta = pydicom.filereader._read_file_meta_info(fileobj)
        if meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian:
            return _Uids()
        fileobj.seek(0)
        ds = pydicom.dcmread(
            fileobj, stop_before_pixels=True, defer_size=1024, specific_tags=_PEEK_TAGS
        )
        values = [str(ds.get(tag).value or "") if tag in ds else "" for tag in _PEEK_TAGS]
    except Exception:  # a file ingest refused can be broken in any way
        return _Uids()
    finally:
        fileobj.seek(0)
    return _Uids(*(value if is_valid_uid(value) else "" for value in values))


def _answer(
    request: HttpRequest,
    outcomes: list[_Stored | _Failed],
    *,
    study_uid: str | None,
    media_type: str,
) -> HttpResponse:
    stored = [o for o in outcomes if isinstance(o, _Stored)]
    failed = [o for o in outcomes if isinstance(o, _Failed)]
    base = _base_path(request)
    studies = {o.study for o in stored}
    study = study_uid or (studies.pop() if len(studies) == 1 else None)
    body: dict[str, Any] = {
        "00081190": _element("UR", *([_url(request, base, study)] if study else [])),
    }
    if failed:
        body["00081198"] = _element("SQ", *(_failed_item(o) for o in failed))
    if stored:
        body["00081199"] = _element("SQ", *(_stored_item(request, base, o) for o in stored))
    status = 200 if not failed else 202 if stored else 409
    response = JsonResponse(
        body, status=status, content_type=media_type, json_dumps_params={"ensure_ascii": False}
    )
    response["Cache-Control"] = "no-store"
    return response


def _base_path(request: HttpRequest) -> str:
    """The DICOMweb root the request came through (``/dicomweb`` behind any prefix)."""
    head, found, _tail = request.path.rpartition("/studies")
    return head if found else request.path.rstrip("/")


def _url(request: HttpRequest, base: str, study: str, series: str = "", sop: str = "") -> str:
    path = f"{base}/studies/{study}"
    if series:
        path += f"/series/{series}/instances/{sop}"
    return request.build_absolute_uri(path)


def _element(vr: str, *values: Any) -> dict[str, Any]:
    return {"vr": vr, "Value": list(values)} if values else {"vr": vr}


def _stored_item(request: HttpRequest, base: str, stored: _Stored) -> dict[str, Any]:
    return {
        "00081150": _element("UI", stored.sop_class),
        "00081155": _element("UI", stored.sop_instance),
        "00081190": _element(
            "UR", _url(request, base, stored.study, stored.series, stored.sop_instance)
        ),
    }


def _failed_item(failed: _Failed) -> dict[str, Any]:
    uids = failed.uids
    return {
        "00081150": _element("UI", *([uids.sop_class] if uids.sop_class else [])),
        "00081155": _element("UI", *([uids.sop_instance] if uids.sop_instance else [])),
        "00081197": _element("US", int(failed.reason)),
        "00090010": _element("LO", PRIVATE_CREATOR),
        "00091001": _element("LO", failed.code),
        "00091002": _element("UT", failed.message),
    }
