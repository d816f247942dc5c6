"""Ingest one DICOM instance: validate, store whole or not at all, index, match the resident.

Every way in (browser upload, STOW-RS, DIMSE C-STORE) calls :func:`instance_ingest`
with a seekable file and an :class:`Origin`. The outcome is one of stored, duplicate
(the same instance again: nothing changes) or an exception: :class:`Rejected` for a
file we refuse, :class:`Conflict` for a UID already used for a different resident.

:func:`instance_ingest` is :func:`instance_prepare` (validate, then the bytes into the
object store) followed by :func:`instance_index`. STOW-RS prepares each part of a request
as it arrives and indexes them together (:mod:`imaging.ingest_batch`).
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import Any, BinaryIO, cast

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import User
from association.models import Institution
from audit.models import AuditEvent, Outcome
from audit.services import audit_event, audit_record
from imaging.dicom.header import Header, header_of
from imaging.dicom.validate import DEFAULT_LIMITS, Limits, Rejected, validate_instance
from imaging.models import (
    ImagingRequest,
    Instance,
    InstitutionPatientId,
    MatchStatus,
    RequestStatus,
    Series,
    Study,
)
from objectstore import get_store
from records import resident_id as rid
from records.models import Patient
from records.selectors import patients_visible_to

logger = logging.getLogger(__name__)

PREAMBLE = 128


class Conflict(Exception):
    """A UID already names something else (another resident, study or series)."""

    def __init__(self, code: str, message: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class IngestStatus(enum.StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class Origin:
    """Who sends, for which institution, by which path, and for which request."""

    institution: Institution
    channel: str  # "upload", "stow", "dimse"
    user: User | None = None
    request: ImagingRequest | None = None
    calling_ae: str = ""


@dataclass(frozen=True)
class IngestResult:
    status: IngestStatus
    instance: Instance


@dataclass(frozen=True)
class Prepared:
    """A validated instance whose bytes are in the object store, not yet indexed."""

    header: Header
    key: str
    sha256: str


class _ZeroedPreamble:
    """Read ``source`` with its 128-byte preamble replaced by zeros (it can carry code).

    Only ``read(n)`` (what the object store uses), straight from the source: no buffering
    layer copying every byte once more.
    """

    def __init__(self, source: BinaryIO) -> None:
        self._source = source
        self._pos = 0
        source.seek(0)

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        if self._pos < PREAMBLE and data:
            zeros = min(PREAMBLE - self._pos, len(data))
            data = bytes(zeros) + memoryview(data)[zeros:]  # one copy, not two
        self._pos += len(data)
        return data


def _same_resident(study: Study, valid: Header) -> bool:
    return study.dicom_patient_id == valid.patient_id


def _duplicate_or_conflict(valid: Header) -> Instance | None:
    """After a unique-index violation: the stored twin, or the conflict it makes."""
    existing = (
        Instance.objects.select_related("series__study").filter(sop_uid=valid.sop_uid).first()
    )
    if existing is None:
        return None
    study = existing.series.study
    if study.study_uid != valid.study_uid or existing.series.series_uid != valid.series_uid:
        raise Conflict(
            "uid_reused", _("This SOP Instance UID is already stored in another study or series.")
        )
    if not _same_resident(study, valid):
        raise Conflict(
            "other_patient",
            _(
                "This SOP Instance UID is already stored for a different patient;"
                " nothing was overwritten."
            ),
        )
    return existing


def _match_patient(valid: Header, origin: Origin) -> Patient | None:
    """The resident the images belong to, or ``None`` to queue them for a person."""
    if origin.request is not None:
        return origin.request.patient
    accession = valid.accession_number
    if accession:
        request = (
            ImagingRequest.objects.select_related("patient")
            .filter(accession_number=accession)
            .first()
        )
        if request is not None and request.requesting_institution_id == origin.institution.pk:
            return request.patient
    if valid.patient_id:
        known = (
            InstitutionPatientId.objects.filter(
                institution=origin.institution, value=valid.patient_id
            )
            .select_related("patient")
            .first()
        )
        if known is not None:
            return known.patient
        try:
            number = rid.parse(valid.patient_id).number
        except rid.InvalidResidentId:
            return None
        # The modality used the resident ID: match if the sender may see that resident.
        candidate = Patient.objects.filter(resident_id=number).first()
        if candidate is not None and origin.user is not None:
            from association.selectors import actor_scope

            if patients_visible_to(actor_scope(origin.user)).filter(pk=candidate.pk).exists():
                return candidate
        if candidate is not None and candidate.home_institution_id == origin.institution.pk:
            return candidate
    return None


def _request_for(valid: Header, origin: Origin) -> ImagingRequest | None:
    if origin.request is not None:
        return origin.request
    accession = valid.accession_number
    if not accession:
        return None
    return ImagingRequest.objects.filter(
        accession_number=accession, requesting_institution=origin.institution
    ).first()


def _index(item: Prepared, origin: Origin) -> Instance:
    valid = item.header
    # The usual case, every instance of a series after its first: one query finds both.
    known = Series.objects.select_related("study").filter(series_uid=valid.series_uid).order_by()
    series_found = next(iter(known[:1]), None)
    if series_found is not None and series_found.study.study_uid == valid.study_uid:
        if not _same_resident(series_found.study, valid):
            raise _other_patient_study()
        return _add_instance(item, origin, series_found, created=False)
    # UIDs are unique: no ORDER BY (which first() would add) for the single match.
    locked = Study.objects.select_for_update().filter(study_uid=valid.study_uid).order_by()
    study = next(iter(locked[:1]), None)
    if study is None:
        # Matching and request look-ups run once per study, not per instance.
        patient = _match_patient(valid, origin)
        request = _request_for(valid, origin)
        study = Study.objects.create(
            study_uid=valid.study_uid,
            **valid.study,
            patient=patient,
            match_status=MatchStatus.MATCHED if patient else MatchStatus.PENDING,
            source_institution=origin.institution,
            request=request,
        )
        if request is not None and request.status == RequestStatus.REQUESTED:
            ImagingRequest.objects.filter(pk=request.pk, status=RequestStatus.REQUESTED).update(
                status=RequestStatus.IMAGES_RECEIVED, images_received_at=timezone.now()
            )
    elif not _same_resident(study, valid):
        raise _other_patient_study()
    series, created = Series.objects.get_or_create(
        series_uid=valid.series_uid,
        defaults={"study": study, **valid.series},
    )
    if series.study_id != study.pk:
        raise Conflict(
            "uid_reused", _("This Series Instance UID already belongs to another study.")
        )
    series.study = study  # the audit event reads it: no second look-up
    return _add_instance(item, origin, series, created=created)


def _other_patient_study() -> Conflict:
    return Conflict(
        "other_patient",
        _(
            "This Study Instance UID is already stored for a different patient;"
            " nothing was overwritten."
        ),
    )


def _add_instance(item: Prepared, origin: Origin, series: Series, *, created: bool) -> Instance:
    """Insert the instance and count it in its series and study (one UPDATE each)."""
    study = series.study
    instance = new_instance(item, origin, series)
    instance.save(force_insert=True)
    Series.objects.filter(pk=series.pk).update(num_instances=F("num_instances") + 1)
    study_changes: dict[str, Any] = {
        "num_instances": F("num_instances") + 1,
        "updated_at": timezone.now(),
    }
    if created:
        # The study is locked (or the SQLite write transaction taken): only the transaction
        # that creates a series changes the study's series count and modalities.
        modalities = set(filter(None, study.modalities.split("\\"))) | {series.modality}
        study_changes["num_series"] = Series.objects.filter(study=study).count()
        study_changes["modalities"] = "\\".join(sorted(m for m in modalities if m))[:64]
    Study.objects.filter(pk=study.pk).update(**study_changes)
    return instance


def new_instance(item: Prepared, origin: Origin, series: Series) -> Instance:
    """The index row of a validated, stored instance (not saved)."""
    valid = item.header
    return Instance(
        sop_uid=valid.sop_uid,
        series=series,
        sop_class_uid=valid.sop_class_uid,
        instance_number=valid.instance_number,
        transfer_syntax_uid=valid.transfer_syntax_uid,
        rows=valid.rows,
        columns=valid.columns,
        frames=valid.frames,
        bits_allocated=valid.bits_allocated,
        photometric=valid.photometric,
        object_key=item.key,
        size=valid.size,
        sha256=item.sha256,
        metadata=valid.metadata,
        received_via=origin.channel,
    )


def _index_with_retry(item: Prepared, origin: Origin) -> Instance | IngestResult:
    """Index in a transaction; a concurrent sender of the same study or instance wins a race
    at most once: then the instance is a duplicate, or the study now exists and we retry."""
    for attempt in range(2):
        try:
            with transaction.atomic():
                instance = _index(item, origin)
                stored_event(instance, origin).save(force_insert=True)  # one commit for both
                return instance
        except IntegrityError:
            existing = _duplicate_or_conflict(item.header)
            if existing is not None:
                return IngestResult(IngestStatus.DUPLICATE, existing)
            if attempt:
                raise
    raise AssertionError("unreachable")


def instance_ingest(
    fileobj: BinaryIO, *, origin: Origin, limits: Limits = DEFAULT_LIMITS
) -> IngestResult:
    """Validate, store and index one Part 10 file; the file must be seekable.

    Raises
    ------
    Rejected
        The file is refused (nothing kept); audited.
    Conflict
        A UID already names another resident, study or series (nothing kept); audited.
    """
    return instance_index(instance_prepare(fileobj, origin=origin, limits=limits), origin=origin)


def instance_prepare(
    fileobj: BinaryIO, *, origin: Origin, limits: Limits = DEFAULT_LIMITS
) -> Prepared:
    """Validate one Part 10 file and put its bytes (preamble zeroed) in the object store.

    Nothing is indexed yet: :func:`instance_index` (or :mod:`imaging.ingest_batch`) must
    follow, and removes the object if the instance is not indexed. Raises
    :class:`Rejected` (audited) for a file we refuse.
    """
    try:
        header = header_of(validate_instance(fileobj, limits=limits))
    except Rejected as exc:
        _audit(origin, outcome=Outcome.FAILED, reason=exc.code)
        raise
    # No look-up for a duplicate first: the unique index tells at insert time (then the
    # object just written is removed), which costs a re-sent instance a write and spares
    # every new one a query.
    zeroed = cast(BinaryIO, _ZeroedPreamble(fileobj))
    stored = get_store().put(
        zeroed, prefix="dicom", content_type="application/dicom", size=header.size
    )
    return Prepared(header, stored.key, stored.sha256)


def instance_index(prepared: Prepared, *, origin: Origin) -> IngestResult:
    """Index a prepared instance in its own transaction, with its audit event.

    Raises :class:`Conflict` (audited) when a UID already names another resident, study
    or series; the stored object is removed whenever the instance is not indexed.
    """
    store = get_store()
    try:
        instance = _index_with_retry(prepared, origin)
    except Conflict as exc:
        store.delete(prepared.key)
        _audit(origin, outcome=Outcome.FAILED, reason=exc.code)
        raise
    except BaseException:
        store.delete(prepared.key)
        raise
    if isinstance(instance, IngestResult):  # indexed meanwhile by a concurrent sender
        store.delete(prepared.key)
        return instance
    return IngestResult(IngestStatus.STORED, instance)


def stored_event(instance: Instance, origin: Origin) -> AuditEvent:
    """The audit event of a stored instance (not yet written)."""
    study = instance.series.study
    return audit_event(
        actor=origin.user,
        action="imaging.ingest",
        outcome=Outcome.ALLOWED,
        resource_type="instance",
        resource_id=instance.sop_uid,
        patient_id=study.patient_id,
        username=origin.calling_ae,
        detail={
            "channel": origin.channel,
            "study": study.study_uid,
            "institution": origin.institution.pk,
        },
    )


def _audit(origin: Origin, *, outcome: Outcome, reason: str) -> None:
    audit_record(
        actor=origin.user,
        action="imaging.ingest",
        outcome=outcome,
        resource_type="instance",
        reason=reason,
        username=origin.calling_ae,
        detail={"channel": origin.channel, "institution": origin.institution.pk},
    )
