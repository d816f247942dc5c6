"""Writes of the reading workflow: request, attach, cancel, claim, release; reports re-exported.

Every service checks who acts (a clinician of the requesting institution, or a
radiologist of the request's imaging centre), audits what it allowed and what it
refused, and raises ``records.selectors.AccessDenied`` for someone who may not act here or
``records.services.InvalidRecord`` for a request that cannot change this way now.
Checks run before the transaction, so a refusal's audit event is never rolled back.
The report services live in ``imaging.report_services``.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.db.models.functions import Length
from django.utils import timezone, translation
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import User
from association.models import CentreKind, DiagnosticCentre, Membership, Role
from association.selectors import actor_scope
from audit.models import Outcome
from audit.services import audit_record
from imaging.models import (
    ImagingRequest,
    MatchStatus,
    Modality,
    Priority,
    RequestStatus,
    Study,
)
from imaging.report_services import report_amend, report_save_draft, report_sign
from imaging.selectors import study_get_for_user
from imaging.workflow_common import (
    ACCESSION_PREFIX,
    CLAIM_TAKEOVER_AFTER,
    MAX_EXAM,
    MAX_QUESTION,
    MAX_REASON,
    NOTIFY_SEVERITY,
    as_clinic,
    as_radiologist,
    audit_request,
    reading_link,
    refuse,
    request_link,
    timeline_title,
)
from imaging.workflow_selectors import (
    OPEN_STATUSES,
    imaging_consent_for,
)
from realtime.models import Severity
from realtime.services import notification_send
from records.models import ConsentScope, Patient, PatientShare, ShareReason
from records.selectors import (
    AccessDenied,
    acting_institution,
    can_edit_patient,
    patient_get_for_user,
)
from records.services import InvalidRecord, refused, timeline_add
from records.sharing import consent_record, share_grant

__all__ = [
    "AccessDenied",
    "InvalidRecord",
    "imaging_request_attach_study",
    "imaging_request_cancel",
    "imaging_request_create",
    "report_amend",
    "report_save_draft",
    "report_sign",
    "worklist_claim",
    "worklist_release",
]

_ACCESSION_ATTEMPTS = 5


def _centre_radiologists(centre: DiagnosticCentre) -> list[User]:
    memberships = Membership.objects.filter(
        centre=centre, role=Role.RADIOLOGIST, active=True, user__is_active=True
    ).select_related("user")
    users: dict[int, User] = {m.user_id: m.user for m in memberships}
    return list(users.values())


# --- Requests ----------------------------------------------------------------------------------


def _request_problem(
    *,
    patient: Patient,
    centre: DiagnosticCentre,
    modality: str,
    exam: str,
    clinical_question: str,
    priority: str,
) -> str | Promise | None:
    if centre.kind != CentreKind.IMAGING:
        return gettext_lazy("Choose an imaging centre.")
    if centre.association_id != patient.home_institution.association_id:
        return gettext_lazy("The imaging centre must serve the resident's association.")
    if modality not in Modality.values:
        return gettext_lazy("Unknown modality.")
    if priority not in Priority.values:
        return gettext_lazy("Unknown priority.")
    if not exam or len(exam) > MAX_EXAM:
        return gettext_lazy("Name the exam (at most 200 characters).")
    if not clinical_question or len(clinical_question) > MAX_QUESTION:
        return gettext_lazy("Write the clinical question (at most 2000 characters).")
    return None


def _next_accession() -> str:
    """``IR`` + yymmdd + a sequence of at least 4 digits (16 characters at most)."""
    prefix = f"{ACCESSION_PREFIX}{timezone.localdate():%y%m%d}"
    last = (
        ImagingRequest.objects.filter(accession_number__startswith=prefix)
        .order_by(Length("accession_number").desc(), "-accession_number")
        .values_list("accession_number", flat=True)
        .first()
    )
    tail = last[len(prefix) :] if last else ""
    sequence = int(tail) + 1 if tail.isdigit() else 1
    return f"{prefix}{sequence:04d}"


def _create_with_accession(**fields: Any) -> ImagingRequest:
    for _attempt in range(_ACCESSION_ATTEMPTS):
        try:
            with transaction.atomic():
                return ImagingRequest.objects.create(accession_number=_next_accession(), **fields)
        except IntegrityError:  # another request took the number meanwhile: take the next
            continue
    raise IntegrityError("no free accession number")


def _notify_centre(request: ImagingRequest, patient: Patient) -> None:
    for radiologist in _centre_radiologists(request.centre):
        with translation.override(radiologist.preferred_language):
            notification_send(
                recipient=radiologist,
                kind="imaging.requested",
                severity=NOTIFY_SEVERITY.get(request.priority, Severity.INFO),
                title=_("%(priority)s imaging request: %(exam)s for %(name)s")
                % {
                    "priority": Priority(request.priority).label,
                    "exam": request.exam,
                    "name": patient.name,
                },
                body=_("From %(clinic)s. Accession number %(accession)s.")
                % {
                    "clinic": request.requesting_institution.name,
                    "accession": request.accession_number,
                },
                link=reading_link(request),
                patient_id=patient.pk,
                payload={"request": request.pk, "priority": request.priority},
            )


def imaging_request_create(
    *,
    actor: User,
    patient_id: int,
    centre: DiagnosticCentre,
    modality: str,
    exam: str,
    clinical_question: str,
    priority: str,
    record_consent: bool = False,
) -> ImagingRequest:
    """Ask ``centre`` to read an exam of the resident; share the resident with the centre.

    With ``record_consent`` the resident's imaging consent to the centre's host institution
    is recorded in the same step when no consent covers the centre yet.

    Raises
    ------
    NotFound, AccessDenied
        No such resident, or not visible to the actor; the actor is no clinician.
    InvalidRecord
        A field is wrong, or the resident has not consented (and none is recorded now).
    """
    action = "imaging.request.create"
    patient = patient_get_for_user(actor=actor, patient_id=patient_id, purpose="imaging_request")
    scope = actor_scope(actor)
    institution = acting_institution(scope, patient)
    if institution is None:
        audit_record(
            actor=actor,
            action=action,
            outcome=Outcome.DENIED,
            resource_type="imaging_request",
            patient_id=patient.pk,
            reason="no clinical membership",
        )
        raise AccessDenied(_("Only clinicians of an institution can request imaging."))
    exam, clinical_question = exam.strip(), clinical_question.strip()
    problem = _request_problem(
        patient=patient,
        centre=centre,
        modality=modality,
        exam=exam,
        clinical_question=clinical_question,
        priority=priority,
    )
    needs_consent = imaging_consent_for(patient=patient, centre=centre) is None
    if problem is None and needs_consent and not record_consent:
        problem = gettext_lazy(
            "The resident has not consented to sharing images with the imaging centre."
            " Record the resident's consent with this request."
        )
    if problem is None and needs_consent and not can_edit_patient(scope, patient):
        problem = gettext_lazy(
            "The resident has not consented to sharing images with the imaging centre, and"
            " only the resident's home institution can record that consent."
        )
    if problem is not None:
        raise refused(
            actor=actor,
            action=action,
            message=problem,
            resource_type="imaging_request",
            patient_id=patient.pk,
        )
    with transaction.atomic():
        if needs_consent:
            consent_record(
                actor=actor,
                patient_id=patient.pk,
                scope=ConsentScope.IMAGING,
                grantee_institution=centre.host,
                note=f"{modality} · {exam}"[:300],
            )
        request = _create_with_accession(
            patient=patient,
            requesting_institution=institution,
            requested_by=actor,
            centre=centre,
            modality=modality,
            exam=exam,
            clinical_question=clinical_question,
            priority=priority,
        )
        request.share = share_grant(
            actor=actor,
            patient=patient,
            reason=ShareReason.ORDER,
            reference=request.accession_number,
            centre=centre,
            consent_scope=ConsentScope.IMAGING,
        )
        request.save(update_fields=["share"])
        timeline_add(
            patient=patient,
            kind="imaging.requested",
            title=timeline_title("imaging.requested"),
            summary=f"{request.accession_number} · {modality} · {exam}",
            institution=institution,
            actor=actor,
            link=request_link(request),
            data={"request": request.pk, "priority": priority, "centre": centre.pk},
        )
        _notify_centre(request, patient)
        audit_request(
            actor=actor,
            action=action,
            request=request,
            detail={
                "accession": request.accession_number,
                "priority": priority,
                "centre": centre.pk,
                "consent_recorded": needs_consent,
            },
        )
    return request


def imaging_request_attach_study(*, actor: User, request_id: int, study_uid: str) -> Study:
    """Attach a study the actor may see to the clinic's request; match it to the resident.

    Raises
    ------
    AccessDenied, NotFound, InvalidRecord
    """
    action = "imaging.request.attach"
    request = as_clinic(actor=actor, request_id=request_id, action=action)
    if request.status not in OPEN_STATUSES:
        raise refuse(
            actor=actor,
            action=action,
            request=request,
            message=gettext_lazy("Images can only be attached to an open request."),
        )
    study = study_get_for_user(actor=actor, study_uid=study_uid.strip())
    if study.patient_id is not None and study.patient_id != request.patient_id:
        raise refuse(
            actor=actor,
            action=action,
            request=request,
            message=gettext_lazy("This study belongs to another resident."),
        )
    if study.request_id is not None and study.request_id != request.pk:
        raise refuse(
            actor=actor,
            action=action,
            request=request,
            message=gettext_lazy("This study already answers another request."),
        )
    now = timezone.now()
    with transaction.atomic():
        changes: dict[str, Any] = {"request": request, "updated_at": now}
        if study.patient_id is None:
            changes |= {"patient_id": request.patient_id, "match_status": MatchStatus.MATCHED}
        # Only a study still unattached (or already ours) is changed: no race with another.
        updated = Study.objects.filter(
            Q(request__isnull=True) | Q(request=request), pk=study.pk
        ).update(**changes)
        if updated:
            ImagingRequest.objects.filter(pk=request.pk, status=RequestStatus.REQUESTED).update(
                status=RequestStatus.IMAGES_RECEIVED, images_received_at=now
            )
    if not updated:
        raise refuse(
            actor=actor,
            action=action,
            request=request,
            message=gettext_lazy("This study already answers another request."),
        )
    audit_request(actor=actor, action=action, request=request, detail={"study": study.study_uid})
    study.refresh_from_db()
    return study


def imaging_request_cancel(*, actor: User, request_id: int, reason: str) -> ImagingRequest:
    """The clinic withdraws an open request; the share with the centre ends with it.

    Raises
    ------
    AccessDenied, NotFound, InvalidRecord
    """
    action = "imaging.request.cancel"
    request = as_clinic(actor=actor, request_id=request_id, action=action)
    reason = reason.strip()
    message: str | Promise | None = None
    if request.status not in OPEN_STATUSES:
        message = gettext_lazy("Only an open request can be cancelled.")
    elif not reason or len(reason) > MAX_REASON:
        message = gettext_lazy("Say why the request is cancelled (at most 300 characters).")
    if message is not None:
        raise refuse(actor=actor, action=action, request=request, message=message)
    with transaction.atomic():
        updated = ImagingRequest.objects.filter(pk=request.pk, status__in=OPEN_STATUSES).update(
            status=RequestStatus.CANCELLED
        )
        if updated:
            _cancelled(actor=actor, request=request, reason=reason)
    if not updated:  # reported or cancelled meanwhile
        raise refuse(
            actor=actor,
            action=action,
            request=request,
            message=gettext_lazy("Only an open request can be cancelled."),
        )
    request.refresh_from_db()
    return request


def _cancelled(*, actor: User, request: ImagingRequest, reason: str) -> None:
    """What follows a cancellation: the share ends, the timeline and the reader are told."""
    if request.share_id is not None:
        PatientShare.objects.filter(pk=request.share_id, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
    timeline_add(
        patient=request.patient,
        kind="imaging.cancelled",
        title=timeline_title("imaging.cancelled"),
        summary=f"{request.accession_number} · {reason}",
        institution=request.requesting_institution,
        actor=actor,
        link=request_link(request),
        data={"request": request.pk},
    )
    claimer = request.claimed_by
    if claimer is not None and claimer.pk != actor.pk:
        with translation.override(claimer.preferred_language):
            notification_send(
                recipient=claimer,
                kind="imaging.cancelled",
                severity=Severity.INFO,
                title=_("Imaging request cancelled: %(exam)s for %(name)s")
                % {"exam": request.exam, "name": request.patient.name},
                body=reason,
                link=reading_link(request),
                patient_id=request.patient_id,
                payload={"request": request.pk},
            )
    audit_request(
        actor=actor, action="imaging.request.cancel", request=request, detail={"reason": reason}
    )


# --- The worklist ------------------------------------------------------------------------------


def worklist_claim(*, actor: User, request_id: int) -> ImagingRequest:
    """The radiologist takes the study to read; one radiologist at a time.

    Raises
    ------
    AccessDenied, NotFound, InvalidRecord
    """
    action = "imaging.claim"
    request = as_radiologist(actor=actor, request_id=request_id, action=action)
    if request.status == RequestStatus.IN_PROGRESS and request.claimed_by_id == actor.pk:
        return request
    now = timezone.now()
    updated = ImagingRequest.objects.filter(
        pk=request.pk, status=RequestStatus.IMAGES_RECEIVED, claimed_by__isnull=True
    ).update(claimed_by=actor, claimed_at=now, status=RequestStatus.IN_PROGRESS)
    if not updated:
        request.refresh_from_db()
        message: str | Promise
        if request.status == RequestStatus.IN_PROGRESS and request.claimed_by is not None:
            message = gettext_lazy("Another radiologist is already reading this study.")
        elif request.status == RequestStatus.REQUESTED:
            message = gettext_lazy("No images have arrived for this request yet.")
        else:
            message = gettext_lazy("This request is no longer waiting to be read.")
        raise refuse(actor=actor, action=action, request=request, message=message)
    audit_request(actor=actor, action=action, request=request)
    request.refresh_from_db()
    return request


def worklist_release(*, actor: User, request_id: int) -> ImagingRequest:
    """Put a claimed study back on the worklist (the draft, if any, is kept).

    The claiming radiologist may release at any time; another radiologist of the centre
    only once the claim is older than ``CLAIM_TAKEOVER_AFTER``.
    """
    action = "imaging.release"
    request = as_radiologist(actor=actor, request_id=request_id, action=action)
    message: str | Promise | None = None
    if request.status != RequestStatus.IN_PROGRESS or request.claimed_by_id is None:
        message = gettext_lazy("This study is not being read.")
    elif request.claimed_by_id != actor.pk and (
        request.claimed_at is None or timezone.now() - request.claimed_at < CLAIM_TAKEOVER_AFTER
    ):
        message = gettext_lazy(
            "Another radiologist is reading this study; it can be released by them, or by"
            " you after an hour."
        )
    if message is not None:
        raise refuse(actor=actor, action=action, request=request, message=message)
    previous = request.claimed_by_id
    updated = ImagingRequest.objects.filter(
        pk=request.pk, status=RequestStatus.IN_PROGRESS, claimed_by_id=previous
    ).update(claimed_by=None, claimed_at=None, status=RequestStatus.IMAGES_RECEIVED)
    if not updated:
        raise refuse(
            actor=actor,
            action=action,
            request=request,
            message=gettext_lazy("This study is not being read."),
        )
    audit_request(actor=actor, action=action, request=request, detail={"claimed_by": previous})
    request.refresh_from_db()
    return request
