"""The auditor's search of the audit trail."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent, Outcome
from audit.services import audit_record

pytestmark = pytest.mark.django_db


def test_auditor_can_search_audit_events(login_as, client, residents):
    zhang = residents["张三"]
    login_as("village").get(f"/patients/{zhang.pk}/")
    client.logout()

    response = login_as("auditor").get("/audit/", {"username": "village", "action": "patient."})

    html = response.content.decode()
    assert response.status_code == 200
    assert "patient.view" in html
    assert f"#{zhang.pk}" in html


def test_audit_search_is_itself_audited(login_as, audit_events):
    login_as("auditor").get("/audit/", {"outcome": "denied"})
    [event] = audit_events(action="audit.search", outcome=Outcome.ALLOWED)
    assert event.actor_username == "auditor"
    assert event.detail == {"outcome": "denied"}


def test_doctor_cannot_open_audit_search(login_as, audit_events):
    response = login_as("village").get("/audit/")

    assert response.status_code == 403
    assert "Only auditors can search the audit trail" in response.content.decode()
    assert audit_events(action="audit.search", outcome=Outcome.DENIED, actor_username="village")


@pytest.mark.parametrize("username", ["admin", "specialist", "outsider"])
def test_nobody_but_an_auditor_opens_the_audit_search(login_as, username):
    assert login_as(username).get("/audit/").status_code == 403


def test_non_auditor_with_broken_filters_still_gets_403(login_as):
    assert login_as("village").get("/audit/", {"patient": "abc"}).status_code == 403


def test_auditor_does_not_see_another_associations_events(login_as, client, residents):
    login_as("outsider").get(f"/patients/{residents['郑大山'].pk}/")
    client.logout()

    html = login_as("auditor").get("/audit/", {"username": "outsider"}).content.decode()

    assert 'data-count="0"' in html


def test_auditor_sees_a_neighbours_denied_attempt_on_a_qingshan_resident(
    login_as, client, residents
):
    login_as("outsider").get(f"/patients/{residents['张三'].pk}/")
    client.logout()

    html = login_as("auditor").get("/audit/", {"outcome": "denied"}).content.decode()

    assert 'data-count="1"' in html
    assert "outsider" in html


def test_auditor_sees_anonymous_failed_logins(client, login_as):
    client.post("/accounts/login/", {"username": "guessing-admin", "password": "123456"})

    html = login_as("auditor").get("/audit/", {"action": "auth.login"}).content.decode()

    assert "guessing-admin" in html


@pytest.mark.parametrize(
    "params",
    [
        {"patient": "abc"},
        {"date_from": "yesterday"},
        {"outcome": "maybe"},
        {"date_from": "2025-02-01", "date_to": "2025-01-01"},
        {"username": "u" * 500},
    ],
    ids=["patient", "date", "outcome", "range", "long"],
)
def test_invalid_audit_filters_are_a_400_and_audited(login_as, params, audit_events):
    response = login_as("auditor").get("/audit/", params)
    assert response.status_code == 400
    assert audit_events(action="audit.search", outcome=Outcome.FAILED)


def test_audit_search_filters_by_date(login_as):
    html = login_as("auditor").get("/audit/", {"date_to": "2000-01-01"}).content.decode()
    assert 'data-count="0"' in html


def test_audit_search_pages_newest_first(login_as, actors, django_assert_max_num_queries):
    for n in range(60):
        audit_record(
            actor=actors.village, action="test.page", outcome=Outcome.ALLOWED, resource_id=n
        )
    client = login_as("auditor")

    with django_assert_max_num_queries(10):
        first = client.get("/audit/", {"action": "test.page"}).content.decode()
    second = client.get("/audit/", {"action": "test.page", "page": "2"}).content.decode()

    assert 'data-count="60"' in first
    assert "#59" in first
    assert "#0<" not in first
    assert "#0<" in second
    assert "page=2" in first
    assert "action=test.page" in first
    assert AuditEvent.objects.filter(action="audit.search").count() == 2


def test_a_nonsense_page_number_shows_a_page_instead_of_failing(login_as):
    assert login_as("auditor").get("/audit/", {"page": "-3"}).status_code == 200
