"""The association admin manages the association's structure and people, and only that."""

from __future__ import annotations

import pytest

from association.models import Association, Institution, Membership, Role


@pytest.fixture
def admin_client(client, actors):
    client.force_login(actors.admin)
    return client


def test_association_admin_opens_the_admin_site(admin_client):
    response = admin_client.get("/admin/")
    assert response.status_code == 200
    assert b"/admin/association/institution/" in response.content


def test_association_admin_lists_only_their_associations_institutions(admin_client):
    body = admin_client.get("/admin/association/institution/").content.decode()
    assert "东山村卫生室" in body
    assert "河西社区卫生服务站" not in body


def test_another_associations_institution_cannot_be_opened(admin_client):
    hexi = Institution.objects.get(code="hexi-clinic")
    response = admin_client.get(f"/admin/association/institution/{hexi.pk}/change/")
    assert response.status_code == 302  # Django's "does not exist" redirect to the index


def test_association_admin_adds_a_village_clinic_to_their_association(admin_client):
    qingshan = Association.objects.get(code="qingshan")
    response = admin_client.post(
        "/admin/association/institution/add/",
        {
            "name": "新村卫生室",
            "code": "xincun",
            "level": "village_clinic",
            "association": qingshan.pk,
            "parent": Institution.objects.get(code="xiba").pk,
            "address": "",
            "phone": "",
            "active": "on",
            "video_max_kbps": 400,
        },
    )
    assert response.status_code == 302, response.content[:2000]
    assert Institution.objects.get(code="xincun").association == qingshan


def test_association_admin_cannot_add_an_institution_to_another_association(admin_client):
    hexi = Association.objects.get(code="hexi")
    response = admin_client.post(
        "/admin/association/institution/add/",
        {
            "name": "外村卫生室",
            "code": "waicun",
            "level": "village_clinic",
            "association": hexi.pk,
            "active": "on",
        },
    )
    assert response.status_code == 200  # the form again, with the choice refused
    assert not Institution.objects.filter(code="waicun").exists()


def test_people_list_shows_the_association_not_the_neighbours(admin_client):
    body = admin_client.get("/admin/accounts/user/").content.decode()
    assert ">village<" in body
    assert ">outsider<" not in body


def test_association_admin_cannot_open_records_or_the_audit_trail_in_the_admin(admin_client):
    assert admin_client.get("/admin/records/patient/").status_code == 403
    assert admin_client.get("/admin/audit/auditevent/").status_code == 403


def test_association_admin_cannot_make_anyone_superuser(admin_client, actors):
    response = admin_client.get(f"/admin/accounts/user/{actors.village.pk}/change/")
    assert response.status_code == 200
    assert b'name="is_superuser"' not in response.content


def test_admin_rights_end_with_the_membership(actors):
    admin = actors.admin
    Membership.objects.filter(user=admin, role=Role.ASSOCIATION_ADMIN).update(active=False)
    membership = Membership.objects.get(user=admin, role=Role.ASSOCIATION_ADMIN)
    membership.save()  # the signal follows saves made through the model
    assert not admin.groups.filter(name="association-admins").exists()
