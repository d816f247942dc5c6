"""Demo consults for `telemed demo`: the specialist's slots and two consults in flight.

* slots for ``specialist`` on the coming working days;
* an urgent live-video consult from ``township`` about 陈志强, pre-reviewed and routed by
  the coordinator, waiting for ``specialist`` to accept;
* a routine written consult from ``village`` about 张三 to cardiology at the county
  hospital, waiting for the coordinator's pre-review.

Idempotent: what exists is kept, only what is missing is added. Prints nothing.
"""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from association.models import Institution, Specialty
from consult.models import Consult, Mode, Priority, Slot, Status, TargetKind
from consult.services import consult_request, consult_review, slot_create
from records.models import Patient

SLOT_DAYS = 5
SLOT_TIMES = ((9, 0), (9, 30), (10, 0), (14, 0), (14, 30), (15, 0))
SLOT_MINUTES = 30


def _seed_slots(expert: User) -> int:
    """Half-hour slots on the coming working days; returns how many were added."""
    added = 0
    today = timezone.localdate()
    now = timezone.now()
    for offset in range(1, SLOT_DAYS + 1):
        day = today + dt.timedelta(days=offset)
        if day.weekday() >= 5:
            continue
        for hour, minute in SLOT_TIMES:
            start = timezone.make_aware(dt.datetime.combine(day, dt.time(hour, minute)))
            end = start + dt.timedelta(minutes=SLOT_MINUTES)
            if (
                start <= now
                or Slot.objects.filter(expert=expert, start__lt=end, end__gt=start).exists()
            ):
                continue
            slot_create(actor=expert, start=start, end=end)
            added += 1
    return added


def _has_consult(requester: User, patient: Patient) -> bool:
    return Consult.objects.filter(requested_by=requester, patient=patient).exists()


@transaction.atomic
def demo_seed_consults() -> bool:
    """Seed the demo consults and slots; ``False`` when nothing was missing."""
    township = User.objects.get(username="township")
    village = User.objects.get(username="village")
    specialist = User.objects.get(username="specialist")
    coordinator = User.objects.get(username="coordinator")
    county = Institution.objects.get(code="county")
    cardiology = Specialty.objects.get(code="cardiology")
    changed = _seed_slots(specialist) > 0

    chen = Patient.objects.get(name="陈志强", home_institution__code="xiba")
    if not _has_consult(township, chen):
        consult = consult_request(
            actor=township,
            patient_id=chen.pk,
            question="胸闷气短2周，活动后加重。心电图示ST段压低，请协助判断是否需要转诊。",
            history="高血压5年，规律服药。吸烟20年。",
            priority=Priority.URGENT,
            mode=Mode.VIDEO,
            target_kind=TargetKind.EXPERT,
            expert_ids=[specialist.pk],
            recording_consent=True,
            consent_given=True,
        )
        if consult.status == Status.PENDING_REVIEW:
            consult_review(
                actor=coordinator,
                consult_id=consult.pk,
                decision="route",
                note="资料齐全，转心内科孙主任。",
            )
        changed = True

    zhang = Patient.objects.get(name="张三", home_institution__code="dongshan")
    if not _has_consult(village, zhang):
        consult_request(
            actor=village,
            patient_id=zhang.pk,
            question="血压控制不佳（160/100 mmHg），已服氨氯地平5mg，请心内科会诊调整用药。",
            history="糖尿病3年。",
            priority=Priority.ROUTINE,
            mode=Mode.WRITTEN,
            target_kind=TargetKind.SPECIALTY,
            target_institution_id=county.pk,
            target_specialty_id=cardiology.pk,
            consent_given=True,
        )
        changed = True
    return changed
