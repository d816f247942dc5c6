"""Who sees which consult: actors by consults, at the selector level, every read audited.

Consults of the matrix (the association pre-reviews; the coordinator routes):

* ``accepted``: township -> specialist about 刘桂兰, routed and accepted;
* ``review``: village -> cardiology at the county hospital about 张三, waiting for pre-review;
* ``declined``: township -> specialist about 陈志强, declined by the specialist.
"""

from __future__ import annotations

import pytest

from association.models import Institution, Specialty
from audit.models import AuditEvent, Outcome
from consult.models import Mode, Priority, TargetKind
from consult.selectors import consult_get_for_user, consults_visible_to
from consult.services import consult_request, consult_respond, consult_review
from records.selectors import AccessDenied

pytestmark = pytest.mark.django_db

SEES = {
    "township": {"accepted", "declined"},  # the requester
    "village": {"review"},  # the requester
    "village2": set(),  # another clinic
    "specialist": {"accepted"},  # accepted; not invited before routing; declined the other
    "coordinator": {"accepted", "review", "declined"},  # every consult of the association
    "radiologist": set(),
    "labtech": set(),
    "admin": set(),  # statistics, not consults
    "auditor": set(),  # the audit trail, not consults
    "outsider": set(),  # another association
}


@pytest.fixture
def consults(actors, residents):
    specialist, coordinator = actors.specialist, actors.coordinator
    common = {"priority": Priority.ROUTINE, "mode": Mode.VIDEO}
    accepted = consult_request(
        actor=actors.township,
        patient_id=residents["刘桂兰"].pk,
        question="Palpitations.",
        target_kind=TargetKind.EXPERT,
        expert_ids=[specialist.pk],
        **common,
    )
    consult_review(actor=coordinator, consult_id=accepted.pk, decision="route")
    consult_respond(actor=specialist, consult_id=accepted.pk, accept=True)
    review = consult_request(
        actor=actors.village,
        patient_id=residents["张三"].pk,
        question="Blood pressure stays high.",
        target_kind=TargetKind.SPECIALTY,
        target_institution_id=Institution.objects.get(code="county").pk,
        target_specialty_id=Specialty.objects.get(code="cardiology").pk,
        consent_given=True,
        **common,
    )
    declined = consult_request(
        actor=actors.township,
        patient_id=residents["陈志强"].pk,
        question="Murmur.",
        target_kind=TargetKind.EXPERT,
        expert_ids=[specialist.pk],
        consent_given=True,
        **common,
    )
    consult_review(actor=coordinator, consult_id=declined.pk, decision="route")
    consult_respond(actor=specialist, consult_id=declined.pk, accept=False, reason="Not cardiac.")
    return {"accepted": accepted, "review": review, "declined": declined}


@pytest.mark.parametrize("actor", sorted(SEES))
def test_the_selector_returns_exactly_the_matrix(actors, consults, actor):
    user = getattr(actors, actor)
    visible = set(consults_visible_to(user).values_list("pk", flat=True))
    expected = {consults[name].pk for name in SEES[actor]}
    assert visible & {c.pk for c in consults.values()} == expected


@pytest.mark.parametrize("actor", sorted(SEES))
def test_reading_each_consult_follows_the_matrix_and_is_audited(actors, consults, actor):
    user = getattr(actors, actor)
    for name, consult in consults.items():
        allowed = name in SEES[actor]
        if allowed:
            assert consult_get_for_user(actor=user, consult_id=consult.pk) == consult
        else:
            with pytest.raises(AccessDenied):
                consult_get_for_user(actor=user, consult_id=consult.pk)
        event = AuditEvent.objects.filter(actor=user, action="consult.view").latest("id")
        assert event.resource_id == str(consult.pk)
        assert event.patient_id == consult.patient_id
        assert event.outcome == (Outcome.ALLOWED if allowed else Outcome.DENIED)
