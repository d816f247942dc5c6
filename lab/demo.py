"""The demo lab centre's catalogue: common tests and panels a county lab offers.

Idempotent: run by ``telemed demo`` and by the test session after ``demo_seed``.
Reference ranges are the usual adult ones (WS/T 404 style); critical limits as many
Chinese county labs set them.
"""

from __future__ import annotations

from decimal import Decimal as D

from association.models import DiagnosticCentre
from lab.models import Container, LabPolicy, LabTest, Panel, ReferenceRange, SpecimenType, ValueKind

LAB_CENTRE_CODE = "qingshan-lab"
ADULT = 18 * 365

# code, name, English name, specimen, container, unit, decimals, plausible, critical, TAT min
_TESTS: list[tuple[str, str, str, str, str, str, int, tuple, tuple, int]] = [
    (
        "K",
        "钾",
        "Potassium",
        SpecimenType.SERUM,
        Container.SERUM_GEL,
        "mmol/L",
        1,
        (D("0.5"), D("15")),
        (D("2.8"), D("6.2")),
        240,
    ),
    (
        "NA",
        "钠",
        "Sodium",
        SpecimenType.SERUM,
        Container.SERUM_GEL,
        "mmol/L",
        0,
        (D("80"), D("200")),
        (D("120"), D("160")),
        240,
    ),
    (
        "GLU",
        "葡萄糖",
        "Glucose",
        SpecimenType.SERUM,
        Container.SERUM_GEL,
        "mmol/L",
        1,
        (D("0.2"), D("60")),
        (D("2.8"), D("22.2")),
        240,
    ),
    (
        "CREA",
        "肌酐",
        "Creatinine",
        SpecimenType.SERUM,
        Container.SERUM_GEL,
        "μmol/L",
        0,
        (D("5"), D("3000")),
        (None, D("700")),
        24 * 60,
    ),
    (
        "ALT",
        "丙氨酸氨基转移酶",
        "ALT",
        SpecimenType.SERUM,
        Container.SERUM_GEL,
        "U/L",
        0,
        (D("0"), D("10000")),
        (None, None),
        24 * 60,
    ),
    (
        "AST",
        "天门冬氨酸氨基转移酶",
        "AST",
        SpecimenType.SERUM,
        Container.SERUM_GEL,
        "U/L",
        0,
        (D("0"), D("10000")),
        (None, None),
        24 * 60,
    ),
    (
        "TBIL",
        "总胆红素",
        "Total bilirubin",
        SpecimenType.SERUM,
        Container.SERUM_GEL,
        "μmol/L",
        1,
        (D("0"), D("1000")),
        (None, D("342")),
        24 * 60,
    ),
    (
        "HGB",
        "血红蛋白",
        "Haemoglobin",
        SpecimenType.WHOLE_BLOOD,
        Container.EDTA,
        "g/L",
        0,
        (D("10"), D("300")),
        (D("50"), D("200")),
        120,
    ),
    (
        "WBC",
        "白细胞计数",
        "White cell count",
        SpecimenType.WHOLE_BLOOD,
        Container.EDTA,
        "10^9/L",
        2,
        (D("0"), D("500")),
        (D("1.0"), D("30")),
        120,
    ),
    (
        "PLT",
        "血小板计数",
        "Platelets",
        SpecimenType.WHOLE_BLOOD,
        Container.EDTA,
        "10^9/L",
        0,
        (D("0"), D("3000")),
        (D("30"), D("1000")),
        120,
    ),
    (
        "HBA1C",
        "糖化血红蛋白",
        "HbA1c",
        SpecimenType.WHOLE_BLOOD,
        Container.EDTA,
        "%",
        1,
        (D("2"), D("25")),
        (None, None),
        3 * 24 * 60,
    ),
    (
        "UPRO",
        "尿蛋白",
        "Urine protein",
        SpecimenType.URINE,
        Container.URINE_CUP,
        "",
        0,
        (None, None),
        (None, None),
        240,
    ),
]

# code: (low, high) for both sexes, or {sex: (low, high)} for adults.
_RANGES: dict[str, tuple | dict[str, tuple]] = {
    "K": (D("3.5"), D("5.3")),
    "NA": (D("137"), D("147")),
    "GLU": (D("3.9"), D("6.1")),
    "CREA": {"M": (D("57"), D("111")), "F": (D("41"), D("81"))},
    "ALT": {"M": (D("9"), D("50")), "F": (D("7"), D("40"))},
    "AST": {"M": (D("15"), D("40")), "F": (D("13"), D("35"))},
    "TBIL": (D("0"), D("23")),
    "HGB": {"M": (D("130"), D("175")), "F": (D("115"), D("150"))},
    "WBC": (D("3.5"), D("9.5")),
    "PLT": (D("125"), D("350")),
    "HBA1C": (D("4.0"), D("6.0")),
}

_PANELS = [
    ("LYTES", "电解质", "Electrolytes", ["K", "NA"]),
    ("LFT", "肝功能", "Liver function", ["ALT", "AST", "TBIL"]),
    ("CBC", "血常规", "Full blood count", ["HGB", "WBC", "PLT"]),
]


def seed_lab_catalogue(centre: DiagnosticCentre) -> None:
    """Create the catalogue of ``centre`` where missing (existing entries are kept)."""
    tests: dict[str, LabTest] = {}
    for order, row in enumerate(_TESTS):
        code, name, name_en, specimen, container, unit, decimals, plausible, critical, tat = row
        test, created = LabTest.objects.get_or_create(
            centre=centre,
            code=code,
            defaults={
                "name": name,
                "name_en": name_en,
                "specimen_type": specimen,
                "container": container,
                "value_kind": ValueKind.TEXT if code == "UPRO" else ValueKind.NUMERIC,
                "unit": unit,
                "decimals": decimals,
                "plausible_low": plausible[0],
                "plausible_high": plausible[1],
                "critical_low": critical[0],
                "critical_high": critical[1],
                "turnaround_minutes": tat,
                "sort_order": order,
            },
        )
        tests[code] = test
        if not created:
            continue
        if code == "UPRO":
            ReferenceRange.objects.create(test=test, text="阴性 negative")
            continue
        spec = _RANGES[code]
        if isinstance(spec, dict):
            for sex, (low, high) in spec.items():
                ReferenceRange.objects.create(
                    test=test, sex=sex, age_min_days=ADULT, low=low, high=high
                )
            low, high = next(iter(spec.values()))
            ReferenceRange.objects.create(test=test, age_max_days=ADULT, low=low, high=high)
        else:
            ReferenceRange.objects.create(test=test, low=spec[0], high=spec[1])
    for code, name, name_en, members in _PANELS:
        panel, created = Panel.objects.get_or_create(
            centre=centre, code=code, defaults={"name": name, "name_en": name_en}
        )
        if created:
            panel.tests.set([tests[c] for c in members])
    LabPolicy.objects.get_or_create(centre=centre)


def demo_seed_lab() -> None:
    """Seed the demo association's lab centre catalogue (no-op without the demo centre)."""
    centre = DiagnosticCentre.objects.filter(code=LAB_CENTRE_CODE).first()
    if centre is not None:
        seed_lab_catalogue(centre)
