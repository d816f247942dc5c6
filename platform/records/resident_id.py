"""Resident identity card numbers (居民身份证号码, GB 11643-1999).

Eighteen characters: a six-digit region code, the birth date as YYYYMMDD, a three-digit
sequence whose last digit is odd for men and even for women, and an ISO 7064 MOD 11-2
check character (0-9 or X).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from django.utils import timezone
from django.utils.translation import gettext_lazy as _

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_SHAPE = re.compile(r"^\d{17}[\dX]$")


class InvalidResidentId(ValueError):
    """The number is not a valid resident ID; the message says why, for a person."""


@dataclass(frozen=True)
class ResidentId:
    number: str
    birth_date: dt.date
    sex: str  # "M" or "F"

    @property
    def masked(self) -> str:
        return mask(self.number)


def check_character(first17: str) -> str:
    """Return the check character for the first 17 digits."""
    total = sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK[total % 11]


def parse(raw: str) -> ResidentId:
    """Normalise and validate ``raw``.

    Raises
    ------
    InvalidResidentId
        With a translated message saying what is wrong.
    """
    number = raw.strip().replace(" ", "").upper()
    if not _SHAPE.match(number):
        raise InvalidResidentId(
            _("A resident ID has 18 characters: 17 digits and a final digit or X.")
        )
    try:
        birth = dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise InvalidResidentId(
            _("The birth date inside this resident ID is not a real date.")
        ) from None
    if birth.year < 1880 or birth > timezone.localdate():
        raise InvalidResidentId(_("The birth date inside this resident ID is out of range."))
    if check_character(number[:17]) != number[17]:
        raise InvalidResidentId(
            _("The check digit of this resident ID does not match; please re-check the number.")
        )
    return ResidentId(number=number, birth_date=birth, sex="M" if int(number[16]) % 2 else "F")


def mask(number: str) -> str:
    """Show the region code and the last four characters only: ``110101********123X``."""
    if len(number) < 10:
        return "*" * len(number)
    return number[:6] + "*" * (len(number) - 10) + number[-4:]
