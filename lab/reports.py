"""The signed lab report: clinical validation and signing, amendments, and serving the PDF.

Whoever validates clinically signs the report: every result is frozen into version 1 with
its PDF, filed to the resident's timeline, and the ordering doctor is told at once. A signed
result changes only through :func:`report_amend`, which adds a version. The results
themselves are entered and validated technically in ``lab.results``.

Checks that depend on the order's state run inside the write transaction under the order's
row lock; a refusal is audited after the transaction is rolled back, and a PDF stored for a
version that was not written is deleted again.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import User
from audit.models import Outcome
from lab.access import as_lab, load_order
from lab.flags import ARROWS
from lab.models import (
    CRITICAL_FLAGS,
    Flag,
    ItemStatus,
    LabOrder,
    LabReport,
    LabReportVersion,
    OrderItem,
    OrderStatus,
    Result,
)
from lab.report_pdf import report_document, report_pdf_render, report_rows
from lab.results import (
    ACTIVE_ITEM_STATUSES,
    Prepared,
    ResultEntry,
    ResultProblem,
    existing_result,
    load_items,
    lock_orders,
    msg,
    prepare,
    write_result,
)
from lab.workflow_common import (
    MAX_NOTE,
    MAX_REASON,
    audit_order,
    notify,
    order_link,
    refuse,
    timeline_title,
)
from objectstore import ObjectNotFound, ObjectStoreError, get_store
from realtime.models import Severity
from records.selectors import NotFound
from records.services import timeline_add

logger = logging.getLogger(__name__)

ACTION_SIGN = "lab.report.sign"
ACTION_AMEND = "lab.report.amend"
ACTION_PDF = "lab.report.pdf"

PDF_PREFIX = "lab/reports"


class _Conflict(Exception):
    """The order or report changed between the checks and the write."""


# --- Signing and amending ----------------------------------------------------------------------


def report_items(order: LabOrder) -> list[OrderItem]:
    """The order's items in report order, with their test, specimen and result."""
    return list(
        OrderItem.objects.filter(order=order)
        .exclude(status=ItemStatus.CANCELLED)
        .select_related("test", "specimen", "result")
        .order_by("specimen__barcode", "test__sort_order", "test__code")
    )


def _sign_problem(order: LabOrder, items: Sequence[OrderItem]) -> Promise | None:
    if order.status == OrderStatus.CANCELLED:
        return gettext_lazy("The order was cancelled; there is nothing to report.")
    if LabReport.objects.filter(order=order).exists():
        return gettext_lazy("The report is signed already; amend it to change a result.")
    active = [i for i in items if i.status in ACTIVE_ITEM_STATUSES]
    if not active:
        return gettext_lazy("No test of this order has a specimen to report on.")
    waiting = [i for i in active if i.status != ItemStatus.TECH_VALIDATED]
    if waiting:
        return msg(
            gettext_lazy(
                "Validate every result technically before signing; still waiting: %(tests)s."
            ),
            tests=", ".join(i.test.code for i in waiting),
        )
    return None


def _store_pdf(pdf: bytes) -> tuple[str, str, int]:
    stored = get_store().put(
        io.BytesIO(pdf), prefix=PDF_PREFIX, content_type="application/pdf", size=len(pdf)
    )
    return stored.key, stored.sha256, stored.size


def _discard(key: str) -> None:
    try:
        get_store().delete(key)
    except ObjectStoreError:  # an orphan object is harmless; a half-stored report is not
        logger.exception("could not delete the unused lab report PDF %s", key)


def _render(
    *,
    order: LabOrder,
    items: Sequence[OrderItem],
    signer: User,
    signed_at: dt.datetime,
    version: int,
    reason: str,
    mutual_recognition: bool,
    valid_until: dt.date | None,
    comment: str,
) -> tuple[list[dict[str, Any]], bytes]:
    rows = report_rows(items)
    document = report_document(
        order=order,
        rows=rows,
        specimens=order.specimens.all(),
        signer=signer,
        signed_at=signed_at,
        version=version,
        reason=reason,
        mutual_recognition=mutual_recognition,
        valid_until=valid_until,
        comment=comment,
    )
    return rows, report_pdf_render(document)


def _announce(
    *, actor: User, order: LabOrder, version: LabReportVersion, amended: bool, summary: str
) -> None:
    """The timeline entry, the requester's notification and the audit event of a version."""
    kind = "lab.report_amended" if amended else "lab.report_signed"
    timeline_add(
        patient=order.patient,
        kind=kind,
        title=timeline_title(kind),
        summary=f"{order.number}: {summary}"[:500],
        institution=order.centre.host,
        actor=actor,
        link=order_link(order),
        data={"order": order.pk, "version": version.version},
    )
    critical = any(row.get("flag") in CRITICAL_FLAGS for row in version.results)
    if amended:
        title = gettext_lazy("Lab report amended: %(number)s for %(name)s")
    else:
        title = gettext_lazy("Lab report ready: %(number)s for %(name)s")
    notify(
        [order.requested_by],
        order=order,
        kind=kind,
        title=title,
        body=summary[:500],
        severity=Severity.URGENT if critical else None,
        payload={"version": version.version},
    )
    audit_order(
        actor=actor,
        action=ACTION_AMEND if amended else ACTION_SIGN,
        order=order,
        detail={"version": version.version, "pdf_sha256": version.pdf_sha256},
    )


def _summary(rows: Sequence[Mapping[str, Any]]) -> str:
    """The results in one line, the same in every language: "K 5.6 mmol/L ↑, NA 139 mmol/L"."""
    parts = []
    for row in rows:
        if not row.get("value"):
            continue
        flag = str(row.get("flag") or "")
        arrow = ARROWS.get(Flag(flag), "") if flag in Flag.values else ""
        parts.append(" ".join(p for p in (row["code"], row["value"], row.get("unit"), arrow) if p))
    return ", ".join(parts)


def report_sign(
    *,
    actor: User,
    order_id: int,
    mutual_recognition: bool = True,
    valid_until: dt.date | None = None,
    comment: str = "",
) -> LabReport:
    """Validate clinically and sign: version 1 with its PDF, the order reported, the doctor told.

    Raises
    ------
    AccessDenied, NotFound, InvalidRecord
    objectstore.StoreUnavailable
        The PDF could not be stored; nothing was changed.
    """
    order = as_lab(actor=actor, order_id=order_id, action=ACTION_SIGN)
    comment = (comment or "").strip()
    items = report_items(order)
    problem = _sign_problem(order, items)
    if problem is None and len(comment) > MAX_NOTE:
        problem = gettext_lazy("The comment is too long (at most 1000 characters).")
    if problem is None and valid_until is not None and valid_until < timezone.localdate():
        problem = gettext_lazy("The validity must end today or later.")
    if problem is not None:
        raise refuse(actor=actor, action=ACTION_SIGN, order=order, message=problem)
    valid_until = valid_until if mutual_recognition else None
    now = timezone.now()
    rows, pdf = _render(
        order=order,
        items=items,
        signer=actor,
        signed_at=now,
        version=1,
        reason="",
        mutual_recognition=mutual_recognition,
        valid_until=valid_until,
        comment=comment,
    )
    key, sha256, size = _store_pdf(pdf)
    ids = [i.pk for i in items if i.status == ItemStatus.TECH_VALIDATED]
    try:
        with transaction.atomic():
            lock_orders([order.pk])
            moved = OrderItem.objects.filter(pk__in=ids, status=ItemStatus.TECH_VALIDATED).update(
                status=ItemStatus.VALIDATED
            )
            if (
                moved != len(ids)
                or OrderItem.objects.filter(
                    order=order, status__in=[ItemStatus.PENDING, ItemStatus.RESULTED]
                ).exists()
            ):
                raise _Conflict(gettext_lazy("The results changed meanwhile. Reload the page."))
            Result.objects.filter(item_id__in=ids).update(validated_by=actor, validated_at=now)
            report = LabReport.objects.create(
                order=order,
                version=1,
                signed_by=actor,
                signed_at=now,
                mutual_recognition=mutual_recognition,
                valid_until=valid_until,
                comment=comment,
            )
            version = LabReportVersion.objects.create(
                report=report,
                version=1,
                signed_by=actor,
                signed_at=now,
                results=rows,
                mutual_recognition=mutual_recognition,
                valid_until=valid_until,
                comment=comment,
                pdf_key=key,
                pdf_sha256=sha256,
                pdf_size=size,
            )
            changed = (
                LabOrder.objects.filter(pk=order.pk)
                .exclude(status=OrderStatus.CANCELLED)
                .update(status=OrderStatus.REPORTED, reported_at=now, updated_at=now)
            )
            if not changed:
                raise _Conflict(
                    gettext_lazy("The order was cancelled; there is nothing to report.")
                )
            order.status, order.reported_at = OrderStatus.REPORTED, now
            _announce(
                actor=actor, order=order, version=version, amended=False, summary=_summary(rows)
            )
    except _Conflict as exc:
        _discard(key)
        raise refuse(actor=actor, action=ACTION_SIGN, order=order, message=exc.args[0]) from None
    except IntegrityError:
        _discard(key)
        raise refuse(
            actor=actor,
            action=ACTION_SIGN,
            order=order,
            message=gettext_lazy("The report was signed meanwhile. Reload the page."),
        ) from None
    except BaseException:
        _discard(key)
        raise
    return report


def _amend_checks(
    *, order: LabOrder, reason: str, values: Mapping[int, str], comment: str | None
) -> tuple[LabReport, list[OrderItem], list[Prepared]]:
    """The report, its items with the amended values applied in memory, and the changes.

    Raises
    ------
    ResultProblem
    """
    report = LabReport.objects.filter(order=order).first()
    if report is None:
        raise ResultProblem(gettext_lazy("Only a signed report can be amended."))
    if not reason or len(reason) > MAX_REASON:
        raise ResultProblem(gettext_lazy("Say why the report is amended (at most 300 characters)."))
    if comment is not None and len(comment.strip()) > MAX_NOTE:
        raise ResultProblem(gettext_lazy("The comment is too long (at most 1000 characters)."))
    items = report_items(order)
    by_id = {i.pk: i for i in items}
    loaded = load_items(values)
    changes: list[Prepared] = []
    for item_id, text in values.items():
        item = loaded.get(item_id)
        if item is None or item.order_id != order.pk or item_id not in by_id:
            raise ResultProblem(gettext_lazy("This test is not part of the order."))
        existing = existing_result(item)
        entry = ResultEntry(
            item_id=item_id,
            value=text,
            comment=existing.comment if existing else "",
            reason=reason,
        )
        prepared = prepare(item, entry, amending=True)
        if prepared.value_changed:
            changes.append(prepared)
    comment_changed = comment is not None and comment.strip() != report.comment
    if not changes and not comment_changed:
        raise ResultProblem(gettext_lazy("Nothing was changed."))
    for prepared in changes:  # the new values, for the PDF (written in the transaction)
        result = existing_result(by_id[prepared.item.pk])
        if result is not None:
            result.value_numeric = prepared.reading.numeric
            result.value_text = prepared.reading.text
            result.flag = prepared.flag
    return report, items, changes


def report_amend(
    *,
    actor: User,
    order_id: int,
    reason: str,
    values: dict[int, str],
    comment: str | None = None,
) -> LabReport:
    """Change signed results (or the report's comment) as a new version with its own PDF.

    ``values`` maps ordered-test ids to their new values. Critical alerts follow the new
    values; the requester is told; every earlier version is kept.

    Raises
    ------
    AccessDenied, NotFound, InvalidRecord
    objectstore.StoreUnavailable
    """
    order = as_lab(actor=actor, order_id=order_id, action=ACTION_AMEND)
    reason = (reason or "").strip()
    try:
        report, items, changes = _amend_checks(
            order=order, reason=reason, values=values, comment=comment
        )
    except ResultProblem as exc:
        raise refuse(actor=actor, action=ACTION_AMEND, order=order, message=exc.message) from None
    number = report.version + 1
    new_comment = comment.strip() if comment is not None else report.comment
    now = timezone.now()
    rows, pdf = _render(
        order=order,
        items=items,
        signer=actor,
        signed_at=now,
        version=number,
        reason=reason,
        mutual_recognition=report.mutual_recognition,
        valid_until=report.valid_until,
        comment=new_comment,
    )
    key, sha256, size = _store_pdf(pdf)
    try:
        with transaction.atomic():
            lock_orders([order.pk])
            bumped = LabReport.objects.filter(pk=report.pk, version=report.version).update(
                version=number, signed_by=actor, signed_at=now, comment=new_comment
            )
            if not bumped:
                raise _Conflict(gettext_lazy("The report was amended meanwhile. Reload the page."))
            fresh = load_items(p.item.pk for p in changes)
            for prepared in changes:
                again = prepare(
                    fresh[prepared.item.pk],
                    ResultEntry(
                        prepared.item.pk, values[prepared.item.pk], prepared.comment, reason
                    ),
                    amending=True,
                )
                write_result(again, actor=actor, now=now, validated=True)
            version = LabReportVersion.objects.create(
                report=report,
                version=number,
                signed_by=actor,
                signed_at=now,
                results=rows,
                mutual_recognition=report.mutual_recognition,
                valid_until=report.valid_until,
                comment=new_comment,
                amendment_reason=reason,
                pdf_key=key,
                pdf_sha256=sha256,
                pdf_size=size,
            )
            _announce(actor=actor, order=order, version=version, amended=True, summary=reason)
    except (_Conflict, ResultProblem) as exc:
        _discard(key)
        message = exc.message if isinstance(exc, ResultProblem) else exc.args[0]
        raise refuse(actor=actor, action=ACTION_AMEND, order=order, message=message) from None
    except BaseException:
        _discard(key)
        raise
    report.refresh_from_db()
    return report


# --- Reads -------------------------------------------------------------------------------------


def report_pdf_for_user(*, actor: User, order_id: int, version: int) -> tuple[Iterator[bytes], str]:
    """A signed version's PDF and its file name, for anyone who may see the order; audited.

    Raises
    ------
    AccessDenied, NotFound
    """
    order, _scope = load_order(actor=actor, order_id=order_id, action=ACTION_PDF)
    row = LabReportVersion.objects.filter(report__order=order, version=version).first()
    if row is None or not row.pdf_key:
        audit_order(
            actor=actor,
            action=ACTION_PDF,
            order=order,
            outcome=Outcome.FAILED,
            reason="no such version",
        )
        raise NotFound(_("There is no signed version %(n)s of this report.") % {"n": version})
    try:
        chunks = get_store().open(row.pdf_key, expected_sha256=row.pdf_sha256)
    except ObjectNotFound:
        audit_order(
            actor=actor,
            action=ACTION_PDF,
            order=order,
            outcome=Outcome.FAILED,
            reason="PDF missing from object storage",
        )
        raise NotFound(
            _("The PDF of this report is missing. Please tell the administrator.")
        ) from None
    audit_order(actor=actor, action=ACTION_PDF, order=order, detail={"version": row.version})
    return chunks, f"{order.number}-v{row.version}.pdf"
