"""Order, box and specimen numbers.

* Orders ``LO`` + yymmdd + a sequence of at least 4 digits; boxes ``BX`` + the same.
* Specimen barcodes are 12 digits: yymmdd, a 5-digit sequence and a Luhn check digit, so
  a mistyped or foreign barcode is told apart from an unknown one before any lookup, and
  Code 128 prints them compactly (set C).

Creation retries on a unique clash (another process took the number meanwhile).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from django.db import IntegrityError, models, transaction
from django.db.models.functions import Length
from django.utils import timezone

ORDER_PREFIX = "LO"
BOX_PREFIX = "BX"
BARCODE_LENGTH = 12
_ATTEMPTS = 8

M = TypeVar("M", bound=models.Model)


def luhn_digit(digits: str) -> str:
    """The Luhn check digit for a string of digits."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 0:  # every second digit from the right, starting with the last
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str((10 - total % 10) % 10)


def barcode_valid(text: str) -> bool:
    """True for a well-formed specimen barcode (12 digits, Luhn check digit right)."""
    return (
        len(text) == BARCODE_LENGTH
        and text.isascii()
        and text.isdigit()
        and luhn_digit(text[:-1]) == text[-1]
    )


def _next_sequence(model: type[models.Model], field: str, prefix: str) -> int:
    last = (
        model._default_manager.filter(**{f"{field}__startswith": prefix})
        .order_by(Length(field).desc(), f"-{field}")
        .values_list(field, flat=True)
        .first()
    )
    tail = str(last)[len(prefix) :] if last else ""
    return int(tail) + 1 if tail.isdigit() else 1


def next_order_number() -> str:
    from lab.models import LabOrder

    prefix = f"{ORDER_PREFIX}{timezone.localdate():%y%m%d}"
    return f"{prefix}{_next_sequence(LabOrder, 'number', prefix):04d}"


def next_box_number() -> str:
    from lab.models import Box

    prefix = f"{BOX_PREFIX}{timezone.localdate():%y%m%d}"
    return f"{prefix}{_next_sequence(Box, 'number', prefix):04d}"


def next_barcode() -> str:
    from lab.models import Specimen

    prefix = f"{timezone.localdate():%y%m%d}"
    last = (
        Specimen.objects.filter(barcode__startswith=prefix)
        .order_by("-barcode")
        .values_list("barcode", flat=True)
        .first()
    )
    sequence = int(last[6:11]) + 1 if last else 1
    body = f"{prefix}{sequence:05d}"
    return body + luhn_digit(body)


def create_numbered(make: Callable[[], M]) -> M:
    """Run ``make`` (which takes a fresh number and saves) until no unique clash is left."""
    for _attempt in range(_ATTEMPTS):
        try:
            with transaction.atomic():
                return make()
        except IntegrityError:
            continue
    raise IntegrityError("no free number")
