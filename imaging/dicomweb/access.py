"""The access selectors, with their "yes" remembered briefly for the per-frame hot path.

A viewer opening a 300-slice CT sends 300 frame requests within seconds. Deciding
visibility (:func:`imaging.selectors.study_get_for_user`) compiles a large query (the
record-sharing and consent rules) that costs several milliseconds of CPU each time, more
than the frame itself. So a *granted* decision is remembered per user and study for
``DICOMWEB_ACCESS_CACHE_SECONDS`` (default 60; 0 turns it off): within that window the
study is looked up by primary key instead of being re-decided. Denials are never
remembered, and the selectors still write the audit trail (reads once per their own
five-minute window, denials always). A revoked share therefore ends DICOMweb access
within the window, not at once.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.cache import cache
from django.core.exceptions import EmptyResultSet
from django.db.models import QuerySet
from django.db.models.expressions import RawSQL
from django.utils.translation import gettext as _

from association.selectors import actor_scope
from core.precompiled import Precompiled
from imaging.models import Instance, Series, Study
from imaging.selectors import studies_visible_to, study_get_for_user
from records.selectors import NotFound

User = AbstractBaseUser | AnonymousUser
DEFAULT_SECONDS = 60


def _seconds() -> int:
    return int(getattr(settings, "DICOMWEB_ACCESS_CACHE_SECONDS", DEFAULT_SECONDS))


def _key(actor: User, study_uid: str) -> str:
    return f"dicomweb:granted:{actor.pk}:{study_uid}"


def visible_studies(actor: User) -> QuerySet[Study]:
    """:func:`imaging.selectors.studies_visible_to` for ``actor``, compiled once per window.

    The visibility rules compile to one large SQL subquery; its text and parameters are
    remembered (per user, for the same window as granted studies) and reused as a raw
    subquery, so a search pays for running the query, not for building it again.
    """
    seconds = _seconds()
    visible = studies_visible_to(actor_scope(actor)) if seconds <= 0 else None
    if visible is not None:
        return visible
    key = f"dicomweb:visible-sql:{actor.pk}"
    compiled = cache.get(key)
    if compiled is None:
        subquery = studies_visible_to(actor_scope(actor)).values("pk")
        try:
            compiled = subquery.query.sql_with_params()
        except EmptyResultSet:
            compiled = ("", ())
        cache.set(key, compiled, seconds)
    sql, params = compiled
    if not sql:
        return Study.objects.none()
    # The SQL is Django's own compilation of the selector's queryset, never user input.
    return Study.objects.filter(pk__in=RawSQL(sql, params))  # noqa: S611


def _remembered(actor: User, study_uid: str) -> int | None:
    if _seconds() <= 0 or not actor.is_authenticated:
        return None
    value = cache.get(_key(actor, study_uid))
    return value if isinstance(value, int) else None


def study_for(*, actor: User, study_uid: str, action: str) -> Study:
    """The study, decided by :func:`study_get_for_user` (or its remembered "yes").

    Raises
    ------
    AccessDenied, NotFound
    """
    remembered = _remembered(actor, study_uid)
    if remembered is not None:
        study = Study.objects.filter(pk=remembered, study_uid=study_uid).first()
        if study is not None:
            return study
    study = study_get_for_user(actor=actor, study_uid=study_uid, action=action)
    if _seconds() > 0:
        cache.set(_key(actor, study_uid), study.pk, _seconds())
    return study


def series_for(*, actor: User, study_uid: str, series_uid: str, action: str) -> Series:
    """Like :func:`imaging.selectors.series_get_for_user`."""
    study = study_for(actor=actor, study_uid=study_uid, action=action)
    series = Series.objects.filter(study=study, series_uid=series_uid).first()
    if series is None:
        raise NotFound(_("No such series in this study."))
    return series


def _one(instances: QuerySet[Instance]) -> Instance | None:
    """The single match (UIDs are unique): no ORDER BY, which ``first()`` would add."""
    return next(iter(instances.order_by()[:1]), None)


# The instance of a study already granted: compiled once (a frame request's hot path).
_GRANTED_INSTANCE: Precompiled[Instance] = Precompiled(
    lambda study_pk, study_uid, series_uid, sop_uid: Instance.objects.filter(
        series__study_id=study_pk,
        series__study__study_uid=study_uid,
        series__series_uid=series_uid,
        sop_uid=sop_uid,
    ).order_by()[:1],
    -7_000_000_001,
    "\0study",
    "\0series",
    "\0sop",
)


def instance_for(
    *, actor: User, study_uid: str, series_uid: str, sop_uid: str, action: str
) -> Instance:
    """Like :func:`imaging.selectors.instance_get_for_user`; one query once granted.

    The instance comes without its series and study loaded (the views need neither).
    """
    remembered = _remembered(actor, study_uid)
    if remembered is not None:
        found = _GRANTED_INSTANCE.first(remembered, study_uid, series_uid, sop_uid)
        if found is not None:
            return found
    instances = Instance.objects.filter(
        series__study__study_uid=study_uid, series__series_uid=series_uid, sop_uid=sop_uid
    )
    study = study_for(actor=actor, study_uid=study_uid, action=action)
    instance = _one(instances.filter(series__study=study))
    if instance is None:
        if not Series.objects.filter(study=study, series_uid=series_uid).exists():
            raise NotFound(_("No such series in this study."))
        raise NotFound(_("No such instance in this series."))
    return instance
