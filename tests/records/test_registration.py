"""Find-or-register through the API: valid IDs, duplicates, bad input."""

from __future__ import annotations

import datetime as dt

import pytest

from audit.models import AuditEvent, Outcome
from demo.services import demo_resident_id
from records import resident_id as rid
from records.models import Patient

BIRTH = dt.date(1980, 2, 29)


def new_resident(number: str | None = None, **overrides):
    payload = {
        "resident_id": number or demo_resident_id("110101", BIRTH, 401, "F"),
        "name": "孙小梅",
        "sex": "F",
        "birth_date": BIRTH.isoformat(),
        "phone": "13900000000",
    }
    return {**payload, **overrides}


def test_resident_id_checksum_is_validated():
    good = demo_resident_id("110101", BIRTH, 7, "M")
    assert rid.parse(good).birth_date == BIRTH
    bad = good[:-1] + ("0" if good[-1] != "0" else "1")
    with pytest.raises(rid.InvalidResidentId):
        rid.parse(bad)


def test_known_public_example_id_is_valid():
    assert rid.parse("11010519491231002X").sex == "F"


def test_resident_id_is_masked():
    assert rid.mask("11010519491231002X") == "110105********002X"


def test_village_doctor_registers_a_new_resident_at_her_clinic(client, actors):
    client.force_login(actors.village)
    response = client.post("/api/patients/", new_resident(), content_type="application/json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["home_institution"]["name"] == "东山村卫生室"
    assert body["resident_id"].startswith("110101")
    assert "*" in body["resident_id"]
    patient = Patient.objects.get(pk=body["id"])
    assert patient.timeline.filter(kind="registered").exists()
    assert AuditEvent.objects.filter(
        action="patient.register", patient=patient, outcome=Outcome.ALLOWED
    ).exists()


def test_registering_the_same_resident_again_finds_the_existing_record(client, actors):
    client.force_login(actors.village)
    first = client.post("/api/patients/", new_resident(), content_type="application/json")
    again = client.post(
        "/api/patients/", new_resident(name="孙 小梅"), content_type="application/json"
    )
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert Patient.objects.filter(resident_id=new_resident()["resident_id"]).count() == 1


def test_duplicate_registration_at_another_clinic_is_409_and_audited(client, actors):
    client.force_login(actors.village)
    client.post("/api/patients/", new_resident(), content_type="application/json")
    client.force_login(actors.village2)
    response = client.post("/api/patients/", new_resident(), content_type="application/json")
    assert response.status_code == 409
    assert "东山村卫生室" in response.json()["detail"]
    assert AuditEvent.objects.filter(
        actor=actors.village2, action="patient.register", outcome=Outcome.DENIED
    ).exists()


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"resident_id": "12345"}, "18"),
        ({"resident_id": demo_resident_id("110101", BIRTH, 401, "F")[:-1] + "Y"}, "18"),
        ({"birth_date": "1981-01-01"}, "birth date"),
        ({"sex": "M"}, "sex"),
    ],
)
def test_invalid_identity_is_a_400_with_the_reason_and_is_audited(client, actors, change, fragment):
    client.force_login(actors.village)
    response = client.post(
        "/api/patients/",
        new_resident(**change),
        content_type="application/json",
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert response.status_code == 400
    assert fragment in response.json()["detail"]
    assert not Patient.objects.filter(name="孙小梅").exists()
    assert AuditEvent.objects.filter(
        actor=actors.village, action="patient.register", outcome=Outcome.FAILED
    ).exists()


def test_wrong_check_digit_is_explained(client, actors):
    good = demo_resident_id("110101", BIRTH, 401, "F")
    bad = good[:-1] + ("X" if good[-1] != "X" else "0")
    client.force_login(actors.village)
    response = client.post(
        "/api/patients/",
        new_resident(bad),
        content_type="application/json",
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert response.status_code == 400
    assert "check digit" in response.json()["detail"]


def test_error_messages_come_in_chinese_too(client, actors):
    client.force_login(actors.village)
    response = client.post(
        "/api/patients/",
        new_resident("12345"),
        content_type="application/json",
        HTTP_ACCEPT_LANGUAGE="zh-hans",
    )
    assert response.status_code == 400
    assert "身份证" in response.json()["detail"]


def test_malformed_json_is_a_400(client, actors):
    client.force_login(actors.village)
    response = client.post("/api/patients/", "{not json", content_type="application/json")
    assert response.status_code == 400


def test_missing_fields_are_named(client, actors):
    client.force_login(actors.village)
    response = client.post("/api/patients/", {"name": "x"}, content_type="application/json")
    assert response.status_code == 400
    assert {"resident_id", "sex", "birth_date"} <= set(response.json())


def test_admin_cannot_register_residents(client, actors):
    client.force_login(actors.admin)
    response = client.post("/api/patients/", new_resident(), content_type="application/json")
    assert response.status_code == 403


def test_anonymous_api_call_is_refused(client, db):
    assert client.get("/api/patients/").status_code in {401, 403}


def test_bearer_token_and_basic_auth_work_for_machine_clients(client, actors):
    response = client.post("/api/auth/token/", {"username": "village", "password": "telemed-demo"})
    assert response.status_code == 200
    token = response.json()["token"]
    me = client.get("/api/me/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert me.status_code == 200
    assert me.json()["username"] == "village"
    import base64

    basic = base64.b64encode(b"village:telemed-demo").decode()
    assert client.get("/api/me/", HTTP_AUTHORIZATION=f"Basic {basic}").status_code == 200


def test_failed_token_login_is_audited(client, db):
    response = client.post("/api/auth/token/", {"username": "village", "password": "wrong"})
    assert response.status_code == 400
    assert AuditEvent.objects.filter(
        actor_username="village", action="auth.login", outcome=Outcome.FAILED
    ).exists()


def test_update_changes_demographics_and_not_the_resident_id(client, actors, residents):
    patient = residents["张三"]
    client.force_login(actors.village)
    response = client.patch(
        f"/api/patients/{patient.pk}/",
        {"phone": "13811112222", "resident_id": "x"},
        content_type="application/json",
    )
    assert response.status_code == 200
    patient.refresh_from_db()
    assert patient.phone == "13811112222"


def test_a_clinic_that_only_has_consent_cannot_change_the_record(client, actors, residents):
    client.force_login(actors.village)
    response = client.patch(
        f"/api/patients/{residents['刘桂兰'].pk}/", {"phone": "1"}, content_type="application/json"
    )
    assert response.status_code == 403


def test_consent_round_trip_through_the_api(client, actors, residents):
    patient = residents["张三"]
    client.force_login(actors.village)
    created = client.post(
        f"/api/patients/{patient.pk}/consents/",
        {"scope": "record", "grantee_association": patient.home_institution.association_id},
        content_type="application/json",
    )
    assert created.status_code == 201, created.content
    consent_id = created.json()["id"]
    withdrawn = client.post(
        f"/api/consents/{consent_id}/withdraw/",
        {"reason": "changed mind"},
        content_type="application/json",
    )
    assert withdrawn.status_code == 200
    assert withdrawn.json()["active"] is False
    again = client.post(
        f"/api/consents/{consent_id}/withdraw/", {}, content_type="application/json"
    )
    assert again.status_code == 400
    timeline = client.get(f"/api/patients/{patient.pk}/timeline/").json()
    assert [e["kind"] for e in timeline][:2] == ["consent.withdrawn", "consent.given"]


def test_consent_with_two_grantees_is_refused(client, actors, residents):
    patient = residents["张三"]
    client.force_login(actors.village)
    response = client.post(
        f"/api/patients/{patient.pk}/consents/",
        {
            "scope": "record",
            "grantee_association": patient.home_institution.association_id,
            "grantee_institution": patient.home_institution_id,
        },
        content_type="application/json",
    )
    assert response.status_code == 400


def test_unknown_patient_is_404(client, actors):
    client.force_login(actors.village)
    assert client.get("/api/patients/999999/").status_code == 404


def test_patient_search_has_a_fixed_number_of_queries(
    client, actors, django_assert_max_num_queries
):
    client.force_login(actors.village)
    with django_assert_max_num_queries(12):
        response = client.get("/api/patients/?q=")
    assert response.status_code == 200
    assert len(response.json()) >= 2


def test_openapi_schema_is_served(client, actors):
    client.force_login(actors.village)
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    assert b"/api/patients/" in response.content


def test_the_family_doctor_is_told_when_another_clinic_needs_the_record(client, actors, residents):
    from realtime.models import Notification

    patient = residents["张三"]
    client.force_login(actors.village2)
    response = client.post(
        "/api/patients/",
        new_resident(
            patient.resident_id,
            name=patient.name,
            sex=patient.sex,
            birth_date=patient.birth_date.isoformat(),
        ),
        content_type="application/json",
    )
    assert response.status_code == 409
    note = Notification.objects.get(recipient=actors.village, kind="record.access_requested")
    assert "南湾村卫生室" in note.title
    assert note.patient_id == patient.pk
