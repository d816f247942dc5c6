"""Analyser imports: the file is read and checked row by row; applying is all or nothing."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import translation

from audit.models import AuditEvent, Outcome
from lab import importing
from lab.importing import import_apply, import_discard, import_preview, row_error
from lab.models import (
    AlertStatus,
    BatchStatus,
    CriticalAlert,
    Flag,
    ImportBatch,
    ItemStatus,
    Result,
    ResultSource,
)
from lab.numbering import luhn_digit
from records.selectors import AccessDenied, NotFound
from records.services import InvalidRecord
from tests.lab.results_support import (
    barcode_of,
    enter,
    item_of,
    lab_centre,
    received_order,
    reject_specimen,
    signed_order,
)

pytestmark = pytest.mark.django_db


def csv_of(*rows: str, header: str = "barcode,test,value,unit") -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


@pytest.fixture
def order(actors, residents):
    return received_order(
        patient=residents["张三"],
        doctor=actors.village,
        labtech=actors.labtech,
        codes=["K", "NA", "GLU"],
    )


def preview(actors, data: bytes, filename: str = "run.csv") -> ImportBatch:
    return import_preview(
        actor=actors.labtech, centre_id=lab_centre().pk, filename=filename, data=data
    )


def outcomes(batch: ImportBatch) -> dict[str, tuple[str, str]]:
    """code -> (flag, error) of each row."""
    return {row["code"]: (row["flag"], row["error"]) for row in batch.rows}


def test_chinese_headers_in_gb18030_are_read_and_flagged_without_saving(actors, order):
    bc = barcode_of(order, "K")
    text = f'条码,项目,结果,单位\n{bc},K,6.9,mmol/L\n{bc},NA,139,mmol/L\n{bc},GLU,"7,2",mmol/L\n'
    batch = preview(actors, text.encode("gb18030"), filename="生化.csv")
    assert batch.status == BatchStatus.PREVIEW
    assert outcomes(batch) == {
        "K": (Flag.CRITICAL_HIGH, ""),
        "NA": (Flag.NORMAL, ""),
        "GLU": (Flag.HIGH, ""),
    }
    assert batch.rows[0]["patient"] == "张三"
    assert batch.rows[0]["order"] == order.number
    assert not Result.objects.exists()
    event = AuditEvent.objects.get(action="lab.import.preview", outcome=Outcome.ALLOWED)
    assert event.detail["sha256"] == batch.sha256
    assert event.detail["file"] == "生化.csv"
    assert event.detail["batch"] == batch.pk


def test_a_bom_and_semicolons_or_tabs_are_accepted(actors, order):
    bc = barcode_of(order, "K")
    semicolons = (
        b"\xef\xbb\xbf" + f"Barcode;Test_Code;Result;Unit;Comment\n{bc};K;4,1;mmol/L;ok\n".encode()
    )
    tabs = f"barcode\ttest\tvalue\tunit\tinstrument\n{bc}\tK\t4.1\tmmol/l\tAU480\n".encode()
    for data in (semicolons, tabs):
        batch = preview(actors, data)
        assert outcomes(batch) == {"K": (Flag.NORMAL, "")}
    assert batch.rows[0]["instrument"] == "AU480"


def test_wrong_columns_refuse_the_whole_file_and_name_them(actors, order):
    data = csv_of(f"{barcode_of(order, 'K')},K,4.1", header="barcode,test,result,patient")
    with translation.override("en"), pytest.raises(InvalidRecord) as caught:
        preview(actors, data)
    with translation.override("en"):
        message = str(caught.value)
    assert "missing: unit (单位)" in message
    assert "not known: patient" in message
    assert not ImportBatch.objects.exists()
    assert AuditEvent.objects.filter(action="lab.import.preview", outcome=Outcome.FAILED).exists()


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "empty"),
        (b"barcode,test,value,unit\n", "no results"),
        (b"\xff\xfe\x00b\x00a\x00r", "could not be read"),
    ],
)
def test_an_unreadable_file_is_refused(actors, data: bytes, words: str):
    with translation.override("en"), pytest.raises(InvalidRecord, match=words):
        preview(actors, data)
    assert not ImportBatch.objects.exists()


def test_too_many_rows_are_refused(actors, order, monkeypatch):
    monkeypatch.setattr(importing, "MAX_IMPORT_ROWS", 2)
    bc = barcode_of(order, "K")
    with translation.override("en"), pytest.raises(InvalidRecord, match="at most 2"):
        preview(actors, csv_of(*[f"{bc},K,4.1,mmol/L"] * 3))


def test_a_unit_that_differs_from_the_catalogue_is_an_error(actors, order):
    bc = barcode_of(order, "K")
    batch = preview(actors, csv_of(f"{bc},GLU,126,mg/dL", f"{bc},K,4.1,mmol/L"))
    flag, error = outcomes(batch)["GLU"]
    assert "mg/dL" in error
    assert "mmol/L" in error
    assert flag == ""
    assert outcomes(batch)["K"] == (Flag.NORMAL, "")


def test_unknown_and_malformed_barcodes_are_errors(actors, order):
    unknown = "99010100001"
    unknown += luhn_digit(unknown)
    batch = preview(actors, csv_of(f"{unknown},K,4.1,mmol/L", "12345,K,4.1,mmol/L"))
    first, second = (row["error"] for row in batch.rows)
    assert first.startswith("Unknown barcode")
    assert second.startswith("Malformed barcode")


def test_duplicate_rows_for_the_same_test_are_errors(actors, order):
    bc = barcode_of(order, "K")
    batch = preview(actors, csv_of(f"{bc},K,4.1,mmol/L", f"{bc},k,4.3,mmol/L"))
    assert [row["error"] for row in batch.rows] == [
        "Duplicate: line 3 has the same specimen and test.",
        "Duplicate: line 2 has the same specimen and test.",
    ]


def test_each_row_is_checked_like_a_typed_value(actors, residents, order):
    bc = barcode_of(order, "K")
    done = signed_order(
        patient=residents["张三"], doctor=actors.village, labtech=actors.labtech, K="4.1"
    )
    batch = preview(
        actors,
        csv_of(
            f"{bc},K,abc,mmol/L",
            f"{bc},NA,1400,mmol/L",
            f"{bc},HGB,140,g/L",
            f"{bc},XYZ,1,mmol/L",
            f"{barcode_of(done, 'K')},K,4.4,mmol/L",
        ),
    )
    errors = [row["error"] for row in batch.rows]
    assert errors[0].startswith("“abc” is not a number")
    assert "outside any plausible value for Sodium" in errors[1]
    assert errors[2] == "HGB was not ordered for this specimen."
    assert errors[3].startswith("Unknown test “XYZ”")
    assert "amend the report" in errors[4]


def test_a_rejected_specimen_or_cancelled_order_is_an_error(actors, order):
    reject_specimen(order, "K")
    batch = preview(actors, csv_of(f"{barcode_of(order, 'K')},NA,139,mmol/L"))
    assert "rejected" in batch.rows[0]["error"]


def test_errors_are_shown_in_the_readers_language(actors, order):
    batch = preview(actors, csv_of("12345,K,4.1,mmol/L"))
    with translation.override("en"):
        assert row_error(batch.rows[0]).startswith("Malformed barcode")
    with translation.override("zh-hans"):
        shown = row_error(batch.rows[0])
    assert shown  # translated when the catalogue has it, else the English text


# --- Applying ----------------------------------------------------------------------------------


def test_apply_saves_every_row_and_raises_critical_alerts(actors, order):
    bc = barcode_of(order, "K")
    batch = preview(actors, csv_of(f"{bc},K,6.9,mmol/L", f"{bc},NA,139,mmol/L"))
    assert import_apply(actor=actors.labtech, batch_id=batch.pk) == 2
    batch.refresh_from_db()
    assert batch.status == BatchStatus.APPLIED
    assert batch.applied_at is not None
    k = Result.objects.get(item=item_of(order, "K"))
    assert (k.value_numeric, k.flag, k.source, k.batch_id) == (
        Decimal("6.9"),
        Flag.CRITICAL_HIGH,
        ResultSource.IMPORT,
        batch.pk,
    )
    assert CriticalAlert.objects.get(result=k).status == AlertStatus.OPEN
    assert item_of(order, "NA").status == ItemStatus.RESULTED
    event = AuditEvent.objects.get(action="lab.import.apply", outcome=Outcome.ALLOWED)
    assert event.detail["sha256"] == batch.sha256
    with pytest.raises(InvalidRecord):
        import_apply(actor=actors.labtech, batch_id=batch.pk)


def test_apply_refuses_a_file_with_errors(actors, order):
    bc = barcode_of(order, "K")
    batch = preview(actors, csv_of(f"{bc},K,4.1,mmol/L", f"{bc},NA,abc,mmol/L"))
    with pytest.raises(InvalidRecord):
        import_apply(actor=actors.labtech, batch_id=batch.pk)
    assert not Result.objects.exists()
    assert AuditEvent.objects.filter(action="lab.import.apply", outcome=Outcome.FAILED).exists()


def test_a_row_made_wrong_after_the_preview_makes_apply_save_nothing(actors, residents, order):
    other = received_order(
        patient=residents["张三"], doctor=actors.village, labtech=actors.labtech, codes=["HGB"]
    )
    batch = preview(
        actors,
        csv_of(f"{barcode_of(order, 'K')},K,6.9,mmol/L", f"{barcode_of(other, 'HGB')},HGB,140,g/L"),
    )
    assert not any(row["error"] for row in batch.rows)
    reject_specimen(other, "HGB")
    with translation.override("en"), pytest.raises(InvalidRecord, match="Nothing was saved"):
        import_apply(actor=actors.labtech, batch_id=batch.pk)
    assert not Result.objects.exists()
    assert not CriticalAlert.objects.exists()
    batch.refresh_from_db()
    assert batch.status == BatchStatus.PREVIEW
    assert "rejected" in batch.rows[1]["error"]
    assert not batch.rows[0]["error"]


def test_an_import_corrects_an_entered_but_unvalidated_value(actors, order):
    enter(order, actors.labtech, K="4.1")
    batch = preview(actors, csv_of(f"{barcode_of(order, 'K')},K,4.3,mmol/L"))
    import_apply(actor=actors.labtech, batch_id=batch.pk)
    result = Result.objects.get(item=item_of(order, "K"))
    assert result.value_numeric == Decimal("4.3")
    assert result.changes.get().reason == "analyser import run.csv"


def test_discard_keeps_the_batch_and_saves_nothing(actors, order):
    batch = preview(actors, csv_of(f"{barcode_of(order, 'K')},K,4.1,mmol/L"))
    import_discard(actor=actors.labtech, batch_id=batch.pk)
    batch.refresh_from_db()
    assert batch.status == BatchStatus.DISCARDED
    with pytest.raises(InvalidRecord):
        import_apply(actor=actors.labtech, batch_id=batch.pk)
    assert not Result.objects.exists()
    assert AuditEvent.objects.filter(action="lab.import.discard", outcome=Outcome.ALLOWED).exists()


def test_only_lab_staff_of_the_centre_import(actors, order):
    data = csv_of(f"{barcode_of(order, 'K')},K,4.1,mmol/L")
    with pytest.raises(AccessDenied):
        import_preview(actor=actors.village, centre_id=lab_centre().pk, filename="x.csv", data=data)
    batch = preview(actors, data)
    for outsider in (actors.village, actors.outsider):
        with pytest.raises(AccessDenied):
            import_apply(actor=outsider, batch_id=batch.pk)
    with pytest.raises(NotFound):
        import_apply(actor=actors.labtech, batch_id=999999)
    assert not Result.objects.exists()
    assert AuditEvent.objects.filter(action="lab.import.apply", outcome=Outcome.DENIED).count() == 2
