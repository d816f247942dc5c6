"""Reads about who belongs where. No patient data here."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from association.models import CLINICAL_ROLES, Membership, Role


@dataclass(frozen=True)
class ActorScope:
    """What an acting user's active memberships give them, computed once per request."""

    user_id: int | None
    roles: frozenset[str] = frozenset()
    # Institutions the actor treats at (clinical, not centre-scoped): their own residents
    # and what is shared with them.
    care_institution_ids: frozenset[int] = frozenset()
    # Centres the actor works in: what was sent to them.
    centre_ids: frozenset[int] = frozenset()
    association_ids: frozenset[int] = frozenset()
    # Associations the actor treats patients in (a clinical, non-centre membership there).
    clinical_association_ids: frozenset[int] = frozenset()
    # Associations the actor administers (statistics) or audits (audit trail).
    admin_association_ids: frozenset[int] = frozenset()
    audit_association_ids: frozenset[int] = frozenset()
    memberships: tuple[Membership, ...] = field(default=(), compare=False)

    @property
    def is_clinical(self) -> bool:
        return bool(self.roles & CLINICAL_ROLES)


def actor_scope(user: AbstractBaseUser | AnonymousUser) -> ActorScope:
    """Return the scope of ``user``; anonymous or inactive users get an empty one."""
    if not user.is_authenticated or not user.is_active:
        return ActorScope(user_id=None)
    memberships = tuple(
        Membership.objects.filter(user_id=user.pk, active=True, institution__active=True)
        .select_related("institution", "centre")
        .order_by("id")
    )
    care: set[int] = set()
    centres: set[int] = set()
    associations: set[int] = set()
    admin: set[int] = set()
    audit: set[int] = set()
    clinical_assoc: set[int] = set()
    for m in memberships:
        associations.add(m.institution.association_id)
        if m.role == Role.ASSOCIATION_ADMIN:
            admin.add(m.institution.association_id)
        elif m.role == Role.AUDITOR:
            audit.add(m.institution.association_id)
        elif m.role in CLINICAL_ROLES:
            if m.centre_id is not None:
                centres.add(m.centre_id)
            else:
                clinical_assoc.add(m.institution.association_id)
                care.add(m.institution_id)
    return ActorScope(
        user_id=user.pk,
        roles=frozenset(m.role for m in memberships),
        care_institution_ids=frozenset(care),
        centre_ids=frozenset(centres),
        association_ids=frozenset(associations),
        clinical_association_ids=frozenset(clinical_assoc),
        admin_association_ids=frozenset(admin),
        audit_association_ids=frozenset(audit),
        memberships=memberships,
    )


def primary_membership(user: AbstractBaseUser | AnonymousUser) -> Membership | None:
    """The membership a home page is drawn for: the first clinical one, else any."""
    scope = actor_scope(user)
    for m in scope.memberships:
        if m.role in CLINICAL_ROLES:
            return m
    return scope.memberships[0] if scope.memberships else None
