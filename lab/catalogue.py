"""The lab centre's catalogue: tests, their reference ranges, panels; who may edit them.

Only lab technicians of a centre change its catalogue; every change and every refusal is
audited (resource type ``lab_catalogue``). The checks a change must pass live in
``lab.catalogue_checks``, shared with the forms, so the services (also called by the API)
refuse with the same words the forms show beside the fields.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import IntegrityError, transaction
from django.db.models import Prefetch
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import User
from association.models import CentreKind, DiagnosticCentre
from association.selectors import actor_scope
from audit.models import Outcome
from audit.services import audit_record
from lab.access import is_lab_staff, lab_centre_ids
from lab.catalogue_checks import (
    LabTestData,
    PanelData,
    Problem,
    RangeData,
    lab_test_problems,
    panel_problems,
    range_problems,
)
from lab.models import LabTest, Panel, ReferenceRange
from lab.workflow_common import age_days, refuse_plain
from records.models import Sex
from records.selectors import AccessDenied, NotFound

# Reads and guards take whoever asks (a request's user); changes take a signed-in User.
AnyUser = AbstractBaseUser | AnonymousUser

RESOURCE = "lab_catalogue"
DAYS_PER_YEAR = 365


# --- Reading the catalogue ---------------------------------------------------------------------


@dataclass(frozen=True)
class Catalogue:
    """A centre's tests (with their ranges) and panels (with their tests)."""

    centre: DiagnosticCentre
    tests: list[LabTest]
    panels: list[Panel]

    def tests_by_specimen(self) -> list[tuple[str, list[LabTest]]]:
        """Tests grouped by specimen type, in the catalogue's order."""
        groups: dict[str, list[LabTest]] = {}
        for test in self.tests:
            groups.setdefault(test.specimen_type, []).append(test)
        return list(groups.items())


def catalogue_for_centre(centre_id: int, *, active_only: bool = True) -> Catalogue:
    """The catalogue of a lab centre (no access check: the catalogue holds no patient data).

    Raises
    ------
    NotFound
        No such lab centre.
    """
    centre = DiagnosticCentre.objects.filter(pk=centre_id, kind=CentreKind.LAB).first()
    if centre is None:
        raise NotFound(_("No such lab centre."))
    tests = LabTest.objects.filter(centre_id=centre_id).prefetch_related("ranges")
    panels = Panel.objects.filter(centre_id=centre_id)
    member_tests = LabTest.objects.order_by("sort_order", "code")
    if active_only:
        tests = tests.filter(active=True)
        panels = panels.filter(active=True)
        member_tests = member_tests.filter(active=True)
    panels = panels.prefetch_related(Prefetch("tests", queryset=member_tests))
    return Catalogue(centre=centre, tests=list(tests), panels=list(panels))


def reference_for(
    test: LabTest, *, sex: str, birth_date: dt.date, on: dt.date
) -> ReferenceRange | None:
    """The reference range that applies to a resident of ``sex`` born on ``birth_date``.

    The narrowest match wins: a range for the resident's sex beats one for both sexes,
    then the narrowest age band (an open-ended band is the widest), then the later band.
    Uses ``test.ranges.all()``, so a prefetch serves it without queries.
    """
    age = age_days(birth_date, on)
    matches = [
        r
        for r in test.ranges.all()
        if r.sex in ("", sex)
        and r.age_min_days <= age
        and (r.age_max_days is None or age < r.age_max_days)
    ]
    if not matches:
        return None

    def rank(r: ReferenceRange) -> tuple[int, float, int]:
        width = float("inf") if r.age_max_days is None else r.age_max_days - r.age_min_days
        return (0 if r.sex else 1, width, -r.age_min_days)

    return min(matches, key=rank)


def range_summary(r: ReferenceRange) -> str:
    """A range as shown in lists: "M 18–∞ y: 57–111" (the unit is shown beside it)."""
    who = Sex(r.sex).label if r.sex in Sex.values else _("all")
    to = years_of(r.age_max_days) if r.age_max_days is not None else "∞"
    ages = f"{years_of(r.age_min_days)}–{to}"
    if r.text:
        value = r.text
    elif r.low is not None and r.high is not None:
        value = f"{_plain(r.low)}–{_plain(r.high)}"
    elif r.low is not None:
        value = f"≥ {_plain(r.low)}"
    elif r.high is not None:
        value = f"≤ {_plain(r.high)}"
    else:
        value = "—"
    return _("%(who)s, %(ages)s years: %(value)s") % {"who": who, "ages": ages, "value": value}


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")


def years_of(days: int) -> str:
    """Days as years for the forms ("18", "0.5")."""
    years = (Decimal(days) / DAYS_PER_YEAR).quantize(Decimal("0.01"))
    return _plain(years)


def days_of(years: Decimal) -> int:
    return int((years * DAYS_PER_YEAR).to_integral_value())


# --- Who may change it -------------------------------------------------------------------------


def editable_centres(actor: AnyUser) -> list[DiagnosticCentre]:
    """The lab centres whose catalogue ``actor`` edits."""
    ids = lab_centre_ids(actor_scope(actor))
    return list(DiagnosticCentre.objects.filter(pk__in=ids).order_by("name"))


def catalogue_guard(*, actor: AnyUser, centre_id: int, action: str) -> DiagnosticCentre:
    """The centre, if ``actor`` is one of its lab technicians; others are denied (audited).

    Raises
    ------
    AccessDenied, NotFound
    """
    centre = DiagnosticCentre.objects.filter(pk=centre_id, kind=CentreKind.LAB).first()
    allowed = centre is not None and is_lab_staff(actor_scope(actor), centre.pk)
    if not allowed:
        audit_record(
            actor=actor,
            action=action,
            outcome=Outcome.DENIED if centre is not None else Outcome.FAILED,
            resource_type=RESOURCE,
            resource_id=centre_id,
            reason="not staff of the lab centre" if centre is not None else "no such lab centre",
        )
    if centre is None:
        raise NotFound(_("No such lab centre."))
    if not allowed:
        raise AccessDenied(_("Only the lab centre's staff can change its catalogue."))
    return centre


def lab_test_for_editing(*, actor: AnyUser, test_id: int, action: str) -> LabTest:
    """A test of a centre where ``actor`` works (its ranges prefetched)."""
    test = LabTest.objects.prefetch_related("ranges").filter(pk=test_id).first()
    if test is None:
        audit_record(
            actor=actor,
            action=action,
            outcome=Outcome.FAILED,
            resource_type=RESOURCE,
            resource_id=f"test:{test_id}",
            reason="no such test",
        )
        raise NotFound(_("No such test."))
    catalogue_guard(actor=actor, centre_id=test.centre_id, action=action)
    return test


def panel_for_editing(*, actor: AnyUser, panel_id: int, action: str) -> Panel:
    panel = Panel.objects.prefetch_related("tests").filter(pk=panel_id).first()
    if panel is None:
        audit_record(
            actor=actor,
            action=action,
            outcome=Outcome.FAILED,
            resource_type=RESOURCE,
            resource_id=f"panel:{panel_id}",
            reason="no such panel",
        )
        raise NotFound(_("No such panel."))
    catalogue_guard(actor=actor, centre_id=panel.centre_id, action=action)
    return panel


# --- Changing it -------------------------------------------------------------------------------


def _refuse_first(
    problems: Iterable[Problem], *, actor: User, action: str, resource_id: object
) -> None:
    for _field, message in problems:
        raise refuse_plain(
            actor=actor,
            action=action,
            message=message,
            resource_type=RESOURCE,
            resource_id=resource_id,
        )


def _clean_test(data: LabTestData) -> LabTestData:
    return replace(
        data,
        code=data.code.strip().upper(),
        name=data.name.strip(),
        name_en=data.name_en.strip(),
        unit=data.unit.strip(),
        loinc=data.loinc.strip(),
    )


def _write_ranges(test: LabTest, ranges: Sequence[RangeData]) -> None:
    test.ranges.all().delete()
    ReferenceRange.objects.bulk_create(
        ReferenceRange(
            test=test,
            sex=r.sex,
            age_min_days=r.age_min_days,
            age_max_days=r.age_max_days,
            low=r.low,
            high=r.high,
            text=r.text.strip(),
        )
        for r in ranges
    )


def _range_detail(ranges: Sequence[RangeData]) -> list[dict[str, object]]:
    return [
        {
            "sex": r.sex,
            "from": r.age_min_days,
            "to": r.age_max_days,
            "low": None if r.low is None else str(r.low),
            "high": None if r.high is None else str(r.high),
            "text": r.text,
        }
        for r in ranges
    ]


def lab_test_create(
    *, actor: User, centre_id: int, data: LabTestData, ranges: Sequence[RangeData] = ()
) -> LabTest:
    """Add a test (with its reference ranges) to the centre's catalogue.

    Raises
    ------
    AccessDenied, NotFound, InvalidRecord
    """
    action = "lab.catalogue.test.create"
    catalogue_guard(actor=actor, centre_id=centre_id, action=action)
    data = _clean_test(data)
    problems = lab_test_problems(data, centre_id=centre_id) + range_problems(
        ranges, value_kind=data.value_kind
    )
    _refuse_first(problems, actor=actor, action=action, resource_id=f"centre:{centre_id}")
    try:
        with transaction.atomic():
            test = LabTest.objects.create(centre_id=centre_id, **asdict(data))
            _write_ranges(test, ranges)
    except IntegrityError:  # another technician took the code meanwhile
        raise refuse_plain(
            actor=actor,
            action=action,
            message=gettext_lazy("This centre already has a test with this code."),
            resource_type=RESOURCE,
            resource_id=f"centre:{centre_id}",
        ) from None
    _audit(actor, action, f"test:{test.pk}", {"code": test.code, "ranges": _range_detail(ranges)})
    return test


def lab_test_update(
    *, actor: User, test_id: int, data: LabTestData, ranges: Sequence[RangeData]
) -> LabTest:
    """Change a test and replace its reference ranges.

    Raises
    ------
    AccessDenied, NotFound, InvalidRecord
    """
    action = "lab.catalogue.test.update"
    test = lab_test_for_editing(actor=actor, test_id=test_id, action=action)
    data = _clean_test(data)
    problems = lab_test_problems(data, centre_id=test.centre_id, test_id=test.pk) + range_problems(
        ranges, value_kind=data.value_kind
    )
    _refuse_first(problems, actor=actor, action=action, resource_id=f"test:{test.pk}")
    changed = {
        name: [str(getattr(test, name)), str(value)]
        for name, value in asdict(data).items()
        if getattr(test, name) != value
    }
    try:
        with transaction.atomic():
            LabTest.objects.filter(pk=test.pk).update(**asdict(data))
            _write_ranges(test, ranges)
    except IntegrityError:
        raise refuse_plain(
            actor=actor,
            action=action,
            message=gettext_lazy("This centre already has a test with this code."),
            resource_type=RESOURCE,
            resource_id=f"test:{test.pk}",
        ) from None
    _audit(actor, action, f"test:{test.pk}", {"changed": changed, "ranges": _range_detail(ranges)})
    return LabTest.objects.prefetch_related("ranges").get(pk=test.pk)


def _clean_panel(data: PanelData) -> PanelData:
    return PanelData(
        code=data.code.strip().upper(),
        name=data.name.strip(),
        name_en=data.name_en.strip(),
        test_ids=list(dict.fromkeys(data.test_ids)),
        active=data.active,
    )


def panel_create(*, actor: User, centre_id: int, data: PanelData) -> Panel:
    """Add a panel of the centre's tests.

    Raises
    ------
    AccessDenied, NotFound, InvalidRecord
    """
    action = "lab.catalogue.panel.create"
    catalogue_guard(actor=actor, centre_id=centre_id, action=action)
    data = _clean_panel(data)
    problems = panel_problems(data, centre_id=centre_id)
    _refuse_first(problems, actor=actor, action=action, resource_id=f"centre:{centre_id}")
    try:
        with transaction.atomic():
            panel = Panel.objects.create(
                centre_id=centre_id,
                code=data.code,
                name=data.name,
                name_en=data.name_en,
                active=data.active,
            )
            panel.tests.set(data.test_ids)
    except IntegrityError:
        raise refuse_plain(
            actor=actor,
            action=action,
            message=gettext_lazy("This centre already has a panel with this code."),
            resource_type=RESOURCE,
            resource_id=f"centre:{centre_id}",
        ) from None
    _audit(actor, action, f"panel:{panel.pk}", {"code": panel.code, "tests": data.test_ids})
    return panel


def panel_update(*, actor: User, panel_id: int, data: PanelData) -> Panel:
    """Change a panel's name, code, tests or whether it is offered.

    Raises
    ------
    AccessDenied, NotFound, InvalidRecord
    """
    action = "lab.catalogue.panel.update"
    panel = panel_for_editing(actor=actor, panel_id=panel_id, action=action)
    data = _clean_panel(data)
    problems = panel_problems(data, centre_id=panel.centre_id, panel_id=panel.pk)
    _refuse_first(problems, actor=actor, action=action, resource_id=f"panel:{panel.pk}")
    before = sorted(t.pk for t in panel.tests.all())
    try:
        with transaction.atomic():
            Panel.objects.filter(pk=panel.pk).update(
                code=data.code, name=data.name, name_en=data.name_en, active=data.active
            )
            panel.tests.set(data.test_ids)
    except IntegrityError:
        raise refuse_plain(
            actor=actor,
            action=action,
            message=gettext_lazy("This centre already has a panel with this code."),
            resource_type=RESOURCE,
            resource_id=f"panel:{panel.pk}",
        ) from None
    _audit(
        actor,
        action,
        f"panel:{panel.pk}",
        {"code": data.code, "tests_before": before, "tests": sorted(data.test_ids)},
    )
    return Panel.objects.prefetch_related("tests").get(pk=panel.pk)


def _audit(actor: User, action: str, resource_id: str, detail: dict[str, object]) -> None:
    audit_record(
        actor=actor,
        action=action,
        outcome=Outcome.ALLOWED,
        resource_type=RESOURCE,
        resource_id=resource_id,
        detail=detail,
    )
