"""The results pages: lab staff enter, validate and sign; others are denied; bad input is a 400."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent, Outcome
from lab.models import BatchStatus, ImportBatch, ItemStatus, LabReport, OrderStatus, Result
from tests.lab.results_support import (
    barcode_of,
    enter,
    item_of,
    received_order,
    signed_order,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def login_as(client: Client, actors: Any) -> Callable[..., Client]:
    def _login(username: str, *, language: str = "en") -> Client:
        client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
        client.force_login(getattr(actors, username))
        return client

    return _login


@pytest.fixture
def order(actors, residents):
    return received_order(patient=residents["张三"], doctor=actors.village, labtech=actors.labtech)


def _url(name: str, order) -> str:
    return reverse(f"lab:{name}", args=[order.pk])


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_the_results_page_draws_each_test_with_its_range(login_as, order, language):
    response = login_as("labtech", language=language).get(_url("results", order))
    assert response.status_code == 200
    page = response.content.decode()
    assert f'lang="{language}"' in page
    assert barcode_of(order, "K") in page
    assert "3.5–5.3" in page
    assert "137–147" in page
    assert f'name="value_{item_of(order, "K").pk}"' in page
    assert 'data-crit-high="6.2' in page
    assert "lab/results.js" in page


@pytest.mark.parametrize("username", ["village", "outsider"])
def test_others_are_denied_the_results_page_and_it_is_audited(login_as, order, username):
    response = login_as(username).get(_url("results", order))
    assert response.status_code in (403, 404)
    assert AuditEvent.objects.filter(
        action="lab.results.view", outcome__in=[Outcome.DENIED, Outcome.FAILED]
    ).exists()
    post = login_as(username).post(_url("results_save", order), {})
    assert post.status_code in (403, 404)
    assert not Result.objects.exists()


def test_values_are_saved_from_the_page(login_as, order):
    client = login_as("labtech")
    k, na = item_of(order, "K"), item_of(order, "NA")
    response = client.post(
        _url("results_save", order),
        {f"value_{k.pk}": "4,2", f"value_{na.pk}": "", f"comment_{k.pk}": "微溶血"},
    )
    assert response.status_code == 302
    result = Result.objects.get(item=k)
    assert str(result.value_numeric) == "4.2000"
    assert result.comment == "微溶血"
    assert not Result.objects.filter(item=na).exists()


def test_a_refused_value_shows_the_page_again_with_the_reason(login_as, order):
    k = item_of(order, "K")
    response = login_as("labtech").post(_url("results_save", order), {f"value_{k.pk}": "6500"})
    assert response.status_code == 400
    assert "outside any plausible value for Potassium" in response.content.decode()
    assert not Result.objects.exists()


def test_a_correction_without_a_reason_is_refused_on_the_page(login_as, actors, order):
    enter(order, actors.labtech, K="4.1")
    k = item_of(order, "K")
    client = login_as("labtech")
    response = client.post(_url("results_save", order), {f"value_{k.pk}": "4.4"})
    assert response.status_code == 400
    assert "Say why the result of Potassium is corrected" in response.content.decode()
    response = client.post(
        _url("results_save", order), {f"value_{k.pk}": "4.4", f"reason_{k.pk}": "rerun"}
    )
    assert response.status_code == 302
    page = client.get(_url("results", order)).content.decode()
    assert "4.1 → 4.4" in page


def test_validate_sign_and_open_the_pdf_from_the_page(login_as, actors, order):
    enter(order, actors.labtech, K="4.1", NA="139")
    client = login_as("labtech")
    ids = [item_of(order, c).pk for c in ("K", "NA")]
    assert client.post(_url("validate_tech", order), {"items": ids}).status_code == 302
    assert {item_of(order, c).status for c in ("K", "NA")} == {ItemStatus.TECH_VALIDATED}
    page = client.get(_url("results", order)).content.decode()
    assert 'name="mutual_recognition" checked' in page
    valid = (timezone.localdate() + timezone.timedelta(days=30)).isoformat()
    assert valid in page
    response = client.post(
        _url("sign", order), {"mutual_recognition": "on", "valid_until": valid, "comment": ""}
    )
    assert response.status_code == 302
    order.refresh_from_db()
    assert order.status == OrderStatus.REPORTED
    pdf = client.get(reverse("lab:report_pdf", args=[order.pk, 1]))
    assert pdf.status_code == 200
    assert pdf["Content-Type"] == "application/pdf"
    assert pdf["Content-Disposition"].startswith("inline")
    assert b"".join(pdf.streaming_content).startswith(b"%PDF")


def test_validating_nothing_is_a_400(login_as, actors, order):
    enter(order, actors.labtech, K="4.1")
    response = login_as("labtech").post(_url("validate_tech", order), {})
    assert response.status_code == 400


def test_signing_too_early_is_a_400_with_the_reason(login_as, actors, order):
    enter(order, actors.labtech, K="4.1")
    response = login_as("labtech").post(_url("sign", order), {"mutual_recognition": "on"})
    assert response.status_code == 400
    assert "Validate every result technically" in response.content.decode()
    assert not LabReport.objects.exists()


def test_amend_from_the_page(login_as, actors, residents):
    order = signed_order(
        patient=residents["张三"], doctor=actors.village, labtech=actors.labtech, K="5.6"
    )
    k = item_of(order, "K")
    client = login_as("labtech")
    response = client.post(_url("amend", order), {f"amend_{k.pk}": "4.9", "reason": ""})
    assert response.status_code == 400
    response = client.post(_url("amend", order), {f"amend_{k.pk}": "4.9", "reason": "rerun"})
    assert response.status_code == 302
    assert LabReport.objects.get(order=order).version == 2
    page = client.get(_url("results", order)).content.decode()
    assert reverse("lab:report_pdf", args=[order.pk, 2]) in page
    assert "rerun" in page


def test_the_clinic_sees_results_only_once_the_report_is_signed(login_as, actors, order):
    enter(order, actors.labtech, K="5.61")
    client = login_as("village")
    page = client.get(_url("order", order)).content.decode()
    assert "5.61" not in page
    assert "5.6" not in page
    lab_page = login_as("labtech").get(_url("order", order)).content.decode()
    assert "5.6" in lab_page
    enter(order, actors.labtech, NA="139")
    from lab.reports import report_sign
    from lab.results import results_validate_technical

    results_validate_technical(actor=actors.labtech, order_id=order.pk)
    report_sign(actor=actors.labtech, order_id=order.pk)
    page = login_as("village").get(_url("order", order)).content.decode()
    assert "5.6" in page
    assert "↑" in page
    assert reverse("lab:report_pdf", args=[order.pk, 1]) in page
    pdf = client.get(reverse("lab:report_pdf", args=[order.pk, 1]))
    assert pdf.status_code == 200


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_the_order_results_partial_renders_in_both_languages(login_as, actors, residents, language):
    order = signed_order(
        patient=residents["张三"], doctor=actors.village, labtech=actors.labtech, K="6.9"
    )
    page = login_as("village", language=language).get(_url("order", order))
    assert page.status_code == 200
    assert "lab-flag-HH" in page.content.decode()


# --- Import pages ------------------------------------------------------------------------------


def test_upload_preview_and_apply_from_the_pages(login_as, order):
    client = login_as("labtech")
    assert client.get(reverse("lab:import")).status_code == 200
    bc = barcode_of(order, "K")
    data = f"条码,项目,结果,单位\n{bc},K,5.9,mmol/L\n{bc},NA,139,mmol/L\n".encode("gb18030")
    upload = SimpleUploadedFile("run.csv", data, content_type="text/csv")
    response = client.post(reverse("lab:import"), {"file": upload, "centre": order.centre_id})
    assert response.status_code == 302
    batch = ImportBatch.objects.get()
    page = client.get(response["Location"]).content.decode()
    assert "Save 2 results" in page
    assert "disabled" not in page.split("Save 2 results")[0][-200:]
    assert "lab-flag-H" in page
    response = client.post(reverse("lab:import_apply", args=[batch.pk]))
    assert response.status_code == 302
    batch.refresh_from_db()
    assert batch.status == BatchStatus.APPLIED
    assert Result.objects.filter(item__order=order).count() == 2


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_a_preview_with_errors_cannot_be_saved(login_as, order, language):
    client = login_as("labtech", language=language)
    bc = barcode_of(order, "K")
    upload = SimpleUploadedFile("run.csv", f"barcode,test,value,unit\n{bc},K,126,mg/dL\n".encode())
    response = client.post(reverse("lab:import"), {"file": upload, "centre": order.centre_id})
    page = client.get(response["Location"]).content.decode()
    assert "disabled" in page
    assert "mg/dL" in page
    batch = ImportBatch.objects.get()
    response = client.post(reverse("lab:import_apply", args=[batch.pk]))
    assert response.status_code == 400
    assert not Result.objects.exists()


def test_a_wrong_file_is_a_400_on_the_upload_page(login_as, order):
    upload = SimpleUploadedFile("run.csv", b"a,b,c\n1,2,3\n")
    response = login_as("labtech").post(
        reverse("lab:import"), {"file": upload, "centre": order.centre_id}
    )
    assert response.status_code == 400
    assert "columns are wrong" in response.content.decode()
    assert not ImportBatch.objects.exists()


def test_discard_from_the_page(login_as, order):
    client = login_as("labtech")
    upload = SimpleUploadedFile(
        "run.csv", f"barcode,test,value,unit\n{barcode_of(order, 'K')},K,4.1,mmol/L\n".encode()
    )
    client.post(reverse("lab:import"), {"file": upload, "centre": order.centre_id})
    batch = ImportBatch.objects.get()
    assert client.post(reverse("lab:import_discard", args=[batch.pk])).status_code == 302
    batch.refresh_from_db()
    assert batch.status == BatchStatus.DISCARDED


@pytest.mark.parametrize("username", ["village", "outsider"])
def test_import_pages_are_for_lab_staff_only(login_as, actors, order, username):
    client = login_as("labtech")
    upload = SimpleUploadedFile(
        "run.csv", f"barcode,test,value,unit\n{barcode_of(order, 'K')},K,4.1,mmol/L\n".encode()
    )
    client.post(reverse("lab:import"), {"file": upload, "centre": order.centre_id})
    batch = ImportBatch.objects.get()
    other = login_as(username)
    assert other.get(reverse("lab:import")).status_code == 403
    assert other.get(reverse("lab:import_preview", args=[batch.pk])).status_code == 403
    assert other.post(reverse("lab:import_apply", args=[batch.pk])).status_code == 403
    assert not Result.objects.exists()
    assert (
        AuditEvent.objects.filter(
            actor_id=getattr(actors, username).pk,
            outcome=Outcome.DENIED,
            action__startswith="lab.import",
        ).count()
        == 3
    )
