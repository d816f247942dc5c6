"""The centre's queue and the clinic's orders: who sees which orders, in which order."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.models import AuditEvent, Outcome
from lab.access import order_get_for_user
from lab.discrepancies import discrepancy_counts
from lab.models import ItemStatus, OrderStatus, Priority, Specimen
from lab.queue_selectors import discrepancy_total, queue_for_user
from lab.selectors import order_steps, orders_for_clinic
from records.selectors import AccessDenied
from tests.lab.views_support import hexi_lab_tech, make_alert, make_order

pytestmark = pytest.mark.django_db


@pytest.fixture
def login_as(client: Client, actors: Any) -> Callable[..., Client]:
    def _login(username: str, *, language: str = "en") -> Client:
        client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
        client.force_login(getattr(actors, username))
        return client

    return _login


@pytest.fixture
def order_for(actors: Any, residents: Any) -> Callable[..., Any]:
    """An order of the village clinic for 张三 (or of ``doctor``'s clinic for ``patient``)."""

    def _make(status: str, *, doctor: str = "village", patient: str = "张三", **kw: Any) -> Any:
        return make_order(
            patient=residents[patient],
            doctor=getattr(actors, doctor),
            labtech=actors.labtech,
            status=status,
            **kw,
        )

    return _make


def _ago(**kw: float) -> dt.datetime:
    return timezone.now() - dt.timedelta(**kw)


# --- The queue ---------------------------------------------------------------------------------


def test_queue_puts_emergencies_first_then_the_longest_waiting(actors, order_for):
    recent = order_for(OrderStatus.RECEIVED, received_at=_ago(hours=1))
    oldest = order_for(OrderStatus.RECEIVED, received_at=_ago(hours=5))
    stat = order_for(OrderStatus.RECEIVED, priority=Priority.EMERGENCY, received_at=_ago(minutes=5))
    queue = queue_for_user(actor=actors.labtech, tab="waiting")
    assert [r.order.pk for r in queue.rows] == [stat.pk, oldest.pk, recent.pk]


def test_queue_page_lists_the_rows_in_that_order(login_as, order_for):
    recent = order_for(OrderStatus.RECEIVED, received_at=_ago(hours=1))
    stat = order_for(OrderStatus.RECEIVED, priority=Priority.URGENT, received_at=_ago(minutes=5))
    html = login_as("labtech").get("/lab/queue/?tab=waiting").content.decode()
    assert html.index(stat.number) < html.index(recent.number)
    assert "priority-urgent" in html
    assert "张三" in html
    assert "东山村卫生室" in html


def test_tab_counts_split_the_orders_by_what_the_lab_does_next(actors, order_for):
    order_for(OrderStatus.ORDERED)
    order_for(OrderStatus.SHIPPED)
    order_for(OrderStatus.SHIPPED)
    order_for(OrderStatus.RECEIVED)
    order_for(OrderStatus.IN_PROGRESS, item_status=ItemStatus.PENDING, codes=("K", "NA"))
    order_for(OrderStatus.IN_PROGRESS, item_status=ItemStatus.TECH_VALIDATED)
    order_for(OrderStatus.REPORTED, reported_at=timezone.now())
    order_for(OrderStatus.REPORTED, reported_at=_ago(days=2), received_at=_ago(days=2, hours=1))
    order_for(OrderStatus.CANCELLED)
    queue = queue_for_user(actor=actors.labtech)
    assert queue.counts == {"receive": 2, "waiting": 2, "validate": 1, "today": 1, "open": 6}
    assert len(queue.rows) == 6
    assert [r.order.status for r in queue_for_user(actor=actors.labtech, tab="validate").rows] == [
        OrderStatus.IN_PROGRESS
    ]


def test_tab_counts_are_shown_on_the_page(login_as, order_for):
    order_for(OrderStatus.SHIPPED)
    html = login_as("labtech").get("/lab/queue/?tab=receive").content.decode()
    assert 'aria-current="page">To receive <span class="chip-count">1</span>' in html


def test_row_shows_specimens_received_of_all_and_the_clock(actors, order_for):
    order_for(
        OrderStatus.RECEIVED,
        specimens=2,
        received_specimens=1,
        received_at=_ago(minutes=181),
        codes=("K", "NA"),
    )
    (row,) = queue_for_user(actor=actors.labtech, tab="waiting").rows
    assert (row.specimens_received, row.specimens_total) == (1, 2)
    assert row.codes == ["K", "NA"]
    assert row.clock is not None
    # K and NA: 240 minutes for a routine order; 181 minutes is past 75 %.
    assert row.clock.target_minutes == 240
    assert row.clock.state == "near"
    assert row.clock.percent == 75


@pytest.mark.parametrize(
    ("minutes", "priority", "state"),
    [
        (30, Priority.ROUTINE, "ok"),
        (250, Priority.ROUTINE, "late"),
        (50, Priority.EMERGENCY, "near"),
        (61, Priority.EMERGENCY, "late"),
    ],
)
def test_clock_turns_amber_then_red(actors, order_for, minutes, priority, state):
    order_for(OrderStatus.RECEIVED, priority=priority, received_at=_ago(minutes=minutes + 0.5))
    (row,) = queue_for_user(actor=actors.labtech, tab="waiting").rows
    assert row.clock is not None
    assert row.clock.state == state


def test_clock_is_drawn_with_server_time_for_queue_js(login_as, order_for):
    order_for(OrderStatus.RECEIVED, received_at=_ago(hours=5))
    html = login_as("labtech").get("/lab/queue/").content.decode()
    assert "data-server-now=" in html
    assert "lab-clock lab-clock-late" in html
    assert 'data-target="240"' in html
    assert "lab/queue.js" in html


def test_not_yet_received_orders_have_no_clock(actors, order_for):
    order_for(OrderStatus.SHIPPED)
    (row,) = queue_for_user(actor=actors.labtech, tab="receive").rows
    assert row.clock is None


def test_open_critical_value_is_flagged(login_as, actors, order_for):
    order = order_for(OrderStatus.IN_PROGRESS)
    make_alert(order, actors.labtech, raised_at=_ago(minutes=3))
    (row,) = queue_for_user(actor=actors.labtech, tab="validate").rows
    assert row.critical
    assert "Critical value" in login_as("labtech").get("/lab/queue/").content.decode()


@pytest.mark.parametrize("username", ["village", "outsider", "auditor"])
def test_people_of_no_lab_centre_get_403_on_the_queue_audited(login_as, username):
    response = login_as(username).get("/lab/queue/")
    assert response.status_code == 403
    assert AuditEvent.objects.filter(
        action="lab.queue", outcome=Outcome.DENIED, actor_username=username
    ).exists()


def test_lab_staff_of_another_association_see_none_of_these_orders(client, order_for):
    order_for(OrderStatus.SHIPPED)
    order_for(OrderStatus.RECEIVED)
    tech = hexi_lab_tech()
    queue = queue_for_user(actor=tech)
    assert queue.rows == []
    assert set(queue.counts.values()) == {0}
    client.force_login(tech)
    assert client.get("/lab/queue/").status_code == 200


def test_queue_read_is_audited(actors, order_for):
    order_for(OrderStatus.SHIPPED)
    queue_for_user(actor=actors.labtech, tab="receive")
    event = AuditEvent.objects.filter(action="lab.queue", outcome=Outcome.ALLOWED).latest("id")
    assert event.resource_type == "lab_queue"
    assert event.detail["tab"] == "receive"
    assert event.detail["count"] == 1


def test_unknown_tab_is_a_400_showing_all_open(login_as, order_for):
    order = order_for(OrderStatus.SHIPPED)
    response = login_as("labtech").get("/lab/queue/?tab=everything")
    assert response.status_code == 400
    assert order.number in response.content.decode()


def test_queue_takes_the_same_queries_for_more_rows(actors, order_for):
    order_for(OrderStatus.RECEIVED)
    with CaptureQueriesContext(connection) as few:
        queue_for_user(actor=actors.labtech)
    for _ in range(4):
        order_for(OrderStatus.RECEIVED, codes=("K", "GLU"), specimens=2)
    with CaptureQueriesContext(connection) as many:
        queue_for_user(actor=actors.labtech)
    assert len(many) == len(few)


def test_discrepancies_show_as_a_warning_chip(login_as, order_for, monkeypatch):
    monkeypatch.setattr("lab.queue_selectors.discrepancy_total", lambda ids: 3)
    html = login_as("labtech").get("/lab/queue/").content.decode()
    assert "chip-warning" in html
    assert "3 shipment discrepancies" in html


def test_discrepancy_counts_are_read_from_their_total(order_for):
    order = order_for(OrderStatus.RECEIVED, specimens=2)
    Specimen.objects.filter(order=order).update(received_unshipped=True, received_at=_ago())
    assert discrepancy_counts(order.centre_id)["total"] == 2
    assert discrepancy_total([order.centre_id]) == 2


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_queue_page_renders_in_both_languages(client, actors, order_for, language):
    order_for(OrderStatus.RECEIVED)
    client.force_login(actors.labtech)
    response = client.get("/lab/queue/", HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 200
    assert f'<html lang="{language}">' in response.content.decode()


# --- The clinic's orders -----------------------------------------------------------------------


def test_clinic_sees_its_own_orders_only(actors, order_for):
    own = order_for(OrderStatus.SHIPPED)
    order_for(OrderStatus.SHIPPED, doctor="village2", patient="赵明")
    data = orders_for_clinic(actor=actors.village)
    assert [r.order.pk for r in data.rows] == [own.pk]


def test_clinic_list_page_shows_its_orders_and_not_others(login_as, order_for):
    own = order_for(OrderStatus.COLLECTED)
    other = order_for(OrderStatus.COLLECTED, doctor="village2", patient="赵明")
    html = login_as("village").get("/lab/orders/").content.decode()
    assert own.number in html
    assert other.number not in html
    assert "stepper" in html


def test_clinic_list_is_open_orders_by_default_with_chip_counts(actors, order_for):
    order_for(OrderStatus.ORDERED)
    order_for(OrderStatus.COLLECTED)
    order_for(OrderStatus.REPORTED, reported_at=_ago(hours=2))
    order_for(OrderStatus.REPORTED, reported_at=_ago(days=20), received_at=_ago(days=20, hours=1))
    order_for(OrderStatus.REJECTED)
    order_for(OrderStatus.CANCELLED)
    data = orders_for_clinic(actor=actors.village)
    assert {r.order.status for r in data.rows} == {OrderStatus.ORDERED, OrderStatus.COLLECTED}
    assert data.counts["open"] == 2
    assert data.counts["recent"] == 1
    assert data.counts["rejected"] == 1
    assert data.counts["all"] == 6
    assert len(orders_for_clinic(actor=actors.village, status="recent").rows) == 1


def test_new_results_are_highlighted_until_the_doctor_opens_them(login_as, actors, order_for):
    order = order_for(OrderStatus.REPORTED, reported_at=_ago(hours=1))
    (row,) = orders_for_clinic(actor=actors.village, status="recent").rows
    assert row.results_ready
    html = login_as("village").get("/lab/orders/?status=recent").content.decode()
    assert "Results ready" in html
    assert "1 new result" in html
    order_get_for_user(actor=actors.village, order_id=order.pk)
    (row,) = orders_for_clinic(actor=actors.village, status="recent").rows
    assert not row.results_ready


def test_clinic_filters_by_priority_and_resident_name(actors, order_for):
    stat = order_for(OrderStatus.ORDERED, priority=Priority.EMERGENCY)
    order_for(OrderStatus.ORDERED, patient="李秀英")
    by_priority = orders_for_clinic(actor=actors.village, priority=Priority.EMERGENCY)
    assert [r.order.pk for r in by_priority.rows] == [stat.pk]
    by_name = orders_for_clinic(actor=actors.village, name="秀英")
    assert [r.order.patient.name for r in by_name.rows] == ["李秀英"]


def test_clinic_filters_come_from_the_query_string(login_as, order_for):
    order_for(OrderStatus.ORDERED, priority=Priority.URGENT)
    calm = order_for(OrderStatus.ORDERED, patient="李秀英")
    html = login_as("village").get("/lab/orders/?priority=urgent").content.decode()
    assert calm.number not in html


def test_a_bad_clinic_filter_is_a_400_showing_the_open_orders(login_as, order_for):
    order = order_for(OrderStatus.ORDERED)
    response = login_as("village").get("/lab/orders/?status=lost&priority=asap")
    assert response.status_code == 400
    assert order.number in response.content.decode()


def test_progress_steps_follow_the_status(order_for):
    shipped = order_for(OrderStatus.SHIPPED)
    assert [s.state for s in order_steps(shipped)] == ["done", "done", "done", "current", "todo"]
    reported = order_for(OrderStatus.REPORTED)
    assert [s.state for s in order_steps(reported)] == ["done"] * 5
    rejected = order_for(OrderStatus.REJECTED)
    assert [s.state for s in order_steps(rejected)] == ["done", "done", "done", "stopped", "todo"]
    cancelled = order_for(OrderStatus.CANCELLED)
    assert [s.state for s in order_steps(cancelled)][1:3] == ["done", "stopped"]


def test_lab_staff_have_no_clinic_list(login_as, actors):
    assert login_as("labtech").get("/lab/orders/").status_code == 403
    with pytest.raises(AccessDenied):
        orders_for_clinic(actor=actors.auditor)


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_clinic_list_renders_in_both_languages(client, actors, order_for, language):
    order_for(OrderStatus.SHIPPED)
    order_for(OrderStatus.REPORTED, reported_at=_ago(hours=1))
    client.force_login(actors.village)
    response = client.get("/lab/orders/?status=all", HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 200
    assert f'<html lang="{language}">' in response.content.decode()
    assert "张三" in response.content.decode()
