"""The imaging admin: AE titles scoped to the administered association, the index read-only."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from pydicom.data import get_testdata_file

from association.models import Institution
from audit.models import AuditEvent
from imaging.ingest import Origin, instance_ingest
from imaging.models import AETitle, Study

pytestmark = pytest.mark.django_db


@pytest.fixture
def ae_admin_client(client, actors):
    """The association admin, given the AE-title permissions (see admin_scope.GROUP_PERMISSIONS)."""
    user = actors.admin
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="imaging", codename__in=["view_aetitle", "change_aetitle"]
        )
    )
    client.force_login(user)
    return client


@pytest.fixture
def superuser_client(client):
    user = get_user_model().objects.create_superuser(username="root", password="root-pass-123")
    client.force_login(user)
    return client


def test_association_admin_lists_only_their_associations_ae_titles(ae_admin_client):
    hexi = Institution.objects.get(code="hexi-clinic")
    AETitle.objects.create(ae_title="HEXI_US", institution=hexi)
    body = ae_admin_client.get("/admin/imaging/aetitle/").content.decode()
    assert "XIBA_CT" in body
    assert "HEXI_US" not in body


def test_ae_titles_are_deactivated_not_deleted(superuser_client):
    ae = AETitle.objects.get(ae_title="XIBA_CT")
    response = superuser_client.get(f"/admin/imaging/aetitle/{ae.pk}/delete/")
    assert response.status_code == 403


def test_studies_are_read_only_and_opening_one_is_audited(superuser_client, actors):
    origin = Origin(
        institution=Institution.objects.get(code="xiba"), channel="upload", user=actors.township
    )
    with open(get_testdata_file("CT_small.dcm"), "rb") as f:
        instance_ingest(f, origin=origin)
    study = Study.objects.get()
    response = superuser_client.get(f"/admin/imaging/study/{study.pk}/change/")
    assert response.status_code == 200
    assert b'name="_save"' not in response.content
    assert AuditEvent.objects.filter(
        action="study.admin_view", resource_id=study.study_uid
    ).exists()


def test_an_association_admin_does_not_see_the_image_index(ae_admin_client):
    assert ae_admin_client.get("/admin/imaging/study/").status_code == 403
