"""The demo county medical community: institutions, centres, the DESIGN.md accounts, residents.

Idempotent: running it again reuses what exists and only fills what is missing. The
test suite seeds the same association, so the named actors of the tests are the demo
accounts (plus a doctor of a neighbouring association, to prove isolation).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils.translation import gettext_lazy as _

from association.admin_scope import sync_admin_rights
from association.models import (
    Association,
    AssociationKind,
    CentreKind,
    Department,
    DiagnosticCentre,
    Institution,
    InstitutionLevel,
    Membership,
    Role,
    Specialty,
)
from records import resident_id as rid
from records.models import Consent, ConsentScope, Patient, TimelineEvent

DEFAULT_PASSWORD = "telemed-demo"  # noqa: S105  (documented demo password, not a secret)
ASSOCIATION_CODE = "qingshan"

DEMO_ACCOUNTS: list[tuple[str, str]] = [
    ("village", "village clinic doctor, Dongshan village clinic"),
    ("township", "township health centre doctor, Xiba township health centre"),
    ("specialist", "cardiologist, Qingshan county people's hospital"),
    ("radiologist", "radiologist, county imaging centre"),
    ("labtech", "lab technician, county lab centre"),
    ("coordinator", "coordinator, remote-medicine centre"),
    ("admin", "association admin"),
    ("auditor", "auditor, county health commission"),
]

# username, display name, institution code, role, department, centre code
_PEOPLE = [
    ("village", "赵村医", "dongshan", Role.GRASSROOTS_DOCTOR, None, None),
    ("township", "钱医生", "xiba", Role.GRASSROOTS_DOCTOR, "全科", None),
    ("specialist", "孙主任", "county", Role.SPECIALIST, "心内科", None),
    ("radiologist", "李医师", "county", Role.RADIOLOGIST, None, "qingshan-imaging"),
    ("labtech", "周技师", "county", Role.LAB_TECHNICIAN, None, "qingshan-lab"),
    ("coordinator", "吴协调员", "county", Role.COORDINATOR, "远程医疗中心", None),
    ("admin", "郑管理员", "county", Role.ASSOCIATION_ADMIN, None, None),
    ("auditor", "王审计", "county", Role.AUDITOR, None, None),
    ("village2", "冯村医", "nanwan", Role.GRASSROOTS_DOCTOR, None, None),
    ("outsider", "陈医生", "hexi-clinic", Role.GRASSROOTS_DOCTOR, None, None),
]

# code, name, level, parent code
_INSTITUTIONS = [
    ("county", "青山县人民医院", InstitutionLevel.COUNTY_HOSPITAL, None),
    ("xiba", "溪坝镇卫生院", InstitutionLevel.TOWNSHIP_CENTRE, "county"),
    ("shiqiao", "石桥镇卫生院", InstitutionLevel.TOWNSHIP_CENTRE, "county"),
    ("dongshan", "东山村卫生室", InstitutionLevel.VILLAGE_CLINIC, "xiba"),
    ("nanwan", "南湾村卫生室", InstitutionLevel.VILLAGE_CLINIC, "xiba"),
    ("beiling", "北岭村卫生室", InstitutionLevel.VILLAGE_CLINIC, "shiqiao"),
    ("xigou", "西沟村卫生室", InstitutionLevel.VILLAGE_CLINIC, "shiqiao"),
]

# name, sex, birth date, home institution code, phone
_RESIDENTS = [
    ("张三", "M", dt.date(1956, 3, 14), "dongshan", "13800000001"),
    ("李秀英", "F", dt.date(1962, 11, 2), "dongshan", "13800000002"),
    ("王建国", "M", dt.date(1949, 7, 21), "dongshan", ""),
    ("刘桂兰", "F", dt.date(1971, 5, 9), "xiba", "13800000004"),
    ("陈志强", "M", dt.date(1983, 1, 30), "xiba", "13800000005"),
    ("杨丽", "F", dt.date(1990, 8, 18), "xiba", ""),
    ("赵明", "M", dt.date(1968, 12, 5), "nanwan", "13800000007"),
    ("黄玉梅", "F", dt.date(1959, 4, 27), "nanwan", ""),
    ("周海", "M", dt.date(1975, 9, 12), "county", "13800000009"),
    ("吴芳", "F", dt.date(1988, 2, 3), "county", ""),
    ("郑大山", "M", dt.date(1952, 6, 16), "hexi-clinic", ""),
    ("孙桂芝", "F", dt.date(1950, 10, 8), "shiqiao", "13800000012"),
    ("钱卫东", "M", dt.date(1979, 3, 25), "shiqiao", ""),
    ("冯秀兰", "F", dt.date(1964, 7, 30), "beiling", ""),
    ("褚建华", "M", dt.date(1958, 1, 11), "beiling", "13800000015"),
    ("卫小红", "F", dt.date(1995, 12, 19), "xigou", ""),
    ("蒋德明", "M", dt.date(1947, 5, 2), "xigou", ""),
]


@dataclass(frozen=True)
class SeedResult:
    created: bool
    # The password now set on the demo accounts; None when kept from an earlier run.
    password: str | None


def demo_resident_id(region: str, birth: dt.date, sequence: int, sex: str) -> str:
    """A valid resident ID for demo data (sequence's last digit odd for men)."""
    seq = sequence * 2 + (1 if sex == "M" else 0)
    first17 = f"{region}{birth:%Y%m%d}{seq:03d}"
    return first17 + rid.check_character(first17)


# Calling AE titles allowed to send images by DIMSE (telemed dicom-scp), per institution.
_AE_TITLES = [
    ("XIBA_CT", "xiba", "溪坝镇卫生院 DR/CT"),
    ("SHIQIAO_US", "shiqiao", "石桥镇卫生院 超声"),
    ("COUNTY_CT", "county", "青山县人民医院 CT"),
]


def _seed_ae_titles(institutions: dict[str, Institution]) -> None:
    from imaging.models import AETitle

    for ae_title, code, description in _AE_TITLES:
        AETitle.objects.get_or_create(
            ae_title=ae_title,
            defaults={"institution": institutions[code], "description": description},
        )


@transaction.atomic
def demo_seed(*, password: str | None = None) -> SeedResult:
    """Create or complete the demo association; set the password when one is given."""
    user_model = get_user_model()
    created = not Association.objects.filter(code=ASSOCIATION_CODE).exists()

    qingshan, _new = Association.objects.get_or_create(
        code=ASSOCIATION_CODE,
        defaults={"name": "青山县医共体", "kind": AssociationKind.COUNTY_COMMUNITY},
    )
    hexi, _new = Association.objects.get_or_create(
        code="hexi",
        defaults={"name": "河西市医疗集团", "kind": AssociationKind.URBAN_GROUP},
    )
    institutions: dict[str, Institution] = {}
    for code, name, level, parent in _INSTITUTIONS:
        institutions[code], _new = Institution.objects.get_or_create(
            code=code,
            defaults={
                "name": name,
                "level": level,
                "association": qingshan,
                "parent": institutions.get(parent) if parent else None,
            },
        )
    institutions["hexi-clinic"], _new = Institution.objects.get_or_create(
        code="hexi-clinic",
        defaults={
            "name": "河西社区卫生服务站",
            "level": InstitutionLevel.COMMUNITY_STATION,
            "association": hexi,
        },
    )
    if qingshan.lead_institution_id is None:
        qingshan.lead_institution = institutions["county"]
        qingshan.save(update_fields=["lead_institution"])

    specialties = {}
    for code, name in [
        ("cardiology", "心血管内科"),
        ("general", "全科医学"),
        ("radiology", "放射科"),
    ]:
        specialties[name], _new = Specialty.objects.get_or_create(
            code=code, defaults={"name": name}
        )
    departments = {}
    for inst, name, spec in [
        ("county", "心内科", "心血管内科"),
        ("county", "远程医疗中心", None),
        ("xiba", "全科", "全科医学"),
    ]:
        departments[name], _new = Department.objects.get_or_create(
            institution=institutions[inst],
            name=name,
            defaults={"specialty": specialties.get(spec) if spec else None},
        )
    centres = {}
    for code, name, kind in [
        ("qingshan-imaging", "青山县医学影像中心", CentreKind.IMAGING),
        ("qingshan-lab", "青山县临床检验中心", CentreKind.LAB),
        ("qingshan-ecg", "青山县心电诊断中心", CentreKind.ECG),
    ]:
        centres[code], _new = DiagnosticCentre.objects.get_or_create(
            code=code,
            defaults={
                "name": name,
                "kind": kind,
                "host": institutions["county"],
                "association": qingshan,
            },
        )

    users = {}
    for username, display, inst, role, dept, centre in _PEOPLE:
        user = user_model.objects.filter(username=username).first()
        if user is None:
            user = user_model(username=username, display_name=display)
            user.set_password(password or DEFAULT_PASSWORD)
            user.save()
        elif password:
            user.set_password(password)
            user.save(update_fields=["password"])
        users[username] = user
        Membership.objects.get_or_create(
            user=user,
            institution=institutions[inst],
            role=role,
            defaults={
                "department": departments.get(dept) if dept else None,
                "centre": centres.get(centre) if centre else None,
            },
        )
    sync_admin_rights(users["admin"])  # staff, and the association-admins group
    _seed_ae_titles(institutions)

    doctors = {
        "dongshan": "village",
        "xiba": "township",
        "nanwan": "village2",
        "county": "specialist",
        "hexi-clinic": "outsider",
    }
    for n, (name, sex, born, home, phone) in enumerate(_RESIDENTS, start=1):
        number = demo_resident_id("110101" if home != "hexi-clinic" else "120102", born, n, sex)
        patient, new = Patient.objects.get_or_create(
            resident_id=number,
            defaults={
                "name": name,
                "sex": sex,
                "birth_date": born,
                "phone": phone,
                "address": f"{institutions[home].name}辖区",
                "home_institution": institutions[home],
                "family_doctor": users.get(doctors.get(home, "")),
                # Clinics without a demo account: imported by the association admin.
                "registered_by": users[doctors.get(home, "admin")],
            },
        )
        if new:
            TimelineEvent.objects.create(
                patient=patient,
                kind="registered",
                summary=institutions[home].name,
                institution=institutions[home],
                actor=users[doctors.get(home, "admin")],
            )
    # One resident of the township has consented to association-wide sharing.
    shared = Patient.objects.get(name="刘桂兰", home_institution=institutions["xiba"])
    if not shared.consents.exists():
        Consent.objects.create(
            patient=shared,
            scope=ConsentScope.RECORD,
            grantee_association=qingshan,
            recorded_by=users["township"],
            note=str(_("Signed at the family-doctor contract visit")),
        )
        TimelineEvent.objects.create(
            patient=shared,
            kind="consent.given",
            summary=qingshan.name,
            institution=institutions["xiba"],
            actor=users["township"],
            data={"scope": "record"},
        )
    return SeedResult(created=created, password=password or (DEFAULT_PASSWORD if created else None))
