"""Who may see and change lab orders and boxes: the choke point every lab read goes through.

* The ordering clinic (clinicians of the requesting institution) sees and changes its
  orders, collects, labels, packs and ships.
* Lab technicians of the order's centre (a ``lab_technician`` membership scoped to a lab
  centre) receive, reject, enter and validate results and sign reports.
* Any clinician who may see the resident (``records.selectors.patients_visible_to``)
  reads the resident's orders and reports.

Reads of one order are audited here; denials are audited before ``AccessDenied`` or
``NotFound`` is raised. Lists are audited by the views that draw them.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _

from association.models import CentreKind, Role
from association.selectors import ActorScope, actor_scope
from audit.models import Outcome
from audit.services import audit_record
from lab.models import Box, LabOrder
from records.selectors import AccessDenied, NotFound, patients_visible_to

User = AbstractBaseUser | AnonymousUser

ORDER_RELATED = (
    "patient",
    "patient__home_institution",
    "requesting_institution",
    "requested_by",
    "centre",
    "centre__host",
)


# --- Who is who --------------------------------------------------------------------------------


def lab_centre_ids(scope: ActorScope) -> frozenset[int]:
    """The lab centres where the actor works (lab technician memberships of a lab centre)."""
    return frozenset(
        m.centre_id
        for m in scope.memberships
        if m.centre_id is not None
        and m.centre is not None
        and m.role == Role.LAB_TECHNICIAN
        and m.centre.kind == CentreKind.LAB
    )


def is_lab_staff(scope: ActorScope, centre_id: int) -> bool:
    return centre_id in lab_centre_ids(scope)


def is_ordering_clinician(scope: ActorScope, order: LabOrder) -> bool:
    """A clinician of the institution that ordered (it collects, ships, cancels, acknowledges)."""
    return order.requesting_institution_id in scope.care_institution_ids


# --- Visibility --------------------------------------------------------------------------------


def orders_visible_to(scope: ActorScope) -> QuerySet[LabOrder]:
    """Orders the actor's clinic made, the actor's lab centre received, or of residents the
    actor may see (callers audit)."""
    if scope.user_id is None or not scope.is_clinical:
        return LabOrder.objects.none()
    return LabOrder.objects.filter(
        Q(requesting_institution_id__in=scope.care_institution_ids)
        | Q(centre_id__in=lab_centre_ids(scope))
        | Q(patient__in=patients_visible_to(scope))
    )


def boxes_visible_to(scope: ActorScope) -> QuerySet[Box]:
    """Boxes the actor's institution packs or the actor's lab centre receives."""
    if scope.user_id is None or not scope.is_clinical:
        return Box.objects.none()
    return Box.objects.filter(
        Q(from_institution_id__in=scope.care_institution_ids)
        | Q(centre_id__in=lab_centre_ids(scope))
    )


# --- One order ---------------------------------------------------------------------------------


def order_deny(*, actor: User, order_id: int, action: str) -> AccessDenied | NotFound:
    """Audit an order the actor may not see (or that does not exist); return the error."""
    existing = LabOrder.objects.filter(pk=order_id).only("pk", "patient_id").first()
    audit_record(
        actor=actor,
        action=action,
        outcome=Outcome.DENIED if existing else Outcome.FAILED,
        resource_type="lab_order",
        resource_id=order_id,
        patient_id=existing.patient_id if existing else None,
        reason="not visible to actor" if existing else "no such order",
    )
    if existing is not None:
        return AccessDenied(_("You do not have access to this lab order."))
    return NotFound(_("No such lab order."))


def load_order(*, actor: User, order_id: int, action: str) -> tuple[LabOrder, ActorScope]:
    """The order if the actor may see it (denials audited), and the actor's scope."""
    scope = actor_scope(actor)
    order = orders_visible_to(scope).select_related(*ORDER_RELATED).filter(pk=order_id).first()
    if order is None:
        raise order_deny(actor=actor, order_id=order_id, action=action)
    return order, scope


def order_get_for_user(*, actor: User, order_id: int, action: str = "lab.order.view") -> LabOrder:
    """The order if visible to ``actor``; the read is audited either way.

    Raises
    ------
    AccessDenied, NotFound
    """
    order, _scope = load_order(actor=actor, order_id=order_id, action=action)
    audit_record(
        actor=actor,
        action=action,
        outcome=Outcome.ALLOWED,
        resource_type="lab_order",
        resource_id=order.pk,
        patient_id=order.patient_id,
    )
    return order


def _deny_on(
    *, actor: User, action: str, order: LabOrder, reason: str, message: str
) -> AccessDenied:
    audit_record(
        actor=actor,
        action=action,
        outcome=Outcome.DENIED,
        resource_type="lab_order",
        resource_id=order.pk,
        patient_id=order.patient_id,
        reason=reason,
    )
    return AccessDenied(message)


def as_clinic(*, actor: User, order_id: int, action: str) -> LabOrder:
    """The order, for a clinician of the ordering institution; others are denied (audited)."""
    order, scope = load_order(actor=actor, order_id=order_id, action=action)
    if not is_ordering_clinician(scope, order):
        raise _deny_on(
            actor=actor,
            action=action,
            order=order,
            reason="not the ordering institution",
            message=_("Only the clinic that ordered these tests can do this."),
        )
    return order


def as_lab(*, actor: User, order_id: int, action: str) -> LabOrder:
    """The order, for a lab technician of its centre; others are denied (audited)."""
    order, scope = load_order(actor=actor, order_id=order_id, action=action)
    if not is_lab_staff(scope, order.centre_id):
        raise _deny_on(
            actor=actor,
            action=action,
            order=order,
            reason="not staff of the lab centre",
            message=_("Only staff of the lab centre can do this."),
        )
    return order


def box_deny(
    *, actor: User, box_id: int | None, action: str, number: str = ""
) -> AccessDenied | NotFound:
    """Audit a box the actor may not see (or that does not exist); return the error."""
    existing = (
        Box.objects.filter(pk=box_id).exists()
        if box_id is not None
        else Box.objects.filter(number=number).exists()
    )
    audit_record(
        actor=actor,
        action=action,
        outcome=Outcome.DENIED if existing else Outcome.FAILED,
        resource_type="lab_box",
        resource_id=box_id if box_id is not None else number,
        reason="not visible to actor" if existing else "no such box",
    )
    if existing:
        return AccessDenied(_("You do not have access to this box."))
    return NotFound(_("No such box."))
