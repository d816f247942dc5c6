"""Reading a typed or imported result value and flagging it against its limits.

* :func:`parse_value` turns what a technician typed (or an analyser exported) into a
  :class:`~decimal.Decimal`, or keeps a qualified value ("<0.1", ">500") or a text result as
  text. Full-width characters from a Chinese input method are folded ("４，５" reads 4.5), a
  comma decimal is accepted, and more than four decimals are rounded (what the database keeps).
* :func:`plausible` tells a typing or unit error (6500 mmol/L potassium) from a real value.
* :func:`flag_for` compares a value with the critical limits first, then the reference range.

Nothing here touches the database.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from lab.models import Flag, LabTest, ReferenceRange, ValueKind, decimal_or_none

PLACES = Decimal("0.0001")
# The column holds 12 digits of which 4 decimals.
LARGEST = Decimal("99999999.9999")
MAX_TEXT = 200
QUALIFIERS = ("<", ">", "≤", "≥")
ARROWS = {
    Flag.LOW: "↓",
    Flag.HIGH: "↑",
    Flag.CRITICAL_LOW: "↓↓",
    Flag.CRITICAL_HIGH: "↑↑",
    Flag.ABNORMAL: "*",
    Flag.NORMAL: "",
}

_NUMBER = re.compile(r"^[+-]?(\d+([.]\d*)?|[.]\d+)$")
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+[.]\d+$")
# Words that mean "nothing found" in a text result, in both languages.
_NEGATIVE_WORDS = frozenset({"-", "neg", "negative", "阴性", "nil", "none", "未检出"})


class ValueProblem(ValueError):
    """The text is not a value of the test; ``kind`` says why (for the message)."""

    def __init__(self, kind: str, text: str) -> None:
        super().__init__(kind)
        self.kind = kind  # "empty", "not_a_number", "too_long", "too_large"
        self.text = text


@dataclass(frozen=True)
class Reading:
    """A parsed value: the number to store and flag with, and the text to show."""

    numeric: Decimal | None  # None for qualified and text values
    text: str  # "<0.1", ">500" or a text result; "" for a plain number
    bound: Decimal | None  # the number flagged and range-checked (the bound of "<0.1")

    @property
    def display(self) -> str:
        return self.text or decimal_or_none(self.numeric)


def _fold(text: str) -> str:
    """Full-width digits and signs to ASCII, whitespace removed."""
    folded = unicodedata.normalize("NFKC", text)
    return "".join(folded.split())


def _number(text: str) -> Decimal:
    """A plain decimal number, with a comma decimal or thousands separators accepted."""
    if _THOUSANDS.match(text):
        text = text.replace(",", "")
    elif text.count(",") == 1 and "." not in text:
        text = text.replace(",", ".")
    if not _NUMBER.match(text):
        raise ValueProblem("not_a_number", text)
    try:
        value = Decimal(text).quantize(PLACES, rounding=ROUND_HALF_UP)
    except InvalidOperation:
        raise ValueProblem("not_a_number", text) from None
    if abs(value) > LARGEST:
        raise ValueProblem("too_large", text)
    return value


def parse_value(test: LabTest, text: str) -> Decimal | str:
    """The value of ``test`` written as ``text``: a Decimal, or a qualified/text value as text.

    Raises
    ------
    ValueProblem
        Empty, not a number (numeric tests), too long or too large.
    """
    reading = read_value(test, text)
    return reading.numeric if reading.numeric is not None else reading.text


def read_value(test: LabTest, text: str) -> Reading:
    """Like :func:`parse_value`, with the bound of a qualified value kept for flagging.

    Raises
    ------
    ValueProblem
    """
    raw = (text or "").strip()
    if not raw:
        raise ValueProblem("empty", raw)
    if len(raw) > MAX_TEXT:
        raise ValueProblem("too_long", raw[:20])
    if test.value_kind == ValueKind.TEXT:
        return Reading(numeric=None, text=raw, bound=None)
    folded = _fold(raw).replace("<=", "≤").replace(">=", "≥")
    qualifier = folded[0] if folded[0] in QUALIFIERS else ""
    number = _number(folded[len(qualifier) :])
    if qualifier:
        return Reading(numeric=None, text=qualifier + decimal_or_none(number), bound=number)
    return Reading(numeric=number, text="", bound=number)


def plausible(test: LabTest, value: Decimal) -> bool:
    """False for a value no patient can have (a typing or unit error)."""
    if test.plausible_low is not None and value < test.plausible_low:
        return False
    return test.plausible_high is None or value <= test.plausible_high


def flag_for(test: LabTest, value: Decimal, reference: ReferenceRange | None) -> Flag:
    """Critical limits first (at or beyond the limit), then the reference range (outside it)."""
    if test.critical_low is not None and value <= test.critical_low:
        return Flag.CRITICAL_LOW
    if test.critical_high is not None and value >= test.critical_high:
        return Flag.CRITICAL_HIGH
    if reference is not None:
        if reference.low is not None and value < reference.low:
            return Flag.LOW
        if reference.high is not None and value > reference.high:
            return Flag.HIGH
    return Flag.NORMAL


def flag_text(value: str, reference: ReferenceRange | None) -> Flag:
    """A text result is normal when it says what the reference expects, else abnormal.

    The demo's urine protein expects "阴性 negative": "阴性", "negative", "neg" and "-" are
    normal; "+", "2+" or "阳性" are abnormal. Without an expected text nothing is flagged.
    """
    expected = (reference.text if reference is not None else "").strip()
    if not expected:
        return Flag.NORMAL
    said = _fold(value).casefold()
    words = {w.casefold() for w in re.split(r"[\s/,;，、]+", expected) if w}
    if said in words or said == _fold(expected).casefold():
        return Flag.NORMAL
    if words & _NEGATIVE_WORDS and said in _NEGATIVE_WORDS:
        return Flag.NORMAL
    return Flag.ABNORMAL


def flag_reading(test: LabTest, reading: Reading, reference: ReferenceRange | None) -> Flag:
    """The flag of a parsed value (numbers and qualified values by their bound)."""
    if reading.bound is None:
        return flag_text(reading.text, reference)
    return flag_for(test, reading.bound, reference)


def reference_label(low: Decimal | None, high: Decimal | None, text: str = "") -> str:
    """A reference interval as printed: "3.5–5.3", "≤23", "≥3.5" or the expected text."""
    if low is not None and high is not None:
        return f"{decimal_or_none(low)}–{decimal_or_none(high)}"
    if high is not None:
        return f"≤{decimal_or_none(high)}"
    if low is not None:
        return f"≥{decimal_or_none(low)}"
    return text


def range_label(low: Decimal | None, high: Decimal | None) -> str:
    """A plausible or critical interval in a message ("0.5–15", "≤3000")."""
    return reference_label(low, high) or "—"
