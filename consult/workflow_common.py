"""What the consult services share: limits, guards, audit, events, notifications, shares.

A guard loads the consult through ``consult.selectors.consults_visible_to`` and checks the
actor's part in it; each denial is audited before ``AccessDenied`` is raised, each refusal
(a consult that cannot change this way now) before ``InvalidRecord`` is raised.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.db.models import QuerySet
from django.urls import NoReverseMatch, reverse
from django.utils import timezone, translation
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy

from accounts.models import User
from association.models import Membership, Role
from association.selectors import ActorScope, actor_scope
from audit.models import Outcome
from audit.services import audit_record
from consult.models import Consult, ConsultEvent, ConsultExpert, ExpertStatus, Priority
from consult.selectors import consult_deny, consults_visible_to
from realtime.models import Severity
from realtime.services import notification_send
from records.models import ConsentScope, PatientShare, ShareReason
from records.selectors import AccessDenied
from records.services import InvalidRecord, refused
from records.sharing import share_grant

MAX_QUESTION = 4000
MAX_HISTORY = 10000
MAX_REASON = 500
MAX_NOTE = 500
MAX_MDT = 7
MAX_STUDIES = 20
MAX_LAB_REFERENCES = 20
MAX_LAB_REFERENCE = 100
MAX_ATTACHMENT_NAME = 200
MAX_ATTACHMENT_BYTES = 50 * 1024**2
ATTACHMENT_TYPES = frozenset(
    {
        "application/pdf",
        "image/jpeg",
        "image/png",
        "image/webp",
        "image/gif",
        "text/plain",
        "application/dicom",
        "application/msword",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    }
)

# Timeline titles are stored in English and translated when shown (records.timeline.TITLES).
TIMELINE_TITLES: dict[str, Promise] = {
    "consult.requested": gettext_lazy("Consultation requested"),
    "consult.cancelled": gettext_lazy("Consultation cancelled"),
    "consult.opinion": gettext_lazy("Consultation opinion signed"),
}

NOTIFY_SEVERITY: dict[str, Severity] = {
    Priority.EMERGENCY: Severity.CRITICAL,
    Priority.URGENT: Severity.URGENT,
    Priority.ROUTINE: Severity.INFO,
}

# Experts still taking part (invited or accepted), as opposed to declined or withdrawn.
ACTIVE_EXPERT_STATUSES = (ExpertStatus.INVITED, ExpertStatus.ACCEPTED)


# --- Small helpers ---------------------------------------------------------------------------


def timeline_title(kind: str) -> str:
    with translation.override("en"):
        return str(TIMELINE_TITLES[kind])


def consult_link(consult_id: int) -> str:
    """The consult page (defined by the pages module; a fixed path until it exists)."""
    try:
        return reverse("consult:detail", args=[consult_id])
    except NoReverseMatch:
        return f"/consults/{consult_id}/"


def patient_label(consult: Consult) -> str:
    return consult.patient.name


# --- Audit, refusals, denials ------------------------------------------------------------------


def audit_consult(
    *,
    actor: User | None,
    action: str,
    consult: Consult,
    outcome: Outcome = Outcome.ALLOWED,
    reason: str | Promise = "",
    detail: dict[str, Any] | None = None,
) -> None:
    audit_record(
        actor=actor,
        action=action,
        outcome=outcome,
        resource_type="consult",
        resource_id=consult.pk,
        patient_id=consult.patient_id,
        reason=reason,
        detail=detail,
    )


def refuse(*, actor: User, action: str, consult: Consult, message: str | Promise) -> InvalidRecord:
    """Audit a refused change of ``consult`` (failed) and return the error to raise."""
    return refused(
        actor=actor,
        action=action,
        message=message,
        resource_type="consult",
        resource_id=consult.pk,
        patient_id=consult.patient_id,
    )


def deny(
    *, actor: User, action: str, consult: Consult, reason: str, message: str | Promise
) -> AccessDenied:
    """Audit a denied action on a consult the actor may see and return the error to raise."""
    audit_consult(
        actor=actor, action=action, consult=consult, outcome=Outcome.DENIED, reason=reason
    )
    return AccessDenied(str(message))


def load_consult(*, actor: User, consult_id: int, action: str) -> tuple[Consult, ActorScope]:
    """The consult if the actor may see it (denials audited), and the actor's scope."""
    scope = actor_scope(actor)
    consult = (
        consults_visible_to(actor, scope=scope)
        .select_related(
            "patient",
            "patient__home_institution",
            "requesting_institution",
            "requesting_institution__association",
            "requested_by",
            "target_institution",
            "target_specialty",
        )
        .filter(pk=consult_id)
        .first()
    )
    if consult is None:
        raise consult_deny(actor=actor, consult_id=consult_id, action=action)
    return consult, scope


# --- Who is who --------------------------------------------------------------------------------


def coordinators_of(association_id: int) -> list[User]:
    """The active coordinators of an association (they pre-review and watch turnaround)."""
    memberships = Membership.objects.filter(
        role=Role.COORDINATOR,
        active=True,
        user__is_active=True,
        institution__active=True,
        institution__association_id=association_id,
    ).select_related("user")
    return list({m.user_id: m.user for m in memberships}.values())


def is_coordinator_for(scope: ActorScope, consult: Consult) -> bool:
    return any(
        m.role == Role.COORDINATOR
        and m.institution.association_id == consult.requesting_institution.association_id
        for m in scope.memberships
    )


def experts_of(consult: Consult, *statuses: str) -> QuerySet[ConsultExpert]:
    qs = consult.experts.select_related("user", "institution").order_by("-lead", "id")
    return qs.filter(status__in=statuses) if statuses else qs


def expert_row(consult: Consult, user_id: int) -> ConsultExpert | None:
    return consult.experts.filter(user_id=user_id).select_related("user", "institution").first()


def specialists_in(association_id: int) -> QuerySet[Membership]:
    """Active specialist memberships (not centre-scoped) at the association's institutions."""
    return Membership.objects.filter(
        role=Role.SPECIALIST,
        active=True,
        centre__isnull=True,
        user__is_active=True,
        institution__active=True,
        institution__association_id=association_id,
    )


def involved_users(consult: Consult, *, coordinators: bool = False) -> list[User]:
    """The requester and the experts still taking part (and the coordinators if asked)."""
    users: dict[int, User] = {consult.requested_by_id: consult.requested_by}
    for row in experts_of(consult, *ACTIVE_EXPERT_STATUSES):
        users.setdefault(row.user_id, row.user)
    if coordinators:
        for user in coordinators_of(consult.requesting_institution.association_id):
            users.setdefault(user.pk, user)
    return list(users.values())


# --- Events and notifications ------------------------------------------------------------------


# Events after which someone may have lost the consult room: its connections re-check now.
ROOM_RECHECK_KINDS = frozenset(
    {"cancelled", "no_show", "declined", "all_declined", "routed", "signed", "lead_changed"}
)


def event_add(
    *, consult: Consult, kind: str, actor: User | None, detail: dict[str, Any] | None = None
) -> ConsultEvent:
    event = ConsultEvent.objects.create(
        consult=consult, kind=kind, actor=actor, detail=detail or {}, at=timezone.now()
    )
    if kind in ROOM_RECHECK_KINDS:
        from consult.room.services import room_recheck

        room_recheck(consult.pk)  # sent after commit
    return event


def notify(
    recipients: Iterable[User],
    *,
    consult: Consult,
    kind: str,
    title: Promise,
    body: Promise | str = "",
    params: Mapping[str, object] | None = None,
    severity: Severity | None = None,
    exclude: User | None = None,
    payload: dict[str, Any] | None = None,
) -> int:
    """Notify each recipient once, in their language; ``title % params``. Returns how many."""
    values = dict(params or {})
    values.setdefault("name", consult.patient.name)
    values.setdefault("number", consult.number)
    seen: set[int] = set()
    for user in recipients:
        if user.pk in seen or (exclude is not None and user.pk == exclude.pk):
            continue
        if not user.is_active:
            continue
        seen.add(user.pk)
        with translation.override(user.preferred_language or None):
            notification_send(
                recipient=user,
                kind=kind,
                severity=severity or NOTIFY_SEVERITY.get(consult.priority, Severity.INFO),
                title=str(title) % values,
                body=(str(body) % values) if body else "",
                link=consult_link(consult.pk),
                patient_id=consult.patient_id,
                payload={"consult": consult.pk, "number": consult.number} | (payload or {}),
            )
    return len(seen)


# --- Shares of the record with the experts ------------------------------------------------------


def share_with_expert(*, consult: Consult, row: ConsultExpert) -> PatientShare:
    """Share the resident with one expert for this consult, on the requester's behalf.

    The share names the expert (and their institution, for the record), so only that
    person reads the record through it; it rests on the resident's consult consent.
    Reused when an unrevoked one exists already.
    """
    existing = (
        PatientShare.objects.filter(
            patient_id=consult.patient_id,
            reason=ShareReason.CONSULT,
            reference=consult.number,
            grantee_user_id=row.user_id,
            revoked_at__isnull=True,
        )
        .order_by("-id")
        .first()
    )
    if existing is not None:
        return existing
    return share_grant(
        actor=consult.requested_by,
        patient=consult.patient,
        reason=ShareReason.CONSULT,
        reference=consult.number,
        institution=row.institution,
        user=row.user,
        consent_scope=ConsentScope.CONSULT,
    )


def shares_revoke(*, consult: Consult, user_ids: Iterable[int] | None = None) -> int:
    """End this consult's shares (all, or those naming ``user_ids``); returns how many."""
    qs = PatientShare.objects.filter(
        patient_id=consult.patient_id,
        reason=ShareReason.CONSULT,
        reference=consult.number,
        revoked_at__isnull=True,
    )
    if user_ids is not None:
        qs = qs.filter(grantee_user_id__in=list(user_ids))
    return qs.update(revoked_at=timezone.now())
