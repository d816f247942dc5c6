"""The demo lab's history goes through the real services and leaves work at each step."""

from __future__ import annotations

import pytest

from lab.demo_orders import demo_seed_lab_orders
from lab.models import AlertStatus, CriticalAlert, LabOrder, OrderStatus
from realtime.models import Notification

pytestmark = pytest.mark.django_db


def test_the_demo_lab_has_a_fortnight_of_reports_and_open_work() -> None:
    demo_seed_lab_orders()
    statuses = list(LabOrder.objects.values_list("status", flat=True))
    assert statuses.count(OrderStatus.REPORTED) == 10
    assert {OrderStatus.COLLECTED, OrderStatus.SHIPPED, OrderStatus.RECEIVED} <= set(statuses)
    alert = CriticalAlert.objects.get()
    assert alert.status == AlertStatus.ACKNOWLEDGED
    assert alert.acknowledged_at is not None
    assert (alert.acknowledged_at - alert.raised_at).total_seconds() == 6 * 60
    reported = LabOrder.objects.filter(status=OrderStatus.REPORTED)
    assert all(o.received_at and o.reported_at and o.reported_at > o.received_at for o in reported)
    assert not Notification.objects.filter(read_at__isnull=True, payload__has_key="order").exists()

    demo_seed_lab_orders()  # once only
    assert LabOrder.objects.count() == len(statuses)
