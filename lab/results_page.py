"""The results entry page of an order: its tests grouped by specimen, and the report's versions.

Lab staff of the order's centre only; the read is audited. Writes go through ``lab.results``
(entry, technical validation) and ``lab.reports`` (signing, amending).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from accounts.models import User
from lab.access import as_lab
from lab.models import ItemStatus, LabOrder, LabReport, LabReportVersion, OrderItem, OrderStatus
from lab.results import (
    ACTIVE_ITEM_STATUSES,
    ITEM_RELATED,
    ResultRow,
    existing_result,
    reference_of,
    snapshot_reference,
    state_problem,
)
from lab.workflow_common import audit_order

ACTION_VIEW = "lab.results.view"


@dataclass(frozen=True)
class SpecimenGroup:
    specimen: Any  # Specimen | None (tests not collected yet)
    rows: list[ResultRow]


@dataclass(frozen=True)
class ResultsPage:
    order: LabOrder
    groups: list[SpecimenGroup]
    report: LabReport | None
    versions: list[LabReportVersion]
    to_validate: list[ResultRow]  # entered, waiting for technical validation
    waiting: list[ResultRow]  # active tests not yet technically validated
    can_sign: bool

    @property
    def rows(self) -> list[ResultRow]:
        return [row for group in self.groups for row in group.rows]

    @property
    def editable_rows(self) -> list[ResultRow]:
        return [row for row in self.rows if row.editable]

    @property
    def amendable_rows(self) -> list[ResultRow]:
        return [r for r in self.rows if r.item.status == ItemStatus.VALIDATED and r.result]


def _row(item: OrderItem) -> ResultRow:
    result = existing_result(item)
    problem = state_problem(item)
    validated = item.status == ItemStatus.VALIDATED
    reference = snapshot_reference(result) if result is not None else None
    if result is None and item.specimen is not None:
        reference = reference_of(item)
    return ResultRow(
        item=item,
        result=result,
        reference=reference,
        editable=problem is None,
        blocked="" if problem is None or validated else str(problem),
        changes=list(result.changes.all()) if result is not None else [],
    )


def results_page_for_user(*, actor: User, order_id: int) -> ResultsPage:
    """The results entry page of an order, for lab staff of its centre (audited read).

    Raises
    ------
    AccessDenied, NotFound
    """
    order = as_lab(actor=actor, order_id=order_id, action=ACTION_VIEW)
    audit_order(actor=actor, action=ACTION_VIEW, order=order)
    items = list(
        OrderItem.objects.filter(order=order)
        .select_related(*ITEM_RELATED, "result", "panel")
        .prefetch_related("test__ranges", "result__changes__actor")
        .order_by("specimen__barcode", "test__sort_order", "test__code")
    )
    groups: dict[int | None, SpecimenGroup] = {}
    for item in items:
        group = groups.setdefault(item.specimen_id, SpecimenGroup(specimen=item.specimen, rows=[]))
        group.rows.append(_row(item))
    report = LabReport.objects.filter(order=order).select_related("signed_by").first()
    versions = (
        list(report.versions.select_related("signed_by").order_by("version"))
        if report is not None
        else []
    )
    rows = [row for group in groups.values() for row in group.rows]
    active = [r for r in rows if r.item.status in ACTIVE_ITEM_STATUSES]
    waiting = [r for r in active if r.item.status != ItemStatus.TECH_VALIDATED]
    return ResultsPage(
        order=order,
        groups=list(groups.values()),
        report=report,
        versions=versions,
        to_validate=[r for r in rows if r.item.status == ItemStatus.RESULTED],
        waiting=waiting,
        can_sign=report is None
        and bool(active)
        and not waiting
        and order.status != OrderStatus.CANCELLED,
    )
