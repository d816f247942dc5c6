"""The dashboard's figures on hand-made orders with known times."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

from audit.models import AuditEvent, Outcome
from lab.models import AlertLevel, AlertStatus, OrderStatus, Priority
from lab.stats import lab_stats, percentile, share
from records.selectors import AccessDenied, NotFound
from tests.lab.views_support import institution, lab_centre, make_alert, make_order

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)


def _before(**kw: float) -> dt.datetime:
    return NOW - dt.timedelta(**kw)


def _week(actor: Any) -> Any:
    return lab_stats(actor=actor, centre_id=lab_centre().pk, since=_before(days=7), until=NOW)


def _row(stats: Any, code: str) -> Any:
    pk = institution(code).pk
    (row,) = [r for r in stats.institutions if r.institution_id == pk]
    return row


@pytest.fixture
def reported(actors, residents):
    """Dongshan: three routine reports, 30, 60 and 300 minutes after receipt (target 240),
    each received 2 h after ordering; one of its tubes rejected. Xiba: one emergency report
    45 minutes after receipt (target 60)."""

    def report(doctor: str, patient: str, minutes: int, **kw: Any) -> Any:
        received = _before(days=2, minutes=minutes)
        return make_order(
            patient=residents[patient],
            doctor=getattr(actors, doctor),
            labtech=actors.labtech,
            status=OrderStatus.REPORTED,
            created_at=received - dt.timedelta(hours=2),
            received_at=received,
            reported_at=received + dt.timedelta(minutes=minutes),
            **kw,
        )

    orders = [
        report("village", "张三", 30, specimens=2, rejected_specimens=1),
        report("village", "张三", 60),
        report("village", "李秀英", 300),
        report("township", "刘桂兰", 45, priority=Priority.EMERGENCY),
    ]
    return orders


# --- The numbers -------------------------------------------------------------------------------


def test_percentiles_interpolate_between_closest_ranks():
    assert percentile([], 50) is None
    assert percentile([7.0], 90) == 7.0
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0], 90) == pytest.approx(3.7)
    assert share(1, 3) == pytest.approx(33.333, rel=1e-3)
    assert share(1, 0) is None


def test_turnaround_median_p90_and_within_target(actors, reported):
    row = _row(_week(actors.labtech), "dongshan")
    assert row.orders == 3
    assert row.reported == 3
    assert (row.tat_receipt_median, row.tat_receipt_p90) == (60.0, 252.0)
    # Ordered two hours before receipt: 150, 180, 420 minutes.
    assert (row.tat_order_median, row.tat_order_p90) == (180.0, 372.0)
    assert row.target_median == 240.0
    assert row.within_target_pct == 66.7


def test_emergency_target_is_capped_at_an_hour(actors, reported):
    row = _row(_week(actors.labtech), "xiba")
    assert row.tat_receipt_median == 45.0
    assert row.target_median == 60.0
    assert row.within_target_pct == 100.0


def test_total_row_takes_percentiles_over_every_report(actors, reported):
    total = _week(actors.labtech).total
    assert total.reported == 4
    # 30, 45, 60, 300
    assert total.tat_receipt_median == 52.5
    assert total.within_target_pct == 75.0


def test_rejected_specimen_rate_counts_tubes_that_reached_the_lab(actors, reported):
    row = _row(_week(actors.labtech), "dongshan")
    assert (row.specimens_rejected, row.specimens_arrived) == (1, 4)
    assert row.rejected_pct == 25.0


def test_turnaround_counts_from_the_first_signature_not_an_amendment(actors, residents):
    received = _before(days=1)
    make_order(
        patient=residents["张三"],
        doctor=actors.village,
        labtech=actors.labtech,
        status=OrderStatus.REPORTED,
        received_at=received,
        first_signed_at=received + dt.timedelta(minutes=90),
        reported_at=received + dt.timedelta(hours=10),
    )
    assert _row(_week(actors.labtech), "dongshan").tat_receipt_median == 90.0


def test_orders_outside_the_period_and_cancelled_ones_are_left_out(actors, residents, reported):
    old = _before(days=20)
    make_order(
        patient=residents["张三"],
        doctor=actors.village,
        labtech=actors.labtech,
        status=OrderStatus.REPORTED,
        created_at=old,
        received_at=old + dt.timedelta(hours=1),
        reported_at=old + dt.timedelta(hours=2),
    )
    make_order(
        patient=residents["张三"],
        doctor=actors.village,
        labtech=actors.labtech,
        status=OrderStatus.CANCELLED,
        created_at=_before(days=1),
    )
    assert _row(_week(actors.labtech), "dongshan").orders == 3
    month = lab_stats(
        actor=actors.labtech, centre_id=lab_centre().pk, since=_before(days=30), until=NOW
    )
    assert _row(month, "dongshan").orders == 4


def test_daily_series_adds_up_to_the_totals(actors, reported):
    stats = _week(actors.labtech)
    assert len(stats.daily) in (7, 8)
    assert sum(p.orders for p in stats.daily) == stats.total.orders == 4
    assert sum(p.reports for p in stats.daily) == stats.total.reported == 4


def test_critical_value_timeliness(actors, reported):
    order = reported[0]
    tech = actors.labtech
    t0 = _before(days=1)
    make_alert(order, tech, raised_at=t0, acknowledged_at=t0 + dt.timedelta(minutes=5))
    make_alert(
        order,
        tech,
        raised_at=t0,
        acknowledged_at=t0 + dt.timedelta(minutes=25),
        level=AlertLevel.CLINIC,
    )
    make_alert(order, tech, raised_at=_before(hours=2), level=AlertLevel.CENTRE_CALLS)
    make_alert(order, tech, raised_at=_before(minutes=2))
    make_alert(order, tech, raised_at=t0, status=AlertStatus.WITHDRAWN)
    row = _row(_week(tech), "dongshan")
    assert row.critical == 4
    assert row.critical_ack_median == 15.0
    # Due: the two acknowledged and the one open past the 10 minutes; one was in time.
    assert (row.critical_ack_in_time, row.critical_ack_due) == (1, 3)
    assert row.critical_ack_in_time_pct == 33.3
    assert row.critical_escalated == 2


def test_ack_minutes_come_from_the_centres_policy(actors, reported):
    from lab.models import LabPolicy

    LabPolicy.objects.update_or_create(centre=lab_centre(), defaults={"ack_minutes": 30})
    t0 = _before(days=1)
    make_alert(
        reported[0], actors.labtech, raised_at=t0, acknowledged_at=t0 + dt.timedelta(minutes=25)
    )
    stats = _week(actors.labtech)
    assert stats.ack_minutes == 30
    assert _row(stats, "dongshan").critical_ack_in_time_pct == 100.0


# --- Who sees what -----------------------------------------------------------------------------


@pytest.mark.parametrize("username", ["labtech", "admin", "auditor"])
def test_centre_staff_admin_and_auditor_see_every_institution(actors, reported, username):
    stats = _week(getattr(actors, username))
    assert not stats.own_only
    assert {r.institution_id for r in stats.institutions} == {
        institution("dongshan").pk,
        institution("xiba").pk,
    }


def test_a_clinician_sees_their_own_institution_only(actors, reported):
    stats = _week(actors.village)
    assert stats.own_only
    assert [r.institution_id for r in stats.institutions] == [institution("dongshan").pk]
    assert stats.total.orders == 3


def test_outsider_is_denied_and_it_is_audited(actors, reported):
    with pytest.raises(AccessDenied):
        _week(actors.outsider)
    assert AuditEvent.objects.filter(
        actor_username="outsider", resource_type="lab_stats", outcome=Outcome.DENIED
    ).exists()


def test_unknown_centre_is_not_found(actors):
    with pytest.raises(NotFound):
        lab_stats(actor=actors.labtech, centre_id=999999, since=_before(days=7), until=NOW)


def test_reading_statistics_is_audited(actors, reported):
    _week(actors.auditor)
    event = AuditEvent.objects.filter(actor_username="auditor", action="lab.stats").latest("id")
    assert event.outcome == Outcome.ALLOWED
    assert event.resource_type == "lab_stats"
    assert event.resource_id == str(lab_centre().pk)
