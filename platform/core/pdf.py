"""Building blocks of the platform's printed documents (reportlab).

The signed consult opinion, the lab report and the box manifest share one look: A4, the
built-in CID font ``STSong-Light`` for Chinese (Adobe GB1, UniGB-UCS2-H: PDF readers supply
the glyphs, so no font file ships with the platform), a type scale, a two-column table of
facts and a grey footer on every page. Each document module builds its own story.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
from collections.abc import Callable, Sequence
from typing import Any
from xml.sax.saxutils import escape

from django.utils import timezone
from django.utils.translation import gettext as _
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Table, TableStyle

FONT = "STSong-Light"
MUTED = colors.HexColor("#555555")
RULE = colors.HexColor("#dddddd")
FOOTER = colors.HexColor("#777777")


@functools.cache
def register_font() -> None:
    pdfmetrics.registerFont(UnicodeCIDFont(FONT))


@functools.cache
def paragraph_styles(body: float = 10.5, cell: float = 9.5) -> dict[str, ParagraphStyle]:
    """The type scale: ``body``, ``cell`` (tables), ``title``, ``subtitle``, ``heading``,
    ``small``."""
    base = ParagraphStyle(
        "body", fontName=FONT, fontSize=body, leading=round(body * 1.4), wordWrap="CJK"
    )
    return {
        "body": base,
        "cell": ParagraphStyle("cell", parent=base, fontSize=cell, leading=round(cell * 1.35)),
        "title": ParagraphStyle("title", parent=base, fontSize=17, leading=24, alignment=1),
        "subtitle": ParagraphStyle("subtitle", parent=base, fontSize=10, alignment=1),
        "heading": ParagraphStyle(
            "heading", parent=base, fontSize=12, leading=18, spaceBefore=8, spaceAfter=2
        ),
        "small": ParagraphStyle("small", parent=base, fontSize=8.5, leading=12),
    }


def markup(value: object) -> str:
    """Text as Paragraph markup: escaped (it may come from users), line breaks kept."""
    return escape(str(value).strip()).replace("\r\n", "\n").replace("\n", "<br/>")


def local_time(value: dt.datetime | None, *, empty: str = "—") -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M") if value else empty


def facts_table(
    rows: Sequence[tuple[str, str]],
    *,
    style: ParagraphStyle,
    label_width: float = 38 * mm,
    empty: str = "",
) -> Table:
    """Label / value rows, the labels grey, a hairline under each row."""
    data = [[Paragraph(markup(k), style), Paragraph(markup(v) or empty, style)] for k, v in rows]
    table = Table(data, colWidths=[label_width, None], hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("TEXTCOLOR", (0, 0), (0, -1), MUTED),
                ("LINEBELOW", (0, 0), (-1, -1), 0.25, RULE),
                ("TOPPADDING", (0, 0), (-1, -1), 2),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
            ]
        )
    )
    return table


def render_a4(
    story: list[Any],
    *,
    footer: Callable[[int], str],
    title: str,
    subject: str,
    author: str = "",
    margin: float = 18 * mm,
) -> bytes:
    """Lay ``story`` out on A4 with ``footer(page number)`` at the bottom right of each page.

    The document is small (a few kilobytes) and held in memory.
    """
    register_font()

    def draw_footer(canvas: Any, _template: Any) -> None:
        canvas.saveState()
        canvas.setFont(FONT, 8)
        canvas.setFillColor(FOOTER)
        canvas.drawRightString(A4[0] - margin, 10 * mm, footer(canvas.getPageNumber()))
        canvas.restoreState()

    buffer = io.BytesIO()
    template = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=margin,
        rightMargin=margin,
        topMargin=margin - 2 * mm,
        bottomMargin=18 * mm,
        title=title,
        author=author,
        subject=subject,
        creator="telemed",
    )
    template.build(story, onFirstPage=draw_footer, onLaterPages=draw_footer)
    return buffer.getvalue()


def render_signed_version(
    story: list[Any], *, number: str, version: int, author: str, subject: str
) -> bytes:
    """A signed, versioned document (consult opinion, lab report) on A4.

    Each page's footer names the document's number, its version and the page.
    """
    return render_a4(
        story,
        footer=lambda page: (
            _("%(number)s · version %(version)s · page %(page)s")
            % {"number": number, "version": version, "page": page}
        ),
        title=f"{number} v{version}",
        author=author,
        subject=subject,
    )
