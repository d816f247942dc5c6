"""Specimen labels: the Code 128 SVG reads back, initials, the first print and audited reprints."""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET

import pytest
from barcode.charsets.code128 import CODES, STOP
from django.utils import translation

from audit.models import AuditEvent, Outcome
from lab.labels import MODULE_WIDTH_MM, QUIET_ZONE_MM, age_text, barcode_svg, initials
from lab.models import Specimen, SpecimenEvent
from lab.numbering import barcode_valid, luhn_digit
from lab.ordering import label_print, order_cancel, specimens_collect
from records.selectors import AccessDenied, NotFound
from records.services import InvalidRecord
from tests.lab.ordering_support import login, make_order

pytestmark = pytest.mark.django_db

START_C = 105
SVG = "{http://www.w3.org/2000/svg}"


def _modules(svg: str) -> str:
    """The SVG's bars as a string of modules ("1" bar, "0" space), quiet zones removed."""
    root = ET.fromstring(svg)  # noqa: S314 (our own SVG)
    bars = []
    for rect in root.iter(f"{SVG}rect"):
        if "x" not in rect.attrib:  # the white background
            continue
        x = float(rect.attrib["x"].removesuffix("mm"))
        width = float(rect.attrib["width"].removesuffix("mm"))
        start = round((x - QUIET_ZONE_MM) / MODULE_WIDTH_MM)
        bars.append((start, round(width / MODULE_WIDTH_MM)))
    length = max(start + width for start, width in bars)
    modules = ["0"] * length
    for start, width in bars:
        modules[start : start + width] = ["1"] * width
    return "".join(modules)


def decode_code128(svg: str) -> str:
    """Read a Code 128 set C barcode drawn as SVG: start C, digit pairs, checksum, stop."""
    modules = _modules(svg)
    symbols = [modules[i : i + 11] for i in range(0, len(modules) - 13, 11)]
    assert modules[-13:] == STOP + "11", "no stop pattern"
    values = [CODES.index(symbol) for symbol in symbols]
    assert values[0] == START_C, "not Code 128 set C"
    *data, check = values[1:]
    assert check == (START_C + sum(i * v for i, v in enumerate(data, start=1))) % 103
    return "".join(f"{v:02d}" for v in data)


def a_barcode(sequence: int = 17) -> str:
    body = f"250601{sequence:05d}"
    return body + luhn_digit(body)


# --- Drawing -----------------------------------------------------------------------------------


def test_the_barcode_svg_reads_back_as_the_barcode():
    text = a_barcode()
    svg = str(barcode_svg(text))
    assert svg.startswith("<svg")
    assert "<?xml" not in svg
    assert "DOCTYPE" not in svg
    assert svg.count("<rect") > 20
    assert decode_code128(svg) == text


def test_the_barcode_svg_is_narrow_enough_for_a_50_mm_label():
    svg = str(barcode_svg(a_barcode(4242)))
    width = float(re.search(r'width="([0-9.]+)mm"', svg).group(1))
    assert width <= 40


@pytest.mark.parametrize("text", ["12345", "25060100017A", "250601000170", "<script>"])
def test_only_specimen_barcodes_are_drawn(text):
    with pytest.raises(ValueError, match="not a specimen barcode"):
        barcode_svg(text)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("张三", "ZS"),
        ("刘桂兰", "LGL"),
        ("陈志强", "CZQ"),
        ("Anna Maria Smith", "AMS"),
        ("欧阳 Li", "OYL"),
    ],
)
def test_initials_are_pinyin_initials_or_first_letters(name, expected):
    assert initials(name) == expected


def test_age_on_a_label_is_years_or_months_for_small_children():
    on = dt.date(2025, 6, 1)
    with translation.override("en"):
        assert age_text(dt.date(1980, 6, 2), on) == "44 y"
        assert age_text(dt.date(2024, 9, 1), on) == "9 mo"


# --- Printing ----------------------------------------------------------------------------------


@pytest.fixture
def collected(actors, residents):
    order = make_order(actors.village, residents["张三"])
    specimens = specimens_collect(actor=actors.village, order_id=order.pk)
    return order, specimens


def test_the_first_print_is_logged(actors, collected):
    _order, specimens = collected
    printed = label_print(actor=actors.village, specimen_id=specimens[0].pk)
    assert printed.labels_printed == 1
    assert SpecimenEvent.objects.filter(specimen=printed, kind="label_printed").count() == 1
    assert AuditEvent.objects.filter(action="lab.label.print", outcome=Outcome.ALLOWED).count() == 1


def test_a_reprint_needs_a_reason_and_is_audited(actors, collected):
    _order, specimens = collected
    specimen = specimens[0]
    label_print(actor=actors.village, specimen_id=specimen.pk)
    with translation.override("en"), pytest.raises(InvalidRecord, match="printed before"):
        label_print(actor=actors.village, specimen_id=specimen.pk)
    assert AuditEvent.objects.filter(action="lab.label.reprint", outcome=Outcome.FAILED).exists()
    again = label_print(actor=actors.village, specimen_id=specimen.pk, reprint_reason="标签污损")
    assert again.labels_printed == 2
    event = SpecimenEvent.objects.get(specimen=specimen, kind="label_reprinted")
    assert event.detail == {"reason": "标签污损"}
    audit = AuditEvent.objects.get(action="lab.label.reprint", outcome=Outcome.ALLOWED)
    assert audit.reason == "标签污损"
    assert audit.detail["barcode"] == specimen.barcode


def test_the_lab_may_reprint_a_label(actors, collected):
    _order, specimens = collected
    label_print(actor=actors.village, specimen_id=specimens[0].pk)
    again = label_print(
        actor=actors.labtech, specimen_id=specimens[0].pk, reprint_reason="条码磨损"
    )
    assert again.labels_printed == 2


def test_others_cannot_print(actors, collected):
    _order, specimens = collected
    with pytest.raises(AccessDenied):
        label_print(actor=actors.outsider, specimen_id=specimens[0].pk)
    with pytest.raises(NotFound):
        label_print(actor=actors.village, specimen_id=999999)
    assert Specimen.objects.get(pk=specimens[0].pk).labels_printed == 0


def test_labels_of_a_cancelled_order_are_not_printed(actors, collected):
    order, specimens = collected
    order_cancel(actor=actors.village, order_id=order.pk, reason="重复开单")
    with pytest.raises(InvalidRecord):
        label_print(actor=actors.village, specimen_id=specimens[0].pk)


# --- The print page ----------------------------------------------------------------------------


def test_the_labels_page_prints_every_specimen_once(client, actors, collected):
    order, specimens = collected
    response = login(client, actors.village).get(f"/lab/orders/{order.pk}/labels/")
    assert response.status_code == 200
    html = response.content.decode()
    assert html.count('class="label"') == 2
    assert "ZS" in html
    assert order.number in html
    assert "data-print" in html
    assert "lab/labels.css" in html
    for specimen in specimens:
        assert barcode_valid(specimen.barcode)
        assert f'<div class="label-digits mono">{specimen.barcode}</div>' in html
        svg = re.search(rf'<svg[^>]*data-barcode="{specimen.barcode}".*?</svg>', html, re.S)
        assert svg is not None
        assert decode_code128(svg.group(0)) == specimen.barcode
        specimen.refresh_from_db()
        assert specimen.labels_printed == 1


def test_opening_the_labels_again_asks_for_a_reason_first(client, actors, collected):
    order, _specimens = collected
    client = login(client, actors.village)
    client.get(f"/lab/orders/{order.pk}/labels/")
    again = client.get(f"/lab/orders/{order.pk}/labels/")
    assert again.status_code == 200
    html = again.content.decode()
    assert 'name="reason"' in html
    assert 'class="barcode"' not in html
    refused = client.post(f"/lab/orders/{order.pk}/labels/", {"reason": ""})
    assert refused.status_code == 400
    assert 'class="barcode"' not in refused.content.decode()
    printed = client.post(f"/lab/orders/{order.pk}/labels/", {"reason": "Label smudged"})
    assert printed.status_code == 200
    assert printed.content.decode().count('class="barcode"') == 2
    reprints = AuditEvent.objects.filter(action="lab.label.reprint", outcome=Outcome.ALLOWED)
    assert reprints.count() == 2
    assert {e.reason for e in reprints} == {"Label smudged"}
    assert {s.labels_printed for s in Specimen.objects.filter(order=order)} == {2}


def test_one_specimens_label_page(client, actors, collected):
    _order, specimens = collected
    specimen = specimens[-1]
    response = login(client, actors.village, "zh-hans").get(f"/lab/specimens/{specimen.pk}/label/")
    assert response.status_code == 200
    html = response.content.decode()
    assert '<html lang="zh-hans">' in html
    assert html.count('class="label"') == 1
    assert specimen.barcode in html
    assert Specimen.objects.get(pk=specimen.pk).labels_printed == 1


def test_others_get_403_on_the_labels_page(client, actors, collected):
    order, specimens = collected
    client = login(client, actors.outsider)
    assert client.get(f"/lab/orders/{order.pk}/labels/").status_code == 403
    assert client.get(f"/lab/specimens/{specimens[0].pk}/label/").status_code == 403
    assert client.get("/lab/specimens/999999/label/").status_code == 404
    assert Specimen.objects.get(pk=specimens[0].pk).labels_printed == 0


def test_labels_page_before_collection_says_so(client, actors, residents):
    order = make_order(actors.township, residents["刘桂兰"])
    response = login(client, actors.township).get(f"/lab/orders/{order.pk}/labels/")
    assert response.status_code == 200
    assert "record the collection first" in response.content.decode()
