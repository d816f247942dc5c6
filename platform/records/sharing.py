"""Consent and sharing: what a resident agreed to share, and the shares that rest on it."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import User
from association.models import Association, DiagnosticCentre, Institution
from association.selectors import actor_scope
from audit.models import Outcome
from audit.services import audit_record
from records.models import Consent, ConsentScope, Patient, PatientShare, ShareReason
from records.selectors import AccessDenied, patient_get_for_edit, patients_visible_to
from records.services import refused, timeline_add


def consent_record(
    *,
    actor: User,
    patient_id: int,
    scope: str,
    grantee_association: Association | None = None,
    grantee_institution: Institution | None = None,
    valid_until: dt.datetime | None = None,
    note: str = "",
) -> Consent:
    """Record the resident's consent; only the home institution records it."""
    patient = patient_get_for_edit(actor=actor, patient_id=patient_id)
    target = grantee_association.pk if grantee_association else None
    if grantee_institution is not None:
        target = grantee_institution.association_id
    problem: str | Promise = ""
    if scope not in ConsentScope.values:
        problem = gettext_lazy("Unknown consent scope.")
    elif (grantee_association is None) == (grantee_institution is None):
        problem = gettext_lazy("Choose either an association or an institution to share with.")
    elif valid_until is not None and valid_until <= timezone.now():
        problem = gettext_lazy("The consent must be valid until a time in the future.")
    elif target != patient.home_institution.association_id:
        problem = gettext_lazy("Records can only be shared within the resident's association.")
    if problem:
        raise refused(
            actor=actor,
            action="consent.record",
            message=problem,
            resource_type="consent",
            patient_id=patient.pk,
        )
    with transaction.atomic():
        consent = Consent.objects.create(
            patient=patient,
            scope=scope,
            grantee_association=grantee_association,
            grantee_institution=grantee_institution,
            valid_until=valid_until,
            recorded_by=actor,
            note=note.strip(),
        )
        timeline_add(
            patient=patient,
            kind="consent.given",
            summary=str(consent.grantee),
            institution=patient.home_institution,
            actor=actor,
            data={"scope": scope},
        )
    audit_record(
        actor=actor,
        action="consent.record",
        outcome=Outcome.ALLOWED,
        resource_type="consent",
        resource_id=consent.pk,
        patient_id=patient.pk,
    )
    return consent


def consent_withdraw(*, actor: User, consent_id: int, reason: str = "") -> Consent:
    """Withdraw a consent; the shares resting on it lapse at once."""
    consent = Consent.objects.select_related("patient").filter(pk=consent_id).first()
    if consent is None:
        raise refused(
            actor=actor,
            action="consent.withdraw",
            message=gettext_lazy("No such consent."),
            resource_type="consent",
            resource_id=consent_id,
        )
    patient = patient_get_for_edit(actor=actor, patient_id=consent.patient_id)
    if consent.withdrawn_at is not None:
        raise refused(
            actor=actor,
            action="consent.withdraw",
            message=gettext_lazy("This consent was already withdrawn."),
            resource_type="consent",
            resource_id=consent.pk,
            patient_id=patient.pk,
        )
    with transaction.atomic():
        consent.withdrawn_at = timezone.now()
        consent.withdrawn_by = actor
        consent.withdrawal_reason = reason.strip()[:300]
        consent.save(update_fields=["withdrawn_at", "withdrawn_by", "withdrawal_reason"])
        timeline_add(
            patient=patient,
            kind="consent.withdrawn",
            summary=consent.withdrawal_reason,
            institution=patient.home_institution,
            actor=actor,
            data={"scope": consent.scope},
        )
    audit_record(
        actor=actor,
        action="consent.withdraw",
        outcome=Outcome.ALLOWED,
        resource_type="consent",
        resource_id=consent.pk,
        patient_id=patient.pk,
    )
    return consent


def share_grant(
    *,
    actor: User,
    patient: Patient,
    reason: ShareReason,
    reference: str = "",
    institution: Institution | None = None,
    centre: DiagnosticCentre | None = None,
    user: User | None = None,
    expires_at: dt.datetime | None = None,
    consent_scope: ConsentScope = ConsentScope.RECORD,
) -> PatientShare:
    """Share ``patient`` with a grantee on behalf of a consult, order or referral.

    The caller has already read the patient through a selector; this checks that the
    actor may send the patient on and that an active consent covers the grantee.
    """
    scope = actor_scope(actor)
    if not patients_visible_to(scope).filter(pk=patient.pk).exists():
        audit_record(
            actor=actor,
            action="share.grant",
            outcome=Outcome.DENIED,
            resource_type="patient",
            resource_id=patient.pk,
            patient_id=patient.pk,
        )
        raise AccessDenied(_("You do not have access to this resident's record."))
    target = institution or (centre.host if centre else None)
    covers = Q(grantee_association_id=patient.home_institution.association_id)
    if target is not None:
        covers |= Q(grantee_institution=target)
    consent = (
        Consent.objects.active()
        .filter(patient=patient, scope__in=[consent_scope, ConsentScope.RECORD])
        .filter(covers)
        .first()
    )
    if consent is None:
        audit_record(
            actor=actor,
            action="share.grant",
            outcome=Outcome.DENIED,
            resource_type="patient",
            resource_id=patient.pk,
            patient_id=patient.pk,
            reason="no active consent",
        )
        raise AccessDenied(_("The resident has not consented to sharing the record with them."))
    share = PatientShare.objects.create(
        patient=patient,
        consent=consent,
        reason=reason,
        reference=reference,
        grantee_institution=institution,
        grantee_centre=centre,
        grantee_user=user,
        granted_by=actor,
        expires_at=expires_at,
    )
    audit_record(
        actor=actor,
        action="share.grant",
        outcome=Outcome.ALLOWED,
        resource_type="share",
        resource_id=share.pk,
        patient_id=patient.pk,
    )
    return share
