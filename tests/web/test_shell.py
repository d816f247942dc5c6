"""Login, logout, language and the home page of every role."""

from __future__ import annotations

import datetime as dt

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.utils import timezone

from audit.models import Outcome
from demo.services import DEFAULT_PASSWORD, DEMO_ACCOUNTS

pytestmark = pytest.mark.django_db

HOME_MARKERS = {
    "village": "grassroots",
    "township": "grassroots",
    "specialist": "clinical",
    "coordinator": "clinical",
    "radiologist": "centre",
    "labtech": "centre",
    "admin": "admin",
    "auditor": "auditor",
}
RESIDENT_NAMES = (
    *("张三", "李秀英", "王建国", "刘桂兰", "陈志强", "杨丽"),
    *("赵明", "黄玉梅", "周海", "吴芳", "郑大山"),
)


def test_every_design_account_has_a_home_marker():
    assert {username for username, _ in DEMO_ACCOUNTS} == set(HOME_MARKERS)


@pytest.mark.parametrize("language", ["zh-hans", "en"])
@pytest.mark.parametrize("username", list(HOME_MARKERS))
def test_every_demo_account_logs_in_and_sees_its_home_page(client, actors, username, language):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
    response = client.post("/accounts/login/", {"username": username, "password": DEFAULT_PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/"

    page = client.get("/")

    assert page.status_code == 200
    html = page.content.decode()
    assert f'<html lang="{language}">' in html
    assert f'data-home="{HOME_MARKERS[username]}"' in html
    assert getattr(actors, username).display_name in html


def test_wrong_password_shows_the_login_page_again_and_is_audited(client, audit_events):
    response = client.post("/accounts/login/", {"username": "village", "password": "nope-nope"})
    assert response.status_code == 200
    assert b'data-page="login"' in response.content
    [event] = audit_events(action="auth.login", outcome=Outcome.FAILED)
    assert event.actor_username == "village"


def test_incomplete_login_form_is_a_400_and_audited(client, audit_events):
    response = client.post("/accounts/login/", {"username": "village"})
    assert response.status_code == 400
    assert audit_events(action="auth.login", outcome=Outcome.FAILED, reason="incomplete login form")


def test_login_switches_to_the_preferred_language(client, actors):
    user = actors.township
    user.preferred_language = "en"
    user.save(update_fields=["preferred_language"])

    response = client.post(
        "/accounts/login/", {"username": "township", "password": DEFAULT_PASSWORD}
    )

    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "en"
    assert b'<html lang="en">' in client.get("/").content


def test_language_chosen_on_the_login_page_wins_over_the_preference(client, actors):
    user = actors.township
    user.preferred_language = "en"
    user.save(update_fields=["preferred_language"])
    client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/accounts/login/"})

    client.post("/accounts/login/", {"username": "township", "password": DEFAULT_PASSWORD})

    assert b'<html lang="zh-hans">' in client.get("/").content


def test_language_switch_changes_the_page_language(login_as):
    client = login_as("village", language="zh-hans")
    assert b'<html lang="zh-hans">' in client.get("/").content

    response = client.post("/i18n/setlang/", {"language": "en", "next": "/"})

    assert response.status_code == 302
    assert b'<html lang="en">' in client.get("/").content


def test_logout_requires_post(login_as):
    client = login_as("village")

    assert client.get("/accounts/logout/").status_code == 405
    assert client.get("/").status_code == 200

    response = client.post("/accounts/logout/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/"
    assert client.get("/").status_code == 302


def test_anonymous_visitor_is_sent_to_the_login_page(client):
    response = client.get("/patients/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/patients/"


def _expire_session(client):
    Session.objects.filter(session_key=client.session.session_key).update(
        expire_date=timezone.now() - dt.timedelta(minutes=1)
    )


def test_expired_session_redirects_to_login(login_as, audit_events):
    client = login_as("village")
    _expire_session(client)

    response = client.get("/patients/")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/patients/"
    assert audit_events(action="auth.session", outcome=Outcome.FAILED)
    assert "Your session has expired" in client.get(response["Location"]).content.decode()


def test_form_sent_after_the_session_expired_is_a_401_and_audited(login_as, audit_events):
    client = login_as("village")
    _expire_session(client)

    response = client.post("/patients/register/", {"name": "张三"})

    assert response.status_code == 401
    assert b"/accounts/login/?next=/patients/register/" in response.content
    [event] = audit_events(action="auth.session")
    assert event.detail["method"] == "POST"


def test_village_doctor_sees_own_residents_on_home_page(login_as, residents):
    html = login_as("village").get("/").content.decode()

    for name in ["张三", "李秀英", "王建国"]:
        assert name in html
    assert "赵明" not in html  # Nanwan, another clinic
    assert "郑大山" not in html  # another association
    assert residents["张三"].masked_resident_id in html
    assert residents["张三"].resident_id not in html
    assert 'href="/patients/register/"' in html


def test_specialist_home_lists_residents_shared_with_them(login_as):
    html = login_as("specialist").get("/").content.decode()

    assert "刘桂兰" in html  # consented to association-wide sharing
    assert "张三" not in html
    assert "Consultations asked of you" in html


def test_radiologist_home_shows_the_reading_worklist(login_as):
    html = login_as("radiologist").get("/").content.decode()

    assert "青山县医学影像中心" in html
    assert "Reading worklist" in html
    assert "Nothing is waiting to be read." in html
    assert not any(name in html for name in RESIDENT_NAMES)


def test_admin_home_draws_statistics_without_patient_names(login_as, residents):
    html = login_as("admin").get("/").content.decode()

    assert 'data-home="admin"' in html
    assert "Residents per institution" in html
    assert "东山村卫生室" in html
    assert html.count('class="bar"') >= 3
    assert not any(name in html for name in RESIDENT_NAMES)
    assert residents["张三"].masked_resident_id not in html


def test_auditor_home_links_to_the_audit_search_with_recent_denials(login_as, client, residents):
    login_as("outsider").get(f"/patients/{residents['张三'].pk}/")
    client.logout()

    html = login_as("auditor").get("/").content.decode()

    assert 'href="/audit/"' in html
    assert '<span class="figure">1</span>' in html


def test_user_without_membership_is_told_to_ask_the_association_admin(client):
    nobody = get_user_model().objects.create_user(username="nobody", password=DEFAULT_PASSWORD)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    client.force_login(nobody)

    html = client.get("/").content.decode()

    assert 'data-home="none"' in html
    assert "Please ask your association" in html


def test_static_files_are_served_locally(client):
    html = client.get("/accounts/login/").content.decode()
    assert "/static/css/app.css" in html
    assert "http://" not in html.replace("http://testserver", "")
    assert "https://" not in html


@pytest.mark.parametrize(
    ("handler", "status"),
    [("bad_request", 400), ("permission_denied", 403), ("page_not_found", 404)],
)
def test_error_handlers_draw_the_shell_page(rf, actors, handler, status):
    from core import views

    request = rf.get("/nowhere/")
    request.user = actors.village
    request.session = {}
    response = getattr(views, handler)(request, Exception("x"))

    assert response.status_code == status
    assert f'data-status="{status}"'.encode() in response.content
