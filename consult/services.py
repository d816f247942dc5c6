"""Writes of the consult workflow: the request here, the rest re-exported.

Every service checks who acts, audits what it allowed and what it refused, and raises
``records.selectors.AccessDenied`` for someone who may not act here, ``NotFound`` for a
consult that does not exist, or ``records.services.InvalidRecord`` for a change that
cannot happen now. Checks run before the transaction, so a refusal's audit event is never
rolled back and nothing is half-stored.

Attachments live in ``consult.attachments``, pre-review in ``consult.prereview``, the
experts' answer in ``consult.invitations``, slots, booking, start, cancel and no-show in
``consult.scheduling``; all are re-exported here, the module to import from.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import User
from association.models import Institution, Role
from association.selectors import ActorScope, actor_scope
from audit.models import Outcome
from audit.services import audit_record
from consult.attachments import (
    UNSAFE_NAME,
    consult_attach_file,
    consult_attach_study,
    studies_for_consult,
)
from consult.invitations import (
    Target,
    TargetProblem,
    consult_consent_covers,
    consult_respond,
    invite_experts,
    resolve_target,
)
from consult.models import (
    Attachment,
    AttachmentKind,
    Consult,
    Mode,
    Priority,
    Status,
)
from consult.numbering import consult_create_numbered
from consult.prereview import consult_resubmit, consult_review, notify_review, text_problem
from consult.scheduling import (
    consult_book,
    consult_cancel,
    consult_no_show,
    consult_start,
    slot_create,
    slot_delete,
)
from consult.sla import due_times
from consult.workflow_common import (
    MAX_LAB_REFERENCE,
    MAX_LAB_REFERENCES,
    audit_consult,
    consult_link,
    event_add,
    timeline_title,
)
from imaging.models import Study
from records.models import ConsentScope, Patient
from records.selectors import AccessDenied, NotFound, can_edit_patient, patient_get_for_user
from records.services import InvalidRecord, refused, timeline_add
from records.sharing import consent_record

__all__ = [
    "AccessDenied",
    "InvalidRecord",
    "NotFound",
    "consult_attach_file",
    "consult_attach_study",
    "consult_book",
    "consult_cancel",
    "consult_no_show",
    "consult_request",
    "consult_respond",
    "consult_resubmit",
    "consult_review",
    "consult_start",
    "slot_create",
    "slot_delete",
]

# Roles that ask for consults: grassroots doctors, and specialists asking colleagues.
REQUESTER_ROLES = frozenset({Role.GRASSROOTS_DOCTOR, Role.SPECIALIST})


# --- The request -------------------------------------------------------------------------------


def _requesting_institution(scope: ActorScope, patient: Patient) -> Institution | None:
    """Where the actor asks from: the resident's home institution if they work there."""
    care = [
        m.institution
        for m in scope.memberships
        if m.role in REQUESTER_ROLES and m.centre_id is None
    ]
    for institution in care:
        if institution.pk == patient.home_institution_id:
            return institution
    return care[0] if care else None


def _lab_references(values: Sequence[str]) -> list[str]:
    cleaned = [str(v).strip() for v in values if str(v).strip()]
    if len(cleaned) > MAX_LAB_REFERENCES:
        raise InvalidRecord(gettext_lazy("Attach at most 20 lab results."))
    if any(len(v) > MAX_LAB_REFERENCE or UNSAFE_NAME.search(v) for v in cleaned):
        raise InvalidRecord(gettext_lazy("A lab result reference may be at most 100 characters."))
    return list(dict.fromkeys(cleaned))


def _deny_request(*, actor: User, patient_id: int, exc: Exception) -> None:
    exists = isinstance(exc, AccessDenied)
    audit_record(
        actor=actor,
        action="consult.request",
        outcome=Outcome.DENIED if exists else Outcome.FAILED,
        resource_type="consult",
        patient_id=patient_id if exists else None,
        reason="resident not visible to actor" if exists else "no such resident",
    )


def consult_request(
    *,
    actor: User,
    patient_id: int,
    question: str,
    history: str = "",
    priority: str,
    mode: str,
    target_kind: str,
    target_institution_id: int | None = None,
    target_specialty_id: int | None = None,
    expert_ids: Sequence[int] = (),
    recording_consent: bool = False,
    study_ids: Sequence[int] = (),
    lab_references: Sequence[str] = (),
    consent_given: bool = False,
) -> Consult:
    """Ask for a consultation about a resident the actor may see.

    With the association's pre-review the consult waits for a coordinator; without it
    the experts are invited at once, each with a share of the record. With
    ``consent_given`` the resident's consent to a consultation within the association is
    recorded in the same step when no consent covers the experts yet.

    Raises
    ------
    NotFound, AccessDenied
        No such resident, or not visible to the actor; the actor asks from no institution.
    InvalidRecord
        A field is wrong, the target cannot be resolved, or the resident has not
        consented (and none is recorded now).
    """
    action = "consult.request"
    try:
        patient = patient_get_for_user(
            actor=actor, patient_id=patient_id, purpose="consult_request"
        )
    except (AccessDenied, NotFound) as exc:
        _deny_request(actor=actor, patient_id=patient_id, exc=exc)
        raise
    scope = actor_scope(actor)
    institution = _requesting_institution(scope, patient)
    if institution is None:
        audit_record(
            actor=actor,
            action=action,
            outcome=Outcome.DENIED,
            resource_type="consult",
            patient_id=patient.pk,
            reason="no requesting membership",
        )
        raise AccessDenied(_("Only doctors of an institution can request a consultation."))
    question, history = question.strip(), history.strip()
    association = institution.association
    problem: str | Promise | None = text_problem(question, history)
    target: Target | None = None
    studies: list[Study] = []
    labs: list[str] = []
    if problem is None and priority not in Priority.values:
        problem = gettext_lazy("Unknown priority.")
    if problem is None and mode not in Mode.values:
        problem = gettext_lazy("Choose live video or a written consultation.")
    if problem is None and association.pk != patient.home_institution.association_id:
        problem = gettext_lazy("Consultations stay within the resident's association.")
    if problem is None:
        try:
            target = resolve_target(
                association_id=association.pk,
                requester_id=actor.pk,
                kind=target_kind,
                institution_id=target_institution_id,
                specialty_id=target_specialty_id,
                expert_ids=expert_ids,
            )
            studies = studies_for_consult(scope, patient, study_ids)
            labs = _lab_references(lab_references)
        except TargetProblem as exc:
            problem = exc.message
        except InvalidRecord as exc:
            problem = exc.args[0]
    needs_consent = target is not None and not consult_consent_covers(
        patient=patient, institutions=target.institutions
    )
    if problem is None and needs_consent and not consent_given:
        problem = gettext_lazy(
            "The resident has not consented to sharing the record for a consultation."
            " Record the resident's consent with this request."
        )
    if problem is None and needs_consent and not can_edit_patient(scope, patient):
        problem = gettext_lazy(
            "The resident has not consented to sharing the record for a consultation, and"
            " only the resident's home institution can record that consent."
        )
    if problem is not None or target is None:
        raise refused(
            actor=actor,
            action=action,
            message=problem or gettext_lazy("Choose a target."),
            resource_type="consult",
            patient_id=patient.pk,
        )
    prereview = association.consult_prereview
    now = timezone.now()
    respond_due, complete_due = due_times(priority, now)
    with transaction.atomic():
        if needs_consent:
            consent_record(
                actor=actor,
                patient_id=patient.pk,
                scope=ConsentScope.CONSULT,
                grantee_association=association,
                note=str(_("Remote consultation")),
            )
        consult = consult_create_numbered(
            patient=patient,
            requesting_institution=institution,
            requested_by=actor,
            question=question,
            history=history,
            priority=priority,
            mode=mode,
            target_kind=target.kind,
            target_institution=target.institution,
            target_specialty=target.specialty,
            status=Status.PENDING_REVIEW if prereview else Status.PENDING_EXPERT,
            respond_due_at=respond_due,
            complete_due_at=complete_due,
            recording_consent=bool(recording_consent),
            created_at=now,
        )
        event_add(
            consult=consult,
            kind="requested",
            actor=actor,
            detail={
                "priority": priority,
                "mode": mode,
                "target_kind": target.kind,
                "expert_ids": target.expert_ids if target.named else [],
                "prereview": prereview,
                "consent_recorded": needs_consent,
            },
        )
        for study in studies:
            Attachment.objects.create(
                consult=consult,
                kind=AttachmentKind.STUDY,
                title=(str(study) or study.study_uid)[:200],
                study=study,
                uploaded_by=actor,
            )
        for reference in labs:
            Attachment.objects.create(
                consult=consult,
                kind=AttachmentKind.LAB,
                title=reference,
                lab_reference=reference,
                uploaded_by=actor,
            )
        if prereview:
            notify_review(consult, actor=actor)
        else:
            invite_experts(consult=consult, target=target, actor=actor)
        timeline_add(
            patient=patient,
            kind="consult.requested",
            title=timeline_title("consult.requested"),
            summary=f"{consult.number} · {question[:120]}",
            institution=institution,
            actor=actor,
            link=consult_link(consult.pk),
            data={"consult": consult.pk, "priority": priority, "mode": mode},
        )
        audit_consult(
            actor=actor,
            action=action,
            consult=consult,
            detail={
                "number": consult.number,
                "priority": priority,
                "target_kind": target.kind,
                "prereview": prereview,
                "consent_recorded": needs_consent,
            },
        )
    return consult
