"""The signed lab report as a PDF, rendered with reportlab.

Chinese text uses reportlab's built-in CID font ``STSong-Light`` (as ``consult.pdf`` does):
PDF readers supply the glyphs, so no font file ships with the platform. Labels are
translated in the language active when :func:`report_pdf_render` runs (the signer's), so
the frozen document reads the same for everyone who opens it later.

:func:`report_rows` is also the results snapshot kept with each ``LabReportVersion``.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.utils import timezone, translation
from django.utils.translation import gettext as _
from reportlab.lib import colors
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, Spacer, Table, TableStyle

from accounts.models import User
from core.pdf import (
    facts_table,
    local_time,
    markup,
    paragraph_styles,
    register_font,
    render_signed_version,
)
from lab.flags import ARROWS, reference_label
from lab.models import (
    CRITICAL_FLAGS,
    Flag,
    ItemStatus,
    LabOrder,
    OrderItem,
    RejectionReason,
    Result,
    Specimen,
    SpecimenType,
)
from records.models import Sex


@dataclass(frozen=True)
class SpecimenLine:
    barcode: str
    kind: str
    collected_at: dt.datetime
    received_at: dt.datetime | None
    rejected: str  # the reason when rejected, else ""


@dataclass(frozen=True)
class ReportDocument:
    """Everything printed on one signed version; built by :func:`report_document`."""

    association: str
    centre: str
    requesting_institution: str
    requested_by: str
    order_number: str
    patient_name: str
    patient_sex: str
    patient_age: int
    patient_resident_id: str  # already masked
    specimens: Sequence[SpecimenLine]
    rows: Sequence[Mapping[str, Any]]
    signer: str
    signed_at: dt.datetime
    version: int
    mutual_recognition: bool
    valid_until: dt.date | None
    comment: str = ""
    amendment_reason: str = ""


def _result_of(item: OrderItem) -> Result | None:
    try:
        return item.result
    except Result.DoesNotExist:
        return None


def report_rows(items: Iterable[OrderItem]) -> list[dict[str, Any]]:
    """The results as signed: one row per reported test (rejected specimens say so)."""
    rows: list[dict[str, Any]] = []
    for item in items:
        if item.status == ItemStatus.CANCELLED:
            continue
        test = item.test
        row: dict[str, Any] = {
            "item": item.pk,
            "code": test.code,
            "name": test.name,
            "name_en": test.name_en,
            "unit": test.unit,
            "barcode": item.specimen.barcode if item.specimen is not None else "",
        }
        result = _result_of(item)
        if item.status == ItemStatus.REJECTED or result is None:
            reason = item.specimen.rejection_reason if item.specimen is not None else ""
            rows.append(row | {"value": "", "flag": "", "reference": "", "rejected": reason})
            continue
        rows.append(
            row
            | {
                "value": result.display_value,
                "unit": result.unit,
                "flag": result.flag,
                "reference": result.reference_text
                or reference_label(result.reference_low, result.reference_high),
                "comment": result.comment,
            }
        )
    return rows


def _age_on(birth: dt.date, on: dt.date) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def report_document(
    *,
    order: LabOrder,
    rows: Sequence[Mapping[str, Any]],
    specimens: Iterable[Specimen],
    signer: User,
    signed_at: dt.datetime,
    version: int,
    reason: str,
    mutual_recognition: bool,
    valid_until: dt.date | None,
    comment: str,
) -> ReportDocument:
    """What one signed version prints."""
    patient = order.patient
    lines = [
        SpecimenLine(
            barcode=s.barcode,
            kind=str(SpecimenType(s.specimen_type).label)
            if s.specimen_type in SpecimenType.values
            else s.specimen_type,
            collected_at=s.collected_at,
            received_at=s.received_at,
            rejected=str(RejectionReason(s.rejection_reason).label)
            if s.rejection_reason in RejectionReason.values
            else "",
        )
        for s in sorted(specimens, key=lambda s: s.barcode)
    ]
    drawn = min((s.collected_at for s in lines), default=signed_at)
    return ReportDocument(
        association=order.centre.association.name,
        centre=order.centre.name,
        requesting_institution=order.requesting_institution.name,
        requested_by=str(order.requested_by),
        order_number=order.number,
        patient_name=patient.name,
        patient_sex=str(Sex(patient.sex).label) if patient.sex in Sex.values else patient.sex,
        patient_age=_age_on(patient.birth_date, timezone.localdate(drawn)),
        patient_resident_id=patient.masked_resident_id,
        specimens=lines,
        rows=list(rows),
        signer=str(signer),
        signed_at=signed_at,
        version=version,
        mutual_recognition=mutual_recognition,
        valid_until=valid_until,
        comment=comment,
        amendment_reason=reason,
    )


# --- Rendering -------------------------------------------------------------------------------


@functools.cache
def _styles() -> dict[str, ParagraphStyle]:
    styles = dict(paragraph_styles(body=10, cell=9.5))
    styles["mark"] = ParagraphStyle(
        "mark",
        parent=styles["body"],
        fontSize=10,
        textColor=colors.HexColor("#1f6a43"),
        borderColor=colors.HexColor("#1f6a43"),
        borderWidth=0.8,
        borderPadding=4,
        spaceBefore=6,
    )
    return styles


def _text(value: str) -> str:
    return markup(value)


def _when(value: dt.datetime | None) -> str:
    return local_time(value)


def _facts(rows: Sequence[tuple[str, str]]) -> Table:
    return facts_table(rows, style=_styles()["body"], label_width=36 * mm)


def _test_name(row: Mapping[str, Any]) -> str:
    language = translation.get_language() or ""
    if language.startswith("en") and row.get("name_en"):
        return str(row["name_en"])
    return str(row.get("name", ""))


def _flag_markup(flag: str) -> str:
    arrow = ARROWS.get(Flag(flag), "") if flag in Flag.values else ""
    if flag in CRITICAL_FLAGS:
        return f'<font color="#b42318"><b>{arrow}</b></font>'
    return arrow


def _results_table(doc: ReportDocument) -> Table:
    styles = _styles()
    cell = styles["cell"]
    head = [_("Test"), _("Result"), _("Flag"), _("Unit"), _("Reference range")]
    data: list[list[Any]] = [[Paragraph(_text(h), cell) for h in head]]
    style: list[tuple[Any, ...]] = [
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("LINEABOVE", (0, 0), (-1, 0), 0.8, colors.black),
        ("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.black),
        ("LINEBELOW", (0, -1), (-1, -1), 0.8, colors.black),
        ("TOPPADDING", (0, 0), (-1, -1), 3),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
    ]
    for index, row in enumerate(doc.rows, start=1):
        name = f"{_test_name(row)} ({row.get('code', '')})"
        if row.get("rejected") is not None and not row.get("value"):
            reason = row.get("rejected") or ""
            label = (
                str(RejectionReason(reason).label) if reason in RejectionReason.values else reason
            )
            value = _("not done: specimen rejected") + (f" ({label})" if label else "")
            data.append([Paragraph(_text(name), cell), Paragraph(_text(value), cell), "", "", ""])
            style.append(("SPAN", (1, index), (-1, index)))
            continue
        flag = str(row.get("flag", ""))
        value_markup = _text(str(row.get("value", "")))
        if flag in CRITICAL_FLAGS:
            value_markup = f'<font color="#b42318"><b>{value_markup}</b></font>'
        elif flag and flag != Flag.NORMAL:
            value_markup = f"<b>{value_markup}</b>"
        if row.get("comment"):
            value_markup += f'<br/><font size="8">{_text(str(row["comment"]))}</font>'
        data.append(
            [
                Paragraph(_text(name), cell),
                Paragraph(value_markup, cell),
                Paragraph(_flag_markup(flag), cell),
                Paragraph(_text(str(row.get("unit", ""))), cell),
                # Chinese lab reports print ranges as "3.5-5.3"; the CID font may lack the en dash.
                Paragraph(_text(str(row.get("reference", "")).replace("–", "-")), cell),
            ]
        )
        if flag in CRITICAL_FLAGS:
            style.append(("BACKGROUND", (0, index), (-1, index), colors.HexColor("#fcefed")))
    table = Table(
        data, colWidths=[58 * mm, 34 * mm, 14 * mm, 24 * mm, None], hAlign="LEFT", repeatRows=1
    )
    table.setStyle(TableStyle(style))
    return table


def _specimens_table(doc: ReportDocument) -> Table:
    styles = _styles()
    cell = styles["small"]
    head = [_("Barcode"), _("Specimen"), _("Collected at"), _("Received at")]
    data = [[Paragraph(_text(h), cell) for h in head]]
    for line in doc.specimens:
        received = _when(line.received_at)
        if line.rejected:
            received = _("rejected: %(reason)s") % {"reason": line.rejected}
        data.append(
            [
                Paragraph(_text(line.barcode), cell),
                Paragraph(_text(line.kind), cell),
                Paragraph(_text(_when(line.collected_at)), cell),
                Paragraph(_text(received), cell),
            ]
        )
    table = Table(data, colWidths=[34 * mm, 34 * mm, 40 * mm, None], hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                ("LINEBELOW", (0, 0), (-1, 0), 0.4, colors.HexColor("#999999")),
                ("TOPPADDING", (0, 0), (-1, -1), 1),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 1),
            ]
        )
    )
    return table


def _story(doc: ReportDocument) -> list[Any]:
    styles = _styles()
    story: list[Any] = [
        Paragraph(_text(doc.association), styles["subtitle"]),
        Paragraph(_text(doc.centre), styles["title"]),
        Paragraph(_text(_("Laboratory report")), styles["subtitle"]),
        Spacer(1, 4 * mm),
        _facts(
            [
                (_("Order number"), doc.order_number),
                (
                    _("Resident"),
                    _("%(name)s · %(sex)s · %(age)s years · ID %(rid)s")
                    % {
                        "name": doc.patient_name,
                        "sex": doc.patient_sex,
                        "age": doc.patient_age,
                        "rid": doc.patient_resident_id,
                    },
                ),
                (_("Ordered by"), f"{doc.requested_by} · {doc.requesting_institution}"),
            ]
        ),
        Spacer(1, 3 * mm),
        _specimens_table(doc),
        Paragraph(_text(_("Results")), styles["heading"]),
        _results_table(doc),
        Paragraph(
            _text(_("↑ high, ↓ low, ↑↑ ↓↓ critical (the ordering doctor was alerted).")),
            styles["small"],
        ),
    ]
    if doc.comment.strip():
        story += [
            Paragraph(_text(_("Comment")), styles["heading"]),
            Paragraph(_text(doc.comment), styles["body"]),
        ]
    story.append(Spacer(1, 5 * mm))
    signature = [
        (_("Signed by"), doc.signer),
        (_("Signed at"), _when(doc.signed_at)),
        (_("Version"), str(doc.version)),
    ]
    if doc.amendment_reason:
        signature.append((_("Reason for the amendment"), doc.amendment_reason))
    story.append(_facts(signature))
    if doc.mutual_recognition:
        mark = _("Mutually recognised result (结果互认)")
        if doc.valid_until is not None:
            mark += " · " + _("valid until %(day)s") % {"day": doc.valid_until.isoformat()}
        story.append(Paragraph(_text(mark), styles["mark"]))
    story.append(Spacer(1, 4 * mm))
    story.append(
        Paragraph(_text(_("These results relate only to the specimens received.")), styles["small"])
    )
    return story


def report_pdf_render(doc: ReportDocument) -> bytes:
    """Render one signed version to PDF bytes (a few kilobytes; held in memory)."""
    register_font()  # before the story: its paragraph styles name the font
    return render_signed_version(
        _story(doc),
        number=doc.order_number,
        version=doc.version,
        author=doc.signer,
        subject=_("Laboratory report"),
    )
