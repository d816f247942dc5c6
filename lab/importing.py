"""Analyser exports: a CSV file is parsed and previewed row by row before anything is saved.

:func:`import_preview` reads the file (UTF-8, UTF-8 with BOM or GB18030; comma, semicolon or
tab), checks its columns (a wrong file is refused as a whole), checks every row as
:func:`lab.results.prepare` would when saving, and keeps the outcome of each row in an
``ImportBatch`` in preview. :func:`import_apply` checks every row again and saves all the
results in one transaction, or none; :func:`import_discard` drops the preview.

Columns (case-insensitive, English or Chinese): ``barcode``/条码, ``test``/``test_code``/项目,
``value``/结果, ``unit``/单位, and optionally ``comment``/备注 and ``instrument``/仪器.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import User
from association.models import DiagnosticCentre
from association.selectors import actor_scope
from audit.models import Outcome
from audit.services import audit_record
from lab.access import is_lab_staff, lab_centre_ids
from lab.flags import reference_label
from lab.models import BatchStatus, ImportBatch, LabTest, OrderItem, ResultSource, Specimen
from lab.numbering import barcode_valid
from lab.results import (
    ITEM_RELATED,
    Message,
    ResultEntry,
    ResultProblem,
    ResultsRefused,
    english,
    message_data,
    message_text,
    msg,
    prepare,
    save_entries,
)
from lab.workflow_common import MAX_IMPORT_BYTES, MAX_IMPORT_ROWS, refuse_plain
from records.selectors import AccessDenied, NotFound

ACTION_PREVIEW = "lab.import.preview"
ACTION_APPLY = "lab.import.apply"
ACTION_DISCARD = "lab.import.discard"
ACTION_VIEW = "lab.import.view"

MAX_FILENAME = 200
MAX_CELL = 200

# Header spellings accepted for each column (compared case-folded, spaces and _ removed).
COLUMNS: dict[str, tuple[str, ...]] = {
    "barcode": ("barcode", "条码", "条码号", "样本条码", "标本条码"),
    "test": ("test", "testcode", "code", "项目", "项目代码", "检验项目"),
    "value": ("value", "result", "结果", "结果值"),
    "unit": ("unit", "units", "单位"),
    "comment": ("comment", "note", "备注"),
    "instrument": ("instrument", "analyser", "analyzer", "仪器"),
}
REQUIRED = ("barcode", "test", "value", "unit")
_HEADER_NAMES = {alias: column for column, names in COLUMNS.items() for alias in names}


class ImportRefused(Exception):
    """The file as a whole cannot be read (not audited yet)."""

    def __init__(self, message: str | Promise) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Table:
    columns: dict[str, int]  # column name -> index
    rows: list[tuple[int, list[str]]]  # (line number, cells)


# --- Reading the file --------------------------------------------------------------------------


def decode(data: bytes) -> str:
    """The file's text: UTF-8 (with or without BOM), else GB18030.

    Raises
    ------
    ImportRefused
    """
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    for encoding in ("utf-8", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ImportRefused(
        gettext_lazy(
            "The file could not be read as text. Export it as CSV in UTF-8 or GB18030 (GBK)."
        )
    )


def _header_key(cell: str) -> str:
    folded = unicodedata.normalize("NFKC", cell).strip().strip('"').casefold()
    return re.sub(r"[\s_\-]+", "", folded)


def _dialect(text: str) -> type[csv.Dialect] | csv.Dialect:
    first = text.split("\n", 1)[0]
    try:
        return csv.Sniffer().sniff(first, delimiters=",;\t")
    except csv.Error:
        counts = {d: first.count(d) for d in ",;\t"}
        delimiter = max(counts, key=lambda d: counts[d])

        class Guess(csv.excel):
            pass

        Guess.delimiter = delimiter
        return Guess


def read_table(data: bytes) -> Table:
    """The file's columns and non-empty rows.

    Raises
    ------
    ImportRefused
    """
    if not data.strip():
        raise ImportRefused(gettext_lazy("The file is empty."))
    if len(data) > MAX_IMPORT_BYTES:
        raise ImportRefused(
            msg(
                gettext_lazy("The file is too large (at most %(mb)s MB); split the export."),
                mb=MAX_IMPORT_BYTES // (1024 * 1024),
            )
        )
    text = decode(data).replace("\r\n", "\n").replace("\r", "\n")
    if "\x00" in text:
        raise ImportRefused(gettext_lazy("This is not a CSV file."))
    try:
        lines = list(csv.reader(io.StringIO(text), _dialect(text)))
    except csv.Error:
        raise ImportRefused(gettext_lazy("The file could not be read as CSV.")) from None
    numbered = [(n, row) for n, row in enumerate(lines, start=1) if any(c.strip() for c in row)]
    if not numbered:
        raise ImportRefused(gettext_lazy("The file is empty."))
    (_, header), body = numbered[0], numbered[1:]
    columns = _columns(header)
    if not body:
        raise ImportRefused(gettext_lazy("The file has a header but no results."))
    if len(body) > MAX_IMPORT_ROWS:
        raise ImportRefused(
            msg(
                gettext_lazy(
                    "The file has %(rows)s rows; at most %(max)s can be imported at once."
                ),
                rows=len(body),
                max=MAX_IMPORT_ROWS,
            )
        )
    return Table(columns=columns, rows=body)


def _columns(header: Sequence[str]) -> dict[str, int]:
    """Map the header to the known columns; refuse missing, unknown or repeated ones."""
    columns: dict[str, int] = {}
    unknown: list[str] = []
    repeated: list[str] = []
    for index, cell in enumerate(header):
        name = _HEADER_NAMES.get(_header_key(cell))
        if name is None:
            unknown.append(cell.strip() or f"#{index + 1}")
        elif name in columns:
            repeated.append(cell.strip())
        else:
            columns[name] = index
    missing = [c for c in REQUIRED if c not in columns]
    if not (missing or unknown or repeated):
        return columns
    parts = _Joined()
    if missing:
        parts.append(
            msg(
                gettext_lazy("missing: %(columns)s"),
                columns=", ".join(_column_label(c) for c in missing),
            )
        )
    if unknown:
        parts.append(msg(gettext_lazy("not known: %(columns)s"), columns=", ".join(unknown[:10])))
    if repeated:
        parts.append(msg(gettext_lazy("repeated: %(columns)s"), columns=", ".join(repeated)))
    raise ImportRefused(
        msg(
            gettext_lazy(
                "The file's columns are wrong (%(problems)s). Expected columns: barcode (条码),"
                " test (项目), value (结果), unit (单位), and optionally comment (备注) and"
                " instrument (仪器)."
            ),
            problems=parts,
        )
    )


class _Joined(list[Message]):
    """Messages shown together, each in the language active when shown."""

    def __str__(self) -> str:
        return "; ".join(str(part) for part in self)


_CHINESE_HEADER = {"barcode": "条码", "test": "项目", "value": "结果", "unit": "单位"}


def _column_label(column: str) -> str:
    return f"{column} ({_CHINESE_HEADER[column]})" if column in _CHINESE_HEADER else column


# --- Checking rows -----------------------------------------------------------------------------


def unit_key(unit: str) -> str:
    """Units compared loosely: case, spaces, micro sign and "10*9" vs "10^9" do not matter."""
    folded = unicodedata.normalize("NFKC", unit).casefold().replace(" ", "")
    folded = folded.replace("μ", "u").replace("µ", "u").replace("*", "^").replace("×", "")
    return folded.removeprefix("x")


def _cell(cells: Sequence[str], columns: Mapping[str, int], name: str) -> str:
    index = columns.get(name)
    if index is None or index >= len(cells):
        return ""
    return cells[index].strip()[:MAX_CELL]


def _find_test(
    tests: Mapping[str, LabTest], names: Mapping[str, LabTest], text: str
) -> LabTest | None:
    key = unicodedata.normalize("NFKC", text).strip().casefold()
    return tests.get(key) or names.get(key)


def check_rows(*, centre_id: int, table: Table) -> list[dict[str, Any]]:
    """Each row's outcome: what it would save (with its flag) or why it cannot."""
    parsed: list[dict[str, Any]] = [
        {
            "line": line,
            "barcode": _cell(cells, table.columns, "barcode"),
            "code": _cell(cells, table.columns, "test"),
            "value": _cell(cells, table.columns, "value"),
            "unit": _cell(cells, table.columns, "unit"),
            "comment": _cell(cells, table.columns, "comment"),
            "instrument": _cell(cells, table.columns, "instrument"),
        }
        for line, cells in table.rows
    ]
    catalogue = list(LabTest.objects.filter(centre_id=centre_id))
    tests = {t.code.casefold(): t for t in catalogue}
    names = {n.casefold(): t for t in catalogue for n in (t.name, t.name_en) if n}
    barcodes = {r["barcode"] for r in parsed if barcode_valid(r["barcode"])}
    specimens = {
        s.barcode: s
        for s in Specimen.objects.filter(barcode__in=barcodes, order__centre_id=centre_id)
    }
    item_ids = {
        (i["specimen_id"], i["test_id"]): i["pk"]
        for i in OrderItem.objects.filter(specimen__in=specimens.values()).values(
            "pk", "specimen_id", "test_id"
        )
    }
    items = {
        i.pk: i
        for i in OrderItem.objects.filter(pk__in=item_ids.values())
        .select_related(*ITEM_RELATED, "result")
        .prefetch_related("test__ranges")
    }
    seen: dict[tuple[str, int], dict[str, Any]] = {}
    for row in parsed:
        _check_row(
            row,
            tests=tests,
            names=names,
            specimens=specimens,
            item_ids=item_ids,
            items=items,
            seen=seen,
        )
    return parsed


def _fail(row: dict[str, Any], message: str | Promise) -> None:
    """Mark a row wrong: the message in English (the record) and as data (the page)."""
    row["error"] = english(message)
    row["error_data"] = message_data(message)
    row["flag"] = ""


def row_error(row: Mapping[str, Any]) -> str:
    """A row's error in the active language."""
    data = row.get("error_data")
    if isinstance(data, dict):
        return message_text(data)
    return str(row.get("error", ""))


def _check_row(
    row: dict[str, Any],
    *,
    tests: Mapping[str, LabTest],
    names: Mapping[str, LabTest],
    specimens: Mapping[str, Specimen],
    item_ids: Mapping[tuple[int, int], int],
    items: Mapping[int, OrderItem],
    seen: dict[tuple[str, int], dict[str, Any]],
) -> None:
    row.update(
        error="",
        error_data=None,
        flag="",
        item=None,
        order="",
        patient="",
        test_name="",
        reference="",
    )
    barcode = row["barcode"]
    if not barcode:
        _fail(row, gettext_lazy("The barcode is missing."))
        return
    if not barcode_valid(barcode):
        _fail(
            row,
            gettext_lazy("Malformed barcode: a specimen barcode has 12 digits with a check digit."),
        )
        return
    specimen = specimens.get(barcode)
    if specimen is None:
        _fail(row, gettext_lazy("Unknown barcode: no specimen of this lab has it."))
        return
    test = _find_test(tests, names, row["code"])
    if test is None:
        _fail(
            row,
            msg(
                gettext_lazy("Unknown test “%(code)s”: not in this lab's catalogue."),
                code=row["code"],
            ),
        )
        return
    row.update(test_name=test.name, test_name_en=test.name_en)
    item_id = item_ids.get((specimen.pk, test.pk))
    if item_id is None:
        _fail(row, msg(gettext_lazy("%(test)s was not ordered for this specimen."), test=test.code))
        return
    item = items[item_id]
    row.update(item=item.pk, order=item.order.number, patient=item.order.patient.name)
    key = (barcode, test.pk)
    first = seen.get(key)
    if first is not None:
        _fail(
            row,
            msg(
                gettext_lazy("Duplicate: line %(line)s has the same specimen and test."),
                line=first["line"],
            ),
        )
        if not first["error"]:
            _fail(
                first,
                msg(
                    gettext_lazy("Duplicate: line %(line)s has the same specimen and test."),
                    line=row["line"],
                ),
            )
        return
    seen[key] = row
    if test.unit and unit_key(row["unit"]) != unit_key(test.unit):
        given = row["unit"] or "—"
        _fail(
            row,
            msg(
                gettext_lazy(
                    "The unit %(given)s differs from the catalogue's %(unit)s for %(test)s."
                ),
                given=given,
                unit=test.unit,
                test=test.code,
            ),
        )
        return
    entry = ResultEntry(item_id=item.pk, value=row["value"], comment=row["comment"])
    try:
        prepared = prepare(item, entry, require_reason=False)
    except ResultProblem as exc:
        _fail(row, exc.message)
        return
    row["flag"] = prepared.flag
    reference = prepared.reference
    if reference is not None:
        row["reference"] = reference_label(reference.low, reference.high, reference.text)


def error_count(rows: Iterable[Mapping[str, Any]]) -> int:
    return sum(1 for r in rows if r.get("error"))


# --- Access ------------------------------------------------------------------------------------


def _deny(
    *, actor: User, action: str, resource_type: str, resource_id: object, known: bool
) -> Exception:
    audit_record(
        actor=actor,
        action=action,
        outcome=Outcome.DENIED if known else Outcome.FAILED,
        resource_type=resource_type,
        resource_id=resource_id,
        reason="not staff of the lab centre" if known else "no such record",
    )
    if known:
        return AccessDenied(_("Only staff of the lab centre can import results."))
    return NotFound(_("No such import."))


def _centre_for_staff(*, actor: User, centre_id: int, action: str) -> DiagnosticCentre:
    centre = DiagnosticCentre.objects.filter(pk=centre_id).first()
    if centre is None or not is_lab_staff(actor_scope(actor), centre.pk):
        raise _deny(
            actor=actor,
            action=action,
            resource_type="lab_centre",
            resource_id=centre_id,
            known=centre is not None,
        )
    return centre


def batch_get_for_user(*, actor: User, batch_id: int, action: str = ACTION_VIEW) -> ImportBatch:
    """The batch, for lab staff of its centre (denials audited; reads are audited by callers).

    Raises
    ------
    AccessDenied, NotFound
    """
    batch = ImportBatch.objects.select_related("centre", "uploaded_by").filter(pk=batch_id).first()
    if batch is None or not is_lab_staff(actor_scope(actor), batch.centre_id):
        raise _deny(
            actor=actor,
            action=action,
            resource_type="lab_import",
            resource_id=batch_id,
            known=batch is not None,
        )
    return batch


def _audit_batch(
    *,
    actor: User,
    action: str,
    batch: ImportBatch,
    outcome: Outcome = Outcome.ALLOWED,
    reason: str | Promise = "",
    detail: dict[str, Any] | None = None,
) -> None:
    audit_record(
        actor=actor,
        action=action,
        outcome=outcome,
        resource_type="lab_import",
        resource_id=batch.pk,
        reason=reason,
        detail={
            "batch": batch.pk,
            "file": batch.filename,
            "sha256": batch.sha256,
            **(detail or {}),
        },
    )


def _refuse_batch(
    *, actor: User, action: str, batch: ImportBatch, message: str | Promise
) -> ResultsRefused:
    _audit_batch(actor=actor, action=action, batch=batch, outcome=Outcome.FAILED, reason=message)
    return ResultsRefused(message, {})


# --- Services ----------------------------------------------------------------------------------


def import_preview(*, actor: User, centre_id: int, filename: str, data: bytes) -> ImportBatch:
    """Parse and check an analyser export; nothing is saved but the preview.

    Raises
    ------
    AccessDenied, NotFound, InvalidRecord
        The file as a whole is wrong (encoding, size, columns): the message says how.
    """
    centre = _centre_for_staff(actor=actor, centre_id=centre_id, action=ACTION_PREVIEW)
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1].strip()[
        :MAX_FILENAME
    ] or "upload.csv"
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        table = read_table(data)
    except ImportRefused as exc:
        raise refuse_plain(
            actor=actor,
            action=ACTION_PREVIEW,
            message=exc.message,
            resource_type="lab_centre",
            resource_id=centre.pk,
        ) from None
    rows = check_rows(centre_id=centre.pk, table=table)
    with transaction.atomic():
        batch = ImportBatch.objects.create(
            centre=centre, uploaded_by=actor, filename=name, sha256=sha256, rows=rows
        )
        _audit_batch(
            actor=actor,
            action=ACTION_PREVIEW,
            batch=batch,
            detail={"rows": len(rows), "errors": error_count(rows), "bytes": len(data)},
        )
    return batch


def import_apply(*, actor: User, batch_id: int) -> int:
    """Check every row again and save all the results in one transaction (or none).

    A row that became wrong since the preview (a specimen rejected, a result validated)
    refuses the whole file; the preview then shows why. Returns how many results were saved.

    Raises
    ------
    AccessDenied, NotFound, InvalidRecord
    """
    batch = batch_get_for_user(actor=actor, batch_id=batch_id, action=ACTION_APPLY)
    problem: Promise | None = None
    if batch.status != BatchStatus.PREVIEW:
        problem = gettext_lazy("This import was saved or discarded already.")
    elif error_count(batch.rows):
        problem = gettext_lazy("Some rows have errors: correct the file and upload it again.")
    if problem is not None:
        raise _refuse_batch(actor=actor, action=ACTION_APPLY, batch=batch, message=problem)
    table = Table(
        columns={
            name: index
            for index, name in enumerate(
                ["barcode", "test", "value", "unit", "comment", "instrument"]
            )
        },
        rows=[
            (
                r["line"],
                [
                    r["barcode"],
                    r["code"],
                    r["value"],
                    r["unit"],
                    r["comment"],
                    r.get("instrument", ""),
                ],
            )
            for r in batch.rows
        ],
    )
    reason = f"analyser import {batch.filename}"[:300]
    try:
        with transaction.atomic():
            claimed = ImportBatch.objects.filter(pk=batch.pk, status=BatchStatus.PREVIEW).update(
                status=BatchStatus.APPLIED, applied_at=timezone.now()
            )
            if not claimed:
                raise ResultsRefused(
                    gettext_lazy("This import was saved or discarded already."), {}
                )
            rows = check_rows(centre_id=batch.centre_id, table=table)
            if error_count(rows):
                raise _RowsChanged(rows)
            entries = [
                ResultEntry(
                    item_id=r["item"], value=r["value"], comment=r["comment"], reason=reason
                )
                for r in rows
            ]
            results = save_entries(
                actor=actor,
                entries=entries,
                source=ResultSource.IMPORT,
                batch=batch,
                require_reason=False,
            )
            _audit_batch(
                actor=actor,
                action=ACTION_APPLY,
                batch=batch,
                detail={"rows": len(rows), "saved": len(results)},
            )
    except _RowsChanged as changed:
        ImportBatch.objects.filter(pk=batch.pk).update(rows=changed.rows)
        raise _refuse_batch(
            actor=actor,
            action=ACTION_APPLY,
            batch=batch,
            message=msg(
                gettext_lazy(
                    "Nothing was saved: %(count)s rows changed since the preview (see the"
                    " errors below)."
                ),
                count=error_count(changed.rows),
            ),
        ) from None
    except ResultsRefused as exc:
        raise _refuse_batch(
            actor=actor, action=ACTION_APPLY, batch=batch, message=exc.args[0]
        ) from None
    return len(rows)


class _RowsChanged(Exception):
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        super().__init__("rows changed")
        self.rows = rows


def import_discard(*, actor: User, batch_id: int) -> ImportBatch:
    """Drop a preview (kept for the record as discarded).

    Raises
    ------
    AccessDenied, NotFound, InvalidRecord
    """
    batch = batch_get_for_user(actor=actor, batch_id=batch_id, action=ACTION_DISCARD)
    with transaction.atomic():
        changed = ImportBatch.objects.filter(pk=batch.pk, status=BatchStatus.PREVIEW).update(
            status=BatchStatus.DISCARDED
        )
        if changed:
            _audit_batch(actor=actor, action=ACTION_DISCARD, batch=batch)
    if not changed:
        raise _refuse_batch(
            actor=actor,
            action=ACTION_DISCARD,
            batch=batch,
            message=gettext_lazy("This import was saved or discarded already."),
        )
    batch.status = BatchStatus.DISCARDED
    return batch


def batches_for_user(*, actor: User, limit: int = 20) -> list[ImportBatch]:
    """The recent imports of the actor's lab centres."""
    centres = lab_centre_ids(actor_scope(actor))
    return list(
        ImportBatch.objects.filter(centre_id__in=centres)
        .select_related("uploaded_by", "centre")
        .order_by("-created_at", "-id")[:limit]
    )
