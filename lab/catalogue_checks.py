"""What a change to a lab centre's catalogue must satisfy.

The checks are plain functions returning ``(field, message)`` problems, shared by the
catalogue forms and the admin (which show them beside the fields) and by the services in
``lab.catalogue`` (which refuse with the same words, also when called by the API). They
take the data classes below, the fields as the services take them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy

from lab.models import Container, LabTest, Panel, SpecimenType, ValueKind
from records.models import Sex

MAX_CODE = 20
MAX_NAME = 100

Problem = tuple[str | None, str | Promise]


@dataclass(frozen=True)
class LabTestData:
    """The fields of a test as the services take them."""

    code: str
    name: str
    specimen_type: str
    container: str
    name_en: str = ""
    loinc: str = ""
    value_kind: str = ValueKind.NUMERIC
    unit: str = ""
    decimals: int = 1
    plausible_low: Decimal | None = None
    plausible_high: Decimal | None = None
    critical_low: Decimal | None = None
    critical_high: Decimal | None = None
    turnaround_minutes: int = 24 * 60
    active: bool = True
    sort_order: int = 0


@dataclass(frozen=True)
class RangeData:
    """One reference range (ages in days, as stored)."""

    sex: str = ""
    age_min_days: int = 0
    age_max_days: int | None = None
    low: Decimal | None = None
    high: Decimal | None = None
    text: str = ""


@dataclass(frozen=True)
class PanelData:
    code: str
    name: str
    test_ids: list[int] = field(default_factory=list)
    name_en: str = ""
    active: bool = True


def code_taken(
    model: type[LabTest] | type[Panel], centre_id: int, code: str, pk: int | None
) -> bool:
    rows = model.objects.filter(centre_id=centre_id, code__iexact=code)
    if pk is not None:
        rows = rows.exclude(pk=pk)
    return rows.exists()


def lab_test_problems(
    data: LabTestData, *, centre_id: int, test_id: int | None = None
) -> list[Problem]:
    """What is wrong with a test's fields (empty when it may be saved)."""
    problems: list[Problem] = []
    if not data.code or len(data.code) > MAX_CODE or not data.code.isascii():
        problems.append(("code", gettext_lazy("Give a short code in Latin letters and digits.")))
    elif code_taken(LabTest, centre_id, data.code, test_id):
        problems.append(("code", gettext_lazy("This centre already has a test with this code.")))
    if not data.name or len(data.name) > MAX_NAME:
        problems.append(("name", gettext_lazy("Give the test's name (at most 100 characters).")))
    if data.specimen_type not in SpecimenType.values:
        problems.append(("specimen_type", gettext_lazy("Choose a specimen type.")))
    if data.container not in Container.values:
        problems.append(("container", gettext_lazy("Choose a container.")))
    if data.value_kind not in ValueKind.values:
        problems.append(("value_kind", gettext_lazy("Choose the kind of value.")))
    if data.turnaround_minutes <= 0:
        problems.append(
            ("turnaround_minutes", gettext_lazy("The turnaround target must be positive."))
        )
    if data.value_kind == ValueKind.NUMERIC:
        problems.extend(_numeric_problems(data))
    return problems


def _numeric_problems(data: LabTestData) -> list[Problem]:
    problems: list[Problem] = []
    if not data.unit.strip():
        problems.append(("unit", gettext_lazy("A numeric test needs a unit (for example mmol/L).")))
    low, high = data.plausible_low, data.plausible_high
    if low is not None and high is not None and low >= high:
        problems.append(
            (
                "plausible_high",
                gettext_lazy("The highest plausible value must be above the lowest."),
            )
        )
    c_low, c_high = data.critical_low, data.critical_high
    if c_low is not None and c_high is not None and c_low >= c_high:
        problems.append(
            (
                "critical_high",
                gettext_lazy("The critical high limit must be above the critical low."),
            )
        )
    for name, limit in (("critical_low", c_low), ("critical_high", c_high)):
        if limit is None:
            continue
        if (low is not None and limit < low) or (high is not None and limit > high):
            problems.append(
                (name, gettext_lazy("Critical limits must lie inside the plausible range."))
            )
    return problems


def range_problems(ranges: Sequence[RangeData], *, value_kind: str) -> list[Problem]:
    """What is wrong with a test's reference ranges (the field is None: the whole set)."""
    problems: list[Problem] = []
    for r in ranges:
        if r.sex not in ("", *Sex.values):
            problems.append((None, gettext_lazy("Unknown sex in a reference range.")))
        if r.age_max_days is not None and r.age_max_days <= r.age_min_days:
            problems.append(
                (None, gettext_lazy("In a reference range, the upper age must be above the lower."))
            )
        if r.low is not None and r.high is not None and r.low >= r.high:
            problems.append((None, gettext_lazy("In a reference range, low must be below high.")))
        if value_kind == ValueKind.NUMERIC and r.low is None and r.high is None:
            problems.append(
                (None, gettext_lazy("A reference range of a numeric test needs low or high."))
            )
        if value_kind == ValueKind.TEXT and not r.text.strip():
            problems.append(
                (None, gettext_lazy("A reference range of a text test needs the expected text."))
            )
    for index, a in enumerate(ranges):
        for b in ranges[index + 1 :]:
            if a.sex == b.sex and _ages_overlap(a, b):
                problems.append(
                    (
                        None,
                        gettext_lazy(
                            "Two reference ranges for the same sex cover the same ages;"
                            " make the age bands follow each other."
                        ),
                    )
                )
                return problems
    return problems


def _ages_overlap(a: RangeData, b: RangeData) -> bool:
    a_end = a.age_max_days if a.age_max_days is not None else float("inf")
    b_end = b.age_max_days if b.age_max_days is not None else float("inf")
    return a.age_min_days < b_end and b.age_min_days < a_end


def panel_problems(
    data: PanelData, *, centre_id: int, panel_id: int | None = None
) -> list[Problem]:
    problems: list[Problem] = []
    if not data.code or len(data.code) > MAX_CODE or not data.code.isascii():
        problems.append(("code", gettext_lazy("Give a short code in Latin letters and digits.")))
    elif code_taken(Panel, centre_id, data.code, panel_id):
        problems.append(("code", gettext_lazy("This centre already has a panel with this code.")))
    if not data.name or len(data.name) > MAX_NAME:
        problems.append(("name", gettext_lazy("Give the panel's name (at most 100 characters).")))
    if not data.test_ids:
        problems.append(("tests", gettext_lazy("Choose at least one test.")))
    elif LabTest.objects.filter(centre_id=centre_id, pk__in=data.test_ids).count() != len(
        set(data.test_ids)
    ):
        problems.append(("tests", gettext_lazy("Choose tests of this centre's catalogue.")))
    return problems
