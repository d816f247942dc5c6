"""The choke points for reading patient data. Every read goes through here and is audited.

Rules, deny by default. An actor sees a resident when at least one holds:

* the resident's home institution is one the actor treats at (a clinical membership
  without a centre): "a clinic sees its own residents";
* an unexpired, unrevoked share names the actor, one of the actor's centres, or (for a
  share without centre or person) one of the actor's institutions, and the consent it
  rests on is active: "what a consult, order or referral shares with it";
* the resident has an active record consent to an association the actor treats in.

Association admins see statistics, auditors the audit trail; neither sees records.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from association.models import Institution
from association.selectors import ActorScope, actor_scope
from audit.models import Outcome
from audit.services import audit_record
from records.models import Consent, ConsentScope, Patient, PatientShare, TimelineEvent

User = AbstractBaseUser | AnonymousUser


class AccessDenied(PermissionError):
    """The actor may not see or change this; the message is for a person."""


class NotFound(LookupError):
    """No such record."""


def _active_shares_for(scope: ActorScope) -> QuerySet[PatientShare]:
    now = timezone.now()
    to_actor = Q(grantee_user_id=scope.user_id)
    to_centre = Q(grantee_centre_id__in=scope.centre_ids)
    to_institution = Q(
        grantee_institution_id__in=scope.care_institution_ids,
        grantee_centre__isnull=True,
        grantee_user__isnull=True,
    )
    return (
        PatientShare.objects.filter(to_actor | to_centre | to_institution)
        .filter(revoked_at__isnull=True)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .filter(consent__in=Consent.objects.active())
    )


def patients_visible_to(scope: ActorScope) -> QuerySet[Patient]:
    """All residents ``scope`` may read, as one queryset (no audit: callers audit)."""
    if scope.user_id is None or not scope.is_clinical:
        return Patient.objects.none()
    own = Q(home_institution_id__in=scope.care_institution_ids)
    shared = Exists(_active_shares_for(scope).filter(patient_id=OuterRef("pk")))
    consented = Exists(
        Consent.objects.active().filter(
            patient_id=OuterRef("pk"),
            scope=ConsentScope.RECORD,
            grantee_association_id__in=scope.clinical_association_ids,
        )
    )
    by_institution_consent = Exists(
        Consent.objects.active().filter(
            patient_id=OuterRef("pk"),
            scope=ConsentScope.RECORD,
            grantee_institution_id__in=scope.care_institution_ids,
        )
    )
    return Patient.objects.filter(own | shared | consented | by_institution_consent)


def acting_institution(scope: ActorScope, patient: Patient) -> Institution | None:
    """Where a clinician acts from for ``patient`` (a request, an order): the resident's home
    institution if they work there, else their first institution of care; None for none."""
    care = [
        m.institution for m in scope.memberships if m.institution_id in scope.care_institution_ids
    ]
    for institution in care:
        if institution.pk == patient.home_institution_id:
            return institution
    return care[0] if care else None


def can_edit_patient(scope: ActorScope, patient: Patient) -> bool:
    """Only clinicians of the home institution change the record and its consents."""
    return scope.is_clinical and patient.home_institution_id in scope.care_institution_ids


def patient_get_for_user(*, actor: User, patient_id: int, purpose: str = "view") -> Patient:
    """Return the patient if ``actor`` may read it; audit either way.

    Raises
    ------
    NotFound
        No such patient (audited as failed).
    AccessDenied
        The patient exists but is not visible to the actor (audited as denied).
    """
    scope = actor_scope(actor)
    patient = (
        patients_visible_to(scope)
        .select_related("home_institution", "family_doctor")
        .filter(pk=patient_id)
        .first()
    )
    if patient is not None:
        audit_record(
            actor=actor,
            action=f"patient.{purpose}",
            outcome=Outcome.ALLOWED,
            resource_type="patient",
            resource_id=patient_id,
            patient_id=patient_id,
        )
        return patient
    exists = Patient.objects.filter(pk=patient_id).exists()
    audit_record(
        actor=actor,
        action=f"patient.{purpose}",
        outcome=Outcome.DENIED if exists else Outcome.FAILED,
        resource_type="patient",
        resource_id=patient_id,
        patient_id=patient_id if exists else None,
        reason="not visible to actor" if exists else "no such patient",
    )
    if exists:
        raise AccessDenied(_("You do not have access to this resident's record."))
    raise NotFound(_("No such resident."))


def patient_get_for_edit(*, actor: User, patient_id: int) -> Patient:
    """Like :func:`patient_get_for_user`, but only for those who may change the record."""
    patient = patient_get_for_user(actor=actor, patient_id=patient_id, purpose="open_for_edit")
    if not can_edit_patient(actor_scope(actor), patient):
        audit_record(
            actor=actor,
            action="patient.edit",
            outcome=Outcome.DENIED,
            resource_type="patient",
            resource_id=patient.pk,
            patient_id=patient.pk,
            reason="not the home institution",
        )
        raise AccessDenied(_("Only the resident's home institution can change this record."))
    return patient


def patient_search_for_user(
    *, actor: User, query: str = "", resident_id: str = "", limit: int = 50
) -> list[Patient]:
    """Search the residents visible to ``actor`` by name, phone or exact resident ID."""
    scope = actor_scope(actor)
    qs = patients_visible_to(scope).select_related("home_institution")
    if resident_id:
        qs = qs.filter(resident_id=resident_id.strip().upper())
    if query:
        q = query.strip()
        qs = qs.filter(Q(name__icontains=q) | Q(phone__startswith=q) | Q(resident_id=q.upper()))
    results = list(qs.order_by("name", "id")[:limit])
    allowed = scope.is_clinical
    audit_record(
        actor=actor,
        action="patient.search",
        outcome=Outcome.ALLOWED if allowed else Outcome.DENIED,
        resource_type="patient",
        reason="" if allowed else "role has no access to records",
        detail={"query": query[:100], "by_resident_id": bool(resident_id), "count": len(results)},
    )
    if not allowed:
        raise AccessDenied(_("Your role does not give access to residents' records."))
    return results


@dataclass(frozen=True)
class PatientRecord:
    """Everything the patient page shows, read under one access check and one audit event."""

    patient: Patient
    consents: list[Consent]
    timeline: list[TimelineEvent]
    can_edit: bool


def patient_record_for_user(
    *, actor: User, patient_id: int, timeline_limit: int = 200
) -> PatientRecord:
    patient = patient_get_for_user(actor=actor, patient_id=patient_id, purpose="view")
    return PatientRecord(
        patient=patient,
        consents=list(
            patient.consents.select_related(
                "grantee_association", "grantee_institution", "recorded_by"
            )
        ),
        timeline=list(patient.timeline.select_related("institution", "actor")[:timeline_limit]),
        can_edit=can_edit_patient(actor_scope(actor), patient),
    )


def consent_list_for_patient(*, actor: User, patient_id: int) -> list[Consent]:
    patient = patient_get_for_user(actor=actor, patient_id=patient_id, purpose="consents")
    return list(
        patient.consents.select_related("grantee_association", "grantee_institution", "recorded_by")
    )


def timeline_for_patient(*, actor: User, patient_id: int, limit: int = 200) -> list[TimelineEvent]:
    patient = patient_get_for_user(actor=actor, patient_id=patient_id, purpose="timeline")
    return list(patient.timeline.select_related("institution", "actor")[:limit])
