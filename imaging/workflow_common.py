"""What the reading workflow's services share: limits, access guards, audit and links.

A guard loads the request through ``imaging.selectors.requests_visible_to`` and checks the
actor's part in it (the requesting clinic, or a radiologist of the centre); each denial is
audited before ``AccessDenied`` is raised.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.urls import reverse
from django.utils import translation
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import User
from association.selectors import ActorScope, actor_scope
from audit.models import Outcome
from audit.services import audit_record
from imaging.models import ImagingRequest, Priority
from imaging.selectors import requests_visible_to
from imaging.workflow_selectors import is_centre_radiologist, is_requesting_clinician, request_deny
from realtime.models import Severity
from records.selectors import AccessDenied
from records.services import InvalidRecord, refused

# Timeline titles are stored in English and translated when shown: records.timeline.TITLES
# should list these kinds (the strings are marked here so the catalogue carries them).
TIMELINE_TITLES: dict[str, Promise] = {
    "imaging.requested": gettext_lazy("Imaging requested"),
    "imaging.cancelled": gettext_lazy("Imaging request cancelled"),
    "imaging.report_signed": gettext_lazy("Imaging report signed"),
    "imaging.report_amended": gettext_lazy("Imaging report amended"),
}

NOTIFY_SEVERITY: dict[str, Severity] = {
    Priority.EMERGENCY: Severity.CRITICAL,
    Priority.URGENT: Severity.URGENT,
    Priority.ROUTINE: Severity.INFO,
}

# Another radiologist of the centre may release a claim this old (someone went home).
CLAIM_TAKEOVER_AFTER = dt.timedelta(hours=1)

MAX_EXAM = 200
MAX_QUESTION = 2000
MAX_FINDINGS = 20000
MAX_IMPRESSION = 5000
MAX_REASON = 300
MAX_ANNOTATION_ITEMS = 500
MAX_ANNOTATION_BYTES = 256 * 1024
ACCESSION_PREFIX = "IR"


# --- Small helpers ---------------------------------------------------------------------------


def timeline_title(kind: str) -> str:
    with translation.override("en"):
        return str(TIMELINE_TITLES[kind])


def request_link(request: ImagingRequest) -> str:
    return reverse("imaging:request", args=[request.pk])


def reading_link(request: ImagingRequest) -> str:
    return reverse("imaging:read", args=[request.pk])


def audit_request(
    *,
    actor: User,
    action: str,
    request: ImagingRequest,
    outcome: Outcome = Outcome.ALLOWED,
    reason: str = "",
    detail: dict[str, Any] | None = None,
) -> None:
    audit_record(
        actor=actor,
        action=action,
        outcome=outcome,
        resource_type="imaging_request",
        resource_id=request.pk,
        patient_id=request.patient_id,
        reason=reason,
        detail=detail,
    )


def refuse(
    *, actor: User, action: str, request: ImagingRequest, message: str | Promise
) -> InvalidRecord:
    return refused(
        actor=actor,
        action=action,
        message=message,
        resource_type="imaging_request",
        resource_id=request.pk,
        patient_id=request.patient_id,
    )


def deny(
    *, actor: User, action: str, request: ImagingRequest, reason: str, message: str
) -> AccessDenied:
    audit_request(
        actor=actor, action=action, request=request, outcome=Outcome.DENIED, reason=reason
    )
    return AccessDenied(message)


def load_request(*, actor: User, request_id: int, action: str) -> tuple[ImagingRequest, ActorScope]:
    """The request if the actor may see it (denials audited), and the actor's scope."""
    scope = actor_scope(actor)
    request = (
        requests_visible_to(scope)
        .select_related(
            "patient",
            "patient__home_institution",
            "centre__host",
            "requested_by",
            "requesting_institution",
            "claimed_by",
        )
        .filter(pk=request_id)
        .first()
    )
    if request is None:
        raise request_deny(actor=actor, request_id=request_id, action=action)
    return request, scope


def as_clinic(*, actor: User, request_id: int, action: str) -> ImagingRequest:
    request, scope = load_request(actor=actor, request_id=request_id, action=action)
    if not is_requesting_clinician(scope, request):
        raise deny(
            actor=actor,
            action=action,
            request=request,
            reason="not the requesting institution",
            message=_("Only the clinic that made the request can change it."),
        )
    return request


def as_radiologist(*, actor: User, request_id: int, action: str) -> ImagingRequest:
    request, scope = load_request(actor=actor, request_id=request_id, action=action)
    if not is_centre_radiologist(scope, request.centre_id):
        raise deny(
            actor=actor,
            action=action,
            request=request,
            reason="not a radiologist of the centre",
            message=_("Only radiologists of the imaging centre can do this."),
        )
    return request
