"""Aggregate figures about an association for its admins: counts only, never names of residents."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import Count, Q

from association.models import (
    Association,
    DiagnosticCentre,
    Institution,
    InstitutionLevel,
    Membership,
    Role,
)


@dataclass(frozen=True)
class Bar:
    """One bar of a chart: a label, its value and its length relative to the longest bar."""

    label: str
    value: int
    percent: int


@dataclass(frozen=True)
class AssociationStats:
    association: Association
    institutions: int
    centres: int
    people: int
    residents: int
    residents_by_institution: list[Bar]
    institutions_by_level: list[Bar]
    people_by_role: list[Bar]


def _bars(pairs: Iterable[tuple[str, int]]) -> list[Bar]:
    """Turn (label, value) pairs into bars scaled to the largest value."""
    items = list(pairs)
    top = max((value for _label, value in items), default=0)
    return [
        Bar(label=label, value=value, percent=round(100 * value / top) if top else 0)
        for label, value in items
    ]


def association_stats(association: Association) -> AssociationStats:
    """The figures the admin home draws for one association (a handful of aggregate queries)."""
    institutions = list(
        Institution.objects.filter(association=association, active=True)
        .annotate(resident_count=Count("residents"))
        .order_by("-resident_count", "name")
    )
    by_level = dict(
        Institution.objects.filter(association=association, active=True)
        .values_list("level")
        .annotate(n=Count("id"))
        .values_list("level", "n")
    )
    by_role = dict(
        Membership.objects.filter(
            institution__association=association, active=True, user__is_active=True
        )
        .values_list("role")
        .annotate(n=Count("user", distinct=True))
        .values_list("role", "n")
    )
    people = (
        Membership.objects.filter(
            institution__association=association, active=True, user__is_active=True
        )
        .values("user")
        .distinct()
        .count()
    )
    centres = DiagnosticCentre.objects.filter(
        Q(association=association), Q(host__active=True)
    ).count()
    return AssociationStats(
        association=association,
        institutions=len(institutions),
        centres=centres,
        people=people,
        residents=sum(i.resident_count for i in institutions),
        residents_by_institution=_bars((i.name, i.resident_count) for i in institutions),
        institutions_by_level=_bars(
            (str(level.label), by_level[level.value])
            for level in InstitutionLevel
            if by_level.get(level.value)
        ),
        people_by_role=_bars(
            (str(role.label), by_role[role.value]) for role in Role if by_role.get(role.value)
        ),
    )


def association_stats_for_admin(association_ids: Iterable[int]) -> list[AssociationStats]:
    """Statistics of each association the admin administers, in name order."""
    return [association_stats(a) for a in Association.objects.filter(pk__in=list(association_ids))]
