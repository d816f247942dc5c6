"""Escalation of overdue consults, driven by an injected clock."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.utils import timezone, translation

from accounts.models import User
from association.models import Association, Department, Membership, Role
from audit.models import AuditEvent, Outcome
from consult.escalation import consults_escalate_overdue, run_periodic
from consult.models import Consult, ConsultEvent, Mode, Priority, Status, TargetKind
from consult.services import consult_request, consult_respond, consult_review
from consult.sla import opinion_clock, respond_clock
from realtime.models import Notification, Severity

pytestmark = pytest.mark.django_db

HOUR = dt.timedelta(hours=1)


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


@pytest.fixture
def direct():
    Association.objects.filter(code="qingshan").update(consult_prereview=False)


@pytest.fixture
def cardio2():
    user = User.objects.create_user(username="cardio2", display_name="钱主任")
    dept = Department.objects.get(institution__code="county", name="心内科")
    Membership.objects.create(
        user=user, institution=dept.institution, department=dept, role=Role.SPECIALIST
    )
    return user


@pytest.fixture
def urgent(actors, residents):
    """An urgent consult to the specialist: answer due in 4 h, opinion in 24 h."""

    def _make():
        return consult_request(
            actor=actors.township,
            patient_id=residents["刘桂兰"].pk,
            question="Syncope this morning.",
            priority=Priority.URGENT,
            mode=Mode.VIDEO,
            target_kind=TargetKind.EXPERT,
            expert_ids=[actors.specialist.pk],
        )

    return _make


def escalations(consult):
    return list(
        ConsultEvent.objects.filter(consult=consult, kind="escalated").values_list(
            "detail__clock", "detail__level"
        )
    )


def escalated_to(user):
    return Notification.objects.filter(recipient=user, kind="consult.escalated")


def test_nothing_happens_before_the_answer_is_due(urgent):
    consult = urgent()
    assert consults_escalate_overdue(now=consult.created_at + 3 * HOUR) == 0
    consult.refresh_from_db()
    assert consult.escalation_level == 0


def test_an_unanswered_consult_warns_the_coordinators_and_the_requester(actors, direct, urgent):
    consult = urgent()
    now = consult.respond_due_at + dt.timedelta(minutes=1)

    assert consults_escalate_overdue(now=now) == 1

    consult.refresh_from_db()
    assert consult.escalation_level == 1
    assert consult.escalated_at == now
    assert escalations(consult) == [("respond", 1)]
    assert escalated_to(actors.coordinator).get().severity == Severity.URGENT
    assert escalated_to(actors.township).get().severity == Severity.URGENT
    assert not escalated_to(actors.specialist).exists()
    event = AuditEvent.objects.get(action="consult.escalate")
    assert event.actor_id is None
    assert event.outcome == Outcome.ALLOWED
    assert event.patient_id == consult.patient_id


def test_escalation_is_idempotent_per_level(direct, urgent):
    consult = urgent()
    now = consult.respond_due_at + dt.timedelta(minutes=1)
    assert consults_escalate_overdue(now=now) == 1
    assert consults_escalate_overdue(now=now + dt.timedelta(minutes=30)) == 0
    assert escalations(consult) == [("respond", 1)]


def test_overdue_by_as_long_again_reaches_the_department(actors, direct, cardio2, urgent):
    consult = urgent()
    consults_escalate_overdue(now=consult.respond_due_at + HOUR)

    assert consults_escalate_overdue(now=consult.respond_due_at + 4 * HOUR) == 1

    assert escalations(consult) == [("respond", 1), ("respond", 2)]
    critical = escalated_to(actors.coordinator).filter(severity=Severity.CRITICAL)
    assert critical.count() == 1
    assert escalated_to(cardio2).get().severity == Severity.CRITICAL  # a colleague
    assert escalated_to(actors.specialist).exists()
    assert escalated_to(actors.township).count() == 1  # the requester only at level 1
    assert consults_escalate_overdue(now=consult.respond_due_at + 40 * HOUR) == 0


def test_a_long_silence_goes_through_both_levels_at_once(direct, urgent):
    consult = urgent()
    assert consults_escalate_overdue(now=consult.respond_due_at + 10 * HOUR) == 2
    assert escalations(consult) == [("respond", 1), ("respond", 2)]


def test_a_pre_review_left_waiting_is_escalated_to_the_coordinators(actors, urgent):
    consult = urgent()
    assert consult.status == Status.PENDING_REVIEW
    assert consults_escalate_overdue(now=consult.respond_due_at + HOUR) == 1
    assert escalated_to(actors.coordinator).exists()


def test_routing_restarts_the_clock(actors, urgent):
    consult = urgent()
    consults_escalate_overdue(now=consult.respond_due_at + HOUR)
    consult = consult_review(actor=actors.coordinator, consult_id=consult.pk, decision="route")
    assert consult.escalation_level == 0
    assert consults_escalate_overdue(now=timezone.now() + 3 * HOUR) == 0


def test_a_returned_consult_is_not_escalated(actors, urgent):
    consult = urgent()
    consult_review(
        actor=actors.coordinator, consult_id=consult.pk, decision="return", note="Add the ECG."
    )
    assert consults_escalate_overdue(now=consult.respond_due_at + 10 * HOUR) == 0


def test_after_acceptance_an_overdue_opinion_escalates(actors, direct, urgent):
    consult = urgent()
    consults_escalate_overdue(now=consult.respond_due_at + HOUR)
    consult = consult_respond(actor=actors.specialist, consult_id=consult.pk, accept=True)
    assert consult.escalation_level == 0  # the answer clock stopped

    assert consults_escalate_overdue(now=consult.complete_due_at - HOUR) == 0
    assert consults_escalate_overdue(now=consult.complete_due_at + HOUR) == 1

    assert escalations(consult)[-1] == ("opinion", 1)
    note = escalated_to(actors.specialist).get()
    assert "会诊意见" in note.title  # in the recipient's language (zh-Hans by default)
    assert escalated_to(actors.township).filter(title__contains="会诊意见").exists()


def test_closed_consults_are_left_alone(actors, direct, urgent):
    consult = urgent()
    Consult.objects.filter(pk=consult.pk).update(status=Status.CANCELLED)
    assert consults_escalate_overdue(now=consult.complete_due_at + 100 * HOUR) == 0


def test_the_clocks_show_time_left_and_overdue(direct, urgent):
    consult = urgent()
    clock = respond_clock(consult, now=consult.created_at + HOUR)
    assert clock.running
    assert not clock.overdue
    assert clock.display == "03:00"
    late = respond_clock(consult, now=consult.respond_due_at + dt.timedelta(minutes=40))
    assert late.overdue
    assert late.display == "-00:40"
    assert opinion_clock(consult, now=consult.created_at).display == "24:00"


class _OneRound(threading.Event):
    """Stops the loop after its first round (the wait that follows the round sets it)."""

    def wait(self, timeout: float | None = None) -> bool:
        self.set()
        return True


@pytest.mark.django_db(transaction=True)
def test_the_periodic_loop_runs_a_round_and_stops(actors, residents, direct):
    consult = consult_request(
        actor=actors.township,
        patient_id=residents["刘桂兰"].pk,
        question="Syncope.",
        priority=Priority.EMERGENCY,
        mode=Mode.VIDEO,
        target_kind=TargetKind.EXPERT,
        expert_ids=[actors.specialist.pk],
    )
    Consult.objects.filter(pk=consult.pk).update(
        respond_due_at=timezone.now() - dt.timedelta(minutes=1)
    )

    run_periodic(_OneRound(), interval=0)

    consult.refresh_from_db()
    assert consult.escalation_level == 1
