"""Critical values: raised to the ordering doctor, acknowledged by the clinic, called by the lab."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import transaction
from django.urls import reverse
from django.utils import timezone, translation

from audit.models import AuditEvent
from lab.critical import (
    alert_acknowledge,
    alert_call_log,
    alert_raise,
    alerts_withdraw,
)
from lab.models import AlertLevel, AlertStatus, AlertStep, CriticalAlert, Flag
from realtime.models import Notification
from records.models import TimelineEvent
from records.selectors import AccessDenied, NotFound
from records.services import InvalidRecord
from tests.lab.critical_support import (
    clinic_colleague,
    critical_result,
    english,
    set_value,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def result(actors: Any, residents: Any) -> Any:
    english(actors.village, actors.labtech)
    return critical_result(patient=residents["张三"], doctor=actors.village, labtech=actors.labtech)


@pytest.fixture
def alert(result: Any, actors: Any) -> CriticalAlert:
    raised = alert_raise(result=result, actor=actors.labtech)
    assert raised is not None
    return raised


def steps(alert: CriticalAlert, kind: str | None = None) -> list[AlertStep]:
    qs = alert.steps.all()
    return list(qs.filter(kind=kind) if kind else qs)


def critical_notifications(user: Any, kind: str = "lab.critical") -> list[Notification]:
    return list(Notification.objects.filter(recipient=user, kind=kind).order_by("id"))


# --- Raise -------------------------------------------------------------------------------------


def test_raising_tells_the_ordering_doctor_at_once_with_the_ack_url(alert, actors) -> None:
    [notification] = critical_notifications(actors.village)
    assert notification.severity == "critical"
    assert notification.title == "Critical value: Potassium 6.8 mmol/L (critically high) for 张三"
    assert alert.order.number in notification.body
    assert notification.link == reverse("lab:critical", args=[alert.pk])
    assert notification.payload["alert"] == alert.pk
    assert notification.payload["ack_url"] == reverse("lab:critical_ack", args=[alert.pk])
    assert notification.patient_id == alert.patient_id


def test_raising_logs_who_was_told_by_which_channel(alert, actors) -> None:
    [notified] = steps(alert, "notified")
    assert (notified.channel, notified.recipient, notified.level) == ("socket", actors.village, 0)
    assert notified.notification_id == critical_notifications(actors.village)[0].pk
    assert [s.kind for s in steps(alert)] == ["raised", "notified"]


def test_raised_alert_keeps_the_value_and_its_deadline(alert, actors) -> None:
    assert (alert.value, alert.flag, alert.status) == ("6.8 mmol/L", "HH", AlertStatus.OPEN)
    assert alert.level == AlertLevel.ORDERING_DOCTOR
    assert alert.raised_by == actors.labtech
    assert alert.escalate_at == alert.raised_at + dt.timedelta(minutes=10)


def test_raising_adds_to_the_timeline_and_is_audited(alert) -> None:
    entry = TimelineEvent.objects.get(patient_id=alert.patient_id, kind="lab.critical")
    assert alert.order.number in entry.summary
    assert "6.8" in entry.summary
    event = AuditEvent.objects.get(action="lab.critical.raise")
    assert (event.resource_type, event.resource_id) == ("lab_critical", str(alert.pk))
    assert event.patient_id == alert.patient_id


def test_the_same_value_raises_no_second_alert(alert, result, actors) -> None:
    assert alert_raise(result=result, actor=actors.labtech) is None
    assert CriticalAlert.objects.filter(result=result).count() == 1
    assert len(critical_notifications(actors.village)) == 1


def test_an_acknowledged_value_saved_again_is_not_raised_again(alert, result, actors) -> None:
    alert_acknowledge(actor=actors.village, alert_id=alert.pk, note="已电话通知")
    assert alert_raise(result=result, actor=actors.labtech) is None


def test_a_new_critical_value_withdraws_the_open_alert_and_raises_a_new_one(
    alert, result, actors
) -> None:
    set_value(result, "7.4", Flag.CRITICAL_HIGH)
    second = alert_raise(result=result, actor=actors.labtech)
    assert second is not None
    assert second.value == "7.4 mmol/L"
    alert.refresh_from_db()
    assert alert.status == AlertStatus.WITHDRAWN
    assert [s.note for s in steps(alert, "withdrawn")] == ["6.8 mmol/L → 7.4 mmol/L"]
    assert len(critical_notifications(actors.village)) == 2
    assert critical_notifications(actors.village, "lab.critical_withdrawn")


def test_a_result_that_is_not_critical_raises_nothing(actors, residents) -> None:
    normal = critical_result(
        patient=residents["张三"],
        doctor=actors.village,
        labtech=actors.labtech,
        value="4.2",
        flag=Flag.NORMAL,
    )
    assert alert_raise(result=normal, actor=actors.labtech) is None
    assert not CriticalAlert.objects.exists()


def test_notifications_go_out_only_when_the_callers_transaction_commits(
    result, actors, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks() as callbacks, transaction.atomic():
        alert_raise(result=result, actor=actors.labtech)
    assert len(callbacks) == 1  # the push of the one notification, after the commit


def test_an_ordering_doctor_who_left_is_replaced_by_the_clinics_doctors(result, actors) -> None:
    colleague = clinic_colleague(actors.village)
    actors.village.__class__.objects.filter(pk=actors.village.pk).update(is_active=False)
    alert = alert_raise(result=result, actor=actors.labtech)
    assert alert is not None
    assert [s.recipient for s in steps(alert, "notified")] == [colleague]


# --- Acknowledge -------------------------------------------------------------------------------


def test_the_ordering_doctor_acknowledges_with_the_action_taken(alert, actors) -> None:
    note = "patient called back, sent to the county hospital"
    acknowledged = alert_acknowledge(actor=actors.village, alert_id=alert.pk, note=note)
    assert acknowledged.status == AlertStatus.ACKNOWLEDGED
    assert (acknowledged.acknowledged_by, acknowledged.ack_note) == (actors.village, note)
    assert acknowledged.escalate_at is None
    [step] = steps(alert, "acknowledged")
    assert (step.actor, step.note) == (actors.village, note)
    assert AuditEvent.objects.filter(action="lab.critical.acknowledge", outcome="allowed").exists()


def test_the_lab_is_told_when_the_clinic_acknowledges(alert, actors) -> None:
    alert_acknowledge(actor=actors.village, alert_id=alert.pk, note="已处理")
    [told] = critical_notifications(actors.labtech, "lab.critical_acknowledged")
    assert "赵村医" in told.body
    assert "已处理" in told.body
    assert not critical_notifications(actors.village, "lab.critical_acknowledged")


def test_another_doctor_of_the_same_clinic_can_acknowledge(alert, actors) -> None:
    colleague = clinic_colleague(actors.village)
    acknowledged = alert_acknowledge(actor=colleague, alert_id=alert.pk)
    assert acknowledged.acknowledged_by == colleague


def test_a_second_acknowledgement_is_refused_saying_who_and_when(alert, actors) -> None:
    colleague = clinic_colleague(actors.village)
    first = alert_acknowledge(actor=actors.village, alert_id=alert.pk)
    when = timezone.localtime(first.acknowledged_at).strftime("%H:%M")
    with translation.override("en"):
        with pytest.raises(InvalidRecord) as refused:
            alert_acknowledge(actor=colleague, alert_id=alert.pk)
        assert str(refused.value) == f"Already acknowledged by 赵村医 at {when}."
    assert AuditEvent.objects.filter(
        action="lab.critical.acknowledge", outcome="failed", actor=colleague
    ).exists()
    assert len(steps(alert, "acknowledged")) == 1


def test_lab_staff_cannot_acknowledge_for_the_clinic(alert, actors) -> None:
    with translation.override("en"), pytest.raises(AccessDenied) as denied:
        alert_acknowledge(actor=actors.labtech, alert_id=alert.pk)
    assert "Log your telephone call" in str(denied.value)
    event = AuditEvent.objects.get(action="lab.critical.acknowledge", actor=actors.labtech)
    assert (event.outcome, event.patient_id) == ("denied", alert.patient_id)
    alert.refresh_from_db()
    assert alert.status == AlertStatus.OPEN


def test_a_doctor_of_another_association_cannot_acknowledge(alert, actors) -> None:
    with pytest.raises(AccessDenied):
        alert_acknowledge(actor=actors.outsider, alert_id=alert.pk)
    assert AuditEvent.objects.filter(
        action="lab.critical.acknowledge", actor=actors.outsider, outcome="denied"
    ).exists()


def test_a_doctor_of_another_clinic_cannot_acknowledge(alert, actors) -> None:
    with pytest.raises(AccessDenied):
        alert_acknowledge(actor=actors.village2, alert_id=alert.pk)


def test_an_unknown_alert_is_not_found_and_audited(actors) -> None:
    with pytest.raises(NotFound):
        alert_acknowledge(actor=actors.village, alert_id=999_999)
    assert AuditEvent.objects.filter(
        action="lab.critical.acknowledge", outcome="failed", resource_id="999999"
    ).exists()


def test_a_note_too_long_is_refused_and_nothing_changes(alert, actors) -> None:
    with pytest.raises(InvalidRecord):
        alert_acknowledge(actor=actors.village, alert_id=alert.pk, note="x" * 301)
    alert.refresh_from_db()
    assert alert.status == AlertStatus.OPEN
    assert not steps(alert, "acknowledged")


# --- Telephone calls by the lab ----------------------------------------------------------------


def test_a_call_with_read_back_acknowledges_by_telephone(alert, actors) -> None:
    step = alert_call_log(
        actor=actors.labtech,
        alert_id=alert.pk,
        reached="赵村医, village clinic",
        acknowledged=True,
        note="read back 6.8, patient sent to the county hospital",
    )
    assert (step.kind, step.channel, step.actor) == ("called", "phone", actors.labtech)
    assert step.recipient_text == "赵村医, village clinic"
    alert.refresh_from_db()
    assert alert.status == AlertStatus.ACKNOWLEDGED
    assert alert.acknowledged_by is None
    assert alert.ack_note == (
        "By telephone: 赵村医, village clinic — read back 6.8, patient sent to the county hospital"
    )
    [acknowledged] = steps(alert, "acknowledged")
    assert (acknowledged.actor, acknowledged.channel) == (actors.labtech, "phone")
    assert AuditEvent.objects.filter(action="lab.critical.call", outcome="allowed").exists()


def test_a_call_that_reaches_nobody_keeps_the_alert_open(alert, actors) -> None:
    alert_call_log(
        actor=actors.labtech, alert_id=alert.pk, reached="nobody answered", acknowledged=False
    )
    alert.refresh_from_db()
    assert alert.status == AlertStatus.OPEN
    assert [s.kind for s in steps(alert)][-1] == "called"


def test_the_clinic_acknowledging_after_a_telephone_read_back_is_told_so(alert, actors) -> None:
    alert_call_log(actor=actors.labtech, alert_id=alert.pk, reached="赵村医", acknowledged=True)
    with translation.override("en"):
        with pytest.raises(InvalidRecord) as refused:
            alert_acknowledge(actor=actors.village, alert_id=alert.pk)
        assert "By telephone: 赵村医" in str(refused.value)


def test_a_call_must_say_whom_it_reached(alert, actors) -> None:
    with pytest.raises(InvalidRecord):
        alert_call_log(actor=actors.labtech, alert_id=alert.pk, reached="  ", acknowledged=True)
    assert AuditEvent.objects.filter(action="lab.critical.call", outcome="failed").exists()


def test_the_clinic_cannot_log_the_labs_calls(alert, actors) -> None:
    with pytest.raises(AccessDenied):
        alert_call_log(actor=actors.village, alert_id=alert.pk, reached="me", acknowledged=True)
    assert AuditEvent.objects.filter(
        action="lab.critical.call", outcome="denied", actor=actors.village
    ).exists()


# --- Withdraw ----------------------------------------------------------------------------------


def test_a_corrected_result_withdraws_the_alert_and_tells_who_was_told(
    alert, result, actors
) -> None:
    set_value(result, "4.6", Flag.NORMAL)
    assert alerts_withdraw(result=result, actor=actors.labtech, reason="sample mix-up") == 1
    alert.refresh_from_db()
    assert (alert.status, alert.escalate_at) == (AlertStatus.WITHDRAWN, None)
    [step] = steps(alert, "withdrawn")
    assert (step.actor, step.note) == (actors.labtech, "sample mix-up")
    [told] = critical_notifications(actors.village, "lab.critical_withdrawn")
    assert told.severity == "info"
    assert "sample mix-up" in told.body
    assert AuditEvent.objects.filter(action="lab.critical.withdraw").exists()


def test_a_withdrawn_alert_cannot_be_acknowledged(alert, result, actors) -> None:
    alerts_withdraw(result=result, actor=actors.labtech, reason="corrected")
    with translation.override("en"):
        with pytest.raises(InvalidRecord) as refused:
            alert_acknowledge(actor=actors.village, alert_id=alert.pk)
        assert "withdrawn" in str(refused.value)


def test_withdrawing_leaves_acknowledged_alerts_alone(alert, result, actors) -> None:
    alert_acknowledge(actor=actors.village, alert_id=alert.pk)
    assert alerts_withdraw(result=result, actor=actors.labtech, reason="corrected") == 0
