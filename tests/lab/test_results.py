"""Reading, flagging, saving and validating results (``lab.flags`` and ``lab.results``)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone, translation

from audit.models import AuditEvent, Outcome
from demo.services import demo_resident_id
from lab.flags import ValueProblem, flag_for, flag_reading, parse_value, plausible, read_value
from lab.models import (
    AlertStatus,
    CriticalAlert,
    Flag,
    ItemStatus,
    LabOrder,
    LabTest,
    OrderStatus,
    ReferenceRange,
    Result,
    ResultChange,
    ResultSource,
    Specimen,
    SpecimenStatus,
)
from lab.reports import report_sign
from lab.results import (
    ResultEntry,
    ResultsRefused,
    result_save,
    results_save,
    results_validate_technical,
)
from records.models import Patient
from records.selectors import AccessDenied, NotFound
from records.services import InvalidRecord
from tests.lab.results_support import (
    item_of,
    lab_centre,
    received_order,
    reject_specimen,
)

pytestmark = pytest.mark.django_db


def potassium() -> LabTest:
    """The demo catalogue's potassium, unsaved: plausible 0.5–15, critical 2.8/6.2."""
    return LabTest(
        code="K",
        unit="mmol/L",
        plausible_low=Decimal("0.5"),
        plausible_high=Decimal("15"),
        critical_low=Decimal("2.8"),
        critical_high=Decimal("6.2"),
    )


ADULT_K = ReferenceRange(low=Decimal("3.5"), high=Decimal("5.3"))


# --- Flags -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "flag"),
    [
        ("2.7", Flag.CRITICAL_LOW),
        ("2.8", Flag.CRITICAL_LOW),
        ("2.81", Flag.LOW),
        ("3.49", Flag.LOW),
        ("3.5", Flag.NORMAL),
        ("5.3", Flag.NORMAL),
        ("5.31", Flag.HIGH),
        ("6.19", Flag.HIGH),
        ("6.2", Flag.CRITICAL_HIGH),
        ("9", Flag.CRITICAL_HIGH),
    ],
)
def test_flag_checks_the_critical_limits_first_then_the_reference_range(
    value: str, flag: Flag
) -> None:
    assert flag_for(potassium(), Decimal(value), ADULT_K) == flag


def test_without_a_reference_range_only_critical_values_are_flagged() -> None:
    assert flag_for(potassium(), Decimal("5.9"), None) == Flag.NORMAL
    assert flag_for(potassium(), Decimal("6.5"), None) == Flag.CRITICAL_HIGH


@pytest.mark.parametrize(
    ("value", "ok"),
    [("0.49", False), ("0.5", True), ("15", True), ("15.01", False), ("6500", False)],
)
def test_plausible_range_is_inclusive(value: str, ok: bool) -> None:
    assert plausible(potassium(), Decimal(value)) is ok


@pytest.mark.parametrize(
    ("typed", "parsed"),
    [
        ("4.5", Decimal("4.5")),
        ("4,5", Decimal("4.5")),
        (" ４．５ ", Decimal("4.5")),
        ("4.123456", Decimal("4.1235")),
        ("1,234.5", Decimal("1234.5")),
        ("-0.5", Decimal("-0.5")),
        ("<0.1", "<0.1"),
        (">500", ">500"),
        (">=10", "≥10"),
    ],
)
def test_typed_values_are_read_with_comma_decimals_and_qualifiers(
    typed: str, parsed: Decimal | str
) -> None:
    assert parse_value(potassium(), typed) == parsed


@pytest.mark.parametrize(
    ("typed", "kind"),
    [
        ("", "empty"),
        ("abc", "not_a_number"),
        ("4.5.1", "not_a_number"),
        ("1e5", "not_a_number"),
        ("123456789", "too_large"),
    ],
)
def test_what_is_not_a_number_is_refused(typed: str, kind: str) -> None:
    with pytest.raises(ValueProblem) as caught:
        parse_value(potassium(), typed)
    assert caught.value.kind == kind


def test_a_qualified_value_is_flagged_by_its_bound() -> None:
    glucose = LabTest(code="GLU", critical_high=Decimal("22.2"))
    reading = read_value(glucose, ">30")
    assert reading.numeric is None
    assert reading.text == ">30"
    assert flag_reading(glucose, reading, None) == Flag.CRITICAL_HIGH


@pytest.mark.parametrize(
    ("said", "flag"),
    [
        ("阴性", Flag.NORMAL),
        ("Negative", Flag.NORMAL),
        ("-", Flag.NORMAL),
        ("+", Flag.ABNORMAL),
        ("2+", Flag.ABNORMAL),
    ],
)
def test_a_text_result_is_abnormal_unless_it_says_what_is_expected(said: str, flag: Flag) -> None:
    upro = LabTest(code="UPRO", value_kind="text")
    assert flag_reading(upro, read_value(upro, said), ReferenceRange(text="阴性 negative")) == flag


# --- Saving ------------------------------------------------------------------------------------


def test_a_value_is_saved_with_its_flag_unit_and_the_reference_applied(actors, residents):
    order = received_order(patient=residents["张三"], doctor=actors.village, labtech=actors.labtech)
    result = result_save(actor=actors.labtech, item_id=item_of(order, "K").pk, value="5,6")
    assert result.value_numeric == Decimal("5.6")
    assert result.flag == Flag.HIGH
    assert result.unit == "mmol/L"
    assert (result.reference_low, result.reference_high) == (Decimal("3.5"), Decimal("5.3"))
    assert result.reference_text == "3.5–5.3"
    assert result.source == ResultSource.MANUAL
    assert result.entered_by == actors.labtech
    assert item_of(order, "K").status == ItemStatus.RESULTED
    order.refresh_from_db()
    assert order.status == OrderStatus.IN_PROGRESS
    assert AuditEvent.objects.filter(
        action="lab.result.save", outcome=Outcome.ALLOWED, resource_id=str(order.pk)
    ).exists()


def test_the_reference_range_follows_the_residents_sex(actors, residents):
    man = received_order(
        patient=residents["张三"], doctor=actors.village, labtech=actors.labtech, codes=["ALT"]
    )
    woman = received_order(
        patient=residents["刘桂兰"], doctor=actors.township, labtech=actors.labtech, codes=["ALT"]
    )
    his = result_save(actor=actors.labtech, item_id=item_of(man, "ALT").pk, value="45")
    hers = result_save(actor=actors.labtech, item_id=item_of(woman, "ALT").pk, value="45")
    assert (his.flag, his.reference_text) == (Flag.NORMAL, "9–50")
    assert (hers.flag, hers.reference_text) == (Flag.HIGH, "7–40")


def test_a_child_gets_the_range_of_the_childrens_age_band(actors, residents):
    dongshan = residents["张三"].home_institution
    born = timezone.localdate() - dt.timedelta(days=8 * 365)
    child = Patient.objects.create(
        resident_id=demo_resident_id("110101", born, 451, "F"),
        name="小红",
        sex="F",
        birth_date=born,
        home_institution=dongshan,
        registered_by=actors.village,
    )
    # The demo's children's band for haemoglobin is the first sex's adult one (130–175),
    # while an adult woman's is 115–150.
    test = LabTest.objects.get(centre=lab_centre(), code="HGB")
    children = ReferenceRange.objects.get(test=test, age_max_days__isnull=False)
    order = received_order(
        patient=child, doctor=actors.village, labtech=actors.labtech, codes=["HGB"]
    )
    result = result_save(actor=actors.labtech, item_id=item_of(order, "HGB").pk, value="120")
    assert (result.reference_low, result.reference_high) == (children.low, children.high)
    assert result.reference_text == "130–175"
    assert result.flag == Flag.LOW


def test_an_implausible_value_is_refused_with_a_clear_message(actors, residents):
    order = received_order(patient=residents["张三"], doctor=actors.village, labtech=actors.labtech)
    with translation.override("en"), pytest.raises(InvalidRecord) as caught:
        result_save(actor=actors.labtech, item_id=item_of(order, "K").pk, value="6500")
    with translation.override("en"):
        assert str(caught.value) == (
            "6500 mmol/L is outside any plausible value for Potassium (0.5–15):"
            " check the unit and the value"
        )
    assert not Result.objects.filter(item__order=order).exists()
    refused = AuditEvent.objects.get(action="lab.result.save", outcome=Outcome.FAILED)
    assert "outside any plausible value" in refused.reason


def test_a_result_for_a_cancelled_order_is_refused(actors, residents):
    order = received_order(patient=residents["张三"], doctor=actors.village, labtech=actors.labtech)
    LabOrder.objects.filter(pk=order.pk).update(status=OrderStatus.CANCELLED)
    with translation.override("en"), pytest.raises(InvalidRecord) as caught:
        result_save(actor=actors.labtech, item_id=item_of(order, "K").pk, value="4.1")
    with translation.override("en"):
        assert str(caught.value) == "The order was cancelled; the result was not saved."
    assert not Result.objects.filter(item__order=order).exists()


def test_a_result_for_a_rejected_or_unreceived_specimen_is_refused(actors, residents):
    order = received_order(
        patient=residents["张三"], doctor=actors.village, labtech=actors.labtech, codes=["K", "HGB"]
    )
    reject_specimen(order, "K")
    Specimen.objects.filter(pk=item_of(order, "HGB").specimen_id).update(
        status=SpecimenStatus.SHIPPED
    )
    with translation.override("en"):
        with pytest.raises(InvalidRecord, match="was rejected"):
            result_save(actor=actors.labtech, item_id=item_of(order, "K").pk, value="4.1")
        with pytest.raises(InvalidRecord, match="has not been received"):
            result_save(actor=actors.labtech, item_id=item_of(order, "HGB").pk, value="140")
    assert not Result.objects.filter(item__order=order).exists()


def test_a_correction_needs_a_reason_and_keeps_the_earlier_value(actors, residents):
    order = received_order(patient=residents["张三"], doctor=actors.village, labtech=actors.labtech)
    item = item_of(order, "K")
    result_save(actor=actors.labtech, item_id=item.pk, value="4.1")
    with translation.override("en"), pytest.raises(InvalidRecord, match="Say why"):
        result_save(actor=actors.labtech, item_id=item.pk, value="4.4")
    corrected = result_save(
        actor=actors.labtech, item_id=item.pk, value="4.4", reason="typed the wrong sample"
    )
    assert corrected.value_numeric == Decimal("4.4")
    change = ResultChange.objects.get(result=corrected)
    assert (change.old_value, change.new_value, change.reason) == (
        "4.1",
        "4.4",
        "typed the wrong sample",
    )


def test_saving_the_same_value_again_changes_nothing(actors, residents):
    order = received_order(patient=residents["张三"], doctor=actors.village, labtech=actors.labtech)
    item = item_of(order, "K")
    result_save(actor=actors.labtech, item_id=item.pk, value="4.1")
    results_validate_technical(actor=actors.labtech, order_id=order.pk)
    again = result_save(actor=actors.labtech, item_id=item.pk, value="4.10")
    assert again.value_numeric == Decimal("4.1")
    assert item_of(order, "K").status == ItemStatus.TECH_VALIDATED
    assert not ResultChange.objects.exists()


def test_a_validated_result_changes_only_through_an_amendment(actors, residents):
    order = received_order(
        patient=residents["张三"], doctor=actors.village, labtech=actors.labtech, codes=["K"]
    )
    item = item_of(order, "K")
    result_save(actor=actors.labtech, item_id=item.pk, value="4.1")
    results_validate_technical(actor=actors.labtech, order_id=order.pk)
    report_sign(actor=actors.labtech, order_id=order.pk)
    with translation.override("en"), pytest.raises(InvalidRecord, match="amend the report"):
        result_save(actor=actors.labtech, item_id=item.pk, value="4.4", reason="wrong")
    assert Result.objects.get(item=item).value_numeric == Decimal("4.1")


def test_only_lab_staff_of_the_centre_save_results(actors, residents):
    order = received_order(patient=residents["张三"], doctor=actors.village, labtech=actors.labtech)
    item = item_of(order, "K")
    with pytest.raises(AccessDenied):
        result_save(actor=actors.village, item_id=item.pk, value="4.1")
    with pytest.raises((AccessDenied, NotFound)):
        result_save(actor=actors.outsider, item_id=item.pk, value="4.1")
    with pytest.raises(NotFound):
        result_save(actor=actors.labtech, item_id=999999, value="4.1")
    assert not Result.objects.exists()
    assert AuditEvent.objects.filter(action="lab.result.save", outcome=Outcome.DENIED).count() == 2


def test_several_values_are_saved_all_or_none(actors, residents):
    order = received_order(patient=residents["张三"], doctor=actors.village, labtech=actors.labtech)
    k, na = item_of(order, "K"), item_of(order, "NA")
    with pytest.raises(ResultsRefused) as caught:
        results_save(
            actor=actors.labtech,
            order_id=order.pk,
            entries=[ResultEntry(k.pk, "4.1"), ResultEntry(na.pk, "abc")],
        )
    assert set(caught.value.errors) == {na.pk}
    assert not Result.objects.filter(item__order=order).exists()
    saved = results_save(
        actor=actors.labtech,
        order_id=order.pk,
        entries=[ResultEntry(k.pk, "4.1"), ResultEntry(na.pk, "139")],
    )
    assert len(saved) == 2


def test_a_test_of_another_order_is_refused(actors, residents):
    order = received_order(patient=residents["张三"], doctor=actors.village, labtech=actors.labtech)
    other = received_order(patient=residents["张三"], doctor=actors.village, labtech=actors.labtech)
    with pytest.raises(ResultsRefused):
        results_save(
            actor=actors.labtech,
            order_id=order.pk,
            entries=[ResultEntry(item_of(other, "K").pk, "4.1")],
        )
    assert not Result.objects.exists()


# --- Critical values ---------------------------------------------------------------------------


def test_a_critical_value_raises_one_alert(actors, residents):
    order = received_order(patient=residents["张三"], doctor=actors.village, labtech=actors.labtech)
    result = result_save(actor=actors.labtech, item_id=item_of(order, "K").pk, value="6.8")
    assert result.flag == Flag.CRITICAL_HIGH
    alert = CriticalAlert.objects.get(result=result)
    assert alert.status == AlertStatus.OPEN
    assert alert.order == order
    result_save(actor=actors.labtech, item_id=item_of(order, "K").pk, value="6.8", comment="x")
    assert CriticalAlert.objects.filter(result=result).count() == 1


def test_correcting_a_critical_value_to_a_normal_one_withdraws_its_alert(actors, residents):
    order = received_order(patient=residents["张三"], doctor=actors.village, labtech=actors.labtech)
    item = item_of(order, "K")
    result = result_save(actor=actors.labtech, item_id=item.pk, value="6.8")
    result_save(actor=actors.labtech, item_id=item.pk, value="4.8", reason="haemolysed sample")
    alert = CriticalAlert.objects.get(result=result)
    assert alert.status == AlertStatus.WITHDRAWN


def test_a_refused_value_raises_no_alert(actors, residents):
    order = received_order(patient=residents["张三"], doctor=actors.village, labtech=actors.labtech)
    k, na = item_of(order, "K"), item_of(order, "NA")
    with pytest.raises(ResultsRefused):
        results_save(
            actor=actors.labtech,
            order_id=order.pk,
            entries=[ResultEntry(k.pk, "7.5"), ResultEntry(na.pk, "9999")],
        )
    assert not CriticalAlert.objects.exists()


# --- Technical validation ----------------------------------------------------------------------


def test_technical_validation_marks_the_entered_results(actors, residents):
    order = received_order(patient=residents["张三"], doctor=actors.village, labtech=actors.labtech)
    result_save(actor=actors.labtech, item_id=item_of(order, "K").pk, value="4.1")
    count = results_validate_technical(actor=actors.labtech, order_id=order.pk)
    assert count == 1
    assert item_of(order, "K").status == ItemStatus.TECH_VALIDATED
    assert item_of(order, "NA").status == ItemStatus.PENDING
    result = Result.objects.get(item__order=order)
    assert result.tech_validated_by == actors.labtech
    assert result.tech_validated_at is not None


def test_technical_validation_with_nothing_entered_is_refused(actors, residents):
    order = received_order(patient=residents["张三"], doctor=actors.village, labtech=actors.labtech)
    with pytest.raises(InvalidRecord):
        results_validate_technical(actor=actors.labtech, order_id=order.pk)
    with pytest.raises(InvalidRecord):
        results_validate_technical(
            actor=actors.labtech, order_id=order.pk, item_ids=[item_of(order, "K").pk]
        )


def test_changing_a_technically_validated_value_needs_validation_again(actors, residents):
    order = received_order(patient=residents["张三"], doctor=actors.village, labtech=actors.labtech)
    item = item_of(order, "K")
    result_save(actor=actors.labtech, item_id=item.pk, value="4.1")
    results_validate_technical(actor=actors.labtech, order_id=order.pk)
    result = result_save(actor=actors.labtech, item_id=item.pk, value="4.3", reason="rerun")
    assert item_of(order, "K").status == ItemStatus.RESULTED
    assert result.tech_validated_by is None


def test_signing_needs_every_result_validated_technically(actors, residents):
    order = received_order(patient=residents["张三"], doctor=actors.village, labtech=actors.labtech)
    result_save(actor=actors.labtech, item_id=item_of(order, "K").pk, value="4.1")
    results_validate_technical(actor=actors.labtech, order_id=order.pk)
    with translation.override("en"), pytest.raises(InvalidRecord, match="still waiting: NA"):
        report_sign(actor=actors.labtech, order_id=order.pk)


def test_a_rejected_specimen_does_not_hold_the_report_back(actors, residents):
    order = received_order(
        patient=residents["张三"], doctor=actors.village, labtech=actors.labtech, codes=["K", "HGB"]
    )
    reject_specimen(order, "HGB")
    result_save(actor=actors.labtech, item_id=item_of(order, "K").pk, value="4.1")
    results_validate_technical(actor=actors.labtech, order_id=order.pk)
    report = report_sign(actor=actors.labtech, order_id=order.pk)
    rows = {row["code"]: row for row in report.versions.get().results}
    assert rows["HGB"]["rejected"] == "haemolysed"
    assert rows["K"]["value"] == "4.1"


def test_the_same_test_sent_twice_is_refused(actors, residents):
    order = received_order(patient=residents["张三"], doctor=actors.village, labtech=actors.labtech)
    k = item_of(order, "K")
    with pytest.raises(ResultsRefused):
        results_save(
            actor=actors.labtech,
            order_id=order.pk,
            entries=[ResultEntry(k.pk, "4.1"), ResultEntry(k.pk, "4.2")],
        )
    assert not Result.objects.exists()
