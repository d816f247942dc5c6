"""Ordering, cancelling and collecting: consent, access, panels, tubes and barcodes."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone, translation

from association.models import Association, CentreKind, DiagnosticCentre, Institution
from audit.models import AuditEvent, Outcome
from lab.models import (
    AlertStatus,
    Container,
    CriticalAlert,
    Flag,
    ItemStatus,
    LabOrder,
    LabTest,
    OrderStatus,
    Priority,
    Result,
    ResultSource,
    Specimen,
    SpecimenEvent,
    SpecimenStatus,
    SpecimenType,
)
from lab.numbering import barcode_valid
from lab.ordering import order_cancel, order_create, specimens_collect
from realtime.models import Notification, Severity
from records.models import Consent, ConsentScope, PatientShare, TimelineEvent
from records.selectors import AccessDenied
from records.services import InvalidRecord
from tests.lab.ordering_support import ids_of_panels, ids_of_tests, lab_centre, make_order

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


# --- Ordering ----------------------------------------------------------------------------------


def test_village_doctor_orders_for_zhang_san_recording_consent(actors, residents):
    zhang = residents["张三"]
    order = make_order(actors.village, zhang, panels=("LYTES", "CBC"), note="乏力两周")
    assert order.number.startswith("LO")
    assert order.status == OrderStatus.ORDERED
    assert order.requested_by == actors.village
    assert order.requesting_institution_id == zhang.home_institution_id
    codes = [i.test.code for i in order.items.select_related("test")]
    assert sorted(codes) == ["HGB", "K", "NA", "PLT", "WBC"]
    consent = Consent.objects.get(patient=zhang, scope=ConsentScope.LAB)
    assert consent.grantee_institution_id == lab_centre().host_id
    share = PatientShare.objects.get(pk=order.share_id)
    assert share.grantee_centre_id == lab_centre().pk
    assert share.reference == order.number
    event = TimelineEvent.objects.get(patient=zhang, kind="lab.ordered")
    assert event.title == "Lab tests ordered"
    assert order.number in event.summary
    assert "K" in event.summary
    assert "HGB" in event.summary
    note = Notification.objects.get(recipient=actors.labtech, kind="lab.ordered")
    assert order.number in note.title
    assert note.severity == Severity.INFO
    audit = AuditEvent.objects.get(action="lab.order.create", outcome=Outcome.ALLOWED)
    assert audit.patient_id == zhang.pk
    assert audit.detail["consent_recorded"] is True


def test_the_lab_technician_can_then_see_the_resident(actors, residents):
    from records.selectors import patient_get_for_user

    zhang = residents["张三"]
    with pytest.raises(AccessDenied):
        patient_get_for_user(actor=actors.labtech, patient_id=zhang.pk)
    make_order(actors.village, zhang)
    assert patient_get_for_user(actor=actors.labtech, patient_id=zhang.pk) == zhang


def test_without_consent_the_order_is_refused_and_nothing_saved(actors, residents):
    zhang = residents["张三"]
    with pytest.raises(InvalidRecord, match="not consented"):
        make_order(actors.village, zhang, record_consent=False)
    assert not LabOrder.objects.exists()
    assert not Consent.objects.filter(patient=zhang, scope=ConsentScope.LAB).exists()
    assert AuditEvent.objects.filter(
        action="lab.order.create", outcome=Outcome.FAILED, patient_id=zhang.pk
    ).exists()


def test_township_doctor_orders_for_liu_guilan_under_her_association_consent(actors, residents):
    liu = residents["刘桂兰"]
    consents = Consent.objects.filter(patient=liu).count()
    order = make_order(actors.township, liu, record_consent=False, priority=Priority.URGENT)
    assert order.share is not None
    assert Consent.objects.filter(patient=liu).count() == consents
    note = Notification.objects.get(recipient=actors.labtech, kind="lab.ordered")
    assert note.severity == Severity.URGENT


def test_an_emergency_order_alerts_the_lab_as_critical(actors, residents):
    make_order(actors.township, residents["刘桂兰"], priority=Priority.EMERGENCY)
    note = Notification.objects.get(recipient=actors.labtech, kind="lab.ordered")
    assert note.severity == Severity.CRITICAL


def test_a_doctor_of_another_association_is_denied_and_audited(actors, residents):
    zhang = residents["张三"]
    with pytest.raises(AccessDenied):
        make_order(actors.outsider, zhang)
    assert AuditEvent.objects.filter(
        actor=actors.outsider, action="patient.lab_order", outcome=Outcome.DENIED
    ).exists()
    assert not LabOrder.objects.exists()


def test_a_lab_technician_cannot_order(actors, residents):
    make_order(actors.township, residents["刘桂兰"])
    with pytest.raises(AccessDenied):
        make_order(actors.labtech, residents["刘桂兰"])


def test_the_centre_must_be_a_lab_centre_of_the_residents_association(actors, residents):
    zhang = residents["张三"]
    imaging = DiagnosticCentre.objects.get(code="qingshan-imaging")
    with pytest.raises(InvalidRecord, match="Choose a lab centre"):
        order_create(
            actor=actors.village,
            patient_id=zhang.pk,
            centre=imaging,
            test_ids=ids_of_tests("K"),
            panel_ids=[],
            priority=Priority.ROUTINE,
            clinical_note="",
            record_consent=True,
        )
    hexi = Association.objects.get(code="hexi")
    far = DiagnosticCentre.objects.create(
        name="河西检验",
        code="hexi-lab",
        kind=CentreKind.LAB,
        host=Institution.objects.get(code="hexi-clinic"),
        association=hexi,
    )
    with pytest.raises(InvalidRecord, match="serve the resident's association"):
        order_create(
            actor=actors.village,
            patient_id=zhang.pk,
            centre=far,
            test_ids=[],
            panel_ids=[],
            priority=Priority.ROUTINE,
            clinical_note="",
            record_consent=True,
        )
    assert not LabOrder.objects.exists()


def test_an_order_needs_at_least_one_test(actors, residents):
    with pytest.raises(InvalidRecord, match="at least one test"):
        make_order(actors.village, residents["张三"], panels=())


def test_tests_of_another_centre_are_refused(actors, residents):
    other = DiagnosticCentre.objects.create(
        name="另一检验中心",
        code="other-lab",
        kind=CentreKind.LAB,
        host=lab_centre().host,
        association=lab_centre().association,
    )
    foreign = LabTest.objects.create(
        centre=other,
        code="K",
        name="钾",
        specimen_type=SpecimenType.SERUM,
        container=Container.SERUM_GEL,
        unit="mmol/L",
    )
    with pytest.raises(InvalidRecord, match="chosen lab centre's catalogue"):
        order_create(
            actor=actors.village,
            patient_id=residents["张三"].pk,
            centre=lab_centre(),
            test_ids=[foreign.pk],
            panel_ids=[],
            priority=Priority.ROUTINE,
            clinical_note="",
            record_consent=True,
        )


def test_an_inactive_test_is_refused_but_drops_out_of_its_panel(actors, residents):
    LabTest.objects.filter(centre=lab_centre(), code="AST").update(active=False)
    with pytest.raises(InvalidRecord, match=r"No longer offered.*AST"):
        make_order(actors.village, residents["张三"], tests=("AST",), panels=())
    order = make_order(actors.village, residents["张三"], panels=("LFT",))
    assert sorted(i.test.code for i in order.items.select_related("test")) == ["ALT", "TBIL"]


def test_panels_are_expanded_and_each_test_ordered_once(actors, residents):
    order = make_order(
        actors.village, residents["张三"], tests=("K", "HGB", "GLU"), panels=("LYTES", "CBC")
    )
    items = {i.test.code: i for i in order.items.select_related("test", "panel")}
    assert sorted(items) == ["GLU", "HGB", "K", "NA", "PLT", "WBC"]
    assert items["K"].panel is not None
    assert items["K"].panel.code == "LYTES"
    assert items["GLU"].panel is None


def test_an_order_has_at_most_the_limit_of_tests(actors, residents, monkeypatch):
    monkeypatch.setattr("lab.ordering.MAX_ITEMS_PER_ORDER", 4)
    with pytest.raises(InvalidRecord, match="At most 4 tests"):
        make_order(actors.village, residents["张三"], panels=("LYTES", "CBC"))


def test_an_unknown_priority_is_refused(actors, residents):
    with pytest.raises(InvalidRecord, match="Unknown priority"):
        make_order(actors.village, residents["张三"], priority="whenever")


# --- Cancelling --------------------------------------------------------------------------------


def test_the_clinic_cancels_an_order(actors, residents):
    zhang = residents["张三"]
    order = make_order(actors.village, zhang)
    cancelled = order_cancel(actor=actors.village, order_id=order.pk, reason="患者拒绝抽血")
    assert cancelled.status == OrderStatus.CANCELLED
    assert cancelled.cancel_reason == "患者拒绝抽血"
    assert set(order.items.values_list("status", flat=True)) == {ItemStatus.CANCELLED}
    assert PatientShare.objects.get(pk=order.share_id).revoked_at is not None
    assert TimelineEvent.objects.filter(patient=zhang, kind="lab.cancelled").exists()
    # Nothing had left the clinic: the lab is not bothered.
    assert not Notification.objects.filter(kind="lab.cancelled").exists()
    assert AuditEvent.objects.filter(action="lab.order.cancel", outcome=Outcome.ALLOWED).exists()


def test_cancelling_needs_a_reason(actors, residents):
    order = make_order(actors.village, residents["张三"])
    with pytest.raises(InvalidRecord, match="Say why"):
        order_cancel(actor=actors.village, order_id=order.pk, reason="  ")
    order.refresh_from_db()
    assert order.status == OrderStatus.ORDERED


def test_only_the_ordering_clinic_cancels(actors, residents):
    order = make_order(actors.township, residents["刘桂兰"])
    with pytest.raises(AccessDenied):
        order_cancel(actor=actors.labtech, order_id=order.pk, reason="x")
    assert AuditEvent.objects.filter(
        actor=actors.labtech, action="lab.order.cancel", outcome=Outcome.DENIED
    ).exists()


@pytest.mark.parametrize("status", [OrderStatus.REPORTED, OrderStatus.CANCELLED])
def test_a_reported_or_cancelled_order_cannot_be_cancelled(actors, residents, status):
    order = make_order(actors.village, residents["张三"])
    LabOrder.objects.filter(pk=order.pk).update(status=status)
    with pytest.raises(InvalidRecord, match="cannot be cancelled"):
        order_cancel(actor=actors.village, order_id=order.pk, reason="重复开单")


def test_cancelling_after_shipment_tells_the_lab_and_leaves_open_alerts(actors, residents):
    order = make_order(actors.village, residents["张三"])
    specimens = specimens_collect(actor=actors.village, order_id=order.pk)
    Specimen.objects.filter(pk=specimens[0].pk).update(status=SpecimenStatus.SHIPPED)
    item = order.items.get(test__code="K")
    result = Result.objects.create(
        item=item,
        value_numeric=Decimal("6.9"),
        unit="mmol/L",
        flag=Flag.CRITICAL_HIGH,
        source=ResultSource.MANUAL,
        entered_by=actors.labtech,
    )
    alert = CriticalAlert.objects.create(
        result=result, order=order, patient=order.patient, value="6.9", flag=Flag.CRITICAL_HIGH
    )
    order_cancel(actor=actors.village, order_id=order.pk, reason="转上级医院")
    note = Notification.objects.get(recipient=actors.labtech, kind="lab.cancelled")
    assert order.number in note.title
    alert.refresh_from_db()
    assert alert.status == AlertStatus.OPEN


# --- Collecting --------------------------------------------------------------------------------


def test_collecting_makes_one_tube_per_specimen_type_and_container(actors, residents):
    order = make_order(actors.village, residents["张三"], panels=("LYTES", "CBC"))
    specimens = specimens_collect(actor=actors.village, order_id=order.pk)
    tubes = {(s.specimen_type, s.container) for s in specimens}
    assert tubes == {
        (SpecimenType.SERUM, Container.SERUM_GEL),
        (SpecimenType.WHOLE_BLOOD, Container.EDTA),
    }
    assert all(barcode_valid(s.barcode) for s in specimens)
    assert len({s.barcode for s in specimens}) == 2
    for item in order.items.select_related("test", "specimen"):
        assert item.specimen is not None
        assert item.specimen.container == item.test.container
    order.refresh_from_db()
    assert order.status == OrderStatus.COLLECTED
    assert order.collected_at is not None
    assert SpecimenEvent.objects.filter(kind="collected", specimen__order=order).count() == 2
    assert all(s.collected_by == actors.village for s in specimens)
    assert AuditEvent.objects.filter(
        action="lab.specimen.collect", outcome=Outcome.ALLOWED
    ).exists()


def test_a_draw_earlier_today_keeps_its_time(actors, residents):
    order = make_order(actors.village, residents["张三"])
    earlier = timezone.now() - dt.timedelta(hours=2)
    specimens = specimens_collect(actor=actors.village, order_id=order.pk, collected_at=earlier)
    assert all(s.collected_at == earlier for s in specimens)


@pytest.mark.parametrize(
    ("offset", "message"),
    [(dt.timedelta(hours=1), "in the future"), (dt.timedelta(hours=-49), "too long ago")],
)
def test_a_collection_time_in_the_future_or_too_old_is_refused(actors, residents, offset, message):
    order = make_order(actors.village, residents["张三"])
    with pytest.raises(InvalidRecord, match=message):
        specimens_collect(
            actor=actors.village, order_id=order.pk, collected_at=timezone.now() + offset
        )
    assert not Specimen.objects.filter(order=order).exists()


def test_specimens_are_collected_once(actors, residents):
    order = make_order(actors.village, residents["张三"])
    specimens_collect(actor=actors.village, order_id=order.pk)
    with pytest.raises(InvalidRecord, match="already been collected"):
        specimens_collect(actor=actors.village, order_id=order.pk)
    assert Specimen.objects.filter(order=order).count() == 2


def test_a_cancelled_order_is_not_collected(actors, residents):
    order = make_order(actors.village, residents["张三"])
    order_cancel(actor=actors.village, order_id=order.pk, reason="开错了")
    with pytest.raises(InvalidRecord, match="cancelled"):
        specimens_collect(actor=actors.village, order_id=order.pk)


def test_the_lab_does_not_collect_for_the_clinic(actors, residents):
    order = make_order(actors.township, residents["刘桂兰"])
    with pytest.raises(AccessDenied):
        specimens_collect(actor=actors.labtech, order_id=order.pk)
    with pytest.raises(AccessDenied):
        specimens_collect(actor=actors.outsider, order_id=order.pk)
    assert not Specimen.objects.exists()


def test_panel_ids_helper_finds_the_demo_panels():
    assert len(ids_of_panels("LYTES", "LFT", "CBC")) == 3
