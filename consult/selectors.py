"""Reads of consults. Every read of a consult goes through here and is audited.

Who sees a consult (deny by default):

* clinicians of the requesting institution who may read the resident (the requester
  and their colleagues);
* the experts invited to it or who accepted it (not those who declined or were
  withdrawn);
* the coordinators of the requesting institution's association.

Association admins see statistics, auditors the audit trail; neither sees consults.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Case, Exists, IntegerField, OuterRef, Q, QuerySet, Value, When
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import User as UserModel
from association.models import Membership, Role
from association.selectors import ActorScope, actor_scope
from audit.models import Outcome
from audit.services import audit_record
from consult.access import room_role
from consult.models import (
    OPEN_STATUSES,
    Attachment,
    Consult,
    ConsultEvent,
    ConsultExpert,
    ExpertStatus,
    Mode,
    Opinion,
    OpinionStatus,
    Priority,
    Slot,
    Status,
)
from consult.sla import SlaClock, opinion_clock, respond_clock
from records.selectors import AccessDenied, NotFound, patients_visible_to
from records.services import InvalidRecord

User = AbstractBaseUser | AnonymousUser

LIST_LIMIT = 200
PRIORITY_RANK = {Priority.EMERGENCY: 0, Priority.URGENT: 1, Priority.ROUTINE: 2}
ListScope = Literal["mine", "review", "invited", "all"]
LIST_SCOPES = ("mine", "review", "invited", "all")

_RELATED = (
    "patient",
    "patient__home_institution",
    "requesting_institution",
    "requesting_institution__association",
    "requested_by",
    "target_institution",
    "target_specialty",
)


# --- Who is who ---------------------------------------------------------------------------------


def coordinator_association_ids(scope: ActorScope) -> frozenset[int]:
    """The associations whose consults the actor pre-reviews (coordinator memberships)."""
    return frozenset(
        m.institution.association_id for m in scope.memberships if m.role == Role.COORDINATOR
    )


def consults_visible_to(actor: User, *, scope: ActorScope | None = None) -> QuerySet[Consult]:
    """All consults ``actor`` may see, as one queryset (no audit: callers audit)."""
    scope = scope if scope is not None else actor_scope(actor)
    if scope.user_id is None or not scope.is_clinical:
        return Consult.objects.none()
    requester_side = Q(
        requesting_institution_id__in=scope.care_institution_ids,
        patient__in=patients_visible_to(scope),
    )
    expert = Exists(
        ConsultExpert.objects.filter(
            consult_id=OuterRef("pk"),
            user_id=scope.user_id,
            status__in=(ExpertStatus.INVITED, ExpertStatus.ACCEPTED),
        )
    )
    coordinator = Q(requesting_institution__association_id__in=coordinator_association_ids(scope))
    return Consult.objects.filter(requester_side | expert | coordinator)


def actor_role(scope: ActorScope, consult: Consult) -> str | None:
    """The actor's part: requester, expert (accepted), invited, coordinator, colleague or None."""
    if scope.user_id is None:
        return None
    if consult.requested_by_id == scope.user_id:
        return "requester"
    status = consult.experts.filter(user_id=scope.user_id).values_list("status", flat=True).first()
    if status == ExpertStatus.ACCEPTED:
        return "expert"
    if status == ExpertStatus.INVITED:
        return "invited"
    if consult.requesting_institution.association_id in coordinator_association_ids(scope):
        return "coordinator"
    if consult.requesting_institution_id in scope.care_institution_ids:
        return "colleague"
    return None


# --- One consult --------------------------------------------------------------------------------


def consult_deny(*, actor: User, consult_id: int, action: str) -> AccessDenied | NotFound:
    """Audit a consult the actor may not see (or that does not exist); return the error."""
    existing = Consult.objects.filter(pk=consult_id).only("pk", "patient_id").first()
    audit_record(
        actor=actor,
        action=action,
        outcome=Outcome.DENIED if existing else Outcome.FAILED,
        resource_type="consult",
        resource_id=consult_id,
        patient_id=existing.patient_id if existing else None,
        reason="not visible to actor" if existing else "no such consult",
    )
    if existing is not None:
        return AccessDenied(_("You do not have access to this consultation."))
    return NotFound(_("No such consultation."))


def consult_get_for_user(*, actor: User, consult_id: int, purpose: str = "view") -> Consult:
    """The consult if visible to ``actor``; audited (``consult.<purpose>``) either way.

    Raises
    ------
    AccessDenied, NotFound
    """
    action = f"consult.{purpose}"
    consult = consults_visible_to(actor).select_related(*_RELATED).filter(pk=consult_id).first()
    if consult is None:
        raise consult_deny(actor=actor, consult_id=consult_id, action=action)
    audit_record(
        actor=actor,
        action=action,
        outcome=Outcome.ALLOWED,
        resource_type="consult",
        resource_id=consult.pk,
        patient_id=consult.patient_id,
    )
    return consult


@dataclass(frozen=True)
class ConsultDetail:
    """What the consult page shows, read under one access check, with what the actor may do."""

    consult: Consult
    role: str | None
    experts: list[ConsultExpert]
    attachments: list[Attachment]
    events: list[ConsultEvent]
    opinion: Opinion | None
    slots_free: list[Slot]
    can_review: bool
    can_respond: bool
    can_book: bool
    can_cancel: bool
    can_sign: bool
    can_join_room: bool
    respond_clock: SlaClock
    opinion_clock: SlaClock
    can_return: bool = False
    can_resubmit: bool = False
    can_start: bool = False
    can_no_show: bool = False
    can_attach: bool = False
    is_lead: bool = False
    # The experts the requester proposed, shown to the coordinator during pre-review.
    proposed_experts: tuple[UserModel, ...] = ()

    @property
    def lead(self) -> ConsultExpert | None:
        return next((e for e in self.experts if e.lead), None)

    @property
    def respond_overdue(self) -> bool:
        return self.respond_clock.overdue

    @property
    def opinion_overdue(self) -> bool:
        return self.opinion_clock.overdue


def proposed_expert_ids(consult: Consult) -> list[int]:
    """The named experts the request asked for (kept on its ``requested`` event)."""
    event = consult.events.filter(kind__in=("requested", "resubmitted")).order_by("-at", "-pk")
    first = event.values_list("detail", flat=True).first() or {}
    ids = first.get("expert_ids", []) if isinstance(first, dict) else []
    return [i for i in ids if isinstance(i, int)]


def consult_detail_for_user(*, actor: User, consult_id: int) -> ConsultDetail:
    """The consult page's data under one access check; draft opinions only to the experts."""
    consult = consult_get_for_user(actor=actor, consult_id=consult_id)
    scope = actor_scope(actor)
    role = actor_role(scope, consult)
    experts = list(consult.experts.select_related("user", "institution").order_by("-lead", "id"))
    mine = next((e for e in experts if e.user_id == scope.user_id), None)
    accepted = mine is not None and mine.status == ExpertStatus.ACCEPTED
    is_lead = accepted and mine is not None and mine.lead
    status = consult.status
    coordinator = consult.requesting_institution.association_id in coordinator_association_ids(
        scope
    )
    requester = role == "requester"
    opinion = Opinion.objects.filter(consult=consult).select_related("author").first()
    if opinion is not None and opinion.status != OpinionStatus.SIGNED and not accepted:
        opinion = None
    live = status in (Status.ACCEPTED, Status.SCHEDULED)
    slots_free: list[Slot] = []
    if is_lead and consult.mode == Mode.VIDEO and live:
        slots_free = list(
            Slot.objects.filter(
                expert_id=scope.user_id, consult__isnull=True, start__gt=timezone.now()
            ).order_by("start")[:50]
        )
    now = timezone.now()
    proposed: tuple[UserModel, ...] = ()
    if coordinator and status == Status.PENDING_REVIEW:
        ids = proposed_expert_ids(consult)
        found = {u.pk: u for u in UserModel.objects.filter(pk__in=ids)}
        proposed = tuple(found[i] for i in ids if i in found)
    return ConsultDetail(
        consult=consult,
        role=role,
        experts=experts,
        attachments=list(consult.attachments.select_related("study", "uploaded_by")),
        events=list(consult.events.select_related("actor").order_by("at", "pk")),
        opinion=opinion,
        slots_free=slots_free,
        can_review=coordinator and status in (Status.PENDING_REVIEW, Status.PENDING_EXPERT),
        can_return=coordinator and status == Status.PENDING_REVIEW,
        can_respond=mine is not None
        and mine.status == ExpertStatus.INVITED
        and status in (Status.PENDING_EXPERT, *live_statuses()),
        can_book=is_lead and consult.mode == Mode.VIDEO and live,
        can_cancel=(requester or coordinator or is_lead) and status in OPEN_STATUSES,
        can_sign=is_lead and status in live_statuses(),
        can_join_room=room_role(user_id=scope.user_id, consult_id=consult.pk) is not None,
        can_resubmit=requester and status == Status.RETURNED,
        can_start=accepted and live,
        can_no_show=accepted
        and status == Status.SCHEDULED
        and consult.scheduled_start is not None
        and consult.scheduled_start <= now,
        can_attach=(requester or role == "colleague" or accepted) and status in OPEN_STATUSES,
        is_lead=is_lead,
        respond_clock=respond_clock(consult, now=now),
        opinion_clock=opinion_clock(consult, now=now),
        proposed_experts=proposed,
    )


def live_statuses() -> tuple[Status, ...]:
    """Statuses after an expert took the consult and before the opinion is signed."""
    return (Status.ACCEPTED, Status.SCHEDULED, Status.IN_PROGRESS)


# --- Lists --------------------------------------------------------------------------------------


def _priority_rank() -> Case:
    return Case(
        *(When(priority=p, then=Value(rank)) for p, rank in PRIORITY_RANK.items()),
        default=Value(len(PRIORITY_RANK)),
        output_field=IntegerField(),
    )


def consult_list_for_user(
    *, actor: User, scope: ListScope = "all", status: str | None = None, limit: int = LIST_LIMIT
) -> list[Consult]:
    """Consults for a list tab (audited read).

    ``mine``: requested by the actor; ``review``: the actor's associations' consults
    waiting for pre-review (coordinators); ``invited``: consults the actor is invited to
    or accepted; ``all``: everything the actor may see. ``status`` narrows to one status,
    or ``"open"`` to the open ones. Open lists put emergencies first.

    Raises
    ------
    InvalidRecord
        Unknown list or status.
    """
    if scope not in LIST_SCOPES:
        raise InvalidRecord(gettext_lazy("Unknown consultation list."))
    if status is not None and status != "open" and status not in Status.values:
        raise InvalidRecord(gettext_lazy("Unknown consultation status."))
    actor_sc = actor_scope(actor)
    qs = consults_visible_to(actor, scope=actor_sc).select_related(*_RELATED)
    if scope == "mine":
        qs = qs.filter(requested_by_id=actor_sc.user_id)
    elif scope == "review":
        qs = qs.filter(
            requesting_institution__association_id__in=coordinator_association_ids(actor_sc)
        )
        if status is None:
            qs = qs.filter(status=Status.PENDING_REVIEW)
    elif scope == "invited":
        qs = qs.filter(
            Exists(
                ConsultExpert.objects.filter(
                    consult_id=OuterRef("pk"),
                    user_id=actor_sc.user_id or 0,
                    status__in=(ExpertStatus.INVITED, ExpertStatus.ACCEPTED),
                )
            )
        )
    if status == "open":
        qs = qs.filter(status__in=OPEN_STATUSES)
    elif status is not None:
        qs = qs.filter(status=status)
    if scope == "review" or status == "open" or status in OPEN_STATUSES:
        qs = qs.annotate(priority_rank=_priority_rank()).order_by(
            "priority_rank", "created_at", "id"
        )
    else:
        qs = qs.order_by("-created_at", "-id")
    consults = list(qs[:limit])
    audit_record(
        actor=actor,
        action="consult.list",
        outcome=Outcome.ALLOWED,
        resource_type="consult",
        detail={"scope": scope, "status": status or "", "count": len(consults)},
    )
    return consults


# --- Experts and their slots (no patient data) ---------------------------------------------------


def expert_candidates(
    *, actor: User, specialty_id: int | None = None, institution_id: int | None = None
) -> QuerySet[UserModel]:
    """Active specialists of the actor's associations whom the actor could ask."""
    scope = actor_scope(actor)
    if scope.user_id is None or not scope.care_institution_ids:
        return UserModel.objects.none()
    memberships = Membership.objects.filter(
        role=Role.SPECIALIST,
        active=True,
        centre__isnull=True,
        institution__active=True,
        institution__association_id__in=scope.clinical_association_ids,
    )
    if specialty_id is not None:
        memberships = memberships.filter(department__specialty_id=specialty_id)
    if institution_id is not None:
        memberships = memberships.filter(institution_id=institution_id)
    return (
        UserModel.objects.filter(is_active=True, pk__in=memberships.values("user_id"))
        .exclude(pk=scope.user_id)
        .order_by("display_name", "username")
    )


def slots_for_expert(
    *, actor: User, expert_id: int, include_booked: bool = False
) -> QuerySet[Slot]:
    """The expert's coming slots: free ones for clinicians of the expert's association;
    booked ones too (``include_booked``) for the expert and the association's coordinators."""
    scope = actor_scope(actor)
    if scope.user_id is None or not scope.is_clinical:
        return Slot.objects.none()
    expert_associations = set(
        Membership.objects.filter(user_id=expert_id, role=Role.SPECIALIST, active=True).values_list(
            "institution__association_id", flat=True
        )
    )
    own = expert_id == scope.user_id
    coordinator = bool(expert_associations & coordinator_association_ids(scope))
    colleague = bool(expert_associations & scope.clinical_association_ids)
    if not (own or coordinator or colleague):
        return Slot.objects.none()
    qs = Slot.objects.filter(expert_id=expert_id, end__gt=timezone.now()).order_by("start")
    if not (include_booked and (own or coordinator)):
        qs = qs.filter(consult__isnull=True)
    return qs
