"""A box's manifest as a PDF: what travels in the box, and who handed it over to whom.

Printed by the clinic and put in (or on) the box. The box number is printed as a Code 128
barcode, so the courier's hand-over and the centre's receipt are scanned from the sheet
as well as from the label. Residents appear masked with their pinyin initials (``张* ZS``):
the sheet travels with a courier.

Chinese text uses reportlab's built-in CID font ``STSong-Light`` like ``consult/pdf.py``;
labels are in the language active when :func:`manifest_pdf_render` runs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _
from reportlab.graphics.barcode.code128 import Code128
from reportlab.lib import colors
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, Spacer, Table, TableStyle

from core.pdf import (
    facts_table,
    local_time,
    markup,
    paragraph_styles,
    register_font,
    render_a4,
)
from lab.models import Box, Specimen
from lab.shipping_selectors import masked_name, name_initials, specimen_tests

_GRID = colors.HexColor("#9aa8b0")
_HEAD = colors.HexColor("#e6eef1")


def _styles() -> dict[str, ParagraphStyle]:
    return paragraph_styles(body=9.5, cell=8.5)


def _text(value: object) -> str:
    return markup(value)


def _when(value: dt.datetime | None) -> str:
    return local_time(value, empty="")


def _facts(rows: Sequence[tuple[str, str]]) -> Table:
    return facts_table(rows, style=_styles()["body"], empty="—")


def _patient(specimen: Specimen) -> str:
    name = specimen.order.patient.name
    initials = name_initials(name)
    return f"{masked_name(name)} {initials}".strip()


def _sex_age(specimen: Specimen) -> str:
    patient = specimen.order.patient
    return f"{patient.get_sex_display()} · {patient.age}"


def _specimen_table(specimens: Sequence[Specimen]) -> Table:
    styles = _styles()
    head = [
        "#",
        _("Barcode"),
        _("Resident"),
        _("Sex · age"),
        _("Specimen"),
        _("Container"),
        _("Tests"),
        _("Collected at"),
    ]
    data: list[list[Any]] = [[Paragraph(_text(h), styles["cell"]) for h in head]]
    for number, specimen in enumerate(specimens, start=1):
        cells = [
            str(number),
            specimen.barcode,
            _patient(specimen),
            _sex_age(specimen),
            specimen.get_specimen_type_display(),
            specimen.get_container_display(),
            specimen_tests(specimen),
            _when(specimen.collected_at),
        ]
        data.append([Paragraph(_text(c), styles["cell"]) for c in cells])
    widths = [8 * mm, 26 * mm, 22 * mm, 17 * mm, 18 * mm, 28 * mm, None, 24 * mm]
    table = Table(data, colWidths=widths, repeatRows=1, hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("BACKGROUND", (0, 0), (-1, 0), _HEAD),
                ("GRID", (0, 0), (-1, -1), 0.4, _GRID),
                ("TOPPADDING", (0, 0), (-1, -1), 2),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
            ]
        )
    )
    return table


def _signatures(box: Box) -> Table:
    styles = _styles()
    head = [_("Step"), _("Name"), _("Signature"), _("Date and time")]
    rows = [
        (
            _("Handed over by the clinic"),
            str(box.shipped_by or ""),
            _when(box.shipped_at),
        ),
        (_("Taken by the courier"), box.courier, _when(box.shipped_at)),
        (
            _("Received at the lab centre"),
            str(box.received_by or ""),
            _when(box.received_at),
        ),
    ]
    data: list[list[Any]] = [[Paragraph(_text(h), styles["cell"]) for h in head]]
    for step, name, when in rows:
        data.append(
            [
                Paragraph(_text(step), styles["cell"]),
                Paragraph(_text(name), styles["cell"]),
                "",
                Paragraph(_text(when), styles["cell"]),
            ]
        )
    table = Table(
        data,
        colWidths=[45 * mm, 40 * mm, 50 * mm, None],
        rowHeights=[None, 14 * mm, 14 * mm, 14 * mm],
        hAlign="LEFT",
    )
    table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                ("BACKGROUND", (0, 0), (-1, 0), _HEAD),
                ("GRID", (0, 0), (-1, -1), 0.4, _GRID),
            ]
        )
    )
    return table


def _story(box: Box, specimens: Sequence[Specimen]) -> list[Any]:
    styles = _styles()
    barcode = Code128(box.number, barHeight=14 * mm, barWidth=0.42 * mm, humanReadable=True)
    barcode.hAlign = "CENTER"
    story: list[Any] = [
        Paragraph(_text(box.from_institution.association.name), styles["subtitle"]),
        Paragraph(_text(_("Specimen box manifest")), styles["title"]),
        Paragraph(_text(f"{box.from_institution.name} → {box.centre.name}"), styles["subtitle"]),
        Spacer(1, 4 * mm),
        barcode,
        Spacer(1, 4 * mm),
        _facts(
            [
                (_("Box number"), box.number),
                (_("From"), box.from_institution.name),
                (_("To"), box.centre.name),
                (_("Opened"), f"{_when(box.created_at)} · {box.created_by}"),
                (_("Status"), str(box.get_status_display())),
                (_("Specimens"), str(len(specimens))),
            ]
        ),
        Paragraph(_text(_("Specimens in the box")), styles["heading"]),
    ]
    if specimens:
        story.append(_specimen_table(specimens))
    else:
        story.append(Paragraph(_text(_("The box is empty.")), styles["body"]))
    story += [
        Paragraph(_text(_("Hand-over and receipt")), styles["heading"]),
        _signatures(box),
        Spacer(1, 3 * mm),
        Paragraph(
            _text(
                _(
                    "Keep the box upright and within the temperature the tests need. The lab"
                    " centre scans the box number and every specimen on arrival."
                )
            ),
            styles["small"],
        ),
    ]
    return story


def manifest_pdf_render(*, box: Box, specimens: Sequence[Specimen]) -> bytes:
    """The manifest of ``box`` as PDF bytes (small; held in memory). Callers check access."""
    register_font()
    printed = _when(timezone.now())
    return render_a4(
        _story(box, specimens),
        footer=lambda page: (
            _("Box %(number)s · printed %(time)s · page %(page)s")
            % {"number": box.number, "time": printed, "page": page}
        ),
        title=box.number,
        subject=_("Specimen box manifest"),
        margin=15 * mm,
    )
