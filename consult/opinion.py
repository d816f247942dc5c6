"""The structured consult opinion: the expert's draft, its signature, amendments and the PDF.

Signing freezes a version (``OpinionVersion``) with its PDF in object storage, completes the
consult, files an entry on the patient's timeline and tells the requester at once. An
amendment adds a version and keeps the earlier ones. The PDF is stored before the database
is written and deleted again if that write fails, so nothing is ever half-stored.

Who writes: the lead expert of a multidisciplinary consult, or any accepted expert of a
consult sent to a specialty or a named expert. Who reads the PDF: whoever may see the consult
(``consult.selectors.consult_get_for_user``).
"""

from __future__ import annotations

import datetime as dt
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone, translation
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import User
from audit.models import Outcome
from consult.models import (
    Consult,
    ConsultExpert,
    ExpertStatus,
    Opinion,
    OpinionStatus,
    OpinionVersion,
    Recommendation,
    Status,
    TargetKind,
)
from consult.pdf import opinion_document, opinion_pdf_render
from consult.selectors import consult_deny, consult_get_for_user, consults_visible_to
from consult.workflow_common import audit_consult, consult_link, event_add, refuse
from objectstore import ObjectNotFound, ObjectStoreError, get_store
from realtime.models import Severity
from realtime.services import notification_send
from records.selectors import AccessDenied, NotFound
from records.services import timeline_add

logger = logging.getLogger(__name__)

ACTION_SAVE = "consult.opinion.save"
ACTION_SIGN = "consult.opinion.sign"
ACTION_AMEND = "consult.opinion.amend"
ACTION_PDF = "consult.opinion.pdf"

# An expert writes the opinion once they accepted, and until it is signed.
WRITABLE_STATUSES = frozenset({Status.ACCEPTED, Status.SCHEDULED, Status.IN_PROGRESS})
MAX_FINDINGS = 20000
MAX_DIAGNOSIS = 5000
MAX_ADVICE = 10000
MAX_REASON = 300
PDF_PREFIX = "consult/opinions"
TIMELINE_KIND = "consult.opinion"
# Stored in English, translated when shown (records.timeline.TITLES lists the kind).
TIMELINE_TITLE = gettext_lazy("Consultation opinion signed")


@dataclass(frozen=True)
class OpinionContent:
    findings: str = ""
    diagnosis: str = ""
    advice: str = ""
    recommendation: str = ""
    follow_up_on: dt.date | None = None

    @classmethod
    def of(cls, opinion: Opinion) -> OpinionContent:
        return cls(
            findings=opinion.findings,
            diagnosis=opinion.diagnosis,
            advice=opinion.advice,
            recommendation=opinion.recommendation,
            follow_up_on=opinion.follow_up_on,
        )

    def cleaned(self) -> OpinionContent:
        return replace(
            self,
            findings=self.findings.strip(),
            diagnosis=self.diagnosis.strip(),
            advice=self.advice.strip(),
        )


CONTENT_FIELDS = frozenset(OpinionContent.__dataclass_fields__)


@dataclass(frozen=True)
class OpinionPage:
    """What the opinion page shows the actor, and what they may do there."""

    consult: Consult
    opinion: Opinion | None
    versions: list[OpinionVersion]
    can_write: bool  # save a draft and sign
    can_amend: bool


class _Conflict(Exception):
    """Someone changed the consult or the opinion between the checks and the write."""


# --- Checks --------------------------------------------------------------------------------


def _text_problem(content: OpinionContent) -> str | Promise | None:
    limits = (
        (content.findings, MAX_FINDINGS, gettext_lazy("The findings are too long.")),
        (content.diagnosis, MAX_DIAGNOSIS, gettext_lazy("The diagnosis is too long.")),
        (content.advice, MAX_ADVICE, gettext_lazy("The advice is too long.")),
    )
    for value, limit, message in limits:
        if not isinstance(value, str) or len(value) > limit:
            return message
    return None


def _content_problem(content: OpinionContent, *, complete: bool) -> str | Promise | None:
    """What is wrong with the content, for a draft (``complete=False``) or a signature."""
    problem = _text_problem(content)
    if problem is not None:
        return problem
    day = content.follow_up_on
    if not isinstance(content.recommendation, str) or content.recommendation not in {
        "",
        *Recommendation.values,
    }:
        return gettext_lazy("Choose one of the recommendations offered.")
    if day is not None and (not isinstance(day, dt.date) or isinstance(day, dt.datetime)):
        return gettext_lazy("The follow-up date could not be read.")
    if day is not None and day <= timezone.localdate():
        return gettext_lazy("The follow-up date must be after today.")
    if not complete:
        return None
    content = content.cleaned()
    if not (content.findings and content.diagnosis and content.advice and content.recommendation):
        return gettext_lazy(
            "Write the findings, the diagnosis and the advice, and choose a recommendation,"
            " before signing."
        )
    if content.recommendation == Recommendation.FOLLOW_UP and day is None:
        return gettext_lazy("Give the follow-up date for a follow-up recommendation.")
    return None


def _signing_expert(*, user: User, consult: Consult) -> ConsultExpert | None:
    """The actor's accepted place among the consult's experts, if they may sign."""
    experts = consult.experts.select_related("institution").filter(
        user_id=user.pk, user__is_active=True, status=ExpertStatus.ACCEPTED
    )
    if consult.target_kind == TargetKind.MDT:
        experts = experts.filter(lead=True)
    return experts.first()


def _load(consult_id: int) -> Consult | None:
    return (
        Consult.objects.select_related(
            "patient", "requested_by", "requesting_institution__association"
        )
        .filter(pk=consult_id)
        .first()
    )


def _consult_for_writer(
    *, actor: User, consult_id: int, action: str
) -> tuple[Consult, ConsultExpert]:
    """The consult and the actor's expert place if they may write its opinion (denials audited)."""
    consult = _load(consult_id)
    if consult is None:
        raise consult_deny(actor=actor, consult_id=consult_id, action=action)
    expert = _signing_expert(user=actor, consult=consult)
    if expert is None:
        mdt = consult.target_kind == TargetKind.MDT
        audit_consult(
            actor=actor,
            action=action,
            consult=consult,
            outcome=Outcome.DENIED,
            reason="not the lead expert" if mdt else "not an accepted expert",
        )
        if mdt:
            raise AccessDenied(
                _("In a multidisciplinary consult only the lead expert writes the opinion.")
            )
        raise AccessDenied(_("Only an expert who accepted this consult can write its opinion."))
    return consult, expert


def _status_problem(consult: Consult) -> str | Promise | None:
    if consult.status == Status.COMPLETED:
        return gettext_lazy("The opinion is signed; amend it instead.")
    if consult.status not in WRITABLE_STATUSES:
        return gettext_lazy(
            "An opinion can be written once an expert has accepted the consult, and only while"
            " it is open (now: %(status)s)."
        ) % {"status": consult.get_status_display()}
    return None


# --- Links, notifications, the PDF document ---------------------------------------------------


def _accepted_experts(consult: Consult) -> list[ConsultExpert]:
    return list(
        consult.experts.select_related("user", "institution")
        .filter(status=ExpertStatus.ACCEPTED)
        .order_by("-lead", "invited_at", "pk")
    )


def _notify(*, consult: Consult, actor: User, version: int, amended: bool, body: str) -> None:
    """The requester at once, and the other accepted experts."""
    recipients = [consult.requested_by] + [
        e.user for e in _accepted_experts(consult) if e.user_id != actor.pk
    ]
    values = {"number": consult.number, "name": consult.patient.name}
    for recipient in dict.fromkeys(recipients):
        with translation.override(recipient.preferred_language):
            if amended:
                title = _("Consultation opinion amended: %(number)s for %(name)s") % values
            else:
                title = _("Consultation opinion signed: %(number)s for %(name)s") % values
            notification_send(
                recipient=recipient,
                kind="consult.opinion_amended" if amended else "consult.opinion_signed",
                severity=Severity.INFO,
                title=title,
                body=body[:500],
                link=consult_link(consult.pk),
                patient_id=consult.patient_id,
                payload={"consult": consult.pk, "version": version},
            )


def _discard(key: str) -> None:
    try:
        get_store().delete(key)
    except ObjectStoreError:  # an orphan object is harmless; a half-stored opinion is not
        logger.exception("could not delete the unused opinion PDF %s", key)


# --- Writes --------------------------------------------------------------------------------


def opinion_save_draft(
    *,
    actor: User,
    consult_id: int,
    findings: str = "",
    diagnosis: str = "",
    advice: str = "",
    recommendation: str = "",
    follow_up_on: dt.date | None = None,
) -> Opinion:
    """Save the expert's draft (seen by the experts only until it is signed).

    Raises
    ------
    AccessDenied, NotFound, InvalidRecord
    """
    consult, _expert = _consult_for_writer(actor=actor, consult_id=consult_id, action=ACTION_SAVE)
    content = OpinionContent(findings, diagnosis, advice, recommendation, follow_up_on)
    problem = _status_problem(consult) or _content_problem(content, complete=False)
    if problem is not None:
        raise refuse(actor=actor, action=ACTION_SAVE, consult=consult, message=problem)
    content = content.cleaned()
    values = {"author": actor, **{name: getattr(content, name) for name in CONTENT_FIELDS}}
    with transaction.atomic():
        opinion, _created = Opinion.objects.update_or_create(consult=consult, defaults=values)
        audit_consult(actor=actor, action=ACTION_SAVE, consult=consult)
    return opinion


def opinion_sign(
    *,
    actor: User,
    consult_id: int,
    findings: str,
    diagnosis: str,
    advice: str,
    recommendation: str,
    follow_up_on: dt.date | None = None,
) -> Opinion:
    """Sign the opinion: version 1 with its PDF, the consult completed, the requester told.

    Raises
    ------
    AccessDenied, NotFound, InvalidRecord
    objectstore.StoreUnavailable
        The PDF could not be stored; nothing was changed.
    """
    consult, expert = _consult_for_writer(actor=actor, consult_id=consult_id, action=ACTION_SIGN)
    content = OpinionContent(findings, diagnosis, advice, recommendation, follow_up_on)
    problem = _status_problem(consult) or _content_problem(content, complete=True)
    if problem is not None:
        raise refuse(actor=actor, action=ACTION_SIGN, consult=consult, message=problem)
    return _publish(
        actor=actor, consult=consult, expert=expert, content=content.cleaned(), reason=""
    )


def opinion_amend(*, actor: User, consult_id: int, reason: str, **fields: Any) -> Opinion:
    """Sign an amended version; earlier versions are kept and the requester is told.

    ``fields`` are any of findings, diagnosis, advice, recommendation, follow_up_on.

    Raises
    ------
    AccessDenied, NotFound, InvalidRecord
    objectstore.StoreUnavailable
    """
    consult, expert = _consult_for_writer(actor=actor, consult_id=consult_id, action=ACTION_AMEND)
    opinion = Opinion.objects.filter(consult=consult).first()
    reason = reason.strip() if isinstance(reason, str) else ""
    unknown = set(fields) - CONTENT_FIELDS
    problem: str | Promise | None = None
    after = OpinionContent()
    if opinion is None or opinion.status != OpinionStatus.SIGNED:
        problem = gettext_lazy("Only a signed opinion can be amended.")
    elif unknown:
        problem = gettext_lazy("These fields cannot be amended: %s") % ", ".join(sorted(unknown))
    elif not reason or len(reason) > MAX_REASON:
        problem = gettext_lazy("Say why the opinion is amended (at most 300 characters).")
    else:
        before = OpinionContent.of(opinion)
        after = replace(before, **fields)
        problem = _content_problem(after, complete=True)
        after = after.cleaned() if problem is None else after
        if problem is None and after == before:
            problem = gettext_lazy("Nothing was changed.")
    if problem is not None:
        raise refuse(actor=actor, action=ACTION_AMEND, consult=consult, message=problem)
    return _publish(actor=actor, consult=consult, expert=expert, content=after, reason=reason)


def _publish(
    *,
    actor: User,
    consult: Consult,
    expert: ConsultExpert,
    content: OpinionContent,
    reason: str,
) -> Opinion:
    """Store the PDF, then write the version, the consult, the timeline and the notices."""
    amended = bool(reason)
    action = ACTION_AMEND if amended else ACTION_SIGN
    current = Opinion.objects.filter(consult=consult).values_list("version", flat=True).first()
    number = (current or 0) + 1
    now = timezone.now()
    pdf = opinion_pdf_render(
        opinion_document(
            consult=consult,
            content=content,
            experts=_accepted_experts(consult),
            signer=actor,
            signed_at=now,
            version=number,
            reason=reason,
        )
    )
    stored = get_store().put(
        io.BytesIO(pdf), prefix=PDF_PREFIX, content_type="application/pdf", size=len(pdf)
    )
    try:
        with transaction.atomic():
            opinion = _write_version(
                actor=actor,
                consult=consult,
                expert=expert,
                content=content,
                reason=reason,
                number=number,
                now=now,
                pdf=(stored.key, stored.sha256, stored.size),
            )
    except _Conflict as exc:
        _discard(stored.key)
        raise refuse(actor=actor, action=action, consult=consult, message=exc.args[0]) from None
    except IntegrityError:
        _discard(stored.key)
        raise refuse(
            actor=actor,
            action=action,
            consult=consult,
            message=gettext_lazy("The opinion was signed meanwhile. Reload the page."),
        ) from None
    except BaseException:
        _discard(stored.key)
        raise
    return opinion


def _write_version(
    *,
    actor: User,
    consult: Consult,
    expert: ConsultExpert,
    content: OpinionContent,
    reason: str,
    number: int,
    now: dt.datetime,
    pdf: tuple[str, str, int],
) -> Opinion:
    """The database half of :func:`_publish`; runs in its transaction, under a row lock."""
    amended = bool(reason)
    locked = Consult.objects.select_for_update().get(pk=consult.pk)
    expected = {Status.COMPLETED} if amended else WRITABLE_STATUSES
    if locked.status not in expected:
        raise _Conflict(gettext_lazy("The consult changed meanwhile. Reload the page."))
    opinion = Opinion.objects.filter(consult=consult).first() or Opinion(consult=consult)
    if opinion.version != number - 1:
        raise _Conflict(gettext_lazy("The opinion was signed meanwhile. Reload the page."))
    for name in CONTENT_FIELDS:
        setattr(opinion, name, getattr(content, name))
    opinion.author = actor
    opinion.version = number
    opinion.status = OpinionStatus.SIGNED
    opinion.signed_at = now
    opinion.save()
    key, sha256, size = pdf
    OpinionVersion.objects.create(
        opinion=opinion,
        version=number,
        author=actor,
        amendment_reason=reason,
        pdf_key=key,
        pdf_sha256=sha256,
        pdf_size=size,
        signed_at=now,
        **{name: getattr(content, name) for name in CONTENT_FIELDS},
    )
    if not amended:
        consult.status = Status.COMPLETED
        consult.ended_at = locked.ended_at or now
        Consult.objects.filter(pk=consult.pk).update(
            status=consult.status, ended_at=consult.ended_at, updated_at=now
        )
    event_add(
        consult=consult,
        actor=actor,
        kind="amended" if amended else "signed",
        detail={"version": number, **({"reason": reason} if amended else {})},
    )
    with translation.override("en"):
        title = str(TIMELINE_TITLE)
    timeline_add(
        patient=consult.patient,
        kind=TIMELINE_KIND,
        title=title,
        summary=f"{consult.number}: {reason if amended else content.diagnosis}"[:500],
        institution=expert.institution,
        actor=actor,
        link=consult_link(consult.pk),
        data={"consult": consult.pk, "version": number, "amended": amended},
    )
    _notify(
        consult=consult,
        actor=actor,
        version=number,
        amended=amended,
        body=reason if amended else content.diagnosis,
    )
    audit_consult(
        actor=actor,
        action=ACTION_AMEND if amended else ACTION_SIGN,
        consult=consult,
        detail={"version": number, "recommendation": content.recommendation},
    )
    return opinion


# --- Reads ---------------------------------------------------------------------------------


def opinion_page_for_user(*, actor: User, consult_id: int) -> OpinionPage:
    """The opinion page: the consult (an audited read), its opinion and what the actor may do.

    Raises
    ------
    AccessDenied, NotFound
    """
    consult = consult_get_for_user(actor=actor, consult_id=consult_id, purpose="opinion.view")
    opinion = Opinion.objects.filter(consult=consult).first()
    versions = list(opinion.versions.select_related("author")) if opinion is not None else []
    signer = _signing_expert(user=actor, consult=consult) is not None
    signed = opinion is not None and opinion.status == OpinionStatus.SIGNED
    return OpinionPage(
        consult=consult,
        opinion=opinion,
        versions=versions,
        can_write=signer and not signed and consult.status in WRITABLE_STATUSES,
        can_amend=signer and signed,
    )


def opinion_pdf_for_user(
    *, actor: User, consult_id: int, version: int | None = None
) -> tuple[Iterator[bytes], str]:
    """The signed opinion's PDF (latest version unless ``version``) and its file name; audited.

    Raises
    ------
    AccessDenied, NotFound
    """
    # One audit event per download, with the version: the visibility check of
    # consult_get_for_user without its own "allowed" event.
    consult = (
        consults_visible_to(actor)
        .select_related("patient", "requesting_institution")
        .filter(pk=consult_id)
        .first()
    )
    if consult is None:
        raise consult_deny(actor=actor, consult_id=consult_id, action=ACTION_PDF)
    versions = OpinionVersion.objects.filter(
        opinion__consult=consult, opinion__status=OpinionStatus.SIGNED
    )
    row = (
        versions.filter(version=version).first()
        if version is not None
        else versions.order_by("-version").first()
    )
    if row is None or not row.pdf_key:
        audit_consult(
            actor=actor,
            action=ACTION_PDF,
            consult=consult,
            outcome=Outcome.FAILED,
            reason="no signed opinion" if version is None else "no such version",
        )
        if version is None:
            raise NotFound(_("The opinion is not signed yet."))
        raise NotFound(_("There is no version %(n)s of this opinion.") % {"n": version})
    try:
        chunks = get_store().open(row.pdf_key, expected_sha256=row.pdf_sha256)
    except ObjectNotFound:
        audit_consult(
            actor=actor,
            action=ACTION_PDF,
            consult=consult,
            outcome=Outcome.FAILED,
            reason="PDF missing from object storage",
        )
        raise NotFound(
            _("The PDF of this opinion is missing. Please tell the administrator.")
        ) from None
    audit_consult(actor=actor, action=ACTION_PDF, consult=consult, detail={"version": row.version})
    return chunks, f"{consult.number}-v{row.version}.pdf"
