"""Results of the lab centre: entry and technical validation.

A technician of the order's centre enters a value per ordered test (or imports an analyser
file, ``lab.importing``); the value is read (``lab.flags``), checked against the plausible
range, flagged against the critical limits and the resident's reference range (stored with
the result as it was applied), and a critical value raises an alert (``lab.critical``) in
the same transaction. The bench technician then validates the run technically; signing and
amending the report are in ``lab.reports``, the entry page's data in ``lab.results_page``.

Checks that depend on the order's state run inside the write transaction under the order's
row lock; a refusal is audited after the transaction is rolled back, so nothing is ever
half-saved and the refusal's audit event is never lost.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from django.db import transaction
from django.utils import timezone, translation
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import User
from audit.models import Outcome
from lab import critical
from lab.access import as_lab
from lab.catalogue import reference_for
from lab.flags import (
    Reading,
    ValueProblem,
    flag_reading,
    plausible,
    range_label,
    read_value,
    reference_label,
)
from lab.models import (
    CRITICAL_FLAGS,
    AlertStatus,
    CriticalAlert,
    ImportBatch,
    ItemStatus,
    LabOrder,
    OrderItem,
    OrderStatus,
    ReferenceRange,
    Result,
    ResultChange,
    ResultSource,
    SpecimenStatus,
)
from lab.workflow_common import MAX_REASON, audit_order, refuse
from records.selectors import NotFound
from records.services import InvalidRecord

ACTION_SAVE = "lab.result.save"
ACTION_VALIDATE = "lab.result.validate_technical"

MAX_COMMENT = 300
DEFAULT_VALID_DAYS = 30  # the sign form's default validity (lab.forms_results)
# Items that are reported: a cancelled test or a rejected specimen is not.
ACTIVE_ITEM_STATUSES = (
    ItemStatus.PENDING,
    ItemStatus.RESULTED,
    ItemStatus.TECH_VALIDATED,
    ItemStatus.VALIDATED,
)
_FIRST_RESULT_FROM = (
    OrderStatus.COLLECTED,
    OrderStatus.SHIPPED,
    OrderStatus.RECEIVED,
)
ITEM_RELATED = ("test", "specimen", "order", "order__patient")


# --- Messages ----------------------------------------------------------------------------------


class Message(Promise):
    """``template % params``, translated when shown; the audit trail stores it in English.

    :meth:`as_data` keeps it as JSON (an import preview's row) to be shown later in the
    reader's language by :func:`message_text`.
    """

    def __init__(self, template: str | Promise, **params: object) -> None:
        self.template = template
        self.params = params

    def __str__(self) -> str:
        return str(self.template) % {key: str(value) for key, value in self.params.items()}

    def as_data(self) -> dict[str, Any]:
        params: dict[str, object] = {}
        for key, value in self.params.items():
            if isinstance(value, TestName):
                params[key] = {"name": value.test.name, "name_en": value.test.name_en}
            else:
                params[key] = english(str(value)) if isinstance(value, Promise) else str(value)
        return {"msgid": english(self.template), "params": params}


def msg(template: str | Promise, **params: object) -> Message:
    """A message with parameters, translated when shown."""
    return Message(template, **params)


def message_data(message: str | Promise) -> dict[str, Any]:
    """Any message as JSON for :func:`message_text`."""
    if isinstance(message, Message):
        return message.as_data()
    return {"msgid": english(message), "params": {}}


def message_text(data: Mapping[str, Any]) -> str:
    """A message kept by :func:`message_data`, in the active language."""
    language = translation.get_language() or ""
    params: dict[str, str] = {}
    for key, value in (data.get("params") or {}).items():
        if isinstance(value, dict):
            english_name = language.startswith("en") and value.get("name_en")
            params[key] = str(english_name or value.get("name", ""))
        else:
            params[key] = str(value)
    try:
        return _(str(data.get("msgid", ""))) % params
    except (KeyError, TypeError, ValueError):
        return str(data.get("msgid", ""))


class TestName:
    """A test's name in the language active when the message is shown."""

    __test__ = False  # not a pytest class

    def __init__(self, test: Any) -> None:
        self.test = test

    def __str__(self) -> str:
        return str(self.test.display_name)


def english(message: str | Promise) -> str:
    with translation.override("en"):
        return str(message)


class ResultProblem(Exception):
    """Why one value cannot be saved now (not audited yet)."""

    def __init__(self, message: str | Promise) -> None:
        super().__init__(message)
        self.message = message


class ResultsRefused(InvalidRecord):
    """Some of the values sent could not be saved (nothing was); ``errors`` by item id."""

    def __init__(self, message: str | Promise, errors: Mapping[int, str | Promise]) -> None:
        super().__init__(message)
        self.errors = dict(errors)


# --- Reading and checking one value ------------------------------------------------------------


@dataclass(frozen=True)
class ResultEntry:
    """One value to save: the ordered test, what was typed, and why when it is a correction."""

    item_id: int
    value: str
    comment: str = ""
    reason: str = ""


@dataclass
class Prepared:
    """A value checked against its test, ready to be written."""

    item: OrderItem
    reading: Reading
    flag: str
    reference: ReferenceRange | None
    comment: str
    reason: str
    existing: Result | None
    value_changed: bool
    changed: bool = field(default=True)


def existing_result(item: OrderItem) -> Result | None:
    try:
        return item.result
    except Result.DoesNotExist:
        return None


def snapshot_reference(result: Result) -> ReferenceRange:
    """The reference range applied when the result was first entered (kept on amendment)."""
    text = (
        result.reference_text
        if result.reference_low is None and result.reference_high is None
        else ""
    )
    return ReferenceRange(low=result.reference_low, high=result.reference_high, text=text)


def reference_of(item: OrderItem) -> ReferenceRange | None:
    """The resident's reference range for the item's test on the day it was collected."""
    patient = item.order.patient
    drawn = item.specimen.collected_at if item.specimen is not None else timezone.now()
    return reference_for(
        item.test,
        sex=patient.sex,
        birth_date=patient.birth_date,
        on=timezone.localdate(drawn),
    )


def state_problem(item: OrderItem, *, amending: bool = False) -> Promise | None:
    """Why no result can be saved for ``item`` now, or None."""
    name = TestName(item.test)
    specimen = item.specimen
    if item.order.status == OrderStatus.CANCELLED or item.status == ItemStatus.CANCELLED:
        return gettext_lazy("The order was cancelled; the result was not saved.")
    if item.status == ItemStatus.REJECTED or (
        specimen is not None and specimen.status == SpecimenStatus.REJECTED
    ):
        return msg(
            gettext_lazy("The specimen for %(test)s was rejected; no result can be saved."),
            test=name,
        )
    if specimen is None or specimen.status != SpecimenStatus.RECEIVED:
        return msg(
            gettext_lazy("The specimen for %(test)s has not been received at the lab yet."),
            test=name,
        )
    if amending and item.status != ItemStatus.VALIDATED:
        return msg(gettext_lazy("%(test)s is not part of the signed report."), test=name)
    if not amending and item.status == ItemStatus.VALIDATED:
        return msg(
            gettext_lazy(
                "%(test)s is validated in the signed report; amend the report to change it."
            ),
            test=name,
        )
    return None


def _value_problem(item: OrderItem, problem: ValueProblem) -> Promise:
    name = TestName(item.test)
    if problem.kind == "empty":
        return msg(gettext_lazy("Enter a value for %(test)s."), test=name)
    if problem.kind == "too_long":
        return msg(
            gettext_lazy("The result for %(test)s is too long (at most 200 characters)."),
            test=name,
        )
    if problem.kind == "too_large":
        return msg(
            gettext_lazy("%(value)s is too large for %(test)s: check the value."),
            value=problem.text,
            test=name,
        )
    return msg(
        gettext_lazy("“%(value)s” is not a number: enter %(test)s as digits, for example 4.5."),
        value=problem.text,
        test=name,
    )


def implausible(item: OrderItem, reading: Reading) -> Promise:
    test = item.test
    return msg(
        gettext_lazy(
            "%(value)s %(unit)s is outside any plausible value for %(test)s (%(range)s):"
            " check the unit and the value"
        ),
        value=reading.display,
        unit=test.unit,
        test=TestName(test),
        range=range_label(test.plausible_low, test.plausible_high),
    )


def prepare(
    item: OrderItem,
    entry: ResultEntry,
    *,
    require_reason: bool = True,
    amending: bool = False,
) -> Prepared:
    """Check one value for ``item`` (loaded with ``ITEM_RELATED`` and its result).

    Raises
    ------
    ResultProblem
    """
    problem = state_problem(item, amending=amending)
    if problem is not None:
        raise ResultProblem(problem)
    try:
        reading = read_value(item.test, entry.value)
    except ValueProblem as exc:
        raise ResultProblem(_value_problem(item, exc)) from None
    if reading.bound is not None and not plausible(item.test, reading.bound):
        raise ResultProblem(implausible(item, reading))
    comment = (entry.comment or "").strip()
    reason = (entry.reason or "").strip()
    if len(comment) > MAX_COMMENT:
        raise ResultProblem(gettext_lazy("The comment is too long (at most 300 characters)."))
    if len(reason) > MAX_REASON:
        raise ResultProblem(gettext_lazy("The reason is too long (at most 300 characters)."))
    existing = existing_result(item)
    reference = snapshot_reference(existing) if amending and existing else reference_of(item)
    value_changed = existing is None or (existing.value_numeric, existing.value_text) != (
        reading.numeric,
        reading.text,
    )
    if existing is not None and value_changed and require_reason and not reason:
        raise ResultProblem(
            msg(
                gettext_lazy("Say why the result of %(test)s is corrected (was %(old)s)."),
                test=TestName(item.test),
                old=existing.display_value,
            )
        )
    return Prepared(
        item=item,
        reading=reading,
        flag=flag_reading(item.test, reading, reference),
        reference=reference,
        comment=comment,
        reason=reason,
        existing=existing,
        value_changed=value_changed,
        changed=value_changed or existing is None or existing.comment != comment,
    )


# --- Writing -----------------------------------------------------------------------------------


def _display(prepared: Prepared) -> str:
    if prepared.reading.numeric is None:
        return prepared.reading.text
    return f"{prepared.reading.numeric:.{prepared.item.test.decimals}f}"


def write_result(
    prepared: Prepared,
    *,
    actor: User,
    now: dt.datetime,
    source: str = ResultSource.MANUAL,
    batch: ImportBatch | None = None,
    validated: bool = False,
) -> Result:
    """Write one checked value (inside the caller's transaction); alerts follow the flag."""
    item, existing = prepared.item, prepared.existing
    reference = prepared.reference
    values: dict[str, Any] = {
        "value_numeric": prepared.reading.numeric,
        "value_text": prepared.reading.text,
        "unit": item.test.unit,
        "flag": prepared.flag,
        "reference_low": reference.low if reference is not None else None,
        "reference_high": reference.high if reference is not None else None,
        "reference_text": reference_label(
            reference.low if reference else None,
            reference.high if reference else None,
            reference.text if reference else "",
        ),
        "comment": prepared.comment,
        "source": source,
        "batch": batch,
    }
    if validated:  # an amendment: validated again by the person who signs it
        values |= {"validated_by": actor, "validated_at": now}
    else:
        values |= {
            "entered_by": actor,
            "entered_at": now,
            "tech_validated_by": None,
            "tech_validated_at": None,
        }
    if existing is None:
        result = Result.objects.create(item=item, **values)
    else:
        old_value = existing.display_value
        for name, value in values.items():
            setattr(existing, name, value)
        existing.save()
        result = existing
        if prepared.value_changed:
            ResultChange.objects.create(
                result=result,
                old_value=old_value,
                new_value=_display(prepared),
                reason=prepared.reason,
                actor=actor,
                at=now,
            )
    if not validated:
        OrderItem.objects.filter(pk=item.pk).update(status=ItemStatus.RESULTED)
        item.status = ItemStatus.RESULTED
        LabOrder.objects.filter(pk=item.order_id, status__in=_FIRST_RESULT_FROM).update(
            status=OrderStatus.IN_PROGRESS, updated_at=now
        )
    if prepared.value_changed:
        _follow_critical(result=result, actor=actor, prepared=prepared)
    return result


def _follow_critical(*, result: Result, actor: User, prepared: Prepared) -> None:
    """Raise an alert for a new critical value; withdraw the open one of a corrected value.

    ``lab.critical.alert_raise`` itself replaces an open alert of an earlier critical value.
    """
    critical_now = result.flag in CRITICAL_FLAGS
    if (
        not critical_now
        and not CriticalAlert.objects.filter(result=result, status=AlertStatus.OPEN).exists()
    ):
        return
    if critical_now:
        critical.alert_raise(result=result, actor=actor)
        return
    why = f"corrected to {_display(prepared)} {result.unit}".strip()
    if prepared.reason:
        why += f": {prepared.reason}"
    critical.alerts_withdraw(result=result, actor=actor, reason=why[:MAX_REASON])


def load_items(item_ids: Iterable[int]) -> dict[int, OrderItem]:
    """Items with what checking a value needs, in a few queries."""
    items = (
        OrderItem.objects.filter(pk__in=list(item_ids))
        .select_related(*ITEM_RELATED, "result")
        .prefetch_related("test__ranges")
    )
    return {item.pk: item for item in items}


def lock_orders(order_ids: Iterable[int]) -> None:
    """Lock the orders' rows, in id order, until the caller's transaction ends."""
    list(LabOrder.objects.select_for_update().filter(pk__in=sorted(set(order_ids))).only("pk"))


def save_entries(
    *,
    actor: User,
    entries: Sequence[ResultEntry],
    source: str = ResultSource.MANUAL,
    batch: ImportBatch | None = None,
    require_reason: bool = True,
) -> list[Result]:
    """Check and write ``entries`` (call inside a transaction; access checked by the caller).

    Raises
    ------
    ResultsRefused
        Some entries cannot be saved: nothing was written (the caller's transaction rolls
        back), and nothing is audited yet.
    """
    items = load_items(e.item_id for e in entries)
    lock_orders(i.order_id for i in items.values())
    items = load_items(items)  # fresh, under the lock
    errors: dict[int, str | Promise] = {}
    ready: list[Prepared] = []
    seen: set[int] = set()
    for entry in entries:
        item = items.get(entry.item_id)
        if entry.item_id in seen:
            errors[entry.item_id] = gettext_lazy("This test was sent twice; send each value once.")
            continue
        seen.add(entry.item_id)
        if item is None:
            errors[entry.item_id] = gettext_lazy("This test is not part of the order.")
            continue
        try:
            ready.append(prepare(item, entry, require_reason=require_reason))
        except ResultProblem as exc:
            errors[entry.item_id] = exc.message
    if errors:
        first = next(iter(errors.values()))
        raise ResultsRefused(first, errors)
    now = timezone.now()
    return [
        write_result(p, actor=actor, now=now, source=source, batch=batch)
        for p in ready
        if p.changed
    ]


def _refuse_entries(
    *, actor: User, action: str, order: LabOrder, refused: ResultsRefused
) -> ResultsRefused:
    audit_order(
        actor=actor,
        action=action,
        order=order,
        outcome=Outcome.FAILED,
        reason=english(refused.args[0]),
        detail={"items": {str(k): english(v) for k, v in refused.errors.items()}},
    )
    return refused


def result_save(
    *,
    actor: User,
    item_id: int,
    value: str,
    comment: str = "",
    source: str = ResultSource.MANUAL,
    batch: ImportBatch | None = None,
    reason: str = "",
) -> Result:
    """Save the result of one ordered test; a correction of an entered value needs a reason.

    Raises
    ------
    AccessDenied, NotFound, InvalidRecord
    """
    order_id = OrderItem.objects.filter(pk=item_id).values_list("order_id", flat=True).first()
    if order_id is None:
        audit_order_missing(actor=actor, item_id=item_id, action=ACTION_SAVE)
    order = as_lab(actor=actor, order_id=cast(int, order_id), action=ACTION_SAVE)
    entry = ResultEntry(item_id=item_id, value=value, comment=comment, reason=reason)
    results = results_save(
        actor=actor, order_id=order.pk, entries=[entry], source=source, batch=batch
    )
    if results:
        return results[0]
    return Result.objects.get(item_id=item_id)


def audit_order_missing(*, actor: User, item_id: int, action: str) -> None:
    """An unknown ordered test: audited, then ``NotFound``."""
    from audit.services import audit_record

    audit_record(
        actor=actor,
        action=action,
        outcome=Outcome.FAILED,
        resource_type="lab_item",
        resource_id=item_id,
        reason="no such ordered test",
    )
    raise NotFound(_("No such ordered test."))


def results_save(
    *,
    actor: User,
    order_id: int,
    entries: Sequence[ResultEntry],
    source: str = ResultSource.MANUAL,
    batch: ImportBatch | None = None,
) -> list[Result]:
    """Save several results of one order at once: all of them or none (the entry page).

    Returns the results written (unchanged values are skipped).

    Raises
    ------
    AccessDenied, NotFound, ResultsRefused
    """
    order = as_lab(actor=actor, order_id=order_id, action=ACTION_SAVE)
    if not entries:
        raise refuse(
            actor=actor,
            action=ACTION_SAVE,
            order=order,
            message=gettext_lazy("Enter at least one value."),
        )
    foreign = set(
        OrderItem.objects.filter(pk__in=[e.item_id for e in entries])
        .exclude(order_id=order.pk)
        .values_list("pk", flat=True)
    )
    try:
        with transaction.atomic():
            if foreign:
                raise ResultsRefused(
                    gettext_lazy("This test is not part of the order."),
                    {pk: gettext_lazy("This test is not part of the order.") for pk in foreign},
                )
            results = save_entries(actor=actor, entries=entries, source=source, batch=batch)
            for result in results:
                audit_order(
                    actor=actor,
                    action=ACTION_SAVE,
                    order=order,
                    detail=_result_detail(result),
                )
    except ResultsRefused as exc:
        raise _refuse_entries(actor=actor, action=ACTION_SAVE, order=order, refused=exc) from None
    return results


def _result_detail(result: Result) -> dict[str, Any]:
    return {
        "item": result.item_id,
        "test": result.item.test.code,
        "flag": result.flag,
        "source": result.source,
        "batch": result.batch_id,
    }


# --- Technical validation ----------------------------------------------------------------------


def results_validate_technical(
    *, actor: User, order_id: int, item_ids: list[int] | None = None
) -> int:
    """The bench technician checked the run: entered results become technically validated.

    ``item_ids`` limits it to some results (all entered ones when None). Returns how many.

    Raises
    ------
    AccessDenied, NotFound, InvalidRecord
    """
    order = as_lab(actor=actor, order_id=order_id, action=ACTION_VALIDATE)
    problem: Promise | None = None
    if order.status == OrderStatus.CANCELLED:
        problem = gettext_lazy("The order was cancelled.")
    elif item_ids is not None and not item_ids:
        problem = gettext_lazy("Tick the results to validate.")
    if problem is None and item_ids is not None:
        wrong = OrderItem.objects.filter(pk__in=item_ids).exclude(
            order=order, status=ItemStatus.RESULTED
        )
        missing = set(item_ids) - set(
            OrderItem.objects.filter(pk__in=item_ids).values_list("pk", flat=True)
        )
        if wrong.exists() or missing:
            problem = gettext_lazy(
                "Only entered results of this order that are not yet validated can be validated."
            )
    if problem is not None:
        raise refuse(actor=actor, action=ACTION_VALIDATE, order=order, message=problem)
    chosen = OrderItem.objects.filter(order=order, status=ItemStatus.RESULTED)
    if item_ids is not None:
        chosen = chosen.filter(pk__in=item_ids)
    now = timezone.now()
    with transaction.atomic():
        ids = list(chosen.select_for_update().values_list("pk", flat=True))
        count = OrderItem.objects.filter(pk__in=ids, status=ItemStatus.RESULTED).update(
            status=ItemStatus.TECH_VALIDATED
        )
        Result.objects.filter(item_id__in=ids).update(
            tech_validated_by=actor, tech_validated_at=now
        )
        if count:
            audit_order(actor=actor, action=ACTION_VALIDATE, order=order, detail={"items": ids})
    if not count:
        raise refuse(
            actor=actor,
            action=ACTION_VALIDATE,
            order=order,
            message=gettext_lazy("There are no entered results waiting for technical validation."),
        )
    return count


# --- A row of the entry page -------------------------------------------------------------------
# Here rather than in lab.results_page: lab.forms_results imports it from this module, and
# lab.results_page imports this module, so it cannot be re-exported from there.


@dataclass(frozen=True)
class ResultRow:
    """One ordered test on the entry page: its result and what can be done with it."""

    item: OrderItem
    result: Result | None
    reference: ReferenceRange | None  # applied (a result's snapshot) or to be applied
    editable: bool
    blocked: str  # why no value can be entered, in words ("" when editable or validated)
    changes: list[ResultChange]

    @property
    def reference_text(self) -> str:
        if self.result is not None:
            return self.result.reference_text
        ref = self.reference
        return reference_label(ref.low, ref.high, ref.text) if ref is not None else ""
