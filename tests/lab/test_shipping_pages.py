"""The shipment pages: who sees them, scans answered as JSON lines, forms, both languages."""

from __future__ import annotations

import pytest
from django.urls import reverse

from lab.models import Box, BoxStatus, OrderStatus, RejectionReason, Specimen, SpecimenStatus
from lab.shipping import box_add, box_open
from tests.lab.shipping_support import (
    collected_order,
    lab_centre,
    login,
    shipped_box,
    wrong_check_digit,
)

pytestmark = pytest.mark.django_db

JSON = {"HTTP_ACCEPT": "application/json"}


@pytest.fixture
def order(actors, residents):
    return collected_order(doctor=actors.village, patient=residents["张三"], clinic="dongshan")


@pytest.fixture
def packing(actors, order):
    """A box of the village clinic with the order's first specimen in it."""
    box = box_open(actor=actors.village, centre_id=lab_centre().pk)
    box_add(actor=actors.village, box_id=box.pk, barcode=order[1][0].barcode)
    return box


@pytest.fixture
def shipped(actors, order):
    return shipped_box(clinic="dongshan", by=actors.village, specimens=order[1])


# --- Pages in both languages ---------------------------------------------------------------------


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_the_clinic_pages_render(client, actors, packing, language):
    login(client, actors.village, language)
    page = client.get(reverse("lab:boxes"))
    assert page.status_code == 200
    assert f'lang="{language}"' in page.content.decode()
    assert packing.number in page.content.decode()
    detail = client.get(reverse("lab:box", args=[packing.pk]))
    assert detail.status_code == 200
    html = detail.content.decode()
    assert "张三" in html
    assert "data-scan-form" in html
    assert "lab/scan.js" in html
    assert client.get(reverse("lab:discrepancies")).status_code == 200


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_the_lab_pages_render(client, actors, shipped, language):
    login(client, actors.labtech, language)
    boxes = client.get(reverse("lab:boxes"))
    assert boxes.status_code == 200
    assert shipped.number in boxes.content.decode()
    desk = client.get(reverse("lab:receive") + f"?box={shipped.pk}")
    assert desk.status_code == 200
    html = desk.content.decode()
    assert shipped.number in html
    assert "checklist" in html
    assert "张三" in html
    assert client.get(reverse("lab:discrepancies")).status_code == 200
    assert client.get(reverse("lab:box", args=[shipped.pk])).status_code == 200


def test_the_box_page_warns_of_specimens_of_cancelled_orders(client, actors, order, packing):
    lab_order, specimens = order
    lab_order.status = OrderStatus.CANCELLED
    lab_order.save()
    login(client, actors.village)
    html = client.get(reverse("lab:box", args=[packing.pk])).content.decode()
    warning = f"Take out the specimens of cancelled orders before shipping: {specimens[0].barcode}"
    assert html.count(warning) == 2  # above the box's specimens, and above the hand-over
    assert '<span class="status lab-rejected">Cancelled</span>' in html


# --- Who may open which page ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("username", "boxes", "box", "receive", "discrepancies"),
    [
        ("village", 200, 200, 403, 200),
        ("township", 200, 403, 403, 200),
        ("labtech", 200, 200, 200, 200),
        ("outsider", 200, 403, 403, 403),
        ("auditor", 403, 403, 403, 403),
    ],
)
def test_the_role_matrix_of_the_shipment_pages(
    client, actors, packing, username, boxes, box, receive, discrepancies
):
    login(client, getattr(actors, username))
    assert client.get(reverse("lab:boxes")).status_code == boxes
    assert client.get(reverse("lab:box", args=[packing.pk])).status_code == box
    assert client.get(reverse("lab:receive")).status_code == receive
    assert client.get(reverse("lab:discrepancies")).status_code == discrepancies
    assert client.get(reverse("lab:manifest", args=[packing.pk])).status_code == box


def test_anonymous_visitors_are_sent_to_log_in(client):
    response = client.get(reverse("lab:receive"))
    assert response.status_code == 302
    assert "login" in response["Location"]


# --- Packing and shipping ------------------------------------------------------------------------


def test_a_box_is_opened_from_the_boxes_page(client, actors):
    login(client, actors.village)
    response = client.post(reverse("lab:box_new"), {"centre": lab_centre().pk})
    box = Box.objects.latest("id")
    assert response.status_code == 302
    assert response["Location"] == reverse("lab:box", args=[box.pk])
    assert client.post(reverse("lab:box_new"), {"centre": "x"}).status_code == 400
    login(client, actors.outsider)
    assert client.post(reverse("lab:box_new"), {"centre": lab_centre().pk}).status_code == 403


def test_a_scan_is_answered_with_a_green_or_red_line(client, actors, order, packing):
    login(client, actors.village)
    url = reverse("lab:box_add", args=[packing.pk])
    good = client.post(url, {"barcode": order[1][1].barcode}, **JSON)
    assert good.status_code == 200
    assert good.json()["ok"] is True
    assert good.json()["level"] == "success"
    bad = client.post(url, {"barcode": wrong_check_digit(order[1][1].barcode)}, **JSON)
    assert bad.status_code == 400
    assert bad.json()["level"] == "error"
    assert bad.json()["message"].startswith("This is not a specimen barcode of ours")
    twice = client.post(url, {"barcode": order[1][1].barcode}, **JSON)
    assert "already in this box" in twice.json()["message"]
    empty = client.post(url, {"barcode": ""}, **JSON)
    assert empty.status_code == 400
    assert empty.json()["message"]


def test_another_clinic_scanning_into_the_box_gets_a_403_line(client, actors, packing, order):
    login(client, actors.village2)
    url = reverse("lab:box_add", args=[packing.pk])
    response = client.post(url, {"barcode": order[1][1].barcode}, **JSON)
    assert response.status_code == 403
    assert response.json()["ok"] is False


def test_without_javascript_a_scan_returns_to_the_page(client, actors, order, packing):
    login(client, actors.village)
    url = reverse("lab:box_add", args=[packing.pk])
    assert client.post(url, {"barcode": order[1][1].barcode}).status_code == 302
    page = client.post(url, {"barcode": "123"})
    assert page.status_code == 400
    assert "mistyped" in page.content.decode()


def test_taking_a_specimen_out_and_handing_the_box_over(client, actors, order, packing):
    login(client, actors.village)
    barcode = order[1][0].barcode
    assert (
        client.post(reverse("lab:box_remove", args=[packing.pk]), {"barcode": barcode}).status_code
        == 302
    )
    assert Specimen.objects.get(barcode=barcode).status == SpecimenStatus.COLLECTED
    box_add(actor=actors.village, box_id=packing.pk, barcode=barcode)
    ship = reverse("lab:box_ship", args=[packing.pk])
    wrong = client.post(ship, {"scanned_number": "BX0000000001", "courier": "张师傅"})
    assert wrong.status_code == 400
    assert "You scanned BX0000000001" in wrong.content.decode()
    missing = client.post(ship, {"scanned_number": packing.number, "courier": ""})
    assert missing.status_code == 400
    done = client.post(ship, {"scanned_number": packing.number, "courier": "张师傅"})
    assert done.status_code == 302
    assert Box.objects.get(pk=packing.pk).status == BoxStatus.SHIPPED


def test_the_manifest_is_served_as_a_pdf(client, actors, packing):
    login(client, actors.village, "zh-hans")
    response = client.get(reverse("lab:manifest", args=[packing.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")
    assert packing.number.encode() in response.content


# --- The receiving desk --------------------------------------------------------------------------


def test_the_desk_takes_a_box_number_then_its_specimens(client, actors, order, shipped):
    login(client, actors.labtech)
    url = reverse("lab:receive")
    answer = client.post(url, {"code": shipped.number, "condition_note": "冰袋完好"}, **JSON)
    assert answer.status_code == 200
    assert answer.json()["ok"]
    assert Box.objects.get(pk=shipped.pk).status == BoxStatus.RECEIVED
    again = client.post(url, {"code": shipped.number}, **JSON)
    assert again.status_code == 400
    assert "was already received at" in again.json()["message"]
    assert "周技师" in again.json()["message"]
    first = client.post(url, {"code": order[1][0].barcode}, **JSON)
    assert first.json()["level"] == "success"
    twice = client.post(url, {"code": order[1][0].barcode}, **JSON)
    assert twice.status_code == 400
    assert "already received" in twice.json()["message"]
    page = client.get(url)
    html = page.content.decode()
    assert "tick-done" in html
    assert "is-missing" in html
    assert order[1][0].barcode in html


def test_a_specimen_never_shipped_gives_a_warning_line(client, actors, order):
    login(client, actors.labtech)
    answer = client.post(reverse("lab:receive"), {"code": order[1][0].barcode}, **JSON)
    assert answer.status_code == 200
    assert answer.json()["level"] == "warning"
    assert any("never shipped" in w for w in answer.json()["warnings"])
    order[0].refresh_from_db()
    assert order[0].status == OrderStatus.RECEIVED


def test_another_centres_box_at_the_desk_is_a_403_line(client, actors, residents):
    from tests.lab.shipping_support import other_lab_centre

    _order, specimens = collected_order(
        doctor=actors.village,
        patient=residents["张三"],
        clinic="dongshan",
        centre=other_lab_centre(),
    )
    box = shipped_box(clinic="dongshan", by=actors.village, specimens=specimens)
    login(client, actors.labtech)
    answer = client.post(reverse("lab:receive"), {"code": box.number}, **JSON)
    assert answer.status_code == 403
    assert "another lab centre" in answer.json()["message"]
    page = client.post(reverse("lab:receive"), {"code": box.number})
    assert page.status_code == 403


def test_a_specimen_is_rejected_from_the_desk(client, actors, order, shipped):
    login(client, actors.labtech)
    url = reverse("lab:specimen_reject")
    barcode = order[1][0].barcode
    no_note = client.post(url, {"barcode": barcode, "reason": RejectionReason.OTHER, "note": ""})
    assert no_note.status_code == 400
    assert "when you choose" in no_note.content.decode()
    done = client.post(url, {"barcode": barcode, "reason": RejectionReason.HAEMOLYSED})
    assert done.status_code == 302
    assert Specimen.objects.get(barcode=barcode).status == SpecimenStatus.REJECTED
    again = client.post(url, {"barcode": barcode, "reason": RejectionReason.HAEMOLYSED})
    assert again.status_code == 400
    assert "already rejected" in again.content.decode()
    login(client, actors.village)
    assert client.post(url, {"barcode": barcode, "reason": "too_old"}).status_code == 403


def test_the_discrepancies_page_draws_the_missing_specimens(client, actors, order):
    shipped_box(clinic="dongshan", by=actors.village, specimens=order[1], hours_ago=30)
    login(client, actors.labtech)
    html = client.get(reverse("lab:discrepancies")).content.decode()
    assert "lab-missing" in html
    assert order[1][0].barcode in html
    assert client.get(reverse("lab:discrepancies") + "?centre=abc").status_code == 400
    assert client.get(reverse("lab:discrepancies") + "?centre=999999").status_code == 404
