"""Reads of the reading workflow: the centre's worklist, a clinic's requests, one request.

Every read of a request goes through :func:`request_get_for_user` (or the page helpers
built on it), which rests on ``imaging.selectors.requests_visible_to`` and is audited.
Draft reports are shown only to the centre: the requester sees signed versions.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Case, IntegerField, Q, Value, When, prefetch_related_objects
from django.utils import timezone
from django.utils.translation import gettext as _

from association.models import CentreKind, DiagnosticCentre, Role
from association.selectors import ActorScope, actor_scope
from audit.models import Outcome
from audit.services import audit_record
from imaging.models import (
    PRIORITY_RANK,
    ImagingRequest,
    Priority,
    Report,
    ReportStatus,
    ReportVersion,
    RequestStatus,
    Study,
)
from imaging.selectors import priors_for_study, requests_visible_to, studies_visible_to
from records.models import Consent, ConsentScope, Patient
from records.selectors import AccessDenied, NotFound, can_edit_patient

User = AbstractBaseUser | AnonymousUser

# How long the centre has, from the request, to sign the report.
TURNAROUND_TARGETS: dict[str, dt.timedelta] = {
    Priority.EMERGENCY: dt.timedelta(minutes=30),
    Priority.URGENT: dt.timedelta(hours=4),
    Priority.ROUTINE: dt.timedelta(hours=24),
}
OPEN_STATUSES = (
    RequestStatus.REQUESTED,
    RequestStatus.IMAGES_RECEIVED,
    RequestStatus.IN_PROGRESS,
)
WORKLIST_LIMIT = 200
CLINIC_LIST_LIMIT = 100

_RELATED = (
    "patient",
    "patient__home_institution",
    "requesting_institution",
    "requested_by",
    "claimed_by",
    "centre",
    "centre__host",
)


# --- Who is who --------------------------------------------------------------------------


def imaging_centre_ids(scope: ActorScope) -> frozenset[int]:
    """The imaging centres where the actor reads images (radiologist memberships)."""
    return frozenset(
        m.centre_id
        for m in scope.memberships
        if m.centre_id is not None
        and m.centre is not None
        and m.role == Role.RADIOLOGIST
        and m.centre.kind == CentreKind.IMAGING
    )


def is_centre_radiologist(scope: ActorScope, centre_id: int) -> bool:
    return centre_id in imaging_centre_ids(scope)


def is_requesting_clinician(scope: ActorScope, request: ImagingRequest) -> bool:
    """A clinician of the institution that made the request (it may attach and cancel)."""
    return request.requesting_institution_id in scope.care_institution_ids


def turnaround_target(priority: str) -> dt.timedelta:
    return TURNAROUND_TARGETS.get(priority, TURNAROUND_TARGETS[Priority.ROUTINE])


def _priority_rank() -> Case:
    return Case(
        *(When(priority=p, then=Value(rank)) for p, rank in PRIORITY_RANK.items()),
        default=Value(len(PRIORITY_RANK)),
        output_field=IntegerField(),
    )


def _audit_denied(
    *, actor: User, action: str, reason: str, resource_type: str = "imaging_request"
) -> None:
    audit_record(
        actor=actor,
        action=action,
        outcome=Outcome.DENIED,
        resource_type=resource_type,
        reason=reason,
    )


# --- The worklist --------------------------------------------------------------------------


@dataclass(frozen=True)
class WorklistItem:
    """One request on the worklist, with its turnaround clock at the time of reading."""

    request: ImagingRequest
    waiting_minutes: int
    target_minutes: int
    due_at: dt.datetime
    overdue: bool

    @property
    def minutes_left(self) -> int:
        return self.target_minutes - self.waiting_minutes

    @property
    def waiting_hhmm(self) -> str:
        return hhmm(self.waiting_minutes)

    @property
    def target_hhmm(self) -> str:
        return hhmm(self.target_minutes)


def hhmm(minutes: int) -> str:
    """Minutes as ``HH:MM`` (hours may pass 24), the clock's format in every language."""
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def worklist_item(request: ImagingRequest, *, now: dt.datetime | None = None) -> WorklistItem:
    now = now or timezone.now()
    target = turnaround_target(request.priority)
    end = request.reported_at or now
    waited = end - request.created_at
    return WorklistItem(
        request=request,
        waiting_minutes=max(0, int(waited.total_seconds() // 60)),
        target_minutes=int(target.total_seconds() // 60),
        due_at=request.created_at + target,
        overdue=waited > target,
    )


def worklist_for_user(
    *, actor: User, status: str | None = None, limit: int = WORKLIST_LIMIT
) -> list[WorklistItem]:
    """Open requests of the actor's imaging centres: emergencies first, then longest waiting.

    Raises
    ------
    AccessDenied
        The actor reads images at no imaging centre (audited).
    """
    scope = actor_scope(actor)
    centres = imaging_centre_ids(scope)
    if not centres:
        _audit_denied(actor=actor, action="imaging.worklist", reason="not an imaging centre")
        raise AccessDenied(_("Only radiologists of an imaging centre have a reading worklist."))
    statuses = [status] if status else list(OPEN_STATUSES)
    qs = (
        ImagingRequest.objects.filter(centre_id__in=centres, status__in=statuses)
        .select_related(*_RELATED)
        .annotate(priority_rank=_priority_rank())
    )
    if status in (RequestStatus.REPORTED, RequestStatus.CANCELLED):
        qs = qs.order_by("-reported_at", "-created_at", "-id")
    else:
        qs = qs.order_by("priority_rank", "created_at", "id")
    now = timezone.now()
    items = [worklist_item(r, now=now) for r in qs[:limit]]
    audit_record(
        actor=actor,
        action="imaging.worklist",
        outcome=Outcome.ALLOWED,
        resource_type="worklist",
        detail={"status": status or "open", "count": len(items)},
    )
    return items


# --- A clinic's requests ------------------------------------------------------------------


def requests_for_clinic(
    *, actor: User, open_only: bool = False, limit: int = CLINIC_LIST_LIMIT
) -> list[ImagingRequest]:
    """Requests made by the actor's institutions, newest first.

    Raises
    ------
    AccessDenied
        The actor treats patients at no institution (audited).
    """
    scope = actor_scope(actor)
    if not scope.care_institution_ids:
        _audit_denied(actor=actor, action="imaging.request.list", reason="no clinical membership")
        raise AccessDenied(_("Only clinicians of an institution make imaging requests."))
    qs = ImagingRequest.objects.filter(
        requesting_institution_id__in=scope.care_institution_ids
    ).select_related(*_RELATED)
    if open_only:
        qs = qs.filter(status__in=OPEN_STATUSES)
    requests = list(qs.order_by("-created_at", "-id")[:limit])
    audit_record(
        actor=actor,
        action="imaging.request.list",
        outcome=Outcome.ALLOWED,
        resource_type="imaging_request",
        detail={"open_only": open_only, "count": len(requests)},
    )
    return requests


# --- One request ---------------------------------------------------------------------------


def request_deny(*, actor: User, request_id: int, action: str) -> AccessDenied | NotFound:
    """Audit a request the actor may not see (or that does not exist); return the error."""
    existing = ImagingRequest.objects.filter(pk=request_id).only("pk", "patient_id").first()
    audit_record(
        actor=actor,
        action=action,
        outcome=Outcome.DENIED if existing else Outcome.FAILED,
        resource_type="imaging_request",
        resource_id=request_id,
        patient_id=existing.patient_id if existing else None,
        reason="not visible to actor" if existing else "no such request",
    )
    if existing is not None:
        return AccessDenied(_("You do not have access to this imaging request."))
    return NotFound(_("No such imaging request."))


def request_get_for_user(
    *, actor: User, request_id: int, action: str = "imaging.request.view"
) -> ImagingRequest:
    """The request if visible to ``actor``; audited either way.

    Raises
    ------
    AccessDenied, NotFound
    """
    request = (
        requests_visible_to(actor_scope(actor))
        .select_related(*_RELATED)
        .filter(pk=request_id)
        .first()
    )
    if request is None:
        raise request_deny(actor=actor, request_id=request_id, action=action)
    audit_record(
        actor=actor,
        action=action,
        outcome=Outcome.ALLOWED,
        resource_type="imaging_request",
        resource_id=request.pk,
        patient_id=request.patient_id,
    )
    return request


def report_versions(*, actor: User, request_id: int) -> list[ReportVersion]:
    """The signed versions of the request's report, oldest first (audited read)."""
    request = request_get_for_user(actor=actor, request_id=request_id, action="imaging.report.view")
    return _versions(request)


def _versions(request: ImagingRequest) -> list[ReportVersion]:
    return list(
        ReportVersion.objects.filter(report__request=request)
        .select_related("author")
        .order_by("version")
    )


def _studies(request: ImagingRequest) -> list[Study]:
    return list(request.studies.order_by("created_at", "id"))


@dataclass(frozen=True)
class RequestDetail:
    """What the request page shows: the request, its images and its signed report."""

    request: ImagingRequest
    studies: list[Study]
    versions: list[ReportVersion]
    attachable: list[Study]
    can_attach: bool
    can_cancel: bool
    is_centre: bool

    @property
    def current(self) -> ReportVersion | None:
        return self.versions[-1] if self.versions else None


def request_detail_for_user(*, actor: User, request_id: int) -> RequestDetail:
    """The request page's data under one access check (drafts are never included)."""
    request = request_get_for_user(actor=actor, request_id=request_id)
    scope = actor_scope(actor)
    clinic = is_requesting_clinician(scope, request)
    open_ = request.status in OPEN_STATUSES
    can_attach = clinic and request.status in OPEN_STATUSES
    return RequestDetail(
        request=request,
        studies=_studies(request),
        versions=_versions(request),
        attachable=attachable_studies(scope=scope, request=request) if can_attach else [],
        can_attach=can_attach,
        can_cancel=clinic and open_,
        is_centre=is_centre_radiologist(scope, request.centre_id),
    )


def attachable_studies(*, scope: ActorScope, request: ImagingRequest) -> list[Study]:
    """Studies the clinic could attach: this resident's or not yet matched, and unattached."""
    return list(
        studies_visible_to(scope)
        .filter(request__isnull=True)
        .filter(
            Q(patient_id=request.patient_id)
            | Q(patient__isnull=True, source_institution_id__in=scope.care_institution_ids)
        )
        .order_by("-created_at", "-id")[:20]
    )


# --- The reading page ---------------------------------------------------------------------


@dataclass(frozen=True)
class ReadingCase:
    """Everything a radiologist needs beside the images: request, report, priors, history."""

    request: ImagingRequest
    studies: list[Study]
    report: Report | None
    versions: list[ReportVersion]
    priors: list[Study]
    # Signed reports of the priors, by study id (their impression is shown beside them).
    prior_reports: dict[int, Report]
    claimed_by_actor: bool

    @property
    def study(self) -> Study | None:
        """The study being read: the latest one attached."""
        return self.studies[-1] if self.studies else None

    @property
    def prior_rows(self) -> list[tuple[Study, Report | None]]:
        return [(p, self.prior_reports.get(p.pk)) for p in self.priors]

    @property
    def editable(self) -> bool:
        return (
            self.claimed_by_actor
            and self.request.status == RequestStatus.IN_PROGRESS
            and (self.report is None or self.report.status == ReportStatus.DRAFT)
        )


def reading_case_for_user(*, actor: User, request_id: int) -> ReadingCase:
    """The reading page's data; only for radiologists of the request's centre.

    Raises
    ------
    AccessDenied, NotFound
    """
    request = request_get_for_user(actor=actor, request_id=request_id, action="imaging.read")
    scope = actor_scope(actor)
    if not is_centre_radiologist(scope, request.centre_id):
        audit_record(
            actor=actor,
            action="imaging.read",
            outcome=Outcome.DENIED,
            resource_type="imaging_request",
            resource_id=request.pk,
            patient_id=request.patient_id,
            reason="not a radiologist of the centre",
        )
        raise AccessDenied(_("Only radiologists of the imaging centre read this request."))
    studies = _studies(request)
    report = Report.objects.select_related("author").filter(request=request).first()
    priors: list[Study] = []
    if studies:
        attached = {s.pk for s in studies}
        priors = [
            p for p in priors_for_study(actor=actor, study=studies[-1]) if p.pk not in attached
        ]
        prefetch_related_objects(priors, "source_institution")
    return ReadingCase(
        request=request,
        studies=studies,
        report=report,
        versions=_versions(request),
        priors=priors,
        prior_reports=signed_reports_of(priors),
        claimed_by_actor=request.claimed_by_id == actor.pk,
    )


def signed_reports_of(studies: list[Study]) -> dict[int, Report]:
    """The signed reports of ``studies`` (already read by the caller), by study id."""
    return {r.study_id: r for r in Report.objects.filter(study__in=studies, version__gt=0)}


# --- For the request form and the patient page (the caller has read the patient) -----------


def imaging_centres_for(patient: Patient) -> list[DiagnosticCentre]:
    """The imaging centres serving the resident's association."""
    return list(
        DiagnosticCentre.objects.filter(
            kind=CentreKind.IMAGING, association_id=patient.home_institution.association_id
        )
        .select_related("host")
        .order_by("name")
    )


def imaging_consent_for(*, patient: Patient, centre: DiagnosticCentre) -> Consent | None:
    """The active consent that lets images of ``patient`` go to ``centre`` (as share_grant asks)."""
    return (
        Consent.objects.active()
        .filter(patient=patient, scope__in=[ConsentScope.IMAGING, ConsentScope.RECORD])
        .filter(
            Q(grantee_association_id=patient.home_institution.association_id)
            | Q(grantee_institution_id=centre.host_id)
        )
        .first()
    )


def can_record_consent(*, actor: User, patient: Patient) -> bool:
    return can_edit_patient(actor_scope(actor), patient)


def studies_for_patient(*, actor: User, patient: Patient, limit: int = 50) -> list[Study]:
    """The resident's studies the actor may see, newest first."""
    return list(
        studies_visible_to(actor_scope(actor))
        .filter(patient=patient)
        .select_related("request", "source_institution")
        .order_by("-study_date", "-created_at")[:limit]
    )


def requests_for_patient(*, actor: User, patient: Patient, limit: int = 50) -> list[ImagingRequest]:
    """The resident's imaging requests the actor may see, newest first."""
    return list(
        requests_visible_to(actor_scope(actor))
        .filter(patient=patient)
        .select_related(*_RELATED)
        .order_by("-created_at", "-id")[:limit]
    )
