"""The consult JSON API: the same workflow as the pages, typed input, 4xx JSON with a message."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from association.models import Institution, Specialty
from audit.models import AuditEvent, Outcome
from consult.models import Consult, Slot, Status

pytestmark = pytest.mark.django_db

QUESTION = "胸痛两小时,请会诊。"


@pytest.fixture
def api(actors: Any):
    """``api("township").post(path, data)``: a JSON client logged in as a named actor."""

    class _Api:
        def __init__(self, username: str, language: str) -> None:
            self.client = Client()
            self.client.force_login(getattr(actors, username))
            self.language = language

        def get(self, path: str, **params: Any) -> Any:
            return self.client.get(path, params, HTTP_ACCEPT_LANGUAGE=self.language)

        def post(self, path: str, data: dict[str, Any]) -> Any:
            return self.client.post(
                path, data, content_type="application/json", HTTP_ACCEPT_LANGUAGE=self.language
            )

        def delete(self, path: str) -> Any:
            return self.client.delete(path, HTTP_ACCEPT_LANGUAGE=self.language)

    return lambda username, language="en": _Api(username, language)


@pytest.fixture
def body(residents) -> dict[str, Any]:
    return {
        "patient_id": residents["刘桂兰"].pk,
        "question": QUESTION,
        "priority": "urgent",
        "mode": "video",
        "target_kind": "specialty",
        "target_institution_id": Institution.objects.get(code="county").pk,
        "target_specialty_id": Specialty.objects.get(code="cardiology").pk,
        "consent_given": True,
    }


def _future(days: int = 4) -> dt.datetime:
    return timezone.now().replace(second=0, microsecond=0) + dt.timedelta(days=days)


def test_request_route_accept_book_and_cancel_through_the_api(api, actors, body):
    created = api("township").post("/api/consults/", body)
    assert created.status_code == 201, created.json()
    consult = created.json()["consult"]
    consult_id = consult["id"]
    assert consult["status"] == Status.PENDING_REVIEW
    assert consult["patient"]["resident_id"] != body["patient_id"]
    assert "*" in consult["patient"]["resident_id"]

    coordinator = api("coordinator")
    listed = coordinator.get("/api/consults/", scope="review").json()
    assert consult_id in [c["id"] for c in listed]
    routed = coordinator.post(
        f"/api/consults/{consult_id}/review/",
        {"decision": "route", "expert_ids": [actors.specialist.pk]},
    )
    assert routed.status_code == 200
    assert routed.json()["consult"]["status"] == Status.PENDING_EXPERT

    specialist = api("specialist")
    answer = specialist.post(f"/api/consults/{consult_id}/respond/", {"accept": True})
    assert answer.status_code == 200
    assert answer.json()["may"]["book"] is True
    start = _future()
    slot = specialist.post(
        "/api/consults/slots/",
        {"start": start.isoformat(), "end": (start + dt.timedelta(minutes=30)).isoformat()},
    )
    assert slot.status_code == 201
    booked = specialist.post(f"/api/consults/{consult_id}/book/", {"slot_id": slot.json()["id"]})
    assert booked.status_code == 200
    assert booked.json()["consult"]["status"] == Status.SCHEDULED

    cancelled = api("township").post(f"/api/consults/{consult_id}/cancel/", {"reason": "已转院"})
    assert cancelled.status_code == 200
    assert cancelled.json()["consult"]["status"] == Status.CANCELLED
    assert Slot.objects.get(pk=slot.json()["id"]).consult_id is None


def test_outsider_gets_a_403_with_a_message_and_an_audit_event(api, actors, body):
    consult_id = api("township").post("/api/consults/", body).json()["consult"]["id"]
    response = api("outsider").get(f"/api/consults/{consult_id}/")
    assert response.status_code == 403
    assert response.json()["detail"]
    assert AuditEvent.objects.filter(
        action="consult.view", resource_id=str(consult_id), outcome=Outcome.DENIED
    ).exists()


def test_outsider_cannot_request_for_a_resident_it_may_not_see(api, body):
    before = Consult.objects.count()
    response = api("outsider").post("/api/consults/", body)
    assert response.status_code == 403
    assert Consult.objects.count() == before


def test_malformed_request_is_a_400_naming_the_fields_and_nothing_is_stored(api, body):
    before = Consult.objects.count()
    response = api("township").post(
        "/api/consults/", body | {"priority": "whenever", "expert_ids": "x", "question": ""}
    )
    assert response.status_code == 400
    data = response.json()
    assert {"priority", "expert_ids", "question"} <= set(data)
    assert data["detail"]
    assert Consult.objects.count() == before


def test_a_refused_change_comes_as_a_400_in_chinese(api, body):
    consult_id = api("township").post("/api/consults/", body).json()["consult"]["id"]
    response = api("coordinator", "zh-hans").post(
        f"/api/consults/{consult_id}/review/", {"decision": "return", "note": ""}
    )
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert detail
    assert not re.search(r"[A-Za-z]{2,}", detail), detail


def test_declining_without_a_reason_is_refused(api, actors, body):
    consult_id = api("township").post("/api/consults/", body).json()["consult"]["id"]
    api("coordinator").post(
        f"/api/consults/{consult_id}/review/",
        {"decision": "route", "expert_ids": [actors.specialist.pk]},
    )
    response = api("specialist").post(f"/api/consults/{consult_id}/respond/", {"accept": False})
    assert response.status_code == 400
    assert response.json()["detail"]


def test_unknown_list_scope_is_a_400(api):
    response = api("township").get("/api/consults/", scope="everything")
    assert response.status_code == 400
    assert "scope" in response.json()


def test_slots_list_and_delete(api, actors):
    specialist = api("specialist")
    start = _future(days=30)
    created = specialist.post(
        "/api/consults/slots/",
        {"start": start.isoformat(), "end": (start + dt.timedelta(minutes=20)).isoformat()},
    ).json()
    listed = specialist.get("/api/consults/slots/").json()
    assert created["id"] in [s["id"] for s in listed]
    assert api("township").delete(f"/api/consults/slots/{created['id']}/").status_code == 403
    assert specialist.delete(f"/api/consults/slots/{created['id']}/").status_code == 204
    assert specialist.delete(f"/api/consults/slots/{created['id']}/").status_code == 404


def test_overlapping_slot_is_a_400(api):
    specialist = api("specialist")
    start = _future(days=31)
    slot = {"start": start.isoformat(), "end": (start + dt.timedelta(minutes=30)).isoformat()}
    assert specialist.post("/api/consults/slots/", slot).status_code == 201
    response = specialist.post("/api/consults/slots/", slot)
    assert response.status_code == 400
    assert "overlaps" in response.json()["detail"]


def test_anonymous_callers_are_refused(client):
    assert client.get("/api/consults/").status_code in (401, 403)


def test_the_openapi_schema_describes_the_consult_api(client):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    text = response.content.decode()
    assert "/api/consults/{consult_id}/respond/" in text
    assert "ConsultCreate" in text


# --- The admin ------------------------------------------------------------------------------


@pytest.fixture
def superuser(db):
    return get_user_model().objects.create_superuser("root-consult", password="x" * 12)


def test_admin_shows_consults_read_only_and_audits_opening_one(client, superuser, api, body):
    consult_id = api("township").post("/api/consults/", body).json()["consult"]["id"]
    client.force_login(superuser)
    assert client.get("/admin/consult/consult/").status_code == 200
    page = client.get(f"/admin/consult/consult/{consult_id}/change/")
    assert page.status_code == 200
    assert QUESTION not in page.content.decode()  # clinical text stays behind the page's check
    assert AuditEvent.objects.filter(
        action="consult.admin_view", resource_id=str(consult_id)
    ).exists()
    assert client.get("/admin/consult/consult/add/").status_code == 403


def test_admin_edits_slots(client, superuser, actors):
    start = _future(days=40)
    slot = Slot.objects.create(
        expert=actors.specialist, start=start, end=start + dt.timedelta(minutes=30)
    )
    client.force_login(superuser)
    assert client.get(f"/admin/consult/slot/{slot.pk}/change/").status_code == 200
    assert client.get(f"/admin/consult/slot/{slot.pk}/delete/").status_code == 200
