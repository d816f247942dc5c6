"""Who may read which resident: the role-by-resource matrix, walked with named actors.

Residents of the demo: 张三 (Dongshan village, village's), 赵明 (Nanwan village, village2's),
陈志强 (Xiba township), 刘桂兰 (Xiba township, consented to association-wide sharing),
周海 (county hospital), 郑大山 (Hexi, the neighbouring association).
"""

from __future__ import annotations

import pytest

from audit.models import AuditEvent, Outcome
from records.selectors import AccessDenied, patient_get_for_user

RESIDENTS = ["张三", "赵明", "陈志强", "刘桂兰", "周海", "郑大山"]

CAN_READ = {
    "village": {"张三", "刘桂兰"},
    "village2": {"赵明", "刘桂兰"},
    "township": {"陈志强", "刘桂兰"},
    "specialist": {"周海", "刘桂兰"},
    "coordinator": {"周海", "刘桂兰"},
    "radiologist": set(),  # a centre sees only what was sent to it
    "labtech": set(),
    "admin": set(),  # statistics, not records
    "auditor": set(),  # the audit trail, not records
    "outsider": {"郑大山"},
}

MATRIX = [(actor, name) for actor in CAN_READ for name in RESIDENTS]


@pytest.mark.parametrize(("actor", "resident"), MATRIX)
def test_read_access_follows_the_matrix_and_is_audited(actors, residents, actor, resident):
    user = getattr(actors, actor)
    patient = residents[resident]
    allowed = resident in CAN_READ[actor]
    if allowed:
        assert patient_get_for_user(actor=user, patient_id=patient.pk) == patient
    else:
        with pytest.raises(AccessDenied):
            patient_get_for_user(actor=user, patient_id=patient.pk)
    event = AuditEvent.objects.filter(actor=user, patient=patient).latest("id")
    assert event.action == "patient.view"
    assert event.outcome == (Outcome.ALLOWED if allowed else Outcome.DENIED)


@pytest.mark.parametrize(("actor", "resident"), MATRIX)
def test_api_read_follows_the_same_matrix(client, actors, residents, actor, resident):
    client.force_login(getattr(actors, actor))
    response = client.get(f"/api/patients/{residents[resident].pk}/")
    assert response.status_code == (200 if resident in CAN_READ[actor] else 403)
    if response.status_code == 200:
        assert "*" in response.json()["resident_id"]  # never the full number


@pytest.mark.parametrize("actor", sorted(CAN_READ))
def test_search_returns_exactly_what_the_actor_may_read(actors, actor):
    from records.selectors import patient_search_for_user

    user = getattr(actors, actor)
    if not CAN_READ[actor] and actor in {"admin", "auditor"}:
        with pytest.raises(AccessDenied):
            patient_search_for_user(actor=user)
        return
    names = {p.name for p in patient_search_for_user(actor=user, limit=500)}
    assert set(CAN_READ[actor]) <= names
    forbidden = set(RESIDENTS) - CAN_READ[actor]
    assert not names & forbidden
