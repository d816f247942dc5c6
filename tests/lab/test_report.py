"""Signing and amending the lab report: versions, the PDF in object storage, timeline, notices."""

from __future__ import annotations

import hashlib
from decimal import Decimal

import pytest
from django.utils import timezone, translation

from audit.models import AuditEvent, Outcome
from lab.models import (
    AlertStatus,
    CriticalAlert,
    Flag,
    ItemStatus,
    LabReport,
    LabReportVersion,
    OrderStatus,
    Result,
    ResultChange,
)
from lab.report_pdf import report_document, report_pdf_render, report_rows
from lab.reports import report_amend, report_pdf_for_user, report_sign
from lab.results import results_validate_technical
from objectstore import get_store
from realtime.models import Notification
from records.models import TimelineEvent
from records.selectors import AccessDenied, NotFound
from records.services import InvalidRecord
from tests.lab.results_support import enter, item_of, received_order, signed_order

pytestmark = pytest.mark.django_db


def _pdf_bytes(version: LabReportVersion) -> bytes:
    return b"".join(get_store().open(version.pdf_key, expected_sha256=version.pdf_sha256))


@pytest.fixture
def ready(actors, residents):
    """An order of the village clinic with K and NA entered and validated technically."""
    order = received_order(patient=residents["张三"], doctor=actors.village, labtech=actors.labtech)
    enter(order, actors.labtech, K="5.6", NA="139")
    results_validate_technical(actor=actors.labtech, order_id=order.pk)
    return order


def test_signing_freezes_version_one_with_its_pdf_in_the_store(actors, ready):
    report = report_sign(
        actor=actors.labtech, order_id=ready.pk, valid_until=timezone.localdate(), comment="复查"
    )
    assert (report.version, report.signed_by, report.mutual_recognition) == (
        1,
        actors.labtech,
        True,
    )
    version = report.versions.get()
    data = _pdf_bytes(version)
    assert data.startswith(b"%PDF")
    assert hashlib.sha256(data).hexdigest() == version.pdf_sha256
    assert version.pdf_size == len(data)
    rows = {row["code"]: row for row in version.results}
    assert rows["K"]["value"] == "5.6"
    assert rows["K"]["flag"] == Flag.HIGH
    assert rows["K"]["reference"] == "3.5–5.3"
    assert rows["K"]["unit"] == "mmol/L"
    assert version.comment == "复查"


def test_signing_validates_every_result_and_reports_the_order(actors, ready):
    report_sign(actor=actors.labtech, order_id=ready.pk)
    ready.refresh_from_db()
    assert ready.status == OrderStatus.REPORTED
    assert ready.reported_at is not None
    assert {item_of(ready, c).status for c in ("K", "NA")} == {ItemStatus.VALIDATED}
    # One person may validate technically and clinically; both steps are kept.
    for result in Result.objects.filter(item__order=ready):
        assert result.tech_validated_by == actors.labtech
        assert result.validated_by == actors.labtech
        assert result.tech_validated_at <= result.validated_at


def test_the_signed_report_goes_on_the_timeline_and_to_the_ordering_doctor(actors, ready):
    report_sign(actor=actors.labtech, order_id=ready.pk)
    entry = TimelineEvent.objects.get(patient=ready.patient, kind="lab.report_signed")
    assert entry.link == f"/lab/orders/{ready.pk}/"
    assert entry.title == "Lab report signed"
    assert ready.number in entry.summary
    notice = Notification.objects.get(recipient=actors.village, kind="lab.report_signed")
    assert ready.number in notice.title
    assert notice.link == f"/lab/orders/{ready.pk}/"
    assert AuditEvent.objects.filter(
        action="lab.report.sign", outcome=Outcome.ALLOWED, resource_id=str(ready.pk)
    ).exists()


def test_a_report_is_signed_once(actors, ready):
    report_sign(actor=actors.labtech, order_id=ready.pk)
    with translation.override("en"), pytest.raises(InvalidRecord, match="signed already"):
        report_sign(actor=actors.labtech, order_id=ready.pk)
    assert LabReportVersion.objects.filter(report__order=ready).count() == 1


def test_a_validity_in_the_past_is_refused_and_nothing_is_stored(actors, ready):
    with pytest.raises(InvalidRecord):
        report_sign(
            actor=actors.labtech,
            order_id=ready.pk,
            valid_until=timezone.localdate().replace(year=2000),
        )
    assert not LabReport.objects.exists()


def test_without_mutual_recognition_there_is_no_validity(actors, ready):
    report = report_sign(
        actor=actors.labtech,
        order_id=ready.pk,
        mutual_recognition=False,
        valid_until=timezone.localdate(),
    )
    assert report.valid_until is None
    assert not report.mutual_recognition


def test_only_lab_staff_sign(actors, ready):
    with pytest.raises(AccessDenied):
        report_sign(actor=actors.village, order_id=ready.pk)
    assert not LabReport.objects.exists()


# --- Amendments --------------------------------------------------------------------------------


def test_an_amendment_adds_a_version_with_its_own_pdf(actors, residents):
    order = signed_order(
        patient=residents["张三"], doctor=actors.village, labtech=actors.labtech, K="5.6", NA="139"
    )
    k = item_of(order, "K")
    report = report_amend(
        actor=actors.labtech, order_id=order.pk, reason="sample mix-up", values={k.pk: "4.2"}
    )
    assert report.version == 2
    first, second = LabReportVersion.objects.filter(report=report).order_by("version")
    assert first.pdf_key != second.pdf_key
    assert _pdf_bytes(second).startswith(b"%PDF")
    assert second.amendment_reason == "sample mix-up"
    assert {r["code"]: r["value"] for r in first.results}["K"] == "5.6"
    assert {r["code"]: r["value"] for r in second.results}["K"] == "4.2"
    result = Result.objects.get(item=k)
    assert (result.value_numeric, result.flag) == (Decimal("4.2"), Flag.NORMAL)
    change = ResultChange.objects.get(result=result)
    assert (change.old_value, change.new_value, change.reason) == ("5.6", "4.2", "sample mix-up")
    assert TimelineEvent.objects.filter(patient=order.patient, kind="lab.report_amended").exists()
    assert Notification.objects.filter(recipient=actors.village, kind="lab.report_amended").exists()


def test_an_amendment_needs_a_reason_and_a_change(actors, residents):
    order = signed_order(
        patient=residents["张三"], doctor=actors.village, labtech=actors.labtech, K="5.6"
    )
    k = item_of(order, "K")
    with translation.override("en"):
        with pytest.raises(InvalidRecord, match="Say why"):
            report_amend(actor=actors.labtech, order_id=order.pk, reason=" ", values={k.pk: "4.2"})
        with pytest.raises(InvalidRecord, match="Nothing was changed"):
            report_amend(actor=actors.labtech, order_id=order.pk, reason="x", values={k.pk: "5.60"})
        with pytest.raises(InvalidRecord, match="outside any plausible value"):
            report_amend(
                actor=actors.labtech, order_id=order.pk, reason="x", values={k.pk: "56000"}
            )
    assert LabReport.objects.get(order=order).version == 1


def test_only_a_signed_report_can_be_amended(actors, ready):
    with pytest.raises(InvalidRecord):
        report_amend(
            actor=actors.labtech,
            order_id=ready.pk,
            reason="x",
            values={item_of(ready, "K").pk: "4.0"},
        )


def test_an_amended_critical_value_raises_and_a_corrected_one_withdraws(actors, residents):
    order = signed_order(
        patient=residents["张三"], doctor=actors.village, labtech=actors.labtech, K="5.6"
    )
    k = item_of(order, "K")
    report_amend(actor=actors.labtech, order_id=order.pk, reason="rerun", values={k.pk: "6.9"})
    alert = CriticalAlert.objects.get(result__item=k)
    assert alert.status == AlertStatus.OPEN
    assert alert.flag == Flag.CRITICAL_HIGH
    report_amend(
        actor=actors.labtech, order_id=order.pk, reason="calibration", values={k.pk: "5.0"}
    )
    alert.refresh_from_db()
    assert alert.status == AlertStatus.WITHDRAWN


def test_the_report_comment_alone_can_be_amended(actors, residents):
    order = signed_order(
        patient=residents["张三"], doctor=actors.village, labtech=actors.labtech, K="5.6"
    )
    report = report_amend(
        actor=actors.labtech, order_id=order.pk, reason="add advice", values={}, comment="复查血钾"
    )
    assert report.version == 2
    assert report.comment == "复查血钾"


# --- The PDF -----------------------------------------------------------------------------------


def test_the_ordering_clinic_opens_the_pdf_and_the_read_is_audited(actors, residents):
    order = signed_order(
        patient=residents["张三"], doctor=actors.village, labtech=actors.labtech, K="5.6"
    )
    chunks, filename = report_pdf_for_user(actor=actors.village, order_id=order.pk, version=1)
    assert b"".join(chunks).startswith(b"%PDF")
    assert filename == f"{order.number}-v1.pdf"
    assert AuditEvent.objects.filter(
        action="lab.report.pdf", outcome=Outcome.ALLOWED, actor_id=actors.village.pk
    ).exists()


def test_others_cannot_open_the_pdf(actors, residents):
    order = signed_order(
        patient=residents["张三"], doctor=actors.village, labtech=actors.labtech, K="5.6"
    )
    with pytest.raises((AccessDenied, NotFound)):
        report_pdf_for_user(actor=actors.outsider, order_id=order.pk, version=1)
    with pytest.raises(NotFound):
        report_pdf_for_user(actor=actors.village, order_id=order.pk, version=2)
    assert AuditEvent.objects.filter(
        action="lab.report.pdf", actor_id=actors.outsider.pk, outcome=Outcome.DENIED
    ).exists()


def test_the_pdf_prints_chinese_names_and_the_critical_flag(actors, residents):
    order = received_order(
        patient=residents["张三"], doctor=actors.village, labtech=actors.labtech, codes=["K"]
    )
    enter(order, actors.labtech, K="6.9")
    items = list(order.items.select_related("test", "specimen", "result"))
    document = report_document(
        order=order,
        rows=report_rows(items),
        specimens=order.specimens.all(),
        signer=actors.labtech,
        signed_at=timezone.now(),
        version=1,
        reason="",
        mutual_recognition=True,
        valid_until=timezone.localdate(),
        comment="",
    )
    assert document.patient_name == "张三"
    assert "*" in document.patient_resident_id
    assert document.rows[0]["flag"] == Flag.CRITICAL_HIGH
    with translation.override("zh-hans"):
        data = report_pdf_render(document)
    assert data.startswith(b"%PDF")
    assert b"STSong-Light" in data
