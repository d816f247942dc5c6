"""Writes to residents' records: registration, changes, consent, shares and the timeline."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone, translation
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import User
from association.models import (
    CLINICAL_ROLES,
    Institution,
    Membership,
)
from association.selectors import actor_scope
from audit.models import Outcome
from audit.services import audit_record
from realtime.models import Severity
from realtime.services import notification_send
from records import resident_id as rid
from records.models import (
    Patient,
    TimelineEvent,
)
from records.selectors import (
    AccessDenied,
    patient_get_for_edit,
    patients_visible_to,
)


class DuplicateResident(Exception):
    """The resident ID is already in the index but not visible to the actor."""

    def __init__(self, message: str, *, home_institution: Institution) -> None:
        super().__init__(message)
        self.home_institution = home_institution


class InvalidRecord(ValueError):
    """A field value is wrong; the message is for a person."""


def refused(
    *,
    actor: User,
    action: str,
    message: str | Promise,
    resource_type: str = "patient",
    resource_id: object = "",
    patient_id: int | None = None,
) -> InvalidRecord:
    """Audit a refused write as failed and return the error to raise."""
    audit_record(
        actor=actor,
        action=action,
        outcome=Outcome.FAILED,
        resource_type=resource_type,
        resource_id=resource_id,
        patient_id=patient_id,
        reason=message,
    )
    return InvalidRecord(message)


@dataclass(frozen=True)
class Registration:
    patient: Patient
    created: bool


def _check_identity(number: str, *, sex: str, birth_date: dt.date) -> str:
    try:
        parsed = rid.parse(number)
    except rid.InvalidResidentId as exc:
        raise InvalidRecord(exc.args[0]) from None
    if parsed.birth_date != birth_date:
        raise InvalidRecord(
            gettext_lazy("The birth date does not match the one in the resident ID.")
        )
    if parsed.sex != sex:
        raise InvalidRecord(gettext_lazy("The sex does not match the one in the resident ID."))
    return parsed.number


def patient_find_or_register(
    *,
    actor: User,
    resident_id: str,
    name: str,
    sex: str,
    birth_date: dt.date,
    phone: str = "",
    address: str = "",
    home_institution: Institution | None = None,
) -> Registration:
    """Return the existing resident with this ID, or register a new one at the actor's clinic.

    Raises
    ------
    InvalidRecord
        The resident ID is invalid or contradicts the sex or birth date.
    DuplicateResident
        The resident is registered elsewhere and not shared with the actor.
    AccessDenied
        The actor does not treat patients at ``home_institution``.
    """
    scope = actor_scope(actor)
    try:
        number = _check_identity(resident_id, sex=sex, birth_date=birth_date)
    except InvalidRecord as exc:
        raise refused(actor=actor, action="patient.register", message=exc.args[0]) from None
    existing = Patient.objects.select_related("home_institution").filter(resident_id=number).first()
    if existing is not None:
        if patients_visible_to(scope).filter(pk=existing.pk).exists():
            audit_record(
                actor=actor,
                action="patient.find",
                outcome=Outcome.ALLOWED,
                resource_type="patient",
                resource_id=existing.pk,
                patient_id=existing.pk,
            )
            return Registration(patient=existing, created=False)
        audit_record(
            actor=actor,
            action="patient.register",
            outcome=Outcome.DENIED,
            resource_type="patient",
            resource_id=existing.pk,
            patient_id=existing.pk,
            reason="already registered elsewhere, not shared",
        )
        _tell_family_doctor_of_request(patient=existing, requester=actor)
        raise DuplicateResident(
            _(
                "This resident is already registered at %(institution)s and the record is not"
                " shared with you. Ask them to share it, or record the resident's consent there."
            )
            % {"institution": existing.home_institution.name},
            home_institution=existing.home_institution,
        )
    if home_institution is None:
        if not scope.care_institution_ids:
            audit_record(
                actor=actor,
                action="patient.register",
                outcome=Outcome.DENIED,
                resource_type="patient",
                reason="no clinical membership",
            )
            raise AccessDenied(_("Only clinicians of an institution can register residents."))
        home_institution = Institution.objects.get(pk=min(scope.care_institution_ids))
    if home_institution.pk not in scope.care_institution_ids:
        audit_record(
            actor=actor,
            action="patient.register",
            outcome=Outcome.DENIED,
            resource_type="patient",
            reason="not a clinician of that institution",
        )
        raise AccessDenied(_("You can only register residents at an institution where you work."))
    try:
        with transaction.atomic():
            patient = Patient.objects.create(
                resident_id=number,
                name=name.strip(),
                sex=sex,
                birth_date=birth_date,
                phone=phone.strip(),
                address=address.strip(),
                home_institution=home_institution,
                registered_by=actor,
            )
            timeline_add(
                patient=patient,
                kind="registered",
                summary=home_institution.name,
                institution=home_institution,
                actor=actor,
            )
    except IntegrityError:
        # Registered concurrently by someone else between our look-up and insert.
        return patient_find_or_register(
            actor=actor,
            resident_id=number,
            name=name,
            sex=sex,
            birth_date=birth_date,
            phone=phone,
            address=address,
            home_institution=home_institution,
        )
    audit_record(
        actor=actor,
        action="patient.register",
        outcome=Outcome.ALLOWED,
        resource_type="patient",
        resource_id=patient.pk,
        patient_id=patient.pk,
    )
    return Registration(patient=patient, created=True)


def _tell_family_doctor_of_request(*, patient: Patient, requester: User) -> None:
    """The home clinic learns that another clinic needs this resident's record shared."""
    doctor = patient.family_doctor
    if doctor is None:
        return
    scope = actor_scope(requester)
    where = ", ".join(m.institution.name for m in scope.memberships) or requester.get_username()
    with translation.override(doctor.preferred_language):
        notification_send(
            recipient=doctor,
            kind="record.access_requested",
            severity=Severity.URGENT,
            title=_("%(clinic)s asks for the record of %(name)s")
            % {"clinic": where, "name": patient.name},
            body=_(
                "They tried to register this resident. If the resident agrees, record a consent"
                " so the record is shared with them."
            ),
            link=f"/patients/{patient.pk}/",
            patient_id=patient.pk,
            payload={"requester": requester.get_username()},
        )


_EDITABLE = ("name", "phone", "address", "family_doctor_id")


def patient_update(*, actor: User, patient_id: int, **changes: object) -> Patient:
    """Change demographic fields (not the resident ID) of a resident of the actor's clinic."""
    unknown = set(changes) - set(_EDITABLE)
    if unknown:
        raise InvalidRecord(
            gettext_lazy("These fields cannot be changed: %s") % ", ".join(sorted(unknown))
        )
    patient = patient_get_for_edit(actor=actor, patient_id=patient_id)
    doctor_id = changes.get("family_doctor_id")
    if (
        isinstance(doctor_id, int)
        and not Membership.objects.filter(
            user_id=doctor_id,
            institution_id=patient.home_institution_id,
            role__in=CLINICAL_ROLES,
            active=True,
        ).exists()
    ):
        raise refused(
            actor=actor,
            action="patient.update",
            message=gettext_lazy(
                "The family doctor must be a clinician of the resident's home institution."
            ),
            resource_id=patient.pk,
            patient_id=patient.pk,
        )
    with transaction.atomic():
        for field, value in changes.items():
            setattr(patient, field, value.strip() if isinstance(value, str) else value)
        patient.save(update_fields=[*changes, "updated_at"])
    audit_record(
        actor=actor,
        action="patient.update",
        outcome=Outcome.ALLOWED,
        resource_type="patient",
        resource_id=patient.pk,
        patient_id=patient.pk,
        detail={"fields": sorted(changes)},
    )
    return patient


def timeline_add(
    *,
    patient: Patient,
    kind: str,
    title: str = "",
    summary: str = "",
    institution: Institution | None = None,
    actor: User | None = None,
    link: str = "",
    data: dict[str, object] | None = None,
    at: dt.datetime | None = None,
) -> TimelineEvent:
    """Add an entry to the patient's timeline; callers have already checked access.

    Kinds listed in ``records.timeline.TITLES`` get their title translated when shown;
    others show ``title`` as given.
    """
    return TimelineEvent.objects.create(
        patient=patient,
        kind=kind,
        title=title,
        summary=summary,
        institution=institution,
        actor=actor,
        link=link,
        data=data or {},
        at=at or timezone.now(),
    )
