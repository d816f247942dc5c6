"""Writes of a report: the claiming radiologist's draft, its signature, and amendments.

Signed versions are frozen (``ReportVersion``); an amendment adds a version and keeps the
earlier ones. The requesting doctor is notified at once, critical findings as critical.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, replace
from typing import Any

from django.db import transaction
from django.utils import timezone, translation
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import User
from imaging.models import (
    ImagingRequest,
    Priority,
    Report,
    ReportStatus,
    ReportVersion,
    RequestStatus,
)
from imaging.report_templates import TEMPLATES
from imaging.workflow_common import (
    MAX_ANNOTATION_BYTES,
    MAX_ANNOTATION_ITEMS,
    MAX_FINDINGS,
    MAX_IMPRESSION,
    MAX_REASON,
    as_radiologist,
    audit_request,
    refuse,
    request_link,
    timeline_title,
)
from realtime.models import Severity
from realtime.services import notification_send
from records.services import timeline_add

# --- Reports -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportContent:
    template: str = ""
    findings: str = ""
    impression: str = ""
    critical: bool = False
    mutual_recognition: bool = True
    valid_until: dt.date | None = None
    measurements: list[Any] | None = None
    key_images: list[Any] | None = None

    @classmethod
    def of(cls, report: Report) -> ReportContent:
        return cls(
            template=report.template,
            findings=report.findings,
            impression=report.impression,
            critical=report.critical,
            mutual_recognition=report.mutual_recognition,
            valid_until=report.valid_until,
            measurements=list(report.measurements or []),
            key_images=list(report.key_images or []),
        )


_CONTENT_FIELDS = frozenset(ReportContent.__dataclass_fields__)


def _annotation_problem(value: object) -> bool:
    if not isinstance(value, list) or len(value) > MAX_ANNOTATION_ITEMS:
        return True
    if not all(isinstance(item, dict) for item in value):
        return True
    try:
        size = len(json.dumps(value, ensure_ascii=False, allow_nan=False).encode())
    except (TypeError, ValueError):
        return True
    return size > MAX_ANNOTATION_BYTES


def _content_problem(content: ReportContent) -> str | Promise | None:
    if content.template and content.template not in TEMPLATES:
        return gettext_lazy("Unknown report template.")
    if not isinstance(content.findings, str) or len(content.findings) > MAX_FINDINGS:
        return gettext_lazy("The findings are too long (at most 20000 characters).")
    if not isinstance(content.impression, str) or len(content.impression) > MAX_IMPRESSION:
        return gettext_lazy("The impression is too long (at most 5000 characters).")
    if not isinstance(content.critical, bool) or not isinstance(content.mutual_recognition, bool):
        return gettext_lazy("The flags must be yes or no.")
    if content.valid_until is not None and (
        not isinstance(content.valid_until, dt.date) or content.valid_until < timezone.localdate()
    ):
        return gettext_lazy("The validity must end today or later.")
    if _annotation_problem(content.measurements or []) or _annotation_problem(
        content.key_images or []
    ):
        return gettext_lazy("The measurements or key images from the viewer could not be read.")
    return None


def _clean_content(content: ReportContent) -> ReportContent:
    return replace(
        content,
        findings=content.findings.strip(),
        impression=content.impression.strip(),
        # A validity only means something for a result other institutions recognise.
        valid_until=content.valid_until if content.mutual_recognition else None,
        measurements=list(content.measurements or []),
        key_images=list(content.key_images or []),
    )


def _require_reader(*, actor: User, request: ImagingRequest, action: str) -> None:
    """Only the radiologist who claimed the study writes and signs its report."""
    if request.status != RequestStatus.IN_PROGRESS or request.claimed_by_id != actor.pk:
        raise refuse(
            actor=actor,
            action=action,
            request=request,
            message=gettext_lazy("Claim the study from the worklist before writing its report."),
        )


def report_save_draft(
    *,
    actor: User,
    request_id: int,
    template: str = "",
    findings: str = "",
    impression: str = "",
    critical: bool = False,
    mutual_recognition: bool = True,
    valid_until: dt.date | None = None,
    measurements: list[Any] | None = None,
    key_images: list[Any] | None = None,
) -> Report:
    """Save the claiming radiologist's draft (visible to the centre only).

    Raises
    ------
    AccessDenied, NotFound, InvalidRecord
    """
    action = "imaging.report.save"
    request = as_radiologist(actor=actor, request_id=request_id, action=action)
    _require_reader(actor=actor, request=request, action=action)
    content = ReportContent(
        template=template,
        findings=findings,
        impression=impression,
        critical=critical,
        mutual_recognition=mutual_recognition,
        valid_until=valid_until,
        measurements=measurements,
        key_images=key_images,
    )
    problem = _content_problem(content)
    study = request.studies.order_by("-created_at", "-id").first()
    if problem is None and study is None:
        problem = gettext_lazy("No images are attached to this request.")
    existing = Report.objects.filter(request=request).first()
    if problem is None and existing is not None and existing.status != ReportStatus.DRAFT:
        problem = gettext_lazy("This report is signed; amend it instead.")
    if problem is not None:
        raise refuse(actor=actor, action=action, request=request, message=problem)
    assert study is not None  # checked above
    content = _clean_content(content)
    values = {
        "study": study,
        "author": actor,
        "template": content.template,
        "findings": content.findings,
        "impression": content.impression,
        "critical": content.critical,
        "mutual_recognition": content.mutual_recognition,
        "valid_until": content.valid_until,
        "measurements": content.measurements,
        "key_images": content.key_images,
    }
    with transaction.atomic():
        report, _created = Report.objects.update_or_create(request=request, defaults=values)
        audit_request(
            actor=actor,
            action=action,
            request=request,
            detail={"critical": content.critical, "measurements": len(content.measurements or [])},
        )
    return report


def _freeze(*, report: Report, actor: User, reason: str = "") -> ReportVersion:
    now = timezone.now()
    report.version += 1
    report.status = ReportStatus.SIGNED
    report.signed_at = now
    report.author = actor
    report.save()
    return ReportVersion.objects.create(
        report=report,
        version=report.version,
        author=actor,
        findings=report.findings,
        impression=report.impression,
        critical=report.critical,
        mutual_recognition=report.mutual_recognition,
        valid_until=report.valid_until,
        measurements=report.measurements,
        key_images=report.key_images,
        amendment_reason=reason,
        signed_at=now,
    )


def _notify_requester(*, request: ImagingRequest, report: Report, amended: bool) -> None:
    requester = request.requested_by
    severity = Severity.INFO
    if report.critical:
        severity = Severity.CRITICAL
    elif request.priority == Priority.EMERGENCY:
        severity = Severity.URGENT
    values = {"exam": request.exam, "name": request.patient.name}
    with translation.override(requester.preferred_language):
        if report.critical:
            title = _("Critical finding: %(exam)s for %(name)s") % values
        elif amended:
            title = _("Imaging report amended: %(exam)s for %(name)s") % values
        else:
            title = _("Imaging report ready: %(exam)s for %(name)s") % values
        notification_send(
            recipient=requester,
            kind="imaging.report_amended" if amended else "imaging.report_ready",
            severity=severity,
            title=title,
            body=report.impression[:500],
            link=request_link(request),
            patient_id=request.patient_id,
            payload={"request": request.pk, "version": report.version, "critical": report.critical},
        )


def _announce_version(
    *,
    actor: User,
    action: str,
    request: ImagingRequest,
    report: Report,
    version: ReportVersion,
    summary: str,
    amended: bool,
    detail: dict[str, Any],
) -> None:
    """A signed version goes on the timeline, to the requester and into the audit trail."""
    kind = "imaging.report_amended" if amended else "imaging.report_signed"
    timeline_add(
        patient=request.patient,
        kind=kind,
        title=timeline_title(kind),
        summary=f"{request.exam}: {summary}",
        institution=request.centre.host,
        actor=actor,
        link=request_link(request),
        data={"request": request.pk, "version": version.version, "critical": report.critical},
    )
    _notify_requester(request=request, report=report, amended=amended)
    audit_request(
        actor=actor,
        action=action,
        request=request,
        detail={"version": version.version, **detail},
    )


def report_sign(*, actor: User, request_id: int) -> ReportVersion:
    """Sign the draft: version 1 is frozen, the request is reported, the requester told at once.

    Raises
    ------
    AccessDenied, NotFound, InvalidRecord
    """
    action = "imaging.report.sign"
    request = as_radiologist(actor=actor, request_id=request_id, action=action)
    _require_reader(actor=actor, request=request, action=action)
    report = Report.objects.filter(request=request).first()
    problem: str | Promise | None = None
    if report is None or report.status != ReportStatus.DRAFT:
        problem = gettext_lazy("Save the report before signing it.")
    elif not report.findings or not report.impression:
        problem = gettext_lazy("Write the findings and the impression before signing.")
    if problem is not None or report is None:
        raise refuse(
            actor=actor,
            action=action,
            request=request,
            message=problem or gettext_lazy("Save the report before signing it."),
        )
    with transaction.atomic():
        version = _freeze(report=report, actor=actor)
        now = version.signed_at
        ImagingRequest.objects.filter(pk=request.pk).update(
            status=RequestStatus.REPORTED, reported_at=now
        )
        request.status, request.reported_at = RequestStatus.REPORTED, now
        _announce_version(
            actor=actor,
            action=action,
            request=request,
            report=report,
            version=version,
            summary=report.impression[:300],
            amended=False,
            detail={"critical": report.critical},
        )
    return version


def report_amend(*, actor: User, request_id: int, reason: str, **fields: Any) -> ReportVersion:
    """Sign an amended version; every earlier version is kept and the requester told.

    ``fields`` are any of the report's fields (findings, impression, critical,
    mutual_recognition, valid_until, template, measurements, key_images).

    Raises
    ------
    AccessDenied, NotFound, InvalidRecord
    """
    action = "imaging.report.amend"
    request = as_radiologist(actor=actor, request_id=request_id, action=action)
    report = Report.objects.filter(request=request).first()
    reason = reason.strip()
    unknown = set(fields) - _CONTENT_FIELDS
    problem: str | Promise | None = None
    if report is None or report.status != ReportStatus.SIGNED:
        problem = gettext_lazy("Only a signed report can be amended.")
    elif unknown:
        problem = gettext_lazy("These fields cannot be amended: %s") % ", ".join(sorted(unknown))
    elif not reason or len(reason) > MAX_REASON:
        problem = gettext_lazy("Say why the report is amended (at most 300 characters).")
    if problem is None and report is not None:
        before = ReportContent.of(report)
        after = replace(before, **fields)
        problem = _content_problem(after)
        if problem is None:
            after = _clean_content(after)
            if not after.findings or not after.impression:
                problem = gettext_lazy("Write the findings and the impression before signing.")
            elif after == before:
                problem = gettext_lazy("Nothing was changed.")
    if problem is not None or report is None:
        raise refuse(
            actor=actor,
            action=action,
            request=request,
            message=problem or gettext_lazy("Only a signed report can be amended."),
        )
    with transaction.atomic():
        for name in _CONTENT_FIELDS:
            setattr(report, name, getattr(after, name))
        version = _freeze(report=report, actor=actor, reason=reason)
        _announce_version(
            actor=actor,
            action=action,
            request=request,
            report=report,
            version=version,
            summary=reason,
            amended=True,
            detail={"fields": sorted(fields)},
        )
    return version
