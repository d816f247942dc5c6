"""The patient page: the record, consents, timeline and demographic edits."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from audit.models import Outcome
from records.models import Consent, ConsentScope

pytestmark = pytest.mark.django_db


# --- The patient page ---------------------------------------------------------------------


def test_patient_page_shows_the_record_consents_and_timeline(login_as, residents):
    liu = residents["刘桂兰"]
    html = login_as("township").get(f"/patients/{liu.pk}/").content.decode()

    assert liu.masked_resident_id in html
    assert liu.resident_id not in html
    assert "溪坝镇卫生院" in html
    assert "Consent given: Health record" in html
    assert "Registered" in html
    assert "Withdraw consent" in html
    assert "Record a new consent" in html


def test_specialist_reads_a_shared_record_without_edit_controls(login_as, residents):
    html = login_as("specialist").get(f"/patients/{residents['刘桂兰'].pk}/").content.decode()
    assert "刘桂兰" in html
    assert "Withdraw consent" not in html
    assert "Edit demographics" not in html


def test_outsider_gets_403_on_a_qingshan_patient_page_and_it_is_audited(
    login_as, residents, audit_events
):
    zhang = residents["张三"]
    response = login_as("outsider").get(f"/patients/{zhang.pk}/")

    assert response.status_code == 403
    assert "You do not have access to this resident" in response.content.decode()
    assert "张三" not in response.content.decode()
    assert audit_events(
        action="patient.view",
        outcome=Outcome.DENIED,
        patient_id=zhang.pk,
        actor_username="outsider",
    )


def test_unknown_patient_is_a_404(login_as):
    assert login_as("village").get("/patients/999999/").status_code == 404


# --- Consents -----------------------------------------------------------------------------


def _county_id():
    from association.models import Institution

    return Institution.objects.get(code="county").pk


def test_home_clinician_records_and_withdraws_a_consent(login_as, residents):
    zhang = residents["张三"]
    client = login_as("village")
    until = (timezone.localdate() + dt.timedelta(days=30)).isoformat()

    response = client.post(
        f"/patients/{zhang.pk}/consents/",
        {
            "scope": ConsentScope.IMAGING,
            "grantee": f"i:{_county_id()}",
            "valid_until": until,
            "note": "签字",
        },
    )

    assert response.status_code == 302
    consent = Consent.objects.get(patient=zhang)
    assert consent.is_active
    response = client.post(
        f"/patients/{zhang.pk}/consents/{consent.pk}/withdraw/", {"reason": "本人要求"}
    )
    assert response.status_code == 302
    consent.refresh_from_db()
    assert consent.withdrawn_at is not None
    assert "Consent withdrawn: Imaging" in client.get(f"/patients/{zhang.pk}/").content.decode()


def test_consent_valid_until_in_the_past_is_a_400(login_as, residents, audit_events):
    zhang = residents["张三"]
    response = login_as("village").post(
        f"/patients/{zhang.pk}/consents/",
        {
            "scope": ConsentScope.RECORD,
            "grantee": f"i:{_county_id()}",
            "valid_until": "2000-01-01",
        },
    )
    assert response.status_code == 400
    assert "must not be in the past" in response.content.decode()
    assert audit_events(action="consent.record", outcome=Outcome.FAILED, patient_id=zhang.pk)


def test_consent_for_a_grantee_outside_the_association_is_a_400(login_as, residents):
    response = login_as("village").post(
        f"/patients/{residents['张三'].pk}/consents/",
        {
            "scope": ConsentScope.RECORD,
            "grantee": "i:999999",
        },
    )
    assert response.status_code == 400


def test_withdrawing_an_already_withdrawn_consent_is_a_400_and_audited(
    login_as, residents, audit_events
):
    liu = residents["刘桂兰"]
    consent = liu.consents.get()
    client = login_as("township")
    client.post(f"/patients/{liu.pk}/consents/{consent.pk}/withdraw/", {"reason": ""})

    response = client.post(f"/patients/{liu.pk}/consents/{consent.pk}/withdraw/", {"reason": ""})

    assert response.status_code == 400
    assert "already withdrawn" in response.content.decode()
    assert audit_events(action="consent.withdraw", outcome=Outcome.FAILED)


def test_specialist_cannot_record_a_consent_for_a_shared_resident(login_as, residents):
    response = login_as("specialist").post(
        f"/patients/{residents['刘桂兰'].pk}/consents/",
        {
            "scope": ConsentScope.RECORD,
            "grantee": f"i:{_county_id()}",
        },
    )
    assert response.status_code == 403
    assert residents["刘桂兰"].consents.count() == 1


# --- Editing ------------------------------------------------------------------------------


def test_home_clinician_edits_demographics(login_as, residents, audit_events):
    zhang = residents["张三"]
    client = login_as("village")
    assert client.get(f"/patients/{zhang.pk}/edit/").status_code == 200

    response = client.post(
        f"/patients/{zhang.pk}/edit/",
        {
            "name": "张三",
            "phone": "13811112222",
            "address": "东山村一组",
            "family_doctor": zhang.family_doctor_id,
        },
    )

    assert response.status_code == 302
    zhang.refresh_from_db()
    assert zhang.phone == "13811112222"
    [event] = audit_events(action="patient.update")
    assert event.detail == {"fields": ["address", "phone"]}


def test_editing_with_a_bad_phone_number_is_a_400(login_as, residents):
    zhang = residents["张三"]
    response = login_as("village").post(
        f"/patients/{zhang.pk}/edit/",
        {
            "name": "张三",
            "phone": "not a phone",
        },
    )
    assert response.status_code == 400


def test_another_clinic_cannot_edit_a_shared_resident(login_as, residents):
    response = login_as("village").get(f"/patients/{residents['刘桂兰'].pk}/edit/")
    assert response.status_code == 403


def test_patient_page_queries_do_not_grow_with_the_timeline(
    login_as, actors, residents, django_assert_max_num_queries
):
    from records.services import timeline_add

    liu = residents["刘桂兰"]
    for n in range(25):
        timeline_add(
            patient=liu,
            kind="note",
            title=f"随访 {n}",
            actor=actors.township,
            institution=liu.home_institution,
        )
    client = login_as("township")

    # A fixed number: the page's own reads plus one or two per domain card (imaging,
    # consults, lab), none of which grows with the timeline.
    with django_assert_max_num_queries(21):
        response = client.get(f"/patients/{liu.pk}/")

    assert response.content.decode().count('class="timeline-item') == 27
