"""The ordering pages: from the resident's record to the order, collection and cancel, in both
languages; others get 403, bad input a 400."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from audit.models import AuditEvent, Outcome
from lab.models import LabOrder, OrderStatus, Specimen
from lab.ordering import specimens_collect
from tests.lab.ordering_support import ids_of_panels, ids_of_tests, lab_centre, login, make_order

pytestmark = pytest.mark.django_db


# --- The resident page -------------------------------------------------------------------------


def test_the_resident_page_offers_lab_tests_and_lists_the_orders(client, actors, residents):
    zhang = residents["张三"]
    client = login(client, actors.village)
    page = client.get(f"/patients/{zhang.pk}/").content.decode()
    assert f'href="/lab/orders/new/?patient={zhang.pk}"' in page
    assert "Order lab tests" in page
    assert "No lab tests ordered for this resident yet." in page
    order = make_order(actors.village, zhang)
    page = client.get(f"/patients/{zhang.pk}/").content.decode()
    assert order.number in page
    assert f'href="/lab/orders/{order.pk}/"' in page
    assert "lab-status-ordered" in page


def test_the_lab_technician_sees_the_order_on_the_resident_page_but_cannot_order(
    client, actors, residents
):
    liu = residents["刘桂兰"]
    order = make_order(actors.township, liu)
    page = login(client, actors.labtech).get(f"/patients/{liu.pk}/").content.decode()
    assert order.number in page
    assert "/lab/orders/new/" not in page


# --- Ordering ----------------------------------------------------------------------------------


def test_the_order_form_groups_tests_and_asks_for_consent_when_needed(client, actors, residents):
    zhang = residents["张三"]
    response = login(client, actors.village).get(f"/lab/orders/new/?patient={zhang.pk}")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Serum" in html
    assert "Whole blood" in html
    assert "Urine" in html
    assert 'name="record_consent"' in html
    assert 'id="lab-order-data"' in html
    assert "lab/order.js" in html
    assert lab_centre().name in html


def test_no_consent_box_under_an_association_consent(client, actors, residents):
    liu = residents["刘桂兰"]
    html = login(client, actors.township).get(f"/lab/orders/new/?patient={liu.pk}").content.decode()
    assert 'name="record_consent"' not in html


def test_the_order_form_speaks_chinese(client, actors, residents):
    zhang = residents["张三"]
    response = login(client, actors.village, "zh-hans").get(f"/lab/orders/new/?patient={zhang.pk}")
    html = response.content.decode()
    assert response.status_code == 200
    assert '<html lang="zh-hans">' in html
    assert "血红蛋白" in html
    assert "Haemoglobin" not in html


def _order_post(patient_id: int, **changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "patient": patient_id,
        "centre": lab_centre().pk,
        "tests": ids_of_tests("GLU"),
        "panels": ids_of_panels("LYTES"),
        "priority": "urgent",
        "clinical_note": "口渴多尿",
        "record_consent": "on",
    }
    data.update(changes)
    return data


def test_ordering_on_the_page_leads_to_the_order(client, actors, residents):
    zhang = residents["张三"]
    response = login(client, actors.village).post("/lab/orders/new/", _order_post(zhang.pk))
    order = LabOrder.objects.get(patient=zhang)
    assert response.status_code == 302
    assert response["Location"] == f"/lab/orders/{order.pk}/"
    assert order.priority == "urgent"
    assert order.clinical_note == "口渴多尿"
    assert sorted(order.items.values_list("test__code", flat=True)) == ["GLU", "K", "NA"]


def test_an_empty_order_is_a_400_with_the_reason(client, actors, residents):
    zhang = residents["张三"]
    response = login(client, actors.village).post(
        "/lab/orders/new/", _order_post(zhang.pk, tests=[], panels=[])
    )
    assert response.status_code == 400
    assert "Choose at least one test or panel." in response.content.decode()
    assert not LabOrder.objects.exists()
    assert AuditEvent.objects.filter(action="lab.order.create", outcome=Outcome.FAILED).exists()


def test_an_order_without_consent_is_a_400_with_the_reason(client, actors, residents):
    zhang = residents["张三"]
    data = _order_post(zhang.pk)
    del data["record_consent"]
    response = login(client, actors.village).post("/lab/orders/new/", data)
    assert response.status_code == 400
    assert "has not consented" in response.content.decode()
    assert 'value="' + str(ids_of_tests("GLU")[0]) + '" checked' in response.content.decode()
    assert not LabOrder.objects.exists()


def test_the_order_form_without_a_resident_is_a_400(client, actors):
    assert login(client, actors.village).get("/lab/orders/new/").status_code == 400


@pytest.mark.parametrize("username", ["outsider", "labtech"])
def test_others_cannot_open_the_order_form(client, actors, residents, username):
    zhang = residents["张三"]
    response = login(client, getattr(actors, username)).get(f"/lab/orders/new/?patient={zhang.pk}")
    assert response.status_code == 403


# --- The order page ----------------------------------------------------------------------------


def test_the_clinic_sees_the_stepper_and_can_collect_and_cancel(client, actors, residents):
    order = make_order(actors.village, residents["张三"])
    response = login(client, actors.village).get(f"/lab/orders/{order.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert html.count('class="step step-') == 5
    assert "step-current" in html
    assert f"/lab/orders/{order.pk}/collect/" in html
    assert "Collected now" in html
    assert f"/lab/orders/{order.pk}/cancel/" in html
    assert "Serum gel tube (yellow cap)" in html
    assert "EDTA tube (purple cap)" in html
    assert AuditEvent.objects.filter(
        action="lab.order.view", outcome=Outcome.ALLOWED, resource_id=str(order.pk)
    ).exists()


def test_the_order_page_speaks_chinese(client, actors, residents):
    order = make_order(actors.village, residents["张三"])
    response = login(client, actors.village, "zh-hans").get(f"/lab/orders/{order.pk}/")
    assert response.status_code == 200
    assert '<html lang="zh-hans">' in response.content.decode()


def test_the_lab_sees_the_order_without_clinic_buttons(client, actors, residents):
    order = make_order(actors.township, residents["刘桂兰"])
    html = login(client, actors.labtech).get(f"/lab/orders/{order.pk}/").content.decode()
    assert "/collect/" not in html
    assert "/cancel/" not in html


def test_others_get_403_and_are_audited(client, actors, residents):
    order = make_order(actors.village, residents["张三"])
    assert login(client, actors.outsider).get(f"/lab/orders/{order.pk}/").status_code == 403
    assert AuditEvent.objects.filter(
        actor=actors.outsider, action="lab.order.view", outcome=Outcome.DENIED
    ).exists()
    assert client.get("/lab/orders/999999/").status_code == 404


def test_collecting_on_the_page_shows_the_barcodes_and_label_button(client, actors, residents):
    order = make_order(actors.village, residents["张三"])
    client = login(client, actors.village)
    response = client.post(f"/lab/orders/{order.pk}/collect/", {"collected_time": ""})
    assert response.status_code == 302
    html = client.get(f"/lab/orders/{order.pk}/").content.decode()
    for specimen in Specimen.objects.filter(order=order):
        assert specimen.barcode in html
    assert f"/lab/orders/{order.pk}/labels/" in html
    assert "Collected now" not in html


def test_a_draw_time_in_the_future_is_a_400(client, actors, residents):
    order = make_order(actors.village, residents["张三"])
    later = timezone.localtime() + dt.timedelta(hours=1)
    if later.date() != timezone.localdate():  # late evening: the form only takes today
        pytest.skip("no later time today")
    response = login(client, actors.village).post(
        f"/lab/orders/{order.pk}/collect/", {"collected_time": later.strftime("%H:%M")}
    )
    assert response.status_code == 400
    assert "cannot be in the future" in response.content.decode()
    assert not Specimen.objects.exists()


def test_collecting_twice_is_a_400(client, actors, residents):
    order = make_order(actors.village, residents["张三"])
    specimens_collect(actor=actors.village, order_id=order.pk)
    response = login(client, actors.village).post(f"/lab/orders/{order.pk}/collect/", {})
    assert response.status_code == 400


def test_cancelling_on_the_page(client, actors, residents):
    order = make_order(actors.village, residents["张三"])
    client = login(client, actors.village)
    refused = client.post(f"/lab/orders/{order.pk}/cancel/", {"reason": ""})
    assert refused.status_code == 400
    done = client.post(f"/lab/orders/{order.pk}/cancel/", {"reason": "患者已转诊"})
    assert done.status_code == 302
    order.refresh_from_db()
    assert order.status == OrderStatus.CANCELLED
    html = client.get(f"/lab/orders/{order.pk}/").content.decode()
    assert "患者已转诊" in html
    assert "lab-stepper-stopped" in html


def test_the_lab_cannot_cancel_on_the_page(client, actors, residents):
    order = make_order(actors.township, residents["刘桂兰"])
    response = login(client, actors.labtech).post(
        f"/lab/orders/{order.pk}/cancel/", {"reason": "x"}
    )
    assert response.status_code == 403
