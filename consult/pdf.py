"""The signed consult opinion as a PDF, rendered with reportlab.

Chinese text uses reportlab's built-in CID font ``STSong-Light`` (Adobe GB1, encoding
UniGB-UCS2-H): PDF readers supply the glyphs, so no font file ships with the platform.
Labels are translated in the language active when :func:`opinion_pdf_render` runs (the
signer's), so the frozen document reads the same for everyone who opens it later.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from django.utils.translation import gettext as _
from django.utils.translation import pgettext
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, Spacer, Table

from accounts.models import User
from consult.models import Consult, ConsultExpert, Recommendation
from core.pdf import (
    facts_table,
    local_time,
    markup,
    paragraph_styles,
    register_font,
    render_signed_version,
)


class OpinionFields(Protocol):
    """The opinion's content: ``consult.opinion.OpinionContent`` or an ``OpinionVersion``."""

    @property
    def findings(self) -> str: ...
    @property
    def diagnosis(self) -> str: ...
    @property
    def advice(self) -> str: ...
    @property
    def recommendation(self) -> str: ...
    @property
    def follow_up_on(self) -> dt.date | None: ...


@dataclass(frozen=True)
class OpinionDocument:
    """Everything printed on one signed version; built by ``consult.opinion``."""

    association: str
    requesting_institution: str
    expert_institutions: Sequence[str]
    consult_number: str
    patient_name: str
    patient_sex: str
    patient_age: int
    patient_resident_id: str  # already masked
    question: str
    history: str
    attachments: Sequence[str]
    experts: Sequence[str]
    requested_by: str
    findings: str
    diagnosis: str
    advice: str
    recommendation: str  # the choice's label
    follow_up_on: dt.date | None
    signer: str
    signed_at: dt.datetime
    version: int
    amendment_reason: str = ""


def opinion_document(
    *,
    consult: Consult,
    content: OpinionFields,
    experts: Sequence[ConsultExpert],
    signer: User,
    signed_at: dt.datetime,
    version: int,
    reason: str,
) -> OpinionDocument:
    """What one signed version prints, from the consult, its accepted experts and the content."""
    patient = consult.patient
    lead = _("lead expert")
    return OpinionDocument(
        association=consult.requesting_institution.association.name,
        requesting_institution=consult.requesting_institution.name,
        expert_institutions=[e.institution.name for e in experts],
        consult_number=consult.number,
        patient_name=patient.name,
        patient_sex=str(patient.get_sex_display()),
        patient_age=patient.age,
        patient_resident_id=patient.masked_resident_id,
        question=consult.question,
        history=consult.history,
        attachments=[f"{a.get_kind_display()}: {a.title}" for a in consult.attachments.all()],
        experts=[
            f"{e.user} · {e.institution.name}" + (f" ({lead})" if e.lead else "") for e in experts
        ],
        requested_by=str(consult.requested_by),
        findings=content.findings,
        diagnosis=content.diagnosis,
        advice=content.advice,
        recommendation=str(Recommendation(content.recommendation).label),
        follow_up_on=content.follow_up_on,
        signer=str(signer),
        signed_at=signed_at,
        version=version,
        amendment_reason=reason,
    )


def _styles() -> dict[str, ParagraphStyle]:
    return paragraph_styles(body=10.5)


def _text(value: str) -> str:
    return markup(value)


def _when(value: dt.datetime) -> str:
    return local_time(value)


def _facts(rows: Sequence[tuple[str, str]]) -> Table:
    return facts_table(rows, style=_styles()["body"], label_width=40 * mm)


def _section(title: str, body: str) -> list[Any]:
    styles = _styles()
    return [
        Paragraph(_text(title), styles["heading"]),
        Paragraph(_text(body) or "—", styles["body"]),
    ]


def _header(doc: OpinionDocument) -> list[Any]:
    styles = _styles()
    hospitals = "、".join(dict.fromkeys(doc.expert_institutions))
    return [
        Paragraph(_text(doc.association), styles["subtitle"]),
        Paragraph(_text(_("Remote consultation opinion")), styles["title"]),
        Paragraph(
            _text(f"{doc.requesting_institution} → {hospitals or '—'}"),
            styles["subtitle"],
        ),
        Spacer(1, 4 * mm),
    ]


def _story(doc: OpinionDocument) -> list[Any]:
    styles = _styles()
    story = _header(doc)
    story.append(
        _facts(
            [
                (_("Consult number"), doc.consult_number),
                (
                    _("Patient"),
                    _("%(name)s · %(sex)s · %(age)s years · ID %(rid)s")
                    % {
                        "name": doc.patient_name,
                        "sex": doc.patient_sex,
                        "age": doc.patient_age,
                        "rid": doc.patient_resident_id,
                    },
                ),
                (_("Requested by"), f"{doc.requested_by} · {doc.requesting_institution}"),
                (_("Experts"), "; ".join(doc.experts) or "—"),
                (_("Attachments"), "; ".join(doc.attachments) or _("none")),
            ]
        )
    )
    story += _section(_("Question"), doc.question)
    if doc.history.strip():
        story += _section(_("History"), doc.history)
    story += _section(pgettext("consult opinion", "Findings"), doc.findings)
    story += _section(_("Diagnosis"), doc.diagnosis)
    story += _section(_("Advice"), doc.advice)
    recommendation = doc.recommendation
    if doc.follow_up_on is not None:
        recommendation = _("%(recommendation)s (follow up on %(day)s)") % {
            "recommendation": recommendation,
            "day": doc.follow_up_on.isoformat(),
        }
    story += _section(_("Recommendation"), recommendation)
    story.append(Spacer(1, 6 * mm))
    signature = [
        (_("Signed by"), doc.signer),
        (_("Signed at"), _when(doc.signed_at)),
        (_("Version"), str(doc.version)),
    ]
    if doc.amendment_reason:
        signature.append((_("Reason for the amendment"), doc.amendment_reason))
    story.append(_facts(signature))
    story.append(Spacer(1, 4 * mm))
    story.append(
        Paragraph(
            _text(
                _(
                    "This opinion is advice to the requesting doctor, who remains responsible"
                    " for the patient's care."
                )
            ),
            styles["small"],
        )
    )
    return story


def opinion_pdf_render(doc: OpinionDocument) -> bytes:
    """Render one signed version to PDF bytes (a few kilobytes; held in memory)."""
    register_font()  # before the story: its paragraph styles name the font
    return render_signed_version(
        _story(doc),
        number=doc.consult_number,
        version=doc.version,
        author=doc.signer,
        subject=_("Remote consultation opinion"),
    )
