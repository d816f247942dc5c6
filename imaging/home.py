"""What the home page and the patient page show of imaging (called from core and records views).

Both return a dict with one key, so a template shows its imaging part only when the
view has added it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.http import HttpRequest
from django.utils import timezone

from association.models import Membership, Role
from association.selectors import actor_scope
from imaging.models import Priority, RequestStatus
from imaging.workflow_selectors import (
    OPEN_STATUSES,
    imaging_centre_ids,
    requests_for_clinic,
    requests_for_patient,
    studies_for_patient,
    worklist_for_user,
)
from records.models import Patient

HOME_WORKLIST_ROWS = 5
HOME_REQUEST_ROWS = 10
RECENT_REPORTS = dt.timedelta(days=7)
_CLINIC_ROLES = {Role.GRASSROOTS_DOCTOR, Role.SPECIALIST, Role.COORDINATOR}


def imaging_home_context(request: HttpRequest, membership: Membership | None) -> dict[str, Any]:
    """``{"imaging": {...}}`` for a radiologist (top of the worklist) or a clinician
    (the clinic's open and recently reported requests); ``{}`` for anyone else."""
    if membership is None:
        return {}
    scope = actor_scope(request.user)
    if membership.role == Role.RADIOLOGIST and imaging_centre_ids(scope):
        items = worklist_for_user(actor=request.user)
        return {
            "imaging": {
                "worklist": items[:HOME_WORKLIST_ROWS],
                "waiting": len(items),
                "overdue": sum(1 for i in items if i.overdue),
                "emergencies": sum(1 for i in items if i.request.priority == Priority.EMERGENCY),
            }
        }
    if membership.role in _CLINIC_ROLES and scope.care_institution_ids:
        since = timezone.now() - RECENT_REPORTS
        requests = [
            r
            for r in requests_for_clinic(actor=request.user, limit=50)
            if r.status in OPEN_STATUSES
            or (r.status == RequestStatus.REPORTED and r.reported_at and r.reported_at >= since)
        ]
        return {
            "imaging": {
                "requests": requests[:HOME_REQUEST_ROWS],
                "more": len(requests) > HOME_REQUEST_ROWS,
            }
        }
    return {}


def patient_imaging_context(
    actor: AbstractBaseUser | AnonymousUser, patient: Patient
) -> dict[str, Any]:
    """``{"patient_imaging": {...}}`` for the patient page; the caller has read ``patient``."""
    scope = actor_scope(actor)
    return {
        "patient_imaging": {
            "studies": studies_for_patient(actor=actor, patient=patient),
            "requests": requests_for_patient(actor=actor, patient=patient),
            "can_request": bool(scope.care_institution_ids),
        }
    }
