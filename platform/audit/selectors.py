"""Reading the audit trail: auditors only, within the associations they audit.

An auditor of an association sees the events of anyone who is (or was) a member of one
of its institutions, the events about residents whose home institution belongs to it,
and failed logins nobody could be matched to (an attacker guessing names has no
membership, yet is exactly what an auditor looks for).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils.translation import gettext as _

from association.models import Membership
from association.selectors import actor_scope
from audit.models import AuditEvent, Outcome
from audit.services import audit_record
from records.models import Patient
from records.selectors import AccessDenied

User = AbstractBaseUser | AnonymousUser


@dataclass(frozen=True)
class AuditFilters:
    username: str = ""
    action: str = ""
    outcome: str = ""
    patient_id: int | None = None
    since: dt.datetime | None = None  # inclusive
    until: dt.datetime | None = None  # exclusive

    def as_detail(self) -> dict[str, object]:
        """The filters as JSON-friendly values, for the audit event of the search itself."""
        return {
            k: (v.isoformat() if isinstance(v, dt.datetime) else v)
            for k, v in asdict(self).items()
            if v not in ("", None)
        }


def auditor_association_ids(*, actor: User) -> frozenset[int]:
    """The associations ``actor`` audits; anyone else is refused, and the refusal audited.

    Raises
    ------
    AccessDenied
        The actor audits no association.
    """
    ids = actor_scope(actor).audit_association_ids
    if not ids:
        audit_record(
            actor=actor,
            action="audit.search",
            outcome=Outcome.DENIED,
            resource_type="audit",
            reason="not an auditor",
        )
        raise AccessDenied(_("Only auditors can search the audit trail."))
    return ids


def _events_in(association_ids: frozenset[int]) -> QuerySet[AuditEvent]:
    by_member = Exists(
        Membership.objects.filter(
            user_id=OuterRef("actor_id"), institution__association_id__in=association_ids
        )
    )
    about_resident = Exists(
        Patient.objects.filter(
            pk=OuterRef("patient_id"), home_institution__association_id__in=association_ids
        )
    )
    unknown_login = Q(actor_id__isnull=True, action="auth.login", outcome=Outcome.FAILED)
    return AuditEvent.objects.filter(by_member | about_resident | unknown_login)


def audit_event_search(*, actor: User, filters: AuditFilters) -> QuerySet[AuditEvent]:
    """Events visible to the auditor ``actor`` matching ``filters``, newest first; audited."""
    ids = auditor_association_ids(actor=actor)
    qs = _events_in(ids)
    if filters.username:
        qs = qs.filter(actor_username__icontains=filters.username)
    if filters.action:
        qs = qs.filter(action__startswith=filters.action)
    if filters.outcome:
        qs = qs.filter(outcome=filters.outcome)
    if filters.patient_id is not None:
        qs = qs.filter(patient_id=filters.patient_id)
    if filters.since is not None:
        qs = qs.filter(at__gte=filters.since)
    if filters.until is not None:
        qs = qs.filter(at__lt=filters.until)
    audit_record(
        actor=actor,
        action="audit.search",
        outcome=Outcome.ALLOWED,
        resource_type="audit",
        detail=filters.as_detail(),
    )
    return qs.order_by("-at", "-id")


def audit_denial_count(*, association_ids: frozenset[int], since: dt.datetime) -> int:
    """How many denied accesses the auditor's associations saw since ``since``."""
    if not association_ids:
        return 0
    return _events_in(association_ids).filter(outcome=Outcome.DENIED, at__gte=since).count()
