"""Who may see which images: the choke points every imaging read goes through.

A study is visible to an actor when at least one holds:

* its resident's record is visible to the actor (``records.selectors``): the images go
  with the record, to every doctor of the association who may see that patient;
* it is not matched to a resident yet and came from an institution the actor treats at
  (so the clinic can match it);
* it answers an imaging request sent to one of the actor's centres.

Reads are audited per study and actor, at most once per ``AUDIT_WINDOW`` for the same
kind of read, so a viewer fetching 300 frames writes one event, not 300.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.cache import cache
from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _

from association.selectors import ActorScope, actor_scope
from audit.models import Outcome
from audit.services import audit_record
from imaging.models import ImagingRequest, Instance, Series, Study
from records.selectors import AccessDenied, NotFound, patients_visible_to

User = AbstractBaseUser | AnonymousUser
AUDIT_WINDOW_SECONDS = 300


def studies_visible_to(scope: ActorScope) -> QuerySet[Study]:
    """All studies ``scope`` may see, as one queryset (callers audit)."""
    if scope.user_id is None or not scope.is_clinical:
        return Study.objects.none()
    return Study.objects.filter(
        Q(patient__in=patients_visible_to(scope))
        | Q(patient__isnull=True, source_institution_id__in=scope.care_institution_ids)
        | Q(request__centre_id__in=scope.centre_ids)
    )


def requests_visible_to(scope: ActorScope) -> QuerySet[ImagingRequest]:
    """Requests the actor's clinic made or the actor's centre received."""
    if scope.user_id is None or not scope.is_clinical:
        return ImagingRequest.objects.none()
    return ImagingRequest.objects.filter(
        Q(requesting_institution_id__in=scope.care_institution_ids)
        | Q(centre_id__in=scope.centre_ids)
        | Q(patient__in=patients_visible_to(scope))
    )


def audit_study_read(*, actor: User, study: Study, action: str) -> None:
    """Record a read of ``study`` once per window for this actor and action."""
    key = f"audit:{action}:{actor.pk}:{study.pk}"
    if cache.add(key, 1, AUDIT_WINDOW_SECONDS):
        audit_record(
            actor=actor,
            action=action,
            outcome=Outcome.ALLOWED,
            resource_type="study",
            resource_id=study.study_uid,
            patient_id=study.patient_id,
        )


def _deny(*, actor: User, study_uid: str, action: str) -> AccessDenied | NotFound:
    study = Study.objects.filter(study_uid=study_uid).only("pk", "patient_id").first()
    audit_record(
        actor=actor,
        action=action,
        outcome=Outcome.DENIED if study else Outcome.FAILED,
        resource_type="study",
        resource_id=study_uid[:100],
        patient_id=study.patient_id if study else None,
        reason="not visible to actor" if study else "no such study",
    )
    if study is not None:
        return AccessDenied(_("You do not have access to this study."))
    return NotFound(_("No such study."))


def study_get_for_user(*, actor: User, study_uid: str, action: str = "study.view") -> Study:
    """The study if visible; audited (denials always, reads once per window).

    Raises
    ------
    AccessDenied, NotFound
    """
    study = (
        studies_visible_to(actor_scope(actor))
        .select_related("patient", "request", "source_institution")
        .filter(study_uid=study_uid)
        .first()
    )
    if study is None:
        raise _deny(actor=actor, study_uid=study_uid, action=action)
    audit_study_read(actor=actor, study=study, action=action)
    return study


def series_get_for_user(
    *, actor: User, study_uid: str, series_uid: str, action: str = "study.view"
) -> Series:
    study = study_get_for_user(actor=actor, study_uid=study_uid, action=action)
    series = Series.objects.filter(study=study, series_uid=series_uid).first()
    if series is None:
        raise NotFound(_("No such series in this study."))
    return series


def instance_get_for_user(
    *, actor: User, study_uid: str, series_uid: str, sop_uid: str, action: str = "study.view"
) -> Instance:
    series = series_get_for_user(
        actor=actor, study_uid=study_uid, series_uid=series_uid, action=action
    )
    instance = (
        Instance.objects.filter(series=series, sop_uid=sop_uid)
        .select_related("series__study")
        .first()
    )
    if instance is None:
        raise NotFound(_("No such instance in this series."))
    return instance


def priors_for_study(*, actor: User, study: Study) -> list[Study]:
    """Other studies of the same resident that the actor may see, newest first."""
    if study.patient_id is None:
        return []
    return list(
        studies_visible_to(actor_scope(actor))
        .filter(patient_id=study.patient_id)
        .exclude(pk=study.pk)
        .order_by("-study_date", "-created_at")[:20]
    )
