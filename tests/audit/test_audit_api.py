"""Auditors search the trail over the API; nobody else can, and trying is audited."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent, Outcome


def test_auditor_finds_a_denied_access_by_outcome_and_patient(client, actors, residents):
    patient = residents["张三"]
    client.force_login(actors.outsider)
    client.get(f"/api/patients/{patient.pk}/")
    client.force_login(actors.auditor)
    response = client.get("/api/audit/events/", {"outcome": "denied", "patient": patient.pk})
    assert response.status_code == 200
    results = response.json()["results"]
    assert [e["actor_username"] for e in results] == ["outsider"]


@pytest.mark.parametrize("username", ["village", "specialist", "admin"])
def test_others_cannot_search_and_the_refusal_is_audited(client, actors, username):
    client.force_login(getattr(actors, username))
    assert client.get("/api/audit/events/").status_code == 403
    assert AuditEvent.objects.filter(
        actor_username=username, action="audit.search", outcome=Outcome.DENIED
    ).exists()


def test_bad_filters_are_a_400(client, actors):
    client.force_login(actors.auditor)
    response = client.get("/api/audit/events/", {"outcome": "maybe", "since": "yesterday"})
    assert response.status_code == 400
    assert {"outcome", "since"} <= set(response.json())


def test_the_auditor_does_not_see_another_associations_trail(client, actors, residents):
    client.force_login(actors.outsider)
    client.get(f"/api/patients/{residents['郑大山'].pk}/")
    client.force_login(actors.auditor)
    usernames = {
        e["actor_username"] for e in client.get("/api/audit/events/?limit=500").json()["results"]
    }
    assert "outsider" not in usernames
