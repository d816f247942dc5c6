"""The opinion PDF: reportlab output, Chinese text through the built-in CID font, labels.

pypdf is not a dependency, so the PDF is checked at the byte level: its header and trailer,
the STSong-Light CID font with the UCS-2 encoding, and the text drawn in the decoded page
content (reportlab writes CID text as UTF-16BE strings in ASCII85 + Flate streams).
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import zlib

import pytest
from django.utils import timezone, translation

from consult.pdf import OpinionDocument, opinion_pdf_render

_STREAM_RE = re.compile(rb"stream\r?\n(.*?)endstream", re.S)
_STRING_RE = re.compile(rb"\(((?:[^()\\]|\\.)*)\)\s*Tj", re.S)
_ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}


def _unescape(literal: bytes) -> bytes:
    """A PDF literal string's bytes (octal and single-character escapes)."""
    out = bytearray()
    i = 0
    while i < len(literal):
        c = literal[i : i + 1]
        if c != b"\\":
            out += c
            i += 1
            continue
        nxt = literal[i + 1 : i + 2]
        octal = re.match(rb"[0-7]{1,3}", literal[i + 1 : i + 4])
        if octal:
            out.append(int(octal.group(), 8))
            i += 1 + len(octal.group())
        else:
            out += _ESCAPES.get(nxt, nxt)
            i += 2
    return bytes(out)


def _page_text(pdf: bytes) -> str:
    """The text drawn in the CID font on every page, joined."""
    texts = []
    for match in _STREAM_RE.finditer(pdf):
        raw = match.group(1).strip()
        try:
            content = zlib.decompress(base64.a85decode(raw.removesuffix(b"~>")))
        except (ValueError, zlib.error):
            continue
        for literal in _STRING_RE.findall(content):
            data = _unescape(literal)
            if len(data) % 2 == 0:
                texts.append(data.decode("utf-16-be", errors="replace"))
    return "\n".join(texts)


def _document(**changes: object) -> OpinionDocument:
    fields: dict[str, object] = {
        "association": "青山县医共体",
        "requesting_institution": "溪坝镇卫生院",
        "expert_institutions": ["青山县人民医院"],
        "consult_number": "HZ2601010001",
        "patient_name": "张三",
        "patient_sex": "男",
        "patient_age": 69,
        "patient_resident_id": "110101********0013",
        "question": "胸闷两周，请协助诊治。",
        "history": "高血压十年。",
        "attachments": ["文件: 心电图.pdf", "影像检查: 胸部CT"],
        "experts": ["孙主任 · 青山县人民医院 (lead expert)"],
        "requested_by": "钱医生",
        "findings": "V4-V6导联ST段压低 <0.1mV> & 肌钙蛋白正常",
        "diagnosis": "稳定型心绞痛",
        "advice": "阿司匹林100mg每日一次\n两周内运动试验",
        "recommendation": "随访",
        "follow_up_on": dt.date(2030, 1, 15),
        "signer": "孙主任",
        "signed_at": timezone.now(),
        "version": 1,
    }
    return OpinionDocument(**(fields | changes))  # type: ignore[arg-type]


def test_the_pdf_is_a_pdf_with_the_cjk_cid_font():
    pdf = opinion_pdf_render(_document())
    assert pdf.startswith(b"%PDF-1.")
    assert pdf.rstrip().endswith(b"%%EOF")
    assert b"/BaseFont /STSong-Light" in pdf
    assert b"/Encoding /UniGB-UCS2-H" in pdf


def test_chinese_text_is_drawn_in_the_cid_font():
    text = _page_text(opinion_pdf_render(_document()))
    for expected in (
        "张三",
        "稳定型心绞痛",
        "溪坝镇卫生院",
        "青山县医共体",
        "心电图.pdf",
        "孙主任",
    ):
        assert expected in text
    assert "110101********0013" in text  # the masked ID, never the full one


def test_markup_in_the_text_is_printed_not_interpreted():
    text = _page_text(opinion_pdf_render(_document()))
    assert "<0.1mV> & 肌钙蛋白正常" in text


def test_the_follow_up_date_version_and_amendment_reason_are_printed():
    with translation.override("en"):
        pdf = opinion_pdf_render(_document(version=2, amendment_reason="肌钙蛋白升高"))
    text = _page_text(pdf)
    assert "2030-01-15" in text
    assert "肌钙蛋白升高" in text
    assert "Reason for the" in text
    assert "version 2" in text


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_labels_follow_the_active_language(language):
    with translation.override(language):
        text = _page_text(opinion_pdf_render(_document()))
        expected = str(translation.gettext("Remote consultation opinion"))
    assert expected in text


def test_a_long_opinion_runs_onto_more_pages():
    pdf = opinion_pdf_render(_document(findings="心电图改变。" * 2000))
    assert pdf.count(b"/Type /Page\n") >= 2
