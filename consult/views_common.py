"""What the consult pages and the API share: form choices, refusals, the attachment read."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _

from accounts.models import User
from association.models import Membership, Role
from audit.models import Outcome
from audit.services import audit_record
from consult.models import Attachment, AttachmentKind
from consult.selectors import consult_get_for_user, expert_candidates
from core.views import error_page
from imaging.workflow_selectors import studies_for_patient
from records.models import Patient
from records.selectors import NotFound

Choices = list[tuple[int, str]]


def _specialist_memberships(experts: list[User]) -> list[Membership]:
    return list(
        Membership.objects.filter(
            user__in=experts, role=Role.SPECIALIST, active=True, centre__isnull=True
        )
        .select_related("institution", "department__specialty")
        .order_by("institution__name", "id")
    )


def expert_choices(actor: User, **filters: int | None) -> Choices:
    """The experts ``actor`` may ask, labelled with their hospital and department."""
    experts = list(expert_candidates(actor=actor, **filters))
    where: dict[int, str] = {}
    for m in _specialist_memberships(experts):
        place = m.institution.name + (f" · {m.department.name}" if m.department else "")
        where.setdefault(m.user_id, place)
    return [(u.pk, f"{u} · {where[u.pk]}" if u.pk in where else str(u)) for u in experts]


def target_choices(actor: User) -> tuple[Choices, Choices]:
    """(hospitals, specialties) where ``actor`` could find an expert."""
    memberships = _specialist_memberships(list(expert_candidates(actor=actor)))
    institutions = {m.institution_id: m.institution.name for m in memberships}
    specialties: dict[int, str] = {}
    for m in memberships:
        if m.department is not None and m.department.specialty is not None:
            specialties[m.department.specialty.pk] = m.department.specialty.name
    return list(institutions.items()), sorted(specialties.items(), key=lambda item: item[1])


def study_choices(actor: User, patient: Patient) -> Choices:
    """The resident's imaging studies ``actor`` may see (to attach to a consult)."""
    return [
        (s.pk, str(s) or s.study_uid)
        for s in studies_for_patient(actor=actor, patient=patient, limit=20)
    ]


def deny_page(
    request: HttpRequest,
    *,
    action: str,
    reason: str,
    message: str,
    consult_id: int | None = None,
    patient_id: int | None = None,
    status: int = 403,
) -> HttpResponse:
    """Audit a page refused before any service was called, and say why."""
    audit_record(
        actor=request.user,
        action=action,
        outcome=Outcome.DENIED if status == 403 else Outcome.FAILED,
        resource_type="consult",
        resource_id=consult_id if consult_id is not None else "",
        patient_id=patient_id,
        reason=reason,
    )
    return error_page(request, status=status, message=message)


def attachment_for_user(*, actor: User, consult_id: int, attachment_id: int) -> Attachment:
    """A stored file of a consult the actor may see (the read is audited by the selector).

    Raises
    ------
    AccessDenied, NotFound
    """
    consult = consult_get_for_user(actor=actor, consult_id=consult_id, purpose="attachment")
    attachment = (
        consult.attachments.filter(pk=attachment_id, kind=AttachmentKind.FILE)
        .exclude(object_key="")
        .first()
    )
    if attachment is None:
        raise NotFound(_("No such file in this consultation."))
    return attachment
