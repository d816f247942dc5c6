"""Consult numbers: ``HZ`` (会诊) + yymmdd + a daily sequence of at least four digits."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.db.models.functions import Length
from django.utils import timezone

from consult.models import Consult

PREFIX = "HZ"
_ATTEMPTS = 5


def next_number() -> str:
    """The next free-looking number of today (16 characters at most)."""
    prefix = f"{PREFIX}{timezone.localdate():%y%m%d}"
    last = (
        Consult.objects.filter(number__startswith=prefix)
        .order_by(Length("number").desc(), "-number")
        .values_list("number", flat=True)
        .first()
    )
    tail = last[len(prefix) :] if last else ""
    sequence = int(tail) + 1 if tail.isdigit() else 1
    return f"{prefix}{sequence:04d}"


def consult_create_numbered(**fields: Any) -> Consult:
    """Create the consult under the next number; retry when another request took it."""
    for _attempt in range(_ATTEMPTS):
        try:
            with transaction.atomic():
                return Consult.objects.create(number=next_number(), **fields)
        except IntegrityError:  # another consult took the number meanwhile: take the next
            continue
    raise IntegrityError("no free consult number")
