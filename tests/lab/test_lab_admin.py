"""The lab admin: the catalogue and the policy scoped to the administered association, checked
like the catalogue pages and audited; the workflow's records read-only, superusers only."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client

from association.models import Association, CentreKind, DiagnosticCentre, Institution
from audit.models import AuditEvent
from lab.models import LabPolicy, LabTest, SpecimenType
from lab.workflow_common import policy_for
from tests.lab.matrix_support import lab_centre, ordered

pytestmark = pytest.mark.django_db

# What association.admin_scope.GROUP_PERMISSIONS should give association admins for the lab.
CATALOGUE_PERMISSIONS = [
    f"{action}_{model}"
    for model, actions in {
        "labtest": ("view", "add", "change"),
        "referencerange": ("view", "add", "change", "delete"),
        "panel": ("view", "add", "change"),
        "labpolicy": ("view", "add", "change"),
    }.items()
    for action in actions
]


@pytest.fixture
def admin_client(client: Client, actors: Any) -> Client:
    """The association admin, with the lab catalogue's permissions."""
    user = actors.admin
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="lab", codename__in=CATALOGUE_PERMISSIONS
        )
    )
    client.force_login(user)
    client.cookies["django_language"] = "en"  # the assertions read English messages
    return client


@pytest.fixture
def superuser_client(client: Client) -> Client:
    user = get_user_model().objects.create_superuser(username="root-lab", password="x" * 12)
    client.force_login(user)
    return client


@pytest.fixture
def hexi_test() -> LabTest:
    """A test of a lab centre of the neighbouring association."""
    hexi = Association.objects.get(code="hexi")
    centre = DiagnosticCentre.objects.create(
        code="hexi-lab",
        name="河西检验中心",
        kind=CentreKind.LAB,
        host=Institution.objects.get(code="hexi-clinic"),
        association=hexi,
    )
    return LabTest.objects.create(
        centre=centre,
        code="HEXIK",
        name="河西钾",
        specimen_type=SpecimenType.SERUM,
        container="serum_gel",
        unit="mmol/L",
    )


def _test_form(test: LabTest, **changes: Any) -> dict[str, Any]:
    """The admin form of ``test`` as posted back, with its reference ranges inline."""
    data: dict[str, Any] = {
        "centre": test.centre_id,
        "code": test.code,
        "name": test.name,
        "name_en": test.name_en,
        "loinc": test.loinc,
        "specimen_type": test.specimen_type,
        "container": test.container,
        "value_kind": test.value_kind,
        "unit": test.unit,
        "decimals": test.decimals,
        "plausible_low": test.plausible_low or "",
        "plausible_high": test.plausible_high or "",
        "critical_low": test.critical_low or "",
        "critical_high": test.critical_high or "",
        "turnaround_minutes": test.turnaround_minutes,
        "active": "on" if test.active else "",
        "sort_order": test.sort_order,
    }
    ranges = list(test.ranges.all())
    data |= {
        "ranges-TOTAL_FORMS": len(ranges),
        "ranges-INITIAL_FORMS": len(ranges),
        "ranges-MIN_NUM_FORMS": 0,
        "ranges-MAX_NUM_FORMS": 1000,
    }
    for n, r in enumerate(ranges):
        data |= {
            f"ranges-{n}-id": r.pk,
            f"ranges-{n}-test": test.pk,
            f"ranges-{n}-sex": r.sex,
            f"ranges-{n}-age_min_days": r.age_min_days,
            f"ranges-{n}-age_max_days": r.age_max_days or "",
            f"ranges-{n}-low": r.low if r.low is not None else "",
            f"ranges-{n}-high": r.high if r.high is not None else "",
            f"ranges-{n}-text": r.text,
        }
    return data | changes


def _potassium() -> LabTest:
    return LabTest.objects.get(centre=lab_centre(), code="K")


def test_the_association_admin_lists_only_their_associations_tests(admin_client, hexi_test):
    body = admin_client.get("/admin/lab/labtest/").content.decode()
    assert "Potassium" in body
    assert "HEXIK" not in body
    assert admin_client.get(f"/admin/lab/labtest/{hexi_test.pk}/change/").status_code in (302, 404)


def test_only_the_associations_lab_centres_are_offered(admin_client, hexi_test):
    page = admin_client.get("/admin/lab/labtest/add/")
    choices = {str(c) for c in page.context["adminform"].form.fields["centre"].queryset}
    assert choices == {lab_centre().name}


def test_the_admin_changes_critical_limits_and_the_change_is_audited(admin_client, actors):
    test = _potassium()
    response = admin_client.post(
        f"/admin/lab/labtest/{test.pk}/change/", _test_form(test, critical_high="6.5")
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert _potassium().critical_high == Decimal("6.5")
    event = AuditEvent.objects.get(actor=actors.admin, action="lab.catalogue.test.admin_change")
    assert event.resource_id == str(test.pk)
    assert "critical_high" in event.detail["fields"]


def test_limits_are_checked_as_on_the_catalogue_page(admin_client):
    test = _potassium()
    response = admin_client.post(
        f"/admin/lab/labtest/{test.pk}/change/", _test_form(test, critical_high="99")
    )
    assert response.status_code == 200
    assert "critical_high" in response.context["adminform"].form.errors
    assert _potassium().critical_high == Decimal("6.2")


def test_overlapping_reference_ranges_are_refused(admin_client):
    test = _potassium()
    data = _test_form(test)
    n = data["ranges-TOTAL_FORMS"]
    data |= {
        "ranges-TOTAL_FORMS": n + 1,
        f"ranges-{n}-sex": "",
        f"ranges-{n}-age_min_days": 0,
        f"ranges-{n}-age_max_days": "",
        f"ranges-{n}-low": "3.0",
        f"ranges-{n}-high": "5.0",
        f"ranges-{n}-text": "",
    }
    before = test.ranges.count()
    response = admin_client.post(f"/admin/lab/labtest/{test.pk}/change/", data)
    assert response.status_code == 200
    assert "same ages" in response.content.decode()
    assert test.ranges.count() == before


def test_tests_and_panels_are_deactivated_not_deleted(admin_client):
    assert admin_client.get(f"/admin/lab/labtest/{_potassium().pk}/delete/").status_code == 403


def test_the_admin_sets_the_centres_critical_value_policy(admin_client, actors):
    centre = lab_centre()
    policy = LabPolicy.objects.get(centre=centre)  # the demo's, with the defaults
    response = admin_client.post(
        f"/admin/lab/labpolicy/{policy.pk}/change/",
        {
            "centre": centre.pk,
            "ack_minutes": 5,
            "escalate_minutes": 15,
            "specimen_max_age_hours": 24,
            "missing_after_hours": 12,
        },
    )
    assert response.status_code == 302
    assert (policy_for(centre).ack_minutes, policy_for(centre).escalate_minutes) == (5, 15)
    assert AuditEvent.objects.filter(
        actor=actors.admin, action="lab.policy.admin_change", resource_type="lab_policy"
    ).exists()


def test_orders_are_read_only_and_opening_one_is_audited(superuser_client, actors, residents):
    order = ordered(actors, residents, "K")
    assert superuser_client.get("/admin/lab/laborder/").status_code == 200
    page = superuser_client.get(f"/admin/lab/laborder/{order.pk}/change/")
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert "乏力三天" not in page.content.decode()  # the clinical note stays behind the page
    assert AuditEvent.objects.filter(
        action="lab.order.admin_view", resource_id=str(order.pk), patient_id=order.patient_id
    ).exists()
    assert superuser_client.get("/admin/lab/laborder/add/").status_code == 403


def test_the_association_admin_does_not_see_orders_or_results(admin_client):
    for model in ("laborder", "specimen", "box", "result", "criticalalert", "importbatch"):
        assert admin_client.get(f"/admin/lab/{model}/").status_code == 403, model
