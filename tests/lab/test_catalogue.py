"""The lab catalogue: only the centre's technicians change it; bad limits and ranges are refused."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D
from typing import Any

import pytest
from django.conf import settings
from django.utils import translation

from association.models import DiagnosticCentre
from audit.models import AuditEvent, Outcome
from lab.catalogue import (
    catalogue_for_centre,
    lab_test_create,
    lab_test_update,
    panel_create,
    panel_update,
    reference_for,
)
from lab.catalogue_checks import LabTestData, PanelData, RangeData
from lab.models import Container, LabTest, Panel, ReferenceRange, SpecimenType, ValueKind
from records.selectors import AccessDenied
from records.services import InvalidRecord

pytestmark = pytest.mark.django_db

ADULT = 18 * 365


@pytest.fixture
def centre() -> DiagnosticCentre:
    return DiagnosticCentre.objects.get(code="qingshan-lab")


def _data(**changes: Any) -> LabTestData:
    fields: dict[str, Any] = {
        "code": "CA",
        "name": "钙",
        "name_en": "Calcium",
        "specimen_type": SpecimenType.SERUM,
        "container": Container.SERUM_GEL,
        "unit": "mmol/L",
        "decimals": 2,
        "plausible_low": D("0.5"),
        "plausible_high": D("5"),
        "critical_low": D("1.6"),
        "critical_high": D("3.5"),
        "turnaround_minutes": 240,
    }
    fields.update(changes)
    return LabTestData(**fields)


def _post_data(test: LabTest | None = None, **changes: Any) -> dict[str, Any]:
    """The test page's form as a browser sends it (ranges: one adult range, one empty row)."""
    data: dict[str, Any] = {
        "code": "CA",
        "name": "钙",
        "name_en": "Calcium",
        "loinc": "",
        "specimen_type": SpecimenType.SERUM,
        "container": Container.SERUM_GEL,
        "value_kind": ValueKind.NUMERIC,
        "unit": "mmol/L",
        "decimals": "2",
        "plausible_low": "0.5",
        "plausible_high": "5",
        "critical_low": "1.6",
        "critical_high": "3.5",
        "turnaround_minutes": "240",
        "sort_order": "50",
        "active": "on",
        "ranges-TOTAL_FORMS": "2",
        "ranges-INITIAL_FORMS": "0",
        "ranges-MIN_NUM_FORMS": "0",
        "ranges-MAX_NUM_FORMS": "20",
        "ranges-0-sex": "",
        "ranges-0-age_from": "18",
        "ranges-0-age_to": "",
        "ranges-0-low": "2.11",
        "ranges-0-high": "2.52",
        "ranges-0-text": "",
        "ranges-1-sex": "",
        "ranges-1-age_from": "0",
        "ranges-1-age_to": "",
        "ranges-1-low": "",
        "ranges-1-high": "",
        "ranges-1-text": "",
    }
    data.update(changes)
    return data


def _login(client: Any, user: Any, language: str = "en") -> Any:
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
    client.force_login(user)
    return client


# --- Who may edit ------------------------------------------------------------------------------


def test_lab_technician_sees_the_catalogue_with_ranges_and_critical_limits(client, actors, centre):
    response = _login(client, actors.labtech).get("/lab/catalogue/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Potassium" in html
    assert "Full blood count" in html
    assert "3.5–5.3" in html
    assert "&lt; 2.8" in html
    assert "&gt; 6.2" in html


def test_catalogue_page_speaks_chinese(client, actors):
    response = _login(client, actors.labtech, "zh-hans").get("/lab/catalogue/")
    assert response.status_code == 200
    html = response.content.decode()
    assert '<html lang="zh-hans">' in html
    assert "钾" in html
    assert "Potassium" not in html


@pytest.mark.parametrize("username", ["village", "township", "outsider"])
def test_others_cannot_open_the_catalogue_and_are_audited(client, actors, username):
    response = _login(client, getattr(actors, username)).get("/lab/catalogue/")
    assert response.status_code == 403
    assert AuditEvent.objects.filter(
        actor=getattr(actors, username),
        action="lab.catalogue.view",
        outcome=Outcome.DENIED,
        resource_type="lab_catalogue",
    ).exists()


@pytest.mark.parametrize("username", ["village", "township", "outsider"])
def test_others_cannot_edit_a_test_and_are_audited(client, actors, centre, username):
    potassium = LabTest.objects.get(centre=centre, code="K")
    user = getattr(actors, username)
    response = _login(client, user).post(
        f"/lab/catalogue/tests/{potassium.pk}/", _post_data(code="K")
    )
    assert response.status_code == 403
    assert AuditEvent.objects.filter(
        actor=user,
        action="lab.catalogue.test.update",
        outcome=Outcome.DENIED,
        resource_type="lab_catalogue",
    ).exists()
    potassium.refresh_from_db()
    assert potassium.name_en == "Potassium"


@pytest.mark.parametrize("username", ["village", "outsider"])
def test_the_service_refuses_others_too(actors, centre, username):
    with pytest.raises(AccessDenied):
        lab_test_create(actor=getattr(actors, username), centre_id=centre.pk, data=_data())
    assert not LabTest.objects.filter(code="CA").exists()


def test_someone_else_cannot_create_a_panel_page(client, actors, centre):
    response = _login(client, actors.township).get(f"/lab/catalogue/panels/new/?centre={centre.pk}")
    assert response.status_code == 403


# --- Creating and editing ----------------------------------------------------------------------


def test_lab_technician_adds_a_test_with_its_ranges_on_the_page(client, actors, centre):
    response = _login(client, actors.labtech).post(
        f"/lab/catalogue/tests/new/?centre={centre.pk}", _post_data()
    )
    assert response.status_code == 302
    test = LabTest.objects.get(centre=centre, code="CA")
    assert test.critical_low == D("1.6")
    ranges = list(test.ranges.all())
    assert len(ranges) == 1  # the empty row is not saved
    assert ranges[0].age_min_days == ADULT
    assert ranges[0].age_max_days is None
    assert ranges[0].low == D("2.11")
    event = AuditEvent.objects.get(action="lab.catalogue.test.create")
    assert event.outcome == Outcome.ALLOWED
    assert event.resource_type == "lab_catalogue"


def test_the_edit_page_shows_ages_in_years_and_saves_changes(client, actors, centre):
    creatinine = LabTest.objects.get(centre=centre, code="CREA")
    client = _login(client, actors.labtech)
    page = client.get(f"/lab/catalogue/tests/{creatinine.pk}/")
    assert page.status_code == 200
    assert 'value="18"' in page.content.decode()
    ranges = list(creatinine.ranges.order_by("pk"))
    data = _post_data(
        code="CREA",
        name="肌酐",
        name_en="Creatinine",
        unit="μmol/L",
        plausible_low="5",
        plausible_high="3000",
        critical_low="",
        critical_high="800",
        **{"ranges-TOTAL_FORMS": str(len(ranges)), "ranges-INITIAL_FORMS": str(len(ranges))},
    )
    for index, r in enumerate(ranges):
        data.update(
            {
                f"ranges-{index}-id": str(r.pk),
                f"ranges-{index}-test": str(creatinine.pk),
                f"ranges-{index}-sex": r.sex,
                f"ranges-{index}-age_from": str(r.age_min_days / 365),
                f"ranges-{index}-age_to": ""
                if r.age_max_days is None
                else str(r.age_max_days / 365),
                f"ranges-{index}-low": str(r.low),
                f"ranges-{index}-high": str(r.high),
                f"ranges-{index}-text": "",
            }
        )
    data[f"ranges-{len(ranges) - 1}-DELETE"] = "on"
    response = client.post(f"/lab/catalogue/tests/{creatinine.pk}/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    creatinine.refresh_from_db()
    assert creatinine.critical_high == D("800")
    assert creatinine.ranges.count() == len(ranges) - 1
    event = AuditEvent.objects.get(action="lab.catalogue.test.update")
    assert event.detail["changed"]["critical_high"] == ["700.0000", "800"]


def test_a_refused_test_shows_the_reason_beside_the_field(client, actors, centre):
    with translation.override("en"):
        response = _login(client, actors.labtech).post(
            f"/lab/catalogue/tests/new/?centre={centre.pk}",
            _post_data(critical_low="4", critical_high="3"),
        )
    assert response.status_code == 400
    assert "The critical high limit must be above the critical low." in response.content.decode()
    assert not LabTest.objects.filter(code="CA").exists()


def test_overlapping_ranges_are_refused_on_the_page(client, actors, centre):
    response = _login(client, actors.labtech).post(
        f"/lab/catalogue/tests/new/?centre={centre.pk}",
        _post_data(
            **{
                "ranges-1-age_from": "60",
                "ranges-1-low": "2.0",
                "ranges-1-high": "2.5",
            }
        ),
    )
    assert response.status_code == 400
    assert "cover the same ages" in response.content.decode()


@pytest.mark.parametrize(
    ("changes", "ranges", "message"),
    [
        ({"critical_low": D("4"), "critical_high": D("3")}, [], "above the critical low"),
        ({"critical_low": D("0.1")}, [], "inside the plausible range"),
        ({"critical_high": D("9")}, [], "inside the plausible range"),
        ({"plausible_low": D("6")}, [], "above the lowest"),
        ({"unit": ""}, [], "needs a unit"),
        ({"code": "K"}, [], "already has a test with this code"),
        ({"code": "k"}, [], "already has a test with this code"),
        ({}, [RangeData(low=D("3"), high=D("2"))], "low must be below high"),
        ({}, [RangeData(age_min_days=100, age_max_days=50, low=D("1"))], "upper age"),
        (
            {},
            [
                RangeData(sex="M", low=D("1"), high=D("2")),
                RangeData(sex="M", age_min_days=ADULT, low=D("1")),
            ],
            "cover the same ages",
        ),
    ],
)
def test_bad_tests_are_refused_and_audited(actors, centre, changes, ranges, message):
    with translation.override("en"), pytest.raises(InvalidRecord, match=message):
        lab_test_create(
            actor=actors.labtech, centre_id=centre.pk, data=_data(**changes), ranges=ranges
        )
    assert not LabTest.objects.filter(code="CA").exists()
    assert AuditEvent.objects.filter(
        action="lab.catalogue.test.create", outcome=Outcome.FAILED, resource_type="lab_catalogue"
    ).exists()


def test_ranges_of_both_sexes_and_of_one_sex_may_cover_the_same_ages(actors, centre):
    test = lab_test_create(
        actor=actors.labtech,
        centre_id=centre.pk,
        data=_data(),
        ranges=[
            RangeData(low=D("2.1"), high=D("2.6")),
            RangeData(sex="M", low=D("2.2"), high=D("2.6")),
            RangeData(sex="F", low=D("2.1"), high=D("2.5")),
        ],
    )
    assert test.ranges.count() == 3


def test_a_text_test_needs_no_unit(actors, centre):
    test = lab_test_create(
        actor=actors.labtech,
        centre_id=centre.pk,
        data=_data(
            code="UGLU",
            value_kind=ValueKind.TEXT,
            unit="",
            plausible_low=None,
            plausible_high=None,
            critical_low=None,
            critical_high=None,
        ),
        ranges=[RangeData(text="阴性 negative")],
    )
    assert test.unit == ""


def test_update_replaces_ranges(actors, centre):
    potassium = LabTest.objects.get(centre=centre, code="K")
    updated = lab_test_update(
        actor=actors.labtech,
        test_id=potassium.pk,
        data=_data(
            code="K",
            name="钾",
            name_en="Potassium",
            plausible_low=D("0.5"),
            plausible_high=D("15"),
            critical_low=D("2.5"),
            critical_high=D("6.5"),
        ),
        ranges=[RangeData(low=D("3.5"), high=D("5.5"))],
    )
    assert updated.critical_low == D("2.5")
    assert [(r.low, r.high) for r in updated.ranges.all()] == [(D("3.5"), D("5.5"))]


# --- Panels ------------------------------------------------------------------------------------


def test_lab_technician_creates_and_edits_a_panel(client, actors, centre):
    ids = list(
        LabTest.objects.filter(centre=centre, code__in=["GLU", "CREA"]).values_list("pk", flat=True)
    )
    client = _login(client, actors.labtech)
    response = client.post(
        f"/lab/catalogue/panels/new/?centre={centre.pk}",
        {"code": "RFT", "name": "肾功能", "name_en": "Renal", "tests": ids, "active": "on"},
    )
    assert response.status_code == 302
    panel = Panel.objects.get(centre=centre, code="RFT")
    assert set(panel.tests.values_list("pk", flat=True)) == set(ids)
    response = client.post(
        f"/lab/catalogue/panels/{panel.pk}/",
        {"code": "RFT", "name": "肾功能", "name_en": "Renal", "tests": ids[:1]},
    )
    assert response.status_code == 302
    panel.refresh_from_db()
    assert panel.tests.count() == 1
    assert not panel.active
    assert AuditEvent.objects.filter(
        action="lab.catalogue.panel.update", outcome=Outcome.ALLOWED
    ).exists()


def test_a_panel_needs_tests_of_its_own_centre_and_a_free_code(actors, centre):
    with translation.override("en"), pytest.raises(InvalidRecord, match="at least one test"):
        panel_create(actor=actors.labtech, centre_id=centre.pk, data=PanelData(code="X", name="x"))
    with translation.override("en"), pytest.raises(InvalidRecord, match="already has a panel"):
        panel_create(
            actor=actors.labtech,
            centre_id=centre.pk,
            data=PanelData(
                code="CBC", name="x", test_ids=[LabTest.objects.get(centre=centre, code="K").pk]
            ),
        )
    with translation.override("en"), pytest.raises(InvalidRecord, match="this centre's catalogue"):
        panel_create(
            actor=actors.labtech,
            centre_id=centre.pk,
            data=PanelData(code="NEW", name="x", test_ids=[999999]),
        )


def test_others_cannot_change_a_panel(actors, centre):
    panel = Panel.objects.get(centre=centre, code="CBC")
    with pytest.raises(AccessDenied):
        panel_update(actor=actors.village, panel_id=panel.pk, data=PanelData(code="CBC", name="x"))
    assert AuditEvent.objects.filter(
        actor=actors.village, action="lab.catalogue.panel.update", outcome=Outcome.DENIED
    ).exists()


def test_catalogue_for_centre_leaves_out_what_is_not_offered(centre):
    LabTest.objects.filter(centre=centre, code="AST").update(active=False)
    active = catalogue_for_centre(centre.pk)
    assert "AST" not in {t.code for t in active.tests}
    liver = next(p for p in active.panels if p.code == "LFT")
    assert [t.code for t in liver.tests.all()] == ["ALT", "TBIL"]
    everything = catalogue_for_centre(centre.pk, active_only=False)
    assert "AST" in {t.code for t in everything.tests}


# --- Reference ranges --------------------------------------------------------------------------


def test_reference_for_prefers_the_residents_sex_then_the_narrowest_age_band(centre):
    # The catalogue pages refuse overlapping bands of one sex; older or imported data may
    # still hold them, and the narrowest band then wins.
    test = LabTest.objects.get(centre=centre, code="NA")
    test.ranges.all().delete()
    ReferenceRange.objects.bulk_create(
        [
            ReferenceRange(test=test, low=D("2.0"), high=D("2.7")),
            ReferenceRange(
                test=test, age_min_days=ADULT, age_max_days=65 * 365, low=D("2.1"), high=D("2.6")
            ),
            ReferenceRange(test=test, sex="M", low=D("2.2"), high=D("2.6")),
        ]
    )
    test = LabTest.objects.prefetch_related("ranges").get(pk=test.pk)
    today = dt.date(2025, 6, 1)

    def born(years: int) -> dt.date:
        return today.replace(year=today.year - years)

    man = reference_for(test, sex="M", birth_date=born(40), on=today)
    woman = reference_for(test, sex="F", birth_date=born(40), on=today)
    old_woman = reference_for(test, sex="F", birth_date=born(70), on=today)
    assert man is not None
    assert man.sex == "M"
    assert woman is not None
    assert (woman.low, woman.high) == (D("2.1"), D("2.6"))
    assert old_woman is not None
    assert (old_woman.low, old_woman.high) == (D("2.0"), D("2.7"))


def test_reference_for_uses_the_childrens_range_before_adulthood(centre):
    creatinine = LabTest.objects.prefetch_related("ranges").get(centre=centre, code="CREA")
    today = dt.date(2025, 6, 1)
    child = reference_for(creatinine, sex="F", birth_date=dt.date(2015, 1, 1), on=today)
    woman = reference_for(creatinine, sex="F", birth_date=dt.date(1980, 1, 1), on=today)
    assert child is not None
    assert child.age_max_days == ADULT
    assert child.sex == ""
    assert woman is not None
    assert (woman.sex, woman.low) == ("F", D("41"))


def test_reference_for_is_none_when_no_range_fits(centre):
    test = LabTest.objects.get(centre=centre, code="K")
    ReferenceRange.objects.filter(test=test).update(age_min_days=ADULT)
    assert (
        reference_for(test, sex="M", birth_date=dt.date(2020, 1, 1), on=dt.date(2025, 1, 1)) is None
    )
