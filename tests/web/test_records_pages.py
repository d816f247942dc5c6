"""Residents' pages: search and registration."""

from __future__ import annotations

import datetime as dt

import pytest

from audit.models import Outcome
from demo.services import demo_resident_id
from records.models import Patient

pytestmark = pytest.mark.django_db

NEW_RESIDENT = {
    "resident_id": demo_resident_id("110101", dt.date(1970, 4, 1), 77, "F"),
    "name": "孙小红",
    "sex": "F",
    "birth_date": "1970-04-01",
    "phone": "13900000000",
    "address": "东山村三组",
}


def _registration(**changes):
    return {**NEW_RESIDENT, **changes}


# --- Search -------------------------------------------------------------------------------


def test_search_shows_masked_resident_ids_never_full_ones(login_as, residents):
    html = login_as("village").get("/patients/", {"q": "张"}).content.decode()

    assert "张三" in html
    assert residents["张三"].masked_resident_id in html
    assert residents["张三"].resident_id not in html


def test_search_by_full_resident_id_finds_the_resident(login_as, residents):
    number = residents["李秀英"].resident_id
    html = login_as("village").get("/patients/", {"q": number}).content.decode()
    assert 'data-results="1"' in html
    assert "李秀英" in html


def test_search_only_finds_residents_the_doctor_may_see(login_as):
    html = login_as("village").get("/patients/", {"q": "赵明"}).content.decode()
    assert 'data-results="0"' in html


def test_search_page_makes_the_same_few_queries_however_many_residents(
    login_as, actors, residents, django_assert_max_num_queries
):
    client = login_as("village")
    home = residents["张三"].home_institution
    for n in range(15):
        Patient.objects.create(
            resident_id=demo_resident_id("110101", dt.date(1980, 1, 1), 100 + n, "M"),
            name=f"测试{n}",
            sex="M",
            birth_date=dt.date(1980, 1, 1),
            home_institution=home,
            registered_by=actors.village,
        )
    with django_assert_max_num_queries(9):
        response = client.get("/patients/")
    assert 'data-results="19"' in response.content.decode()


def test_admin_cannot_search_residents_and_it_is_audited(login_as, audit_events):
    response = login_as("admin").get("/patients/")
    assert response.status_code == 403
    assert audit_events(action="patient.search", outcome=Outcome.DENIED, actor_username="admin")


def test_overlong_search_is_a_400_not_a_500(login_as, audit_events):
    response = login_as("village").get("/patients/", {"q": "x" * 500})
    assert response.status_code == 400
    assert audit_events(action="patient.search", outcome=Outcome.FAILED)


# --- Registration -------------------------------------------------------------------------


def test_village_doctor_registers_a_resident(login_as, audit_events):
    response = login_as("village").post("/patients/register/", NEW_RESIDENT)

    patient = Patient.objects.get(resident_id=NEW_RESIDENT["resident_id"])
    assert response.status_code == 302
    assert response["Location"] == f"/patients/{patient.pk}/"
    assert patient.home_institution.code == "dongshan"
    assert audit_events(action="patient.register", outcome=Outcome.ALLOWED, patient_id=patient.pk)


def test_invalid_resident_id_is_a_400_with_the_reason(login_as, audit_events):
    number = NEW_RESIDENT["resident_id"]
    wrong_check = number[:17] + ("0" if number[17] != "0" else "1")

    response = login_as("village").post(
        "/patients/register/", _registration(resident_id=wrong_check)
    )

    assert response.status_code == 400
    assert "check digit of this resident ID does not match" in response.content.decode()
    [event] = audit_events(action="patient.register", outcome=Outcome.FAILED)
    assert event.detail["fields"] == {"resident_id": ["invalid_resident_id"]}
    assert wrong_check not in str(event.detail)


def test_birth_date_that_contradicts_the_resident_id_is_a_400(login_as):
    response = login_as("village").post(
        "/patients/register/", _registration(birth_date="1971-04-01")
    )
    assert response.status_code == 400
    assert "does not match the one in the resident ID" in response.content.decode()


def test_duplicate_registration_elsewhere_is_409_and_audited(login_as, residents, audit_events):
    zhang = residents["张三"]  # Dongshan's resident; Nanwan's doctor cannot see him
    data = _registration(
        resident_id=zhang.resident_id, name="张三", sex="M", birth_date=zhang.birth_date.isoformat()
    )

    response = login_as("village2").post("/patients/register/", data)

    assert response.status_code == 409
    assert "东山村卫生室" in response.content.decode()
    assert audit_events(action="patient.register", outcome=Outcome.DENIED, patient_id=zhang.pk)
    assert Patient.objects.filter(resident_id=zhang.resident_id).count() == 1


def test_registering_a_visible_resident_again_opens_their_record(login_as, residents):
    zhang = residents["张三"]
    data = _registration(
        resident_id=zhang.resident_id, name="张三", sex="M", birth_date=zhang.birth_date.isoformat()
    )
    client = login_as("village")

    response = client.post("/patients/register/", data, follow=True)

    assert response.redirect_chain == [(f"/patients/{zhang.pk}/", 302)]
    assert "already registered" in response.content.decode()


def test_specialist_without_a_clinic_of_residents_can_still_register_at_the_hospital(login_as):
    assert login_as("specialist").get("/patients/register/").status_code == 200


def test_radiologist_cannot_register_residents(login_as, audit_events):
    response = login_as("radiologist").get("/patients/register/")
    assert response.status_code == 403
    assert audit_events(action="patient.register", outcome=Outcome.DENIED)


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"resident_id": "", "name": "", "sex": "", "birth_date": ""},
        _registration(sex="X"),
        _registration(birth_date="31/31/31"),
        _registration(birth_date="0000-00-00"),
        _registration(name="名" * 5000),
        _registration(phone="call me maybe"),
        _registration(resident_id="１１０１０１"),
        _registration(resident_id="\x00" * 18),
        _registration(birth_date="1970-02-30"),
    ],
    ids=[
        "empty",
        "blank",
        "sex",
        "date-format",
        "date-zero",
        "long-name",
        "phone",
        "fullwidth-id",
        "nul-id",
        "no-such-day",
    ],
)
def test_malformed_post_is_400_not_500(login_as, data, audit_events):
    response = login_as("village").post("/patients/register/", data)
    assert response.status_code == 400
    assert audit_events(action="patient.register", outcome=Outcome.FAILED)
