"""The audit trail cannot be altered, by the application or by SQL."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction

from audit.models import AuditEvent, Outcome
from audit.services import audit_record


@pytest.fixture
def event(actors):
    return audit_record(actor=actors.village, action="patient.view", outcome=Outcome.ALLOWED)


def test_model_refuses_to_update_an_event(event):
    event.outcome = Outcome.DENIED
    with pytest.raises(PermissionError):
        event.save()


def test_model_refuses_to_delete_an_event(event):
    with pytest.raises(PermissionError):
        event.delete()


def test_database_refuses_update_through_the_orm(event):
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(outcome=Outcome.DENIED)
    event.refresh_from_db()
    assert event.outcome == Outcome.ALLOWED


def test_database_refuses_bulk_delete(event):
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_database_refuses_raw_sql_update_and_delete(event):
    for sql in (
        "UPDATE audit_auditevent SET action = 'x' WHERE id = %s",
        "DELETE FROM audit_auditevent WHERE id = %s",
    ):
        with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [event.pk])
    assert AuditEvent.objects.get(pk=event.pk).action == "patient.view"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="TRUNCATE exists on PostgreSQL only")
def test_postgresql_refuses_truncate(event):
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("TRUNCATE audit_auditevent")
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_event_records_who_what_when_where_and_outcome(client, actors, residents):
    client.force_login(actors.outsider)
    client.get(
        f"/api/patients/{residents['张三'].pk}/",
        REMOTE_ADDR="10.1.2.3",
        HTTP_USER_AGENT="pytest-agent",
    )
    event = AuditEvent.objects.filter(actor=actors.outsider).latest("id")
    assert event.action == "patient.view"
    assert event.outcome == Outcome.DENIED
    assert event.patient_id == residents["张三"].pk
    assert event.ip == "10.1.2.3"
    assert event.user_agent == "pytest-agent"
    assert event.channel == "api"
    assert event.at is not None


def test_failed_web_login_is_audited(client, db):
    client.post("/accounts/login/", {"username": "nobody", "password": "wrong"})
    assert AuditEvent.objects.filter(
        actor_username="nobody", action="auth.login", outcome=Outcome.FAILED
    ).exists()


def test_successful_login_and_logout_are_audited(client, actors):
    client.post("/accounts/login/", {"username": "township", "password": "telemed-demo"})
    client.post("/accounts/logout/")
    actions = list(
        AuditEvent.objects.filter(actor=actors.township).values_list("action", flat=True)
    )
    assert "auth.login" in actions
    assert "auth.logout" in actions


def test_reasons_are_stored_in_one_language_whatever_the_users_language(client, actors):
    client.force_login(actors.village)
    client.post(
        "/api/patients/",
        {"resident_id": "12345", "name": "x", "sex": "F", "birth_date": "1990-01-01"},
        content_type="application/json",
        HTTP_ACCEPT_LANGUAGE="zh-hans",
    )
    event = AuditEvent.objects.filter(actor=actors.village, action="patient.register").latest("id")
    assert event.reason.startswith("A resident ID has 18 characters")


def test_an_anonymous_api_call_is_refused_and_audited(client, db):
    response = client.get("/api/patients/")
    assert response.status_code == 401
    event = AuditEvent.objects.latest("id")
    assert (event.action, event.outcome, event.resource_id) == (
        "api.auth",
        "denied",
        "/api/patients/",
    )


def test_a_wrong_bearer_token_is_refused_and_audited(client, db):
    response = client.get("/api/me/", HTTP_AUTHORIZATION="Bearer not-a-token")
    assert response.status_code == 401
    assert AuditEvent.objects.latest("id").action == "api.auth"


def test_malformed_json_is_audited_without_the_values(client, actors):
    client.force_login(actors.village)
    client.post("/api/patients/", "{not json", content_type="application/json")
    event = AuditEvent.objects.latest("id")
    assert (event.action, event.outcome) == ("api.refused", "failed")
    assert event.reason == "400 parse_error"


def test_invalid_fields_are_audited_by_name(client, actors):
    client.force_login(actors.village)
    client.post("/api/patients/", {"name": "张"}, content_type="application/json")
    event = AuditEvent.objects.latest("id")
    assert "resident_id" in event.detail["fields"]
    assert "张" not in str(event.detail)
