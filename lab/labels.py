"""Specimen labels: a Code 128 barcode drawn as inline SVG, the patient's initials, and the
audited print (the first print is logged; a reprint needs a reason).

A label is 50 mm × 25 mm; the barcode's 12 digits print in Code 128 set C (about 36 mm
with the quiet zones), with the digits under it for a person to type when a scanner fails.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from io import BytesIO

import barcode
from barcode.writer import SVGWriter
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from pypinyin import Style, lazy_pinyin

from accounts.models import User
from audit.models import Outcome
from audit.services import audit_record
from lab.access import is_lab_staff, is_ordering_clinician, load_order
from lab.models import LabOrder, OrderStatus, Specimen
from lab.numbering import barcode_valid
from lab.workflow_common import MAX_REASON, audit_order, refuse, specimen_event
from records.models import Patient
from records.selectors import AccessDenied, NotFound

AnyUser = AbstractBaseUser | AnonymousUser

# Millimetres: 0.3 mm modules read well on 203 dpi label printers; the quiet zone is 10
# modules as Code 128 asks.
MODULE_WIDTH_MM = 0.3
BAR_HEIGHT_MM = 9.0
QUIET_ZONE_MM = 3.0

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_WORDS = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+|[A-Za-z\u00c0-\u024f]+")
_SVG_PROLOGUE = re.compile(r"^.*?(?=<svg\b)", re.DOTALL)
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)


# --- Drawing -----------------------------------------------------------------------------------


def barcode_svg(text: str) -> SafeString:
    """The Code 128 barcode of a specimen barcode, as an inline ``<svg>`` element (sizes in mm).

    Parameters
    ----------
    text
        A well-formed specimen barcode (12 digits with a valid check digit).

    Raises
    ------
    ValueError
        ``text`` is not a specimen barcode (nothing else is ever drawn into a page).
    """
    if not barcode_valid(text):
        raise ValueError(f"not a specimen barcode: {text!r}")
    code = barcode.get("code128", text, writer=SVGWriter())
    buffer = BytesIO()
    code.write(
        buffer,
        options={
            "module_width": MODULE_WIDTH_MM,
            "module_height": BAR_HEIGHT_MM,
            "quiet_zone": QUIET_ZONE_MM,
            "margin_top": 0,
            "margin_bottom": 0,
            "write_text": False,
            "background": "white",
            "foreground": "black",
        },
    )
    svg = _COMMENT.sub("", _SVG_PROLOGUE.sub("", buffer.getvalue().decode("utf-8"), count=1))
    svg = svg.replace(' id="barcode_group"', "", 1).replace(
        "<svg ", f'<svg class="barcode" role="img" aria-label="{text}" data-barcode="{text}" ', 1
    )
    # Only digits went in (checked above) and the library wrote the rest.
    return mark_safe(svg.strip())  # noqa: S308


def initials(name: str) -> str:
    """A name's initials for a label: pinyin initials of Chinese (张三 → "ZS"), first
    letters of Latin words ("Anna Maria Smith" → "AMS")."""
    letters: list[str] = []
    for word in _WORDS.findall(name):
        if _CJK.fullmatch(word):
            letters.extend(p[:1] for p in lazy_pinyin(word, style=Style.FIRST_LETTER) if p)
        else:
            letters.append(word[0])
    return "".join(letters).upper()[:6]


def age_text(birth_date: dt.date, on: dt.date) -> str:
    """Age for a label: whole years, or months under two years."""
    months = (on.year - birth_date.year) * 12 + on.month - birth_date.month
    if on.day < birth_date.day:
        months -= 1
    months = max(0, months)
    if months < 24:
        return _("%(n)d mo") % {"n": months}
    return _("%(n)d y") % {"n": months // 12}


@dataclass(frozen=True)
class Label:
    """What one specimen label shows."""

    specimen: Specimen
    order: LabOrder
    patient: Patient
    svg: SafeString
    initials: str
    age: str
    tests: list[str]

    @property
    def barcode(self) -> str:
        return self.specimen.barcode


def label_for(specimen: Specimen, *, tests: list[str] | None = None) -> Label:
    order = specimen.order
    patient = order.patient
    collected = timezone.localtime(specimen.collected_at).date()
    return Label(
        specimen=specimen,
        order=order,
        patient=patient,
        svg=barcode_svg(specimen.barcode),
        initials=initials(patient.name),
        age=age_text(patient.birth_date, collected),
        tests=tests if tests is not None else [i.test.code for i in specimen.items.all()],
    )


# --- Reading for printing ----------------------------------------------------------------------


def _may_print(actor: AnyUser, order_id: int, action: str) -> LabOrder:
    """The order, for its clinic or its lab centre's staff (others denied, audited)."""
    order, scope = load_order(actor=actor, order_id=order_id, action=action)
    if not (is_ordering_clinician(scope, order) or is_lab_staff(scope, order.centre_id)):
        audit_record(
            actor=actor,
            action=action,
            outcome=Outcome.DENIED,
            resource_type="lab_order",
            resource_id=order.pk,
            patient_id=order.patient_id,
            reason="neither the ordering clinic nor the lab centre",
        )
        raise AccessDenied(_("Only the ordering clinic or the lab centre can print labels."))
    return order


def _specimen_or_404(*, actor: AnyUser, specimen_id: int, action: str) -> Specimen:
    specimen = Specimen.objects.filter(pk=specimen_id).only("pk", "order_id").first()
    if specimen is None:
        audit_record(
            actor=actor,
            action=action,
            outcome=Outcome.FAILED,
            resource_type="lab_specimen",
            resource_id=specimen_id,
            reason="no such specimen",
        )
        raise NotFound(_("No such specimen."))
    return specimen


def _specimens(order: LabOrder, ids: list[int] | None = None) -> list[Specimen]:
    rows = (
        Specimen.objects.filter(order=order)
        .select_related("order", "order__patient")
        .prefetch_related("items__test")
        .order_by("id")
    )
    if ids is not None:
        rows = rows.filter(pk__in=ids)
    return list(rows)


@dataclass(frozen=True)
class LabelSheet:
    """The specimens to print for one order (all of them, or one)."""

    order: LabOrder
    specimens: list[Specimen]

    @property
    def printed_before(self) -> list[Specimen]:
        return [s for s in self.specimens if s.labels_printed > 0]

    def labels(self) -> list[Label]:
        return [label_for(s) for s in self.specimens]


def label_sheet_for_order(*, actor: AnyUser, order_id: int) -> LabelSheet:
    """The order's specimens for the labels page (access checked, audited when denied)."""
    order = _may_print(actor, order_id, "lab.label.view")
    return LabelSheet(order=order, specimens=_specimens(order))


def label_sheet_for_specimen(*, actor: AnyUser, specimen_id: int) -> LabelSheet:
    action = "lab.label.view"
    found = _specimen_or_404(actor=actor, specimen_id=specimen_id, action=action)
    order = _may_print(actor, found.order_id, action)
    return LabelSheet(order=order, specimens=_specimens(order, [found.pk]))


# --- Printing ----------------------------------------------------------------------------------


def label_print(*, actor: User, specimen_id: int, reprint_reason: str = "") -> Specimen:
    """Log a specimen label's print: the first is recorded, a reprint needs a reason.

    Raises
    ------
    AccessDenied, NotFound
    InvalidRecord
        The order was cancelled, or a reprint without a reason.
    """
    action = "lab.label.print"
    found = _specimen_or_404(actor=actor, specimen_id=specimen_id, action=action)
    order = _may_print(actor, found.order_id, action)
    specimen = Specimen.objects.get(pk=found.pk)
    reason = reprint_reason.strip()
    problem: str | Promise | None = None
    if order.status == OrderStatus.CANCELLED:
        problem = gettext_lazy("This order was cancelled; its labels are no longer printed.")
    elif len(reason) > MAX_REASON:
        problem = gettext_lazy("The reason is too long (at most 300 characters).")
    if problem is not None:
        raise refuse(actor=actor, action=action, order=order, message=problem)
    first = False
    if specimen.labels_printed == 0:
        with transaction.atomic():
            first = bool(
                Specimen.objects.filter(pk=specimen.pk, labels_printed=0).update(labels_printed=1)
            )
            if first:
                specimen_event(kind="label_printed", actor=actor, specimen=specimen)
                audit_order(
                    actor=actor, action=action, order=order, detail={"barcode": specimen.barcode}
                )
    if not first:
        _reprint(actor=actor, order=order, specimen=specimen, reason=reason)
    specimen.refresh_from_db()
    return specimen


def _reprint(*, actor: User, order: LabOrder, specimen: Specimen, reason: str) -> None:
    action = "lab.label.reprint"
    if not reason:
        raise refuse(
            actor=actor,
            action=action,
            order=order,
            message=gettext_lazy(
                "This label was printed before. Say why it is printed again (for example:"
                " the label was smudged)."
            ),
        )
    with transaction.atomic():
        Specimen.objects.filter(pk=specimen.pk).update(labels_printed=F("labels_printed") + 1)
        specimen_event(
            kind="label_reprinted", actor=actor, specimen=specimen, detail={"reason": reason}
        )
        audit_order(
            actor=actor,
            action=action,
            order=order,
            reason=reason,
            detail={"barcode": specimen.barcode, "reason": reason},
        )
