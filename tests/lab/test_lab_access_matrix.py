"""Who may open or change what in the lab centre: every named actor against every resource.

One order is taken through the real services once for the module (``matrix_support``): the
village doctor ordered K and Na for 张三, shipped the tube, the lab received it, found K 6.8
(an open critical-value alert) and signed the report. A second order of the same clinic
waits at the lab for its glucose result (the results write). Each test is one actor and one
resource, inside a savepoint, so writes of one do not leak into another.

* allowed: the page or answer (a write succeeds);
* denied: 403 (or 404), and an audit event of the actor, denied or failed;
* anonymous: pages redirect to the login page, the API answers 401.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import transaction
from django.test import Client

from audit.models import AuditEvent, Outcome
from lab.models import OrderItem
from tests.lab.matrix_support import LabWorld, Named, received, reported_order, residents_by_name

pytestmark = pytest.mark.django_db

ACTORS = [
    "village",  # the ordering clinic (Dongshan), 张三's family doctor
    "township",  # same association, the township above it
    "village2",  # the township's other village clinic
    "labtech",  # the lab centre
    "radiologist",  # a centre, not the lab
    "specialist",  # county hospital clinician
    "coordinator",
    "admin",  # association admin: statistics, not records
    "auditor",  # the audit trail, not records
    "outsider",  # another association
]
CLINIC = {"village"}
LAB = {"labtech"}
BOTH = CLINIC | LAB
# The dashboard shows turnaround per institution: the lab sees its centre, a clinician of the
# association their own institution, the admin and the auditor the association's figures.
DASHBOARD = {"village", "township", "village2", "labtech", "specialist", "coordinator"} | {
    "admin",
    "auditor",
}


@dataclass(frozen=True)
class World:
    lab: LabWorld
    pending_glucose: OrderItem  # an order received at the lab, its result not entered


@dataclass(frozen=True)
class Resource:
    method: str
    path: Callable[[World], str]
    allowed: set[str]
    ok: int = 200
    data: Callable[[World], dict[str, Any]] | None = None
    json: bool = False


RESOURCES: dict[str, Resource] = {
    "order page": Resource("GET", lambda w: f"/lab/orders/{w.lab.order.pk}/", BOTH),
    "order api": Resource("GET", lambda w: f"/api/lab/orders/{w.lab.order.pk}/", BOTH),
    "results page": Resource("GET", lambda w: f"/lab/orders/{w.lab.order.pk}/results/", LAB),
    "results api write": Resource(
        "POST",
        lambda w: "/api/lab/results/",
        LAB,
        data=lambda w: {"item": w.pending_glucose.pk, "value": "5.4"},
        json=True,
    ),
    "label print page": Resource("GET", lambda w: f"/lab/orders/{w.lab.order.pk}/labels/", BOTH),
    "box page": Resource("GET", lambda w: f"/lab/boxes/{w.lab.box.pk}/", BOTH),
    "receive page": Resource("GET", lambda w: "/lab/receive/", LAB),
    "critical page": Resource("GET", lambda w: f"/lab/critical/{w.lab.alert.pk}/", BOTH),
    "critical ack page": Resource(
        "POST",
        lambda w: f"/lab/critical/{w.lab.alert.pk}/ack/",
        CLINIC,
        ok=302,
        data=lambda w: {"note": "已电话通知患者复查"},
    ),
    "critical ack api": Resource(
        "POST",
        lambda w: f"/api/lab/critical/{w.lab.alert.pk}/ack/",
        CLINIC,
        data=lambda w: {"note": "患者已转县医院"},
        json=True,
    ),
    "report pdf": Resource("GET", lambda w: f"/lab/orders/{w.lab.order.pk}/report/1.pdf", BOTH),
    "queue": Resource("GET", lambda w: "/lab/queue/", LAB),
    "dashboard": Resource("GET", lambda w: "/lab/dashboard/", DASHBOARD),
    "catalogue edit": Resource(
        "GET", lambda w: f"/lab/catalogue/tests/{w.lab.potassium.test_id}/", LAB
    ),
}


@pytest.fixture(scope="module")
def world(django_db_setup: None, django_db_blocker: Any) -> Iterator[World]:
    """Built once through the services; rolled back when the module is done."""
    with django_db_blocker.unblock(), transaction.atomic():
        named, residents = Named(), residents_by_name()
        lab = reported_order(named, residents)
        pending, _specimen, _box = received(named, residents, "GLU")
        yield World(lab=lab, pending_glucose=OrderItem.objects.get(order=pending))
        transaction.set_rollback(True)


def _send(client: Client, resource: Resource, world: World) -> Any:
    path = resource.path(world)
    data = resource.data(world) if resource.data else {}
    if resource.method == "GET":
        return client.get(path)
    if resource.json:
        return client.post(path, data, content_type="application/json")
    return client.post(path, data)


@pytest.mark.parametrize("resource_name", list(RESOURCES))
@pytest.mark.parametrize("actor_name", ACTORS)
def test_each_actor_gets_exactly_what_the_matrix_allows(
    client: Client, actors: Any, world: World, actor_name: str, resource_name: str
) -> None:
    resource = RESOURCES[resource_name]
    user = getattr(actors, actor_name)
    client.force_login(user)
    before = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    response = _send(client, resource, world)
    if actor_name in resource.allowed:
        assert response.status_code == resource.ok, (actor_name, resource_name)
        return
    assert response.status_code in (403, 404), (actor_name, resource_name, response.status_code)
    assert AuditEvent.objects.filter(
        id__gt=before, actor=user, outcome__in=[Outcome.DENIED, Outcome.FAILED]
    ).exists(), f"{actor_name} was refused {resource_name} without an audit event"


@pytest.mark.parametrize("resource_name", list(RESOURCES))
def test_anonymous_callers_are_sent_to_log_in(
    client: Client, world: World, resource_name: str
) -> None:
    resource = RESOURCES[resource_name]
    response = _send(client, resource, world)
    if resource.path(world).startswith("/api/"):
        assert response.status_code == 401
        assert AuditEvent.objects.filter(action="api.auth", outcome=Outcome.DENIED).exists()
    else:
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")


def test_the_clinic_sees_the_signed_results_and_nobody_else_reads_the_order(
    client: Client, actors: Any, world: World
) -> None:
    """The order page's read is audited as allowed for the two sides, denied for the rest."""
    order = world.lab.order
    for name in ACTORS:
        client.force_login(getattr(actors, name))
        client.get(f"/api/lab/orders/{order.pk}/")
    events = AuditEvent.objects.filter(
        action="lab.order.view", resource_id=str(order.pk), patient_id=order.patient_id
    )
    allowed = set(events.filter(outcome=Outcome.ALLOWED).values_list("actor__username", flat=True))
    denied = set(events.filter(outcome=Outcome.DENIED).values_list("actor__username", flat=True))
    assert allowed == BOTH
    assert denied == set(ACTORS) - BOTH
