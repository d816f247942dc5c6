"""The escalation timer of critical values, with an injected clock.

(Named test_critical_escalation.py, not test_escalation.py: tests/consult/ has a module of
that name, and test modules here are imported by their base name.)
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest

from audit.models import AuditEvent
from lab.critical import alert_acknowledge, alert_call_log, alert_raise, alerts_escalate_due
from lab.escalation import run_periodic, start_periodic
from lab.models import AlertLevel, AlertStatus, CriticalAlert, LabPolicy
from realtime.models import Notification
from tests.lab.critical_support import clinic_colleague, critical_result, english, lab_centre

pytestmark = pytest.mark.django_db

MINUTE = dt.timedelta(minutes=1)


@pytest.fixture
def colleague(actors: Any) -> Any:
    return clinic_colleague(actors.village)


@pytest.fixture
def alert(actors: Any, residents: Any, colleague: Any) -> CriticalAlert:
    english(actors.village, actors.labtech)
    result = critical_result(
        patient=residents["张三"], doctor=actors.village, labtech=actors.labtech
    )
    raised = alert_raise(result=result, actor=actors.labtech)
    assert raised is not None
    return raised


def escalated(user: Any) -> list[Notification]:
    return list(
        Notification.objects.filter(recipient=user, kind="lab.critical_escalated").order_by("id")
    )


def fresh(alert: CriticalAlert) -> CriticalAlert:
    alert.refresh_from_db()
    return alert


def test_nothing_happens_before_the_acknowledgement_deadline(alert) -> None:
    assert alerts_escalate_due(now=alert.raised_at + 10 * MINUTE - dt.timedelta(seconds=1)) == 0
    assert fresh(alert).level == AlertLevel.ORDERING_DOCTOR
    assert not alert.steps.filter(kind="escalated").exists()


def test_after_the_ack_minutes_the_clinics_doctors_and_the_orderer_are_told(
    alert, actors, colleague
) -> None:
    now = alert.raised_at + 10 * MINUTE
    assert alerts_escalate_due(now=now) == 1
    alert = fresh(alert)
    assert alert.level == AlertLevel.CLINIC
    assert alert.escalate_at == now + 10 * MINUTE
    [to_colleague] = escalated(colleague)
    assert to_colleague.severity == "critical"
    assert to_colleague.payload["ack_url"].endswith(f"/lab/critical/{alert.pk}/ack/")
    assert to_colleague.title.startswith("Not acknowledged yet: critical value Potassium 6.8")
    assert len(escalated(actors.village)) == 1
    assert not escalated(actors.labtech)
    [step] = alert.steps.filter(kind="escalated")
    assert (step.level, step.channel, step.at) == (1, "system", now)
    told = {s.recipient for s in alert.steps.filter(kind="notified", level=1)}
    assert told == {colleague, actors.village}


def test_after_the_escalate_minutes_more_the_lab_staff_are_told_to_call(alert, actors) -> None:
    first = alert.raised_at + 10 * MINUTE
    alerts_escalate_due(now=first)
    assert alerts_escalate_due(now=first + 10 * MINUTE - dt.timedelta(seconds=1)) == 0
    assert alerts_escalate_due(now=first + 10 * MINUTE) == 1
    alert = fresh(alert)
    assert (alert.level, alert.escalate_at, alert.status) == (2, None, AlertStatus.OPEN)
    [to_lab] = escalated(actors.labtech)
    assert to_lab.severity == "critical"
    assert to_lab.title.startswith("Call the clinic now")
    assert "ack_url" not in to_lab.payload  # the lab logs a call instead
    assert alert.steps.filter(kind="notified", level=2, recipient=actors.labtech).exists()


def test_no_automatic_step_follows_the_lab_call(alert) -> None:
    start = alert.raised_at
    alerts_escalate_due(now=start + 10 * MINUTE)
    alerts_escalate_due(now=start + 20 * MINUTE)
    assert alerts_escalate_due(now=start + 24 * 60 * MINUTE) == 0
    assert fresh(alert).level == AlertLevel.CENTRE_CALLS


def test_running_twice_escalates_once(alert, actors, colleague) -> None:
    now = alert.raised_at + 10 * MINUTE
    assert alerts_escalate_due(now=now) == 1
    assert alerts_escalate_due(now=now) == 0
    assert len(escalated(colleague)) == 1
    assert alert.steps.filter(kind="escalated").count() == 1


def test_a_late_round_escalates_one_level_so_the_clinic_still_gets_its_minutes(alert) -> None:
    assert alerts_escalate_due(now=alert.raised_at + 60 * MINUTE) == 1
    assert fresh(alert).level == AlertLevel.CLINIC


def test_a_stale_worker_loses_the_race_to_escalate(alert) -> None:
    stale = CriticalAlert.objects.get(pk=alert.pk)
    now = alert.raised_at + 10 * MINUTE
    assert alerts_escalate_due(now=now) == 1
    from lab.escalation import _escalate

    assert _escalate(stale, now=now) is False  # level 0 is gone: the update matched no row
    assert alert.steps.filter(kind="escalated").count() == 1


def test_nothing_is_escalated_after_acknowledgement(alert, actors, colleague) -> None:
    alert_acknowledge(actor=actors.village, alert_id=alert.pk, note="已处理")
    assert alerts_escalate_due(now=alert.raised_at + 60 * MINUTE) == 0
    assert not escalated(colleague)


def test_nothing_more_after_a_telephone_read_back(alert, actors) -> None:
    alerts_escalate_due(now=alert.raised_at + 10 * MINUTE)
    alert_call_log(actor=actors.labtech, alert_id=alert.pk, reached="赵村医", acknowledged=True)
    assert alerts_escalate_due(now=alert.raised_at + 60 * MINUTE) == 0
    assert not escalated(actors.labtech)


def test_escalation_is_audited_without_an_actor(alert) -> None:
    alerts_escalate_due(now=alert.raised_at + 10 * MINUTE)
    event = AuditEvent.objects.get(action="lab.critical.escalate")
    assert (event.actor_id, event.outcome, event.patient_id) == (None, "allowed", alert.patient_id)
    assert event.detail["from"] == 0


def test_the_centres_policy_sets_the_minutes(actors, residents) -> None:
    LabPolicy.objects.filter(centre=lab_centre()).update(ack_minutes=3, escalate_minutes=5)
    result = critical_result(
        patient=residents["张三"], doctor=actors.village, labtech=actors.labtech
    )
    alert = alert_raise(result=result, actor=actors.labtech)
    assert alert is not None
    assert alert.escalate_at == alert.raised_at + 3 * MINUTE
    alerts_escalate_due(now=alert.raised_at + 3 * MINUTE)
    assert fresh(alert).escalate_at == alert.raised_at + 8 * MINUTE


def test_the_periodic_round_stops_when_told(alert, monkeypatch) -> None:
    rounds: list[int] = []
    stop = threading.Event()

    def one_round(**kwargs: Any) -> int:
        rounds.append(1)
        stop.set()
        return 0

    monkeypatch.setattr("lab.escalation.alerts_escalate_due", one_round)
    run_periodic(stop, interval=0.01)
    assert rounds == [1]


def test_start_periodic_runs_a_daemon_thread_until_stopped(monkeypatch) -> None:
    monkeypatch.setattr("lab.escalation.alerts_escalate_due", lambda **kwargs: 0)
    thread, stop = start_periodic(interval=0.01)
    assert thread.daemon
    assert thread.name == "lab-periodic"
    stop.set()
    thread.join(timeout=2)
    assert not thread.is_alive()
