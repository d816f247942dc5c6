"""Critical-value pages: the list, one alert, acknowledge (also as JSON), the call log, the
banner on every page, the order partial, and the pushed notification over the socket."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from django.template.loader import render_to_string
from django.test import Client, RequestFactory
from django.urls import reverse

from audit.models import AuditEvent
from lab.critical import alert_raise, alerts_escalate_due
from lab.critical_selectors import alerts_of_order
from lab.models import AlertStatus, CriticalAlert
from tests.lab.critical_support import clinic_colleague, critical_result, english, with_banner

pytestmark = pytest.mark.django_db


def logged_in(client: Client, user: Any, language: str = "en") -> Client:
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
    client.force_login(user)
    return client


@pytest.fixture
def alert(actors: Any, residents: Any) -> CriticalAlert:
    english(actors.village, actors.labtech)
    result = critical_result(
        patient=residents["张三"], doctor=actors.village, labtech=actors.labtech
    )
    raised = alert_raise(result=result, actor=actors.labtech)
    assert raised is not None
    return raised


@pytest.fixture
def banner(settings: Any) -> None:
    with_banner(settings)


def page(response: Any) -> str:
    return response.content.decode()


# --- The list ----------------------------------------------------------------------------------


def test_the_clinic_sees_its_open_alert_with_a_big_acknowledge_form(client, actors, alert) -> None:
    response = logged_in(client, actors.village).get(reverse("lab:critical_list"))
    assert response.status_code == 200
    html = page(response)
    assert "Potassium" in html
    assert "6.8 mmol/L" in html
    assert "张三" in html
    assert f'action="{reverse("lab:critical_ack", args=[alert.pk])}"' in html
    assert 'class="crit-clock' in html
    assert "data-deadline=" in html
    assert AuditEvent.objects.filter(action="lab.critical.list", actor=actors.village).exists()


def test_the_lab_sees_level_clock_and_who_was_told(client, actors, alert) -> None:
    alerts_escalate_due(now=alert.raised_at + dt.timedelta(minutes=10))
    html = page(logged_in(client, actors.labtech).get(reverse("lab:critical_list")))
    assert "The clinic&#x27;s other doctors" in html
    assert 'class="crit-steps"' in html
    assert "赵村医" in html  # told
    assert "crit-bar-fill" in html
    assert "crit-ack-button" not in html  # the lab does not acknowledge for the clinic


def test_another_clinic_does_not_see_the_alert(client, actors, alert) -> None:
    html = page(logged_in(client, actors.village2).get(reverse("lab:critical_list")))
    assert "6.8 mmol/L" not in html


def test_the_auditor_is_refused_the_list(client, actors) -> None:
    response = logged_in(client, actors.auditor).get(reverse("lab:critical_list"))
    assert response.status_code == 403
    assert AuditEvent.objects.filter(action="lab.critical.list", outcome="denied").exists()


def test_the_list_needs_a_login(client) -> None:
    response = client.get(reverse("lab:critical_list"))
    assert response.status_code == 302
    assert "login" in response["Location"]


def test_the_list_renders_in_chinese(client, actors, alert) -> None:
    response = logged_in(client, actors.village, "zh-hans").get(reverse("lab:critical_list"))
    html = page(response)
    assert response.status_code == 200
    assert 'lang="zh-hans"' in html
    assert "钾" in html
    assert "张三" in html


# --- One alert ---------------------------------------------------------------------------------


def test_the_alert_page_draws_the_value_ladder_and_step_log(client, actors, alert) -> None:
    response = logged_in(client, actors.village).get(reverse("lab:critical", args=[alert.pk]))
    assert response.status_code == 200
    html = page(response)
    assert "6.8 mmol/L" in html
    assert alert.order.number in html
    assert "crit-ladder" in html
    assert "crit-log-notified" in html
    assert "Told 赵村医" in html
    assert "Log a telephone call" not in html  # for the lab only
    assert AuditEvent.objects.filter(action="lab.critical.view", outcome="allowed").exists()


def test_the_lab_gets_the_call_form_and_no_acknowledge_form(client, actors, alert) -> None:
    html = page(logged_in(client, actors.labtech).get(reverse("lab:critical", args=[alert.pk])))
    assert reverse("lab:critical_call", args=[alert.pk]) in html
    assert reverse("lab:critical_ack", args=[alert.pk]) not in html


def test_the_alert_page_renders_in_chinese(client, actors, alert) -> None:
    response = logged_in(client, actors.labtech, "zh-hans").get(
        reverse("lab:critical", args=[alert.pk])
    )
    assert response.status_code == 200
    assert "钾" in page(response)


def test_an_outsider_is_denied_the_alert_page_and_it_is_audited(client, actors, alert) -> None:
    response = logged_in(client, actors.outsider).get(reverse("lab:critical", args=[alert.pk]))
    assert response.status_code == 403
    assert AuditEvent.objects.filter(
        action="lab.critical.view", outcome="denied", actor=actors.outsider
    ).exists()


def test_an_unknown_alert_page_is_404(client, actors) -> None:
    response = logged_in(client, actors.village).get(reverse("lab:critical", args=[999_999]))
    assert response.status_code == 404


# --- Acknowledge -------------------------------------------------------------------------------


def test_acknowledging_from_the_page_redirects_back(client, actors, alert) -> None:
    back = reverse("lab:critical_list")
    response = logged_in(client, actors.village).post(
        reverse("lab:critical_ack", args=[alert.pk]), {"note": "已电话通知患者", "next": back}
    )
    assert response.status_code == 302
    assert response["Location"] == back
    alert.refresh_from_db()
    assert (alert.status, alert.ack_note) == (AlertStatus.ACKNOWLEDGED, "已电话通知患者")


def test_a_foreign_next_address_is_ignored(client, actors, alert) -> None:
    response = logged_in(client, actors.village).post(
        reverse("lab:critical_ack", args=[alert.pk]), {"next": "https://evil.example/"}
    )
    assert response["Location"] == reverse("lab:critical", args=[alert.pk])


def test_a_second_acknowledgement_shows_the_page_again_with_who_did_it(
    client, actors, alert
) -> None:
    colleague = clinic_colleague(actors.village)
    logged_in(client, actors.village).post(reverse("lab:critical_ack", args=[alert.pk]))
    response = logged_in(Client(), colleague).post(reverse("lab:critical_ack", args=[alert.pk]))
    assert response.status_code == 400
    assert "Already acknowledged by 赵村医" in page(response)


def test_acknowledging_as_json_answers_for_the_toast(client, actors, alert) -> None:
    response = logged_in(client, actors.village).post(
        reverse("lab:critical_ack", args=[alert.pk]),
        {"note": "sent to the county hospital"},
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 200
    assert response.json()["ok"] is True
    assert response.json()["status"] == "acknowledged"
    again = client.post(
        reverse("lab:critical_ack", args=[alert.pk]), HTTP_ACCEPT="application/json"
    )
    assert again.status_code == 409
    assert again.json()["message"].startswith("Already acknowledged by 赵村医 at ")


def test_json_acknowledgement_by_the_lab_is_denied_with_a_message(client, actors, alert) -> None:
    response = logged_in(client, actors.labtech).post(
        reverse("lab:critical_ack", args=[alert.pk]), HTTP_ACCEPT="application/json"
    )
    assert response.status_code == 403
    assert "telephone call" in response.json()["message"]


def test_json_acknowledgement_of_a_note_too_long_is_a_400(client, actors, alert) -> None:
    response = logged_in(client, actors.village).post(
        reverse("lab:critical_ack", args=[alert.pk]),
        {"note": "x" * 301},
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 400
    assert response.json()["ok"] is False
    assert AuditEvent.objects.filter(action="lab.critical.acknowledge", outcome="failed").exists()


def test_acknowledging_needs_a_post_with_the_csrf_token(actors, alert) -> None:
    strict = logged_in(Client(enforce_csrf_checks=True), actors.village)
    assert strict.get(reverse("lab:critical_ack", args=[alert.pk])).status_code == 405
    response = strict.post(
        reverse("lab:critical_ack", args=[alert.pk]), HTTP_ACCEPT="application/json"
    )
    assert response.status_code == 403
    alert.refresh_from_db()
    assert alert.status == AlertStatus.OPEN


# --- The lab's call log ------------------------------------------------------------------------


def test_the_lab_logs_a_call_with_read_back(client, actors, alert) -> None:
    response = logged_in(client, actors.labtech).post(
        reverse("lab:critical_call", args=[alert.pk]),
        {"reached": "赵村医", "acknowledged": "on", "note": "read back"},
    )
    assert response.status_code == 302
    alert.refresh_from_db()
    assert alert.status == AlertStatus.ACKNOWLEDGED
    assert alert.acknowledged_by is None
    html = page(client.get(reverse("lab:critical", args=[alert.pk])))
    assert "By telephone: 赵村医 — read back" in html
    assert "crit-channel-phone" in html


def test_a_call_without_whom_was_reached_shows_the_form_again(client, actors, alert) -> None:
    response = logged_in(client, actors.labtech).post(
        reverse("lab:critical_call", args=[alert.pk]), {"reached": ""}
    )
    assert response.status_code == 400
    assert 'class="field field-invalid"' in page(response)


def test_the_clinic_cannot_post_to_the_call_log(client, actors, alert) -> None:
    response = logged_in(client, actors.village).post(
        reverse("lab:critical_call", args=[alert.pk]), {"reached": "me", "acknowledged": "on"}
    )
    assert response.status_code == 403


# --- The banner on every page ------------------------------------------------------------------


def test_the_banner_shows_on_every_page_while_an_alert_waits(client, actors, alert, banner):
    html = page(logged_in(client, actors.village).get("/"))
    assert 'class="crit-banner"' in html
    assert reverse("lab:critical", args=[alert.pk]) in html
    assert "waiting for your clinic" in html


def test_the_banner_renders_in_chinese(client, actors, alert, banner) -> None:
    html = page(logged_in(client, actors.village, "zh-hans").get("/"))
    assert 'class="crit-banner"' in html
    assert 'lang="zh-hans"' in html


def test_the_banner_goes_once_acknowledged(client, actors, alert, banner) -> None:
    client = logged_in(client, actors.village)
    client.post(reverse("lab:critical_ack", args=[alert.pk]))
    assert 'class="crit-banner"' not in page(client.get("/"))


def test_no_banner_for_another_clinic_or_the_lab_before_it_must_call(
    client, actors, alert, banner
) -> None:
    assert 'class="crit-banner"' not in page(logged_in(client, actors.village2).get("/"))
    assert 'class="crit-banner"' not in page(logged_in(Client(), actors.labtech).get("/"))


def test_the_lab_gets_the_banner_when_it_must_call(client, actors, alert, banner) -> None:
    alerts_escalate_due(now=alert.raised_at + dt.timedelta(minutes=10))
    alerts_escalate_due(now=alert.raised_at + dt.timedelta(minutes=20))
    html = page(logged_in(client, actors.labtech).get("/"))
    assert 'class="crit-banner"' in html
    assert "call the clinic" in html


def test_the_banner_costs_one_query(actors, alert, django_assert_num_queries) -> None:
    from lab.critical_selectors import critical_banner_for

    village, labtech = actors.village, actors.labtech
    with django_assert_num_queries(1):
        assert critical_banner_for(labtech).total == 0
    with django_assert_num_queries(1):
        assert critical_banner_for(village).first_id == alert.pk


def test_the_toast_labels_are_on_the_page(client, actors) -> None:
    html = page(logged_in(client, actors.village).get("/"))
    assert 'data-label-acknowledge="Acknowledge"' in html
    assert 'data-label-acknowledged="Acknowledged"' in html


# --- The order page's partial ------------------------------------------------------------------


def _order_partial(actors: Any, alert: CriticalAlert, user: Any, **flags: bool) -> str:
    request = RequestFactory().get(f"/lab/orders/{alert.order_id}/")
    request.user = user
    context = {"order": alert.order, "alerts": alerts_of_order(alert.order_id), **flags}
    return render_to_string("lab/_order_alerts.html", context, request=request)


def test_the_order_partial_offers_the_clinic_an_acknowledge_form(actors, alert) -> None:
    html = _order_partial(actors, alert, actors.village, is_clinic=True, is_lab=False)
    assert reverse("lab:critical_ack", args=[alert.pk]) in html
    assert "6.8 mmol/L" in html
    assert 'id="critical"' in html


def test_the_order_partial_sends_the_lab_to_the_call_log(actors, alert) -> None:
    html = _order_partial(actors, alert, actors.labtech, is_clinic=False, is_lab=True)
    assert reverse("lab:critical_ack", args=[alert.pk]) not in html
    assert reverse("lab:critical", args=[alert.pk]) in html


def test_the_order_partial_is_empty_without_alerts(actors) -> None:
    html = render_to_string("lab/_order_alerts.html", {"alerts": [], "is_clinic": True})
    assert html.strip() == ""


# --- The pushed notification over the real socket ----------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_the_pushed_critical_notification_carries_the_ack_url(actors, residents) -> None:
    from tests.realtime.sockets import login, notification_socket

    village = await database_sync_to_async(lambda: actors.village)()
    socket = notification_socket(await login(village))
    connected, _ = await socket.connect()
    assert connected
    hello = await socket.receive_json_from()
    for _ in range(hello["backlog"]):
        await socket.receive_json_from()

    @database_sync_to_async
    def raise_alert() -> CriticalAlert:
        result = critical_result(
            patient=residents["张三"], doctor=actors.village, labtech=actors.labtech
        )
        raised = alert_raise(result=result, actor=actors.labtech)
        assert raised is not None
        return raised

    alert = await raise_alert()
    message = await socket.receive_json_from(timeout=5)
    assert message["type"] == "notification"
    notification = message["notification"]
    assert (notification["kind"], notification["severity"]) == ("lab.critical", "critical")
    assert notification["payload"]["ack_url"] == f"/lab/critical/{alert.pk}/ack/"
    assert notification["payload"]["alert"] == alert.pk
    assert json.dumps(notification)  # what the browser parses
    await socket.disconnect()
