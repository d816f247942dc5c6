"""The dashboard page and its JSON, /lab/, the home page's lab card and the nav entry."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent, Outcome
from lab.models import OrderStatus, Priority
from tests.lab.views_support import hexi_lab_tech, institution, lab_centre, make_alert, make_order

pytestmark = pytest.mark.django_db

DATA = "/lab/dashboard/data.json"


@pytest.fixture
def login_as(client: Client, actors: Any) -> Callable[..., Client]:
    def _login(username: str, *, language: str = "en") -> Client:
        client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
        client.force_login(getattr(actors, username))
        return client

    return _login


@pytest.fixture
def activity(actors, residents):
    """A reported order of each of Dongshan (village) and Xiba (township), one open alert."""
    now = timezone.now()
    orders = []
    for doctor, patient in (("village", "张三"), ("township", "刘桂兰")):
        orders.append(
            make_order(
                patient=residents[patient],
                doctor=getattr(actors, doctor),
                labtech=actors.labtech,
                status=OrderStatus.REPORTED,
                received_at=now - dt.timedelta(hours=3),
                reported_at=now - dt.timedelta(hours=2),
            )
        )
    make_alert(orders[0], actors.labtech, raised_at=now - dt.timedelta(minutes=1))
    return orders


def _names(payload: dict[str, Any]) -> set[str]:
    return {row["name"] for row in payload["institutions"]}


# --- The JSON ----------------------------------------------------------------------------------


@pytest.mark.parametrize("username", ["auditor", "admin", "labtech"])
def test_the_association_and_the_centre_see_every_institution(login_as, activity, username):
    response = login_as(username).get(DATA, {"days": 7})
    assert response.status_code == 200
    payload = response.json()
    assert _names(payload) == {"东山村卫生室", "溪坝镇卫生院"}
    assert payload["centre"]["id"] == lab_centre().pk
    assert payload["total"]["orders"] == 2
    assert len(payload["daily"]) in (7, 8)


def test_a_clinician_gets_their_own_institution_only(login_as, activity):
    payload = login_as("village").get(DATA).json()
    assert _names(payload) == {"东山村卫生室"}
    assert payload["own_only"] is True
    assert payload["total"]["critical"]["count"] == 1


def test_outsider_gets_403_and_it_is_audited(login_as, activity):
    response = login_as("outsider").get(DATA, {"centre": lab_centre().pk})
    assert response.status_code == 403
    assert "error" in response.json()
    assert AuditEvent.objects.filter(
        actor_username="outsider", resource_type="lab_stats", outcome=Outcome.DENIED
    ).exists()
    assert login_as("outsider").get(DATA).status_code == 403


def test_lab_staff_of_another_association_cannot_read_this_centre(client, activity):
    client.force_login(hexi_lab_tech())
    assert client.get(DATA, {"centre": lab_centre().pk}).status_code == 403
    own = client.get(DATA).json()
    assert own["centre"]["name"] == "河西检验中心"
    assert own["institutions"] == []


def test_bad_period_is_a_400_and_unknown_centre_a_404(login_as):
    client = login_as("auditor")
    assert client.get(DATA, {"days": "365"}).status_code == 400
    assert client.get(DATA, {"centre": "abc"}).status_code == 400
    assert client.get(DATA, {"centre": 999999}).status_code == 404


def test_json_has_the_numbers_the_charts_draw(login_as, activity):
    row = login_as("labtech").get(DATA).json()["institutions"][0]
    assert set(row) >= {"tat_receipt", "tat_order", "target_minutes", "within_target_pct"}
    assert row["tat_receipt"] == {"median": 60.0, "p90": 60.0}
    assert set(row["critical"]) >= {"count", "ack_median", "ack_in_time_pct", "escalated"}


# --- The page ----------------------------------------------------------------------------------


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_dashboard_page_draws_charts_and_a_table(client, actors, activity, language):
    client.force_login(actors.labtech)
    response = client.get("/lab/dashboard/", {"days": 30}, HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 200
    html = response.content.decode()
    assert f'<html lang="{language}">' in html
    for needle in ('id="chart-tat"', 'id="chart-ack"', 'id="chart-daily"', 'id="lab-stats"'):
        assert needle in html
    assert "charts/charts.js" in html
    assert "lab/dashboard.js" in html
    assert "东山村卫生室" in html
    assert "溪坝镇卫生院" in html
    embedded = html.split('id="lab-stats" type="application/json">')[1].split("</script>")[0]
    assert json.loads(embedded)["total"]["orders"] == 2


def test_dashboard_page_is_403_for_the_outsider(login_as):
    assert login_as("outsider").get("/lab/dashboard/").status_code == 403


def test_dashboard_with_a_bad_period_is_a_400_showing_30_days(login_as, activity):
    response = login_as("auditor").get("/lab/dashboard/", {"days": "2"})
    assert response.status_code == 400
    assert "东山村卫生室" in response.content.decode()


# --- /lab/, the home card and the nav ----------------------------------------------------------


@pytest.mark.parametrize(
    ("username", "target"),
    [
        ("labtech", "/lab/queue/"),
        ("village", "/lab/orders/"),
        ("specialist", "/lab/orders/"),
        ("auditor", "/lab/dashboard/"),
        ("admin", "/lab/dashboard/"),
    ],
)
def test_lab_home_sends_each_person_to_their_page(login_as, username, target):
    response = login_as(username).get("/lab/")
    assert response.status_code == 302
    assert response["Location"] == target


def test_lab_home_is_403_for_a_radiologist(login_as):
    assert login_as("radiologist").get("/lab/").status_code == 403


def test_lab_technicians_home_has_the_queue_card(login_as, actors, residents, activity):
    make_order(
        patient=residents["张三"],
        doctor=actors.village,
        labtech=actors.labtech,
        status=OrderStatus.SHIPPED,
        priority=Priority.EMERGENCY,
    )
    html = login_as("labtech").get("/").content.decode()
    assert 'id="lab-queue"' in html
    assert "/lab/queue/?tab=receive" in html
    assert "critical values not yet acknowledged" in html
    assert 'href="/lab/"' in html


def test_village_doctors_home_has_the_clinic_card(login_as, activity):
    html = login_as("village").get("/").content.decode()
    assert 'id="lab-orders"' in html
    assert "Results ready" in html
    assert 'href="/lab/"' in html


def test_no_lab_card_or_nav_entry_for_the_auditor(login_as):
    html = login_as("auditor").get("/").content.decode()
    assert 'id="lab-' not in html
    assert 'href="/lab/"' not in html


@pytest.mark.parametrize("username", ["labtech", "village"])
def test_home_with_the_lab_card_renders_in_chinese(login_as, activity, username):
    response = login_as(username, language="zh-hans").get("/", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response.status_code == 200
    assert '<html lang="zh-hans">' in response.content.decode()


def test_the_institution_rows_link_to_nothing_private(login_as, activity):
    """The dashboard holds counts and times only: no resident's name appears."""
    html = login_as("auditor").get("/lab/dashboard/").content.decode()
    assert "张三" not in html
    assert "刘桂兰" not in html
    assert institution("dongshan").name in html
