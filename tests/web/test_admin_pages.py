"""The admin: every screen loads; audit events and records stay read-only."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.test import RequestFactory
from django.urls import reverse

from audit.models import AuditEvent, Outcome
from audit.services import audit_record

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser_client(client):
    user = get_user_model().objects.create_superuser(username="root", password="root-pass-123")
    client.force_login(user)
    client.cookies["django_language"] = "en"
    return client, user


def test_admin_pages_load_for_superuser(superuser_client):
    client, user = superuser_client
    request = RequestFactory().get("/admin/")
    request.user = user
    audit_record(actor=user, action="test.admin", outcome=Outcome.ALLOWED)
    for model, model_admin in admin.site._registry.items():
        meta = model._meta
        changelist = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
        assert client.get(changelist).status_code == 200, changelist
        if model_admin.has_add_permission(request):
            add = reverse(f"admin:{meta.app_label}_{meta.model_name}_add")
            assert client.get(add).status_code == 200, add
        first = model.objects.order_by("pk").first()
        if first is not None:
            change = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[first.pk])
            assert client.get(change).status_code == 200, change


def test_audit_events_are_read_only_in_the_admin(superuser_client):
    client, user = superuser_client
    event = audit_record(actor=user, action="test.admin", outcome=Outcome.ALLOWED)

    assert client.get("/admin/audit/auditevent/add/").status_code == 403
    assert (
        client.post(
            f"/admin/audit/auditevent/{event.pk}/change/", {"action": "rewritten"}
        ).status_code
        == 403
    )
    assert (
        client.post(f"/admin/audit/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert AuditEvent.objects.get(pk=event.pk).action == "test.admin"


def test_staff_who_are_not_superusers_do_not_see_the_audit_trail_in_the_admin(client, actors):
    client.force_login(actors.admin)  # the association admin is staff, not superuser
    assert client.get("/admin/audit/auditevent/").status_code == 403


def test_patient_admin_lists_masked_resident_ids(superuser_client, residents):
    client, _user = superuser_client
    html = client.get("/admin/records/patient/").content.decode()
    zhang = residents["张三"]
    assert zhang.masked_resident_id in html
    assert zhang.resident_id not in html


def test_opening_a_patient_in_the_admin_is_audited(superuser_client, residents):
    client, _user = superuser_client
    zhang = residents["张三"]
    html = client.get(f"/admin/records/patient/{zhang.pk}/change/").content.decode()
    assert zhang.resident_id not in html
    assert AuditEvent.objects.filter(action="patient.admin_view", patient_id=zhang.pk).exists()
