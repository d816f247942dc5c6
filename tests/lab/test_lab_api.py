"""The lab JSON API: the workflow of the pages for scripts and analyser middleware.

Every input goes through a serializer (a bad one is a 400 naming the field, in the caller's
language); a refused change is a 400 with the service's message; a denial is a 403 with an
audit event; the OpenAPI schema describes every endpoint.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import include, path
from django.utils import translation

from audit.models import AuditEvent, Outcome
from lab.models import (
    AlertStatus,
    BatchStatus,
    CriticalAlert,
    ImportBatch,
    ItemStatus,
    LabOrder,
    OrderItem,
    OrderStatus,
    Result,
    SpecimenStatus,
)
from lab.reports import report_sign
from lab.results import result_save, results_validate_technical
from lab.workflow_common import MAX_IMPORT_BYTES
from tests.lab.matrix_support import ids_of, lab_centre, ordered, received

pytestmark = pytest.mark.django_db

CJK = re.compile(r"[\u4e00-\u9fff]")


class _Api:
    """A JSON client logged in as a named actor, speaking one language."""

    def __init__(self, user: Any, language: str) -> None:
        self.client = Client()
        self.client.force_login(user)
        self.language = language

    def get(self, url: str, **params: Any) -> Any:
        return self.client.get(url, params, HTTP_ACCEPT_LANGUAGE=self.language)

    def post(self, url: str, data: dict[str, Any] | None = None) -> Any:
        return self.client.post(
            url, data or {}, content_type="application/json", HTTP_ACCEPT_LANGUAGE=self.language
        )

    def upload(self, url: str, name: str, content: bytes, **fields: Any) -> Any:
        upload = SimpleUploadedFile(name, content, content_type="text/csv")
        return self.client.post(url, {"file": upload, **fields}, HTTP_ACCEPT_LANGUAGE=self.language)


@pytest.fixture
def api(actors: Any) -> Any:
    """``api("village").post(url, data)``; ``api("village", "zh-hans")`` asks for Chinese."""
    return lambda username, language="en": _Api(getattr(actors, username), language)


def _items(order: LabOrder) -> dict[str, OrderItem]:
    return {i.test.code: i for i in OrderItem.objects.filter(order=order).select_related("test")}


def _denied(user: Any, action: str) -> bool:
    return AuditEvent.objects.filter(actor=user, action=action, outcome=Outcome.DENIED).exists()


def _same_message_in_chinese(english: str, chinese: str) -> bool:
    """The Chinese answer is the English message as the catalogue translates it."""
    with translation.override("zh-hans"):
        return translation.gettext(english) == chinese


# --- Catalogue -----------------------------------------------------------------------------------


def test_the_catalogue_names_tests_in_the_request_language(api):
    centre = lab_centre().pk
    english = api("village").get("/api/lab/catalogue/", centre=centre)
    assert english.status_code == 200
    tests = {t["code"]: t for t in english.json()["tests"]}
    assert tests["K"]["name"] == "Potassium"
    assert tests["K"]["unit"] == "mmol/L"
    assert tests["K"]["ranges"]
    panels = {p["code"]: p for p in english.json()["panels"]}
    assert tests["K"]["id"] in panels["LYTES"]["tests"]
    chinese = api("village", "zh-hans").get("/api/lab/catalogue/", centre=centre)
    assert {t["code"]: t["name"] for t in chinese.json()["tests"]}["K"] == "钾"


def test_the_catalogue_needs_a_centre_said_in_both_languages(api):
    english = api("village").get("/api/lab/catalogue/")
    assert english.status_code == 400
    assert english.json()["centre"] == ["This field is required."]
    assert english.json()["detail"]
    chinese = api("village", "zh-hans").get("/api/lab/catalogue/")
    assert chinese.status_code == 400
    assert CJK.search(chinese.json()["centre"][0])
    assert CJK.search(chinese.json()["detail"])


def test_another_associations_doctor_may_not_read_the_catalogue(api, actors):
    response = api("outsider").get("/api/lab/catalogue/", centre=lab_centre().pk)
    assert response.status_code == 403
    assert response.json()["detail"]
    assert _denied(actors.outsider, "lab.catalogue.view")
    assert api("village").get("/api/lab/catalogue/", centre=999999).status_code == 404


# --- Orders --------------------------------------------------------------------------------------


@pytest.fixture
def order_body(residents) -> dict[str, Any]:
    centre = lab_centre()
    return {
        "patient_id": residents["张三"].pk,
        "centre_id": centre.pk,
        "test_ids": ids_of(centre, "K", "NA"),
        "priority": "urgent",
        "clinical_note": "乏力三天",
        "record_consent": True,
    }


def test_order_collect_and_list_through_the_api(api, actors, order_body):
    created = api("village").post("/api/lab/orders/", order_body)
    assert created.status_code == 201, created.json()
    detail = created.json()
    order_id = detail["order"]["id"]
    assert detail["order"]["status"] == OrderStatus.ORDERED
    assert detail["role"] == "clinic"
    assert {i["test"]["code"] for i in detail["items"]} == {"K", "NA"}
    assert "*" in detail["order"]["patient"]["resident_id"]
    assert detail["may"] == {"cancel": True, "collect": True}

    collected = api("village").post(f"/api/lab/orders/{order_id}/collect/")
    assert collected.status_code == 200
    (specimen,) = collected.json()["specimens"]
    assert re.fullmatch(r"\d{12}", specimen["barcode"])
    assert collected.json()["order"]["status"] == OrderStatus.COLLECTED

    again = api("village").post(f"/api/lab/orders/{order_id}/collect/")
    assert again.status_code == 400
    assert again.json()["detail"]

    listed = api("village").get("/api/lab/orders/", status="open").json()
    assert order_id in [o["id"] for o in listed]
    assert order_id in [o["id"] for o in api("labtech").get("/api/lab/orders/").json()]
    assert order_id not in [o["id"] for o in api("village2").get("/api/lab/orders/").json()]
    assert AuditEvent.objects.filter(actor=actors.village, action="lab.order.list").exists()


def test_the_order_list_costs_the_same_queries_for_many_orders(
    api, actors, residents, django_assert_max_num_queries
):
    for codes in (("K",), ("NA",), ("GLU",), ("CREA",)):
        ordered(actors, residents, *codes)
    village = api("village")
    with django_assert_max_num_queries(12):
        listed = village.get("/api/lab/orders/")
    assert len(listed.json()) == 4


def test_a_malformed_order_is_a_400_naming_the_fields_and_nothing_is_stored(api, order_body):
    before = LabOrder.objects.count()
    response = api("village").post(
        "/api/lab/orders/", order_body | {"priority": "whenever", "test_ids": "K", "patient_id": 0}
    )
    assert response.status_code == 400
    assert {"priority", "test_ids", "patient_id"} <= set(response.json())
    chinese = api("village", "zh-hans").post("/api/lab/orders/", order_body | {"centre_id": None})
    assert chinese.status_code == 400
    assert CJK.search(chinese.json()["centre_id"][0])
    unknown = api("village").post("/api/lab/orders/", order_body | {"centre_id": 999999})
    assert unknown.json()["centre_id"] == ["No such lab centre."]
    assert LabOrder.objects.count() == before


def test_an_order_without_consent_is_refused_in_the_callers_language(api, order_body):
    body = order_body | {"record_consent": False}
    english = api("village").post("/api/lab/orders/", body)
    assert english.status_code == 400
    assert "consent" in english.json()["detail"]
    chinese = api("village", "zh-hans").post("/api/lab/orders/", body)
    assert chinese.status_code == 400
    assert _same_message_in_chinese(english.json()["detail"], chinese.json()["detail"])
    assert not LabOrder.objects.exists()


def test_another_associations_doctor_cannot_order_for_the_resident(api, actors, order_body):
    response = api("outsider").post("/api/lab/orders/", order_body)
    assert response.status_code == 403
    assert _denied(actors.outsider, "patient.lab_order")
    assert not LabOrder.objects.exists()


def test_the_clinic_cancels_with_a_reason_and_the_lab_may_not(api, actors, residents):
    order = ordered(actors, residents, "GLU")
    url = f"/api/lab/orders/{order.pk}/cancel/"
    missing = api("village").post(url, {})
    assert missing.status_code == 400
    assert "reason" in missing.json()
    denied = api("labtech").post(url, {"reason": "标本不够"})
    assert denied.status_code == 403
    assert _denied(actors.labtech, "lab.order.cancel")
    cancelled = api("village").post(url, {"reason": "患者已去县医院"})
    assert cancelled.status_code == 200
    assert cancelled.json()["order"]["status"] == OrderStatus.CANCELLED


def test_the_clinic_sees_results_only_once_the_report_is_signed(api, actors, residents):
    order, _specimen, _box = received(actors, residents, "NA")
    item = _items(order)["NA"]
    result_save(actor=actors.labtech, item_id=item.pk, value="140")
    url = f"/api/lab/orders/{order.pk}/"
    assert api("labtech").get(url).json()["items"][0]["result"]["value"] == "140"
    assert api("village").get(url).json()["items"][0]["result"] is None
    results_validate_technical(actor=actors.labtech, order_id=order.pk)
    report_sign(actor=actors.labtech, order_id=order.pk)
    signed = api("village").get(url).json()
    assert signed["items"][0]["result"]["value"] == "140"
    assert signed["items"][0]["status"] == ItemStatus.VALIDATED
    assert signed["report"]["version"] == 1
    assert signed["report"]["versions"][0]["pdf"].endswith("/report/1.pdf")


# --- Receipt ---------------------------------------------------------------------------------


def test_the_lab_receives_a_box_then_its_tube_and_a_second_scan_is_refused(api, actors, residents):
    from lab.ordering import specimens_collect
    from lab.shipping import box_add, box_open, box_ship

    order = ordered(actors, residents, "K")
    (specimen,) = specimens_collect(actor=actors.village, order_id=order.pk)
    box = box_open(actor=actors.village, centre_id=order.centre_id)
    box_add(actor=actors.village, box_id=box.pk, barcode=specimen.barcode)
    box_ship(actor=actors.village, box_id=box.pk, scanned_number=box.number, courier="班车")

    assert api("village").post("/api/lab/receive/", {"barcode": box.number}).status_code == 403
    got_box = api("labtech").post(
        "/api/lab/receive/", {"barcode": box.number.lower(), "condition_note": "冷藏"}
    )
    assert got_box.status_code == 200, got_box.json()
    assert got_box.json()["kind"] == "box"
    assert got_box.json()["box"]["number"] == box.number

    tube = api("labtech").post("/api/lab/receive/", {"barcode": specimen.barcode})
    assert tube.status_code == 200
    assert tube.json()["kind"] == "specimen"
    assert tube.json()["specimen"]["status"] == SpecimenStatus.RECEIVED
    assert tube.json()["unshipped"] is False

    twice = api("labtech").post("/api/lab/receive/", {"barcode": specimen.barcode})
    assert twice.status_code == 400
    assert twice.json()["detail"]


def test_a_mistyped_barcode_is_refused_in_both_languages(api):
    english = api("labtech").post("/api/lab/receive/", {"barcode": "123456789012"})
    assert english.status_code == 400
    assert "barcode" in english.json()["detail"]
    chinese = api("labtech", "zh-hans").post("/api/lab/receive/", {"barcode": "123456789012"})
    assert _same_message_in_chinese(english.json()["detail"], chinese.json()["detail"])
    empty = api("labtech").post("/api/lab/receive/", {"barcode": ""})
    assert empty.status_code == 400
    assert "barcode" in empty.json()


def test_the_lab_rejects_a_haemolysed_tube(api, actors, residents):
    order, specimen, _box = received(actors, residents, "K")
    bad = api("labtech").post(
        "/api/lab/specimens/reject/", {"barcode": specimen.barcode, "reason": "spilt"}
    )
    assert bad.status_code == 400
    assert "reason" in bad.json()
    rejected = api("labtech").post(
        "/api/lab/specimens/reject/",
        {"barcode": specimen.barcode, "reason": "haemolysed", "note": "严重溶血"},
    )
    assert rejected.status_code == 200, rejected.json()
    assert rejected.json()["status"] == SpecimenStatus.REJECTED
    assert rejected.json()["rejection_reason"] == "haemolysed"
    assert LabOrder.objects.get(pk=order.pk).status == OrderStatus.REJECTED


# --- Results -------------------------------------------------------------------------------------


def test_a_critical_potassium_entered_raises_an_alert_at_once(api, actors, residents):
    order, _specimen, _box = received(actors, residents, "K")
    item = _items(order)["K"]
    denied = api("village").post("/api/lab/results/", {"item": item.pk, "value": "6.8"})
    assert denied.status_code == 403
    assert _denied(actors.village, "lab.result.save")

    saved = api("labtech").post("/api/lab/results/", {"item": item.pk, "value": "6.8"})
    assert saved.status_code == 200, saved.json()
    result = saved.json()["result"]
    assert (result["value"], result["flag"], result["critical"]) == ("6.8", "HH", True)
    assert result["reference"]
    assert saved.json()["alert"]["status"] == AlertStatus.OPEN
    assert saved.json()["alert"]["test"]["code"] == "K"


def test_an_implausible_or_missing_value_is_refused_and_nothing_saved(api, actors, residents):
    order, _specimen, _box = received(actors, residents, "K")
    item = _items(order)["K"]
    missing = api("labtech", "zh-hans").post("/api/lab/results/", {"item": item.pk})
    assert missing.status_code == 400
    assert CJK.search(missing.json()["value"][0])
    english = api("labtech").post("/api/lab/results/", {"item": item.pk, "value": "68"})
    assert english.status_code == 400
    assert english.json()["detail"]
    chinese = api("labtech", "zh-hans").post("/api/lab/results/", {"item": item.pk, "value": "68"})
    assert chinese.status_code == 400
    assert chinese.json()["detail"]
    assert not Result.objects.filter(item=item).exists()


# --- Analyser imports ----------------------------------------------------------------------------


def _csv(rows: list[tuple[str, str, str, str]], header: str = "barcode,test,value,unit") -> bytes:
    return ("\n".join([header, *(",".join(r) for r in rows)]) + "\n").encode()


def test_an_analyser_posts_its_export_previews_and_applies_it(api, actors, residents):
    order, specimen, _box = received(actors, residents, "K", "NA")
    content = _csv(
        [(specimen.barcode, "K", "6.8", "mmol/L"), (specimen.barcode, "NA", "140", "mmol/L")]
    )
    preview = api("labtech").upload("/api/lab/imports/", "c311.csv", content)
    assert preview.status_code == 201, preview.json()
    batch = preview.json()
    assert batch["status"] == BatchStatus.PREVIEW
    assert batch["error_rows"] == 0
    assert [(r["code"], r["flag"], r["order"]) for r in batch["rows"]] == [
        ("K", "HH", order.number),
        ("NA", "N", order.number),
    ]
    assert not Result.objects.filter(item__order=order).exists()  # a preview saves nothing
    assert api("labtech").get(f"/api/lab/imports/{batch['id']}/").json()["id"] == batch["id"]

    applied = api("labtech").post(f"/api/lab/imports/{batch['id']}/apply/")
    assert applied.status_code == 200, applied.json()
    assert applied.json()["saved"] == 2
    assert applied.json()["batch"]["status"] == BatchStatus.APPLIED
    assert Result.objects.filter(item__order=order).count() == 2
    assert CriticalAlert.objects.filter(order=order, status=AlertStatus.OPEN).count() == 1
    again = api("labtech").post(f"/api/lab/imports/{batch['id']}/apply/")
    assert again.status_code == 400


def test_a_chinese_gb18030_export_is_read(api, actors, residents):
    _order, specimen, _box = received(actors, residents, "NA")
    content = f"条码,项目,结果,单位\r\n{specimen.barcode},NA,141,mmol/L\r\n"
    preview = api("labtech", "zh-hans").upload(
        "/api/lab/imports/", "导出.csv", content.encode("gb18030")
    )
    assert preview.status_code == 201, preview.json()
    assert preview.json()["error_rows"] == 0


def test_a_file_with_a_bad_row_is_applied_whole_or_not_at_all(api, actors, residents):
    order, specimen, _box = received(actors, residents, "K", "NA")
    content = _csv(
        [(specimen.barcode, "K", "4.1", "mmol/L"), (specimen.barcode, "NA", "140", "g/L")]
    )
    batch = api("labtech").upload("/api/lab/imports/", "bad.csv", content).json()
    assert batch["error_rows"] == 1
    (bad,) = [r for r in batch["rows"] if r["error"]]
    assert bad["line"] == 3
    assert "g/L" in bad["error"]
    refused = api("labtech").post(f"/api/lab/imports/{batch['id']}/apply/")
    assert refused.status_code == 400
    assert refused.json()["detail"]
    assert not Result.objects.filter(item__order=order).exists()
    discarded = api("labtech").post(f"/api/lab/imports/{batch['id']}/discard/")
    assert discarded.json()["status"] == BatchStatus.DISCARDED


def test_a_file_with_wrong_columns_or_too_big_is_refused(api):
    wrong = api("labtech").upload("/api/lab/imports/", "x.csv", b"sample,result\n1,2\n")
    assert wrong.status_code == 400
    assert wrong.json()["detail"]
    big = api("labtech").upload("/api/lab/imports/", "x.csv", b"x" * (MAX_IMPORT_BYTES + 1))
    assert big.status_code == 400
    assert "file" in big.json()
    assert not ImportBatch.objects.exists()


def test_only_lab_staff_import(api, actors):
    content = _csv([("123456789012", "K", "4.0", "mmol/L")])
    response = api("village").upload("/api/lab/imports/", "x.csv", content)
    assert response.status_code == 403
    assert _denied(actors.village, "lab.import.preview")
    elsewhere = api("village").upload("/api/lab/imports/", "x.csv", content, centre=lab_centre().pk)
    assert elsewhere.status_code == 403


# --- Critical values -----------------------------------------------------------------------------


@pytest.fixture
def critical_alert(actors, residents) -> CriticalAlert:
    order, _specimen, _box = received(actors, residents, "K")
    result_save(actor=actors.labtech, item_id=_items(order)["K"].pk, value="6.8")
    return CriticalAlert.objects.get(order=order)


def test_the_village_doctor_lists_and_acknowledges_the_critical_value(api, actors, critical_alert):
    mine = api("village").get("/api/lab/critical/")
    assert mine.status_code == 200
    (row,) = [r for r in mine.json() if r["alert"]["id"] == critical_alert.pk]
    assert row["action"] == "acknowledge"
    assert row["alert"]["value"].startswith("6.8")
    lab_rows = api("labtech").get("/api/lab/critical/").json()
    assert [r["action"] for r in lab_rows if r["alert"]["id"] == critical_alert.pk] == ["call"]

    url = f"/api/lab/critical/{critical_alert.pk}/ack/"
    assert api("labtech").post(url, {"note": "x"}).status_code == 403
    acked = api("village").post(url, {"note": "已通知患者立即复查"})
    assert acked.status_code == 200, acked.json()
    assert acked.json()["status"] == AlertStatus.ACKNOWLEDGED
    assert acked.json()["acknowledged_by"]["id"] == actors.village.pk
    twice = api("village").post(url, {"note": ""})
    assert twice.status_code == 400
    assert twice.json()["detail"]
    assert critical_alert.pk not in [
        r["alert"]["id"] for r in api("village").get("/api/lab/critical/").json()
    ]


def test_a_too_long_acknowledgement_note_is_a_400(api, critical_alert):
    response = api("village", "zh-hans").post(
        f"/api/lab/critical/{critical_alert.pk}/ack/", {"note": "x" * 301}
    )
    assert response.status_code == 400
    assert CJK.search(response.json()["note"][0])
    assert CriticalAlert.objects.get(pk=critical_alert.pk).status == AlertStatus.OPEN


def test_critical_values_are_not_for_the_association_admin(api, actors):
    assert api("admin").get("/api/lab/critical/").status_code == 403
    assert _denied(actors.admin, "lab.critical.list")


def test_anonymous_callers_are_refused(client):
    assert client.get("/api/lab/orders/").status_code == 401
    assert client.post("/api/lab/results/", {}).status_code == 401


# --- The schema ----------------------------------------------------------------------------------

ENDPOINTS = {
    "/api/lab/catalogue/": {"get"},
    "/api/lab/orders/": {"get", "post"},
    "/api/lab/orders/{order_id}/": {"get"},
    "/api/lab/orders/{order_id}/cancel/": {"post"},
    "/api/lab/orders/{order_id}/collect/": {"post"},
    "/api/lab/receive/": {"post"},
    "/api/lab/specimens/reject/": {"post"},
    "/api/lab/results/": {"post"},
    "/api/lab/imports/": {"post"},
    "/api/lab/imports/{batch_id}/": {"get"},
    "/api/lab/imports/{batch_id}/apply/": {"post"},
    "/api/lab/imports/{batch_id}/discard/": {"post"},
    "/api/lab/critical/": {"get"},
    "/api/lab/critical/{alert_id}/ack/": {"post"},
}


def test_the_openapi_schema_lists_every_lab_endpoint(client, actors):
    client.force_login(actors.labtech)
    schema = client.get("/api/schema/", {"format": "json"}).json()
    for url, methods in ENDPOINTS.items():
        assert methods <= set(schema["paths"][url]), url
    upload = schema["paths"]["/api/lab/imports/"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in upload


def test_the_lab_api_schema_generates_without_warnings():
    from drf_spectacular.drainage import GENERATOR_STATS
    from drf_spectacular.generators import SchemaGenerator

    GENERATOR_STATS.reset()
    with GENERATOR_STATS.silence():
        SchemaGenerator().get_schema(request=None, public=True)
    lab = [
        message
        for message in [*GENERATOR_STATS._warn_cache, *GENERATOR_STATS._error_cache]
        if "lab" in message.lower() or "Lab" in message
    ]
    assert lab == []
    GENERATOR_STATS.reset()
    with GENERATOR_STATS.silence():
        SchemaGenerator(patterns=[path("api/lab/", include("lab.api_urls"))]).get_schema(
            request=None, public=True
        )
    assert not GENERATOR_STATS
