"""Who is asked: resolving a consult's target to experts, inviting them, and their answer.

A target is a specialty at a hospital (the specialists of that hospital's departments of
the specialty are invited; the first to accept takes the consult), one named expert, or
an MDT of 2 to 7 named experts (the first is the lead; the consult is accepted when the
lead accepts, the others may accept later).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import User
from association.models import Institution, Specialty
from consult.models import Consult, ConsultExpert, ExpertStatus, Status, TargetKind
from consult.selectors import live_statuses
from consult.workflow_common import (
    MAX_MDT,
    MAX_REASON,
    audit_consult,
    coordinators_of,
    deny,
    event_add,
    experts_of,
    load_consult,
    notify,
    refuse,
    share_with_expert,
    shares_revoke,
    specialists_in,
)
from realtime.models import Severity
from records.models import Consent, ConsentScope, Patient


class TargetProblem(Exception):
    """The target cannot be resolved; the message is for a person."""

    def __init__(self, message: str | Promise) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Target:
    """A resolved target: who is asked, in order (the first is the lead of a named target)."""

    kind: str
    institution: Institution | None = None
    specialty: Specialty | None = None
    experts: list[tuple[User, Institution]] = field(default_factory=list)

    @property
    def expert_ids(self) -> list[int]:
        return [user.pk for user, _inst in self.experts]

    @property
    def institutions(self) -> list[Institution]:
        return list({inst.pk: inst for _user, inst in self.experts}.values())

    @property
    def named(self) -> bool:
        return self.kind in (TargetKind.EXPERT, TargetKind.MDT)


def _ids(values: Sequence[object]) -> list[int]:
    ids: list[int] = []
    for value in values:
        try:
            ids.append(int(str(value)))
        except ValueError:
            raise TargetProblem(gettext_lazy("Unknown expert.")) from None
    return ids


def resolve_target(
    *,
    association_id: int,
    requester_id: int,
    kind: str,
    institution_id: int | None = None,
    specialty_id: int | None = None,
    expert_ids: Sequence[object] = (),
) -> Target:
    """Resolve a target to active specialists of the association.

    Raises
    ------
    TargetProblem
        Unknown kind, hospital or specialty; no specialist there; a wrong number of
        experts; an expert named twice, the requester, or not an active specialist of the
        association.
    """
    if kind not in TargetKind.values:
        raise TargetProblem(
            gettext_lazy("Choose a target: a specialty at a hospital, a named expert or an MDT.")
        )
    specialty = None
    if specialty_id is not None:
        specialty = Specialty.objects.filter(pk=specialty_id).first()
        if specialty is None:
            raise TargetProblem(gettext_lazy("Unknown specialty."))
    specialists = specialists_in(association_id).select_related("institution", "user")
    if kind == TargetKind.SPECIALTY:
        if institution_id is None or specialty is None:
            raise TargetProblem(gettext_lazy("Choose the hospital and the specialty."))
        institution = Institution.objects.filter(pk=institution_id, active=True).first()
        if institution is None or institution.association_id != association_id:
            raise TargetProblem(gettext_lazy("The hospital must belong to your association."))
        rows = specialists.filter(institution=institution, department__specialty=specialty).exclude(
            user_id=requester_id
        )
        experts = list({m.user_id: (m.user, institution) for m in rows.order_by("id")}.values())
        if not experts:
            raise TargetProblem(
                gettext_lazy("No specialist of %(specialty)s at %(hospital)s takes consultations.")
                % {"specialty": specialty.name, "hospital": institution.name}
            )
        return Target(kind=kind, institution=institution, specialty=specialty, experts=experts)
    ids = _ids(expert_ids)
    if kind == TargetKind.EXPERT and len(ids) != 1:
        raise TargetProblem(gettext_lazy("Name one expert."))
    if kind == TargetKind.MDT and not 2 <= len(ids) <= MAX_MDT:
        raise TargetProblem(
            gettext_lazy("A multidisciplinary consultation needs 2 to %(max)d experts.")
            % {"max": MAX_MDT}
        )
    if len(set(ids)) != len(ids):
        raise TargetProblem(gettext_lazy("Name each expert only once."))
    if requester_id in ids:
        raise TargetProblem(
            gettext_lazy("The requesting doctor cannot also be one of the experts.")
        )
    found: list[tuple[User, Institution]] = []
    for user_id in ids:
        membership = specialists.filter(user_id=user_id).order_by("id").first()
        if membership is None:
            user = User.objects.filter(pk=user_id).first()
            if user is None:
                raise TargetProblem(gettext_lazy("Unknown expert."))
            raise TargetProblem(
                gettext_lazy("%(name)s is not an active specialist of your association.")
                % {"name": str(user)}
            )
        found.append((membership.user, membership.institution))
    return Target(kind=kind, specialty=specialty, experts=found)


def consult_consent_covers(*, patient: Patient, institutions: Sequence[Institution]) -> bool:
    """Whether active consents let the record go to every institution for a consult."""
    active = Consent.objects.active().filter(
        patient=patient, scope__in=[ConsentScope.CONSULT, ConsentScope.RECORD]
    )
    if active.filter(grantee_association_id=patient.home_institution.association_id).exists():
        return True
    granted = set(active.values_list("grantee_institution_id", flat=True))
    return bool(institutions) and all(inst.pk in granted for inst in institutions)


# --- Inviting ----------------------------------------------------------------------------------


def invite_experts(*, consult: Consult, target: Target, actor: User) -> list[ConsultExpert]:
    """Invite the target's experts (inside the caller's transaction); withdraw the others.

    Experts already accepted stay accepted; declined or withdrawn ones named again are
    invited again. Each invited expert gets a share of the record and a notification.
    """
    wanted = {user.pk for user, _inst in target.experts}
    withdrawn = list(experts_of(consult, ExpertStatus.INVITED).exclude(user_id__in=wanted))
    if withdrawn:
        ConsultExpert.objects.filter(pk__in=[r.pk for r in withdrawn]).update(
            status=ExpertStatus.WITHDRAWN, lead=False, responded_at=timezone.now()
        )
        shares_revoke(consult=consult, user_ids=[r.user_id for r in withdrawn])
        notify(
            [r.user for r in withdrawn],
            consult=consult,
            kind="consult.withdrawn",
            severity=Severity.INFO,
            title=gettext_lazy("Consultation %(number)s for %(name)s was routed elsewhere"),
            body=gettext_lazy("You no longer need to answer it."),
            exclude=actor,
        )
    consult.experts.exclude(user_id__in=wanted).update(lead=False)
    rows: list[ConsultExpert] = []
    invited: list[User] = []
    for position, (user, institution) in enumerate(target.experts):
        lead = target.named and position == 0
        row = consult.experts.filter(user=user).first()
        if row is None:
            row = ConsultExpert.objects.create(
                consult=consult, user=user, institution=institution, lead=lead
            )
            invited.append(user)
        elif row.status == ExpertStatus.ACCEPTED:
            row.lead = lead or (not target.named and row.lead)
            row.save(update_fields=["lead"])
        else:
            if row.status != ExpertStatus.INVITED:
                invited.append(user)
            row.status = ExpertStatus.INVITED
            row.lead = lead
            row.institution = institution
            row.decline_reason = ""
            row.invited_at = timezone.now()
            row.responded_at = None
            row.save()
        share_with_expert(consult=consult, row=row)
        rows.append(row)
    notify(
        invited,
        consult=consult,
        kind="consult.invited",
        title=gettext_lazy("%(priority)s consultation request for %(name)s"),
        body=gettext_lazy("From %(clinic)s, consultation %(number)s: %(question)s"),
        params={
            "priority": consult.get_priority_display(),
            "clinic": consult.requesting_institution.name,
            "question": consult.question[:140],
        },
        exclude=actor,
    )
    return rows


# --- The expert's answer -----------------------------------------------------------------------


def _answerable(consult: Consult) -> bool:
    return consult.status in (Status.PENDING_EXPERT, *live_statuses())


def consult_respond(*, actor: User, consult_id: int, accept: bool, reason: str = "") -> Consult:
    """An invited expert accepts or declines (with a reason).

    Accepting a specialty consult takes it (the other invited specialists are withdrawn);
    accepting as the lead of an MDT (or as the named expert) makes the consult accepted;
    an MDT member may accept later. When every expert declined, the consult is declined.

    Raises
    ------
    AccessDenied, NotFound, InvalidRecord
    """
    action = "consult.respond"
    consult, _scope = load_consult(actor=actor, consult_id=consult_id, action=action)
    row = experts_of(consult).filter(user_id=actor.pk).first()
    if row is None or row.status in (ExpertStatus.WITHDRAWN, ExpertStatus.DECLINED):
        raise deny(
            actor=actor,
            action=action,
            consult=consult,
            reason="not an invited expert",
            message=_("Only the invited experts answer this consultation."),
        )
    reason = reason.strip()
    message: str | Promise | None = None
    if row.status == ExpertStatus.ACCEPTED:
        message = gettext_lazy("You have already accepted this consultation.")
    elif not _answerable(consult):
        message = gettext_lazy("This consultation no longer waits for your answer.")
    elif not accept and not reason:
        message = gettext_lazy("Say why you decline.")
    elif len(reason) > MAX_REASON:
        message = gettext_lazy("The reason may be at most 500 characters.")
    if message is not None:
        raise refuse(actor=actor, action=action, consult=consult, message=message)
    with transaction.atomic():
        updated = ConsultExpert.objects.filter(pk=row.pk, status=ExpertStatus.INVITED).update(
            status=ExpertStatus.ACCEPTED if accept else ExpertStatus.DECLINED,
            decline_reason="" if accept else reason,
            responded_at=timezone.now(),
        )
        if updated:
            row.refresh_from_db()
            if accept:
                _accepted(consult=consult, row=row, actor=actor)
            else:
                _declined(consult=consult, row=row, actor=actor, reason=reason)
    if not updated:  # answered or withdrawn meanwhile
        raise refuse(
            actor=actor,
            action=action,
            consult=consult,
            message=gettext_lazy("This consultation no longer waits for your answer."),
        )
    audit_consult(
        actor=actor,
        action=action,
        consult=consult,
        detail={"accept": accept, "reason": reason} if not accept else {"accept": True},
    )
    consult.refresh_from_db()
    return consult


def _accepted(*, consult: Consult, row: ConsultExpert, actor: User) -> None:
    share_with_expert(consult=consult, row=row)
    takes_it = False
    if consult.target_kind == TargetKind.SPECIALTY and consult.status == Status.PENDING_EXPERT:
        # The first specialist to accept takes a specialty consult; the others stand down.
        row.lead = True
        row.save(update_fields=["lead"])
        others = list(experts_of(consult, ExpertStatus.INVITED).exclude(pk=row.pk))
        ConsultExpert.objects.filter(pk__in=[o.pk for o in others]).update(
            status=ExpertStatus.WITHDRAWN, responded_at=timezone.now()
        )
        shares_revoke(consult=consult, user_ids=[o.user_id for o in others])
        notify(
            [o.user for o in others],
            consult=consult,
            kind="consult.withdrawn",
            severity=Severity.INFO,
            title=gettext_lazy("Consultation %(number)s for %(name)s was taken by %(expert)s"),
            params={"expert": str(actor)},
        )
        takes_it = True
    elif row.lead and consult.status == Status.PENDING_EXPERT:
        takes_it = True
    if takes_it:
        Consult.objects.filter(pk=consult.pk, status=Status.PENDING_EXPERT).update(
            status=Status.ACCEPTED, escalation_level=0, escalated_at=None
        )
        consult.status = Status.ACCEPTED
    event_add(consult=consult, kind="accepted", actor=actor, detail={"lead": row.lead})
    colleagues = [r.user for r in experts_of(consult, ExpertStatus.ACCEPTED)]
    notify(
        [consult.requested_by, *colleagues],
        consult=consult,
        kind="consult.accepted",
        severity=Severity.INFO,
        title=gettext_lazy("%(expert)s accepted consultation %(number)s for %(name)s"),
        params={"expert": str(actor)},
        exclude=actor,
    )


def _declined(*, consult: Consult, row: ConsultExpert, actor: User, reason: str) -> None:
    shares_revoke(consult=consult, user_ids=[row.user_id])
    event_add(consult=consult, kind="declined", actor=actor, detail={"reason": reason})
    remaining = list(experts_of(consult, ExpertStatus.INVITED, ExpertStatus.ACCEPTED))
    if row.lead:
        ConsultExpert.objects.filter(pk=row.pk).update(lead=False)
        if consult.target_kind == TargetKind.MDT and remaining:
            # The lead of an MDT declined: the next expert still taking part leads.
            successor = sorted(remaining, key=lambda r: r.pk)[0]
            ConsultExpert.objects.filter(pk=successor.pk).update(lead=True)
            event_add(
                consult=consult, kind="lead_changed", actor=None, detail={"lead": successor.user_id}
            )
            if successor.status == ExpertStatus.ACCEPTED:
                Consult.objects.filter(pk=consult.pk, status=Status.PENDING_EXPERT).update(
                    status=Status.ACCEPTED, escalation_level=0, escalated_at=None
                )
    if not remaining:
        Consult.objects.filter(pk=consult.pk).update(
            status=Status.DECLINED, ended_at=timezone.now(), closed_reason=reason[:500]
        )
        shares_revoke(consult=consult)
        event_add(consult=consult, kind="all_declined", actor=None, detail={})
        notify(
            [consult.requested_by, *coordinators_of(consult.requesting_institution.association_id)],
            consult=consult,
            kind="consult.declined",
            severity=Severity.URGENT,
            title=gettext_lazy("Consultation %(number)s for %(name)s was declined"),
            body=gettext_lazy("Every expert asked declined. Last reason: %(reason)s"),
            params={"reason": reason},
        )
        return
    notify(
        [consult.requested_by],
        consult=consult,
        kind="consult.expert_declined",
        severity=Severity.INFO,
        title=gettext_lazy("%(expert)s declined consultation %(number)s for %(name)s"),
        body=gettext_lazy("Reason: %(reason)s"),
        params={"expert": str(actor), "reason": reason},
    )
