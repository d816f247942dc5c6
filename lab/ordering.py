"""The clinic's side of an order: order tests, cancel, collect the specimens, print labels.

Each service checks who acts through ``lab.access`` (or the records selectors) before its
transaction, refuses what cannot happen now with an audited ``InvalidRecord``, and writes
everything of one step in one transaction. ``label_print`` lives in ``lab.labels`` and the
order page's data in ``lab.order_detail``; both are re-exported here (the contract's names).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from functools import partial
from typing import cast

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.functional import Promise, lazy
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import User
from association.models import CentreKind, DiagnosticCentre
from association.selectors import actor_scope
from audit.models import Outcome
from audit.services import audit_record
from lab.access import as_clinic
from lab.labels import label_print
from lab.models import (
    ItemStatus,
    LabOrder,
    LabTest,
    OrderItem,
    OrderStatus,
    Panel,
    Priority,
    Specimen,
    SpecimenStatus,
)
from lab.numbering import create_numbered, next_barcode, next_order_number
from lab.order_detail import OrderDetail, order_detail_for_user
from lab.workflow_common import (
    MAX_ITEMS_PER_ORDER,
    MAX_NOTE,
    MAX_REASON,
    audit_order,
    lab_staff_of,
    notify,
    order_link,
    policy_for,
    refuse,
    specimen_event,
    timeline_title,
)
from records.models import Consent, ConsentScope, Patient, PatientShare, ShareReason
from records.selectors import (
    AccessDenied,
    acting_institution,
    can_edit_patient,
    patient_get_for_user,
)
from records.services import refused, timeline_add
from records.sharing import consent_record, share_grant

__all__ = [
    "OrderDetail",
    "can_cancel",
    "lab_centres_for",
    "lab_consent_for",
    "label_print",
    "order_cancel",
    "order_create",
    "order_detail_for_user",
    "specimens_collect",
]

CANCELLABLE = (
    OrderStatus.ORDERED,
    OrderStatus.COLLECTED,
    OrderStatus.SHIPPED,
    OrderStatus.RECEIVED,
    OrderStatus.IN_PROGRESS,
    OrderStatus.REJECTED,
)
# A draw "now" may carry a clock a little ahead of the server's.
CLOCK_SKEW = dt.timedelta(minutes=2)


def lazy_format(message: Promise, **params: object) -> Promise:
    """``message % params`` translated when shown (the audit trail stores it in English)."""
    return cast(Promise, lazy(lambda: str(message) % params, str)())


# --- Where and with what consent ---------------------------------------------------------------


def lab_centres_for(patient: Patient) -> list[DiagnosticCentre]:
    """The lab centres serving the resident's association."""
    return list(
        DiagnosticCentre.objects.filter(
            kind=CentreKind.LAB, association_id=patient.home_institution.association_id
        )
        .select_related("host")
        .order_by("name")
    )


def lab_consent_for(*, patient: Patient, centre: DiagnosticCentre) -> Consent | None:
    """The active consent that lets specimens and the record go to ``centre`` (as share_grant
    asks): lab or whole-record scope, to the association or to the centre's host."""
    return (
        Consent.objects.active()
        .filter(patient=patient, scope__in=[ConsentScope.LAB, ConsentScope.RECORD])
        .filter(
            Q(grantee_association_id=patient.home_institution.association_id)
            | Q(grantee_institution_id=centre.host_id)
        )
        .first()
    )


def can_cancel(order: LabOrder) -> bool:
    return order.status in CANCELLABLE


# --- Ordering ----------------------------------------------------------------------------------


def _expand(
    *, centre: DiagnosticCentre, test_ids: Sequence[int], panel_ids: Sequence[int]
) -> tuple[list[tuple[LabTest, Panel | None]], str | Promise | None]:
    """The tests to order, once each, with the panel that brought them; or the problem.

    A panel brings its active tests (a test the centre stopped offering drops out of
    its panels); a test chosen by itself must be active.
    """
    wanted_tests = set(test_ids)
    wanted_panels = set(panel_ids)
    tests = {t.pk: t for t in LabTest.objects.filter(centre=centre, pk__in=wanted_tests)}
    panels = list(
        Panel.objects.filter(centre=centre, pk__in=wanted_panels).prefetch_related("tests")
    )
    if len(tests) != len(wanted_tests) or len(panels) != len(wanted_panels):
        return [], gettext_lazy("Choose tests and panels of the chosen lab centre's catalogue.")
    inactive = sorted(t.code for t in tests.values() if not t.active)
    inactive += sorted(p.code for p in panels if not p.active)
    if inactive:
        return [], lazy_format(
            gettext_lazy("No longer offered by the lab centre: %(codes)s."),
            codes=", ".join(inactive),
        )
    chosen: dict[int, tuple[LabTest, Panel | None]] = {}
    for panel in sorted(panels, key=lambda p: p.code):
        for test in panel.tests.all():
            if test.active:
                chosen.setdefault(test.pk, (test, panel))
    for test in tests.values():
        chosen.setdefault(test.pk, (test, None))
    if not chosen:
        return [], gettext_lazy("Choose at least one test.")
    if len(chosen) > MAX_ITEMS_PER_ORDER:
        return [], lazy_format(
            gettext_lazy("At most %(n)d tests per order."), n=MAX_ITEMS_PER_ORDER
        )
    ordered = sorted(chosen.values(), key=lambda pair: (pair[0].sort_order, pair[0].code))
    return ordered, None


def _order_problem(
    *, patient: Patient, centre: DiagnosticCentre, priority: str, clinical_note: str
) -> str | Promise | None:
    if centre.kind != CentreKind.LAB:
        return gettext_lazy("Choose a lab centre.")
    if centre.association_id != patient.home_institution.association_id:
        return gettext_lazy("The lab centre must serve the resident's association.")
    if priority not in Priority.values:
        return gettext_lazy("Unknown priority.")
    if len(clinical_note) > MAX_NOTE:
        return gettext_lazy("The clinical note is too long (at most 1000 characters).")
    return None


def order_create(
    *,
    actor: User,
    patient_id: int,
    centre: DiagnosticCentre,
    test_ids: list[int],
    panel_ids: list[int],
    priority: str,
    clinical_note: str,
    record_consent: bool = False,
) -> LabOrder:
    """Order tests of ``centre`` for the resident; share the resident with the centre.

    Panels are expanded into their tests, each test ordered once. With ``record_consent``
    the resident's lab consent to the centre's host is recorded in the same step when no
    consent covers the centre yet.

    Raises
    ------
    NotFound, AccessDenied
        No such resident, or not visible to the actor; the actor is no clinician.
    InvalidRecord
        A field is wrong, or the resident has not consented (and none is recorded now).
    """
    action = "lab.order.create"
    patient = patient_get_for_user(actor=actor, patient_id=patient_id, purpose="lab_order")
    scope = actor_scope(actor)
    institution = acting_institution(scope, patient)
    if institution is None:
        audit_record(
            actor=actor,
            action=action,
            outcome=Outcome.DENIED,
            resource_type="lab_order",
            patient_id=patient.pk,
            reason="no clinical membership",
        )
        raise AccessDenied(_("Only clinicians of an institution can order lab tests."))
    clinical_note = clinical_note.strip()
    problem = _order_problem(
        patient=patient, centre=centre, priority=priority, clinical_note=clinical_note
    )
    items: list[tuple[LabTest, Panel | None]] = []
    if problem is None:
        items, problem = _expand(centre=centre, test_ids=test_ids, panel_ids=panel_ids)
    needs_consent = problem is None and lab_consent_for(patient=patient, centre=centre) is None
    if needs_consent and not record_consent:
        problem = gettext_lazy(
            "The resident has not consented to sending specimens and results to the lab"
            " centre. Record the resident's consent with this order."
        )
    elif needs_consent and not can_edit_patient(scope, patient):
        problem = gettext_lazy(
            "The resident has not consented to sending specimens to the lab centre, and only"
            " the resident's home institution can record that consent."
        )
    if problem is not None:
        raise refused(
            actor=actor,
            action=action,
            message=problem,
            resource_type="lab_order",
            patient_id=patient.pk,
        )
    codes = [test.code for test, _panel in items]
    with transaction.atomic():
        if needs_consent:
            consent_record(
                actor=actor,
                patient_id=patient.pk,
                scope=ConsentScope.LAB,
                grantee_institution=centre.host,
                note=" ".join(codes)[:300],
            )
        order = create_numbered(
            lambda: LabOrder.objects.create(
                number=next_order_number(),
                patient=patient,
                requesting_institution=institution,
                requested_by=actor,
                centre=centre,
                priority=priority,
                clinical_note=clinical_note,
            )
        )
        OrderItem.objects.bulk_create(
            OrderItem(order=order, test=test, panel=panel) for test, panel in items
        )
        order.share = share_grant(
            actor=actor,
            patient=patient,
            reason=ShareReason.ORDER,
            reference=order.number,
            centre=centre,
            consent_scope=ConsentScope.LAB,
        )
        order.save(update_fields=["share"])
        timeline_add(
            patient=patient,
            kind="lab.ordered",
            title=timeline_title("lab.ordered"),
            summary=f"{order.number} · {', '.join(codes)}",
            institution=institution,
            actor=actor,
            link=order_link(order),
            data={"order": order.pk, "priority": priority, "centre": centre.pk, "tests": codes},
        )
        notify(
            lab_staff_of(centre.pk),
            order=order,
            kind="lab.ordered",
            title=gettext_lazy("%(priority)s lab order %(number)s for %(name)s"),
            body=gettext_lazy("From %(clinic)s: %(tests)s."),
            params={
                "priority": Priority(priority).label,
                "clinic": institution.name,
                "tests": ", ".join(codes),
            },
        )
        audit_order(
            actor=actor,
            action=action,
            order=order,
            detail={
                "number": order.number,
                "priority": priority,
                "centre": centre.pk,
                "tests": codes,
                "consent_recorded": needs_consent,
            },
        )
    return order


# --- Cancelling --------------------------------------------------------------------------------


def order_cancel(*, actor: User, order_id: int, reason: str) -> LabOrder:
    """The clinic withdraws its order; the tests are cancelled and the share ends.

    Open critical-value alerts are left alone: a dangerous value already seen stays to be
    acknowledged.

    Raises
    ------
    AccessDenied, NotFound, InvalidRecord
    """
    action = "lab.order.cancel"
    order = as_clinic(actor=actor, order_id=order_id, action=action)
    reason = reason.strip()
    message: str | Promise | None = None
    if not can_cancel(order):
        message = gettext_lazy("A reported or cancelled order cannot be cancelled.")
    elif not reason or len(reason) > MAX_REASON:
        message = gettext_lazy("Say why the order is cancelled (at most 300 characters).")
    if message is not None:
        raise refuse(actor=actor, action=action, order=order, message=message)
    with transaction.atomic():
        updated = LabOrder.objects.filter(pk=order.pk, status__in=CANCELLABLE).update(
            status=OrderStatus.CANCELLED, cancel_reason=reason, updated_at=timezone.now()
        )
        if updated:
            _cancelled(actor=actor, order=order, reason=reason)
    if not updated:  # reported or cancelled meanwhile
        raise refuse(
            actor=actor,
            action=action,
            order=order,
            message=gettext_lazy("A reported or cancelled order cannot be cancelled."),
        )
    order.refresh_from_db()
    return order


def _cancelled(*, actor: User, order: LabOrder, reason: str) -> None:
    """What follows a cancellation: the tests, the share, the timeline, the lab is told."""
    OrderItem.objects.filter(order=order).exclude(status=ItemStatus.REJECTED).update(
        status=ItemStatus.CANCELLED
    )
    if order.share_id is not None:
        PatientShare.objects.filter(pk=order.share_id, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
    timeline_add(
        patient=order.patient,
        kind="lab.cancelled",
        title=timeline_title("lab.cancelled"),
        summary=f"{order.number} · {reason}",
        institution=order.requesting_institution,
        actor=actor,
        link=order_link(order),
        data={"order": order.pk},
    )
    travelling = Specimen.objects.filter(
        order=order, status__in=[SpecimenStatus.SHIPPED, SpecimenStatus.RECEIVED]
    ).exists()
    if travelling:
        notify(
            lab_staff_of(order.centre_id),
            order=order,
            kind="lab.cancelled",
            title=gettext_lazy("Lab order %(number)s for %(name)s was cancelled"),
            body=reason,
            exclude=actor,
        )
    audit_order(
        actor=actor,
        action="lab.order.cancel",
        order=order,
        detail={"reason": reason, "specimens_travelling": travelling},
    )


# --- Collecting --------------------------------------------------------------------------------


def specimens_collect(
    *, actor: User, order_id: int, collected_at: dt.datetime | None = None
) -> list[Specimen]:
    """Record the draw: one labelled specimen per specimen type and container of the order.

    ``collected_at`` is when the specimens were drawn (now when omitted); it may be
    earlier, but not in the future nor older than the centre accepts.

    Raises
    ------
    AccessDenied, NotFound, InvalidRecord
    """
    action = "lab.specimen.collect"
    order = as_clinic(actor=actor, order_id=order_id, action=action)
    now = timezone.now()
    when = collected_at or now
    max_hours = policy_for(order.centre_id).specimen_max_age_hours
    max_age = dt.timedelta(hours=max_hours)
    items = list(
        OrderItem.objects.filter(
            order=order, status=ItemStatus.PENDING, specimen__isnull=True
        ).select_related("test")
    )
    message: str | Promise | None = None
    if order.status == OrderStatus.CANCELLED:
        message = gettext_lazy("This order was cancelled.")
    elif order.status != OrderStatus.ORDERED or not items:
        message = gettext_lazy("The specimens of this order have already been collected.")
    elif when > now + CLOCK_SKEW:
        message = gettext_lazy("The collection time cannot be in the future.")
    elif when < now - max_age:
        message = lazy_format(
            gettext_lazy(
                "The collection time is too long ago: the lab accepts specimens up to"
                " %(hours)d hours old."
            ),
            hours=max_hours,
        )
    if message is not None:
        raise refuse(actor=actor, action=action, order=order, message=message)
    when = min(when, now)
    groups: dict[tuple[str, str], list[OrderItem]] = {}
    for item in items:
        groups.setdefault((item.test.specimen_type, item.test.container), []).append(item)
    specimens: list[Specimen] = []
    with transaction.atomic():
        updated = LabOrder.objects.filter(pk=order.pk, status=OrderStatus.ORDERED).update(
            status=OrderStatus.COLLECTED, collected_at=when, updated_at=now
        )
        if updated:
            for (specimen_type, container), group in groups.items():
                specimen = create_numbered(
                    partial(
                        _new_specimen,
                        order=order,
                        specimen_type=specimen_type,
                        container=container,
                        actor=actor,
                        when=when,
                    )
                )
                OrderItem.objects.filter(pk__in=[i.pk for i in group]).update(specimen=specimen)
                specimen_event(
                    kind="collected",
                    actor=actor,
                    specimen=specimen,
                    detail={"tests": [i.test.code for i in group], "at": when.isoformat()},
                )
                specimens.append(specimen)
            audit_order(
                actor=actor,
                action=action,
                order=order,
                detail={
                    "barcodes": [s.barcode for s in specimens],
                    "collected_at": when.isoformat(),
                },
            )
    if not updated:  # collected or cancelled meanwhile
        raise refuse(
            actor=actor,
            action=action,
            order=order,
            message=gettext_lazy("The specimens of this order have already been collected."),
        )
    return specimens


def _new_specimen(
    *, order: LabOrder, specimen_type: str, container: str, actor: User, when: dt.datetime
) -> Specimen:
    """A specimen with the next free barcode (``create_numbered`` retries on a clash)."""
    return Specimen.objects.create(
        barcode=next_barcode(),
        order=order,
        specimen_type=specimen_type,
        container=container,
        collected_by=actor,
        collected_at=when,
    )
