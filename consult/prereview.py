"""Pre-review: a coordinator routes a consult to experts or returns it; the requester resubmits.

Routing without naming experts or a hospital keeps the request's target; the SLA clocks
restart at routing. A consult nobody has taken yet may be re-routed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from django.db import transaction
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import User
from consult.invitations import (
    Target,
    TargetProblem,
    consult_consent_covers,
    invite_experts,
    resolve_target,
)
from consult.models import Consult, ExpertStatus, Status, TargetKind
from consult.selectors import proposed_expert_ids
from consult.sla import due_times
from consult.workflow_common import (
    MAX_HISTORY,
    MAX_NOTE,
    MAX_QUESTION,
    audit_consult,
    coordinators_of,
    deny,
    event_add,
    is_coordinator_for,
    load_consult,
    notify,
    refuse,
)


def text_problem(question: str, history: str) -> Promise | None:
    if not question or len(question) > MAX_QUESTION:
        return gettext_lazy("Write the question for the expert (at most 4000 characters).")
    if len(history) > MAX_HISTORY:
        return gettext_lazy("The history may be at most 10000 characters.")
    return None


def notify_review(consult: Consult, *, actor: User) -> None:
    notify(
        coordinators_of(consult.requesting_institution.association_id),
        consult=consult,
        kind="consult.review",
        title=gettext_lazy("%(priority)s consultation to pre-review: %(name)s"),
        body=gettext_lazy("From %(clinic)s, consultation %(number)s: %(question)s"),
        params={
            "priority": consult.get_priority_display(),
            "clinic": consult.requesting_institution.name,
            "question": consult.question[:140],
        },
        exclude=actor,
    )


# --- Pre-review --------------------------------------------------------------------------------


def _route_target(
    consult: Consult, *, expert_ids: Sequence[int], target_institution_id: int | None
) -> Target:
    """The coordinator's routing: named experts, another hospital, or the request's target."""
    association_id = consult.requesting_institution.association_id
    requester_id = consult.requested_by_id
    if expert_ids:
        kind = TargetKind.EXPERT if len(expert_ids) == 1 else TargetKind.MDT
        return resolve_target(
            kind=kind,
            expert_ids=expert_ids,
            specialty_id=consult.target_specialty_id,
            association_id=association_id,
            requester_id=requester_id,
        )
    if target_institution_id is not None:
        if consult.target_specialty_id is None:
            raise TargetProblem(gettext_lazy("Choose the experts for this consultation."))
        return resolve_target(
            kind=TargetKind.SPECIALTY,
            institution_id=target_institution_id,
            specialty_id=consult.target_specialty_id,
            association_id=association_id,
            requester_id=requester_id,
        )
    named = consult.target_kind in (TargetKind.EXPERT, TargetKind.MDT)
    ids = proposed_expert_ids(consult) if named else []
    if named and not ids:  # re-routing a named consult without naming anyone
        ids = list(
            consult.experts.filter(status__in=(ExpertStatus.INVITED, ExpertStatus.ACCEPTED))
            .order_by("-lead", "id")
            .values_list("user_id", flat=True)
        )
    return resolve_target(
        kind=consult.target_kind,
        institution_id=consult.target_institution_id,
        specialty_id=consult.target_specialty_id,
        expert_ids=ids,
        association_id=association_id,
        requester_id=requester_id,
    )


def consult_review(
    *,
    actor: User,
    consult_id: int,
    decision: Literal["route", "return"],
    note: str = "",
    expert_ids: Sequence[int] = (),
    target_institution_id: int | None = None,
) -> Consult:
    """A coordinator routes a consult to experts (or re-routes one nobody took yet), or
    returns it to the requester with a note.

    Routing without naming experts or a hospital keeps the request's target. The SLA
    clocks restart at routing.

    Raises
    ------
    AccessDenied, NotFound, InvalidRecord
    """
    action = "consult.review"
    consult, scope = load_consult(actor=actor, consult_id=consult_id, action=action)
    if not is_coordinator_for(scope, consult):
        raise deny(
            actor=actor,
            action=action,
            consult=consult,
            reason="not a coordinator of the association",
            message=_("Only the association's coordinators pre-review consultations."),
        )
    note = note.strip()
    message: str | Promise | None = None
    target: Target | None = None
    if decision not in ("route", "return"):
        message = gettext_lazy("Route the consultation or return it.")
    elif len(note) > MAX_NOTE:
        message = gettext_lazy("The note may be at most 500 characters.")
    elif decision == "return" and consult.status != Status.PENDING_REVIEW:
        message = gettext_lazy("Only a consultation waiting for pre-review can be returned.")
    elif decision == "return" and not note:
        message = gettext_lazy("Say what the requester should complete.")
    elif decision == "route" and consult.status not in (
        Status.PENDING_REVIEW,
        Status.PENDING_EXPERT,
    ):
        message = gettext_lazy("This consultation can no longer be routed.")
    elif decision == "route":
        try:
            target = _route_target(
                consult, expert_ids=expert_ids, target_institution_id=target_institution_id
            )
        except TargetProblem as exc:
            message = exc.message
        if target is not None and not consult_consent_covers(
            patient=consult.patient, institutions=target.institutions
        ):
            message = gettext_lazy(
                "The resident's consent does not cover these experts; return the"
                " consultation so the requester records it."
            )
    if message is not None:
        raise refuse(actor=actor, action=action, consult=consult, message=message)
    if decision == "return":
        return _returned(consult=consult, actor=actor, note=note)
    assert target is not None
    return _routed(consult=consult, actor=actor, note=note, target=target)


def _returned(*, consult: Consult, actor: User, note: str) -> Consult:
    now = timezone.now()
    with transaction.atomic():
        updated = Consult.objects.filter(pk=consult.pk, status=Status.PENDING_REVIEW).update(
            status=Status.RETURNED, reviewed_by=actor, reviewed_at=now, review_note=note
        )
        if updated:
            event_add(consult=consult, kind="returned", actor=actor, detail={"note": note})
            notify(
                [consult.requested_by],
                consult=consult,
                kind="consult.returned",
                title=gettext_lazy("Consultation %(number)s for %(name)s was returned"),
                body=gettext_lazy("The coordinator asks: %(note)s"),
                params={"note": note},
                exclude=actor,
            )
    if not updated:
        raise refuse(
            actor=actor,
            action="consult.review",
            consult=consult,
            message=gettext_lazy("Only a consultation waiting for pre-review can be returned."),
        )
    audit_consult(
        actor=actor, action="consult.review", consult=consult, detail={"decision": "return"}
    )
    consult.refresh_from_db()
    return consult


def _routed(*, consult: Consult, actor: User, note: str, target: Target) -> Consult:
    now = timezone.now()
    respond_due, complete_due = due_times(consult.priority, now)
    previous = consult.status
    try:
        with transaction.atomic():
            updated = Consult.objects.filter(pk=consult.pk, status=previous).update(
                status=Status.PENDING_EXPERT,
                target_kind=target.kind,
                target_institution=target.institution,
                target_specialty=target.specialty or consult.target_specialty,
                reviewed_by=actor,
                reviewed_at=now,
                review_note=note,
                respond_due_at=respond_due,
                complete_due_at=complete_due,
                escalation_level=0,
                escalated_at=None,
            )
            if not updated:
                raise _Raced
            consult.refresh_from_db()
            invite_experts(consult=consult, target=target, actor=actor)
            lead = consult.experts.filter(lead=True, status=ExpertStatus.ACCEPTED).exists()
            if lead:
                Consult.objects.filter(pk=consult.pk).update(status=Status.ACCEPTED)
            event_add(
                consult=consult,
                kind="routed",
                actor=actor,
                detail={
                    "target_kind": target.kind,
                    "expert_ids": target.expert_ids,
                    "note": note,
                    "rerouted": previous == Status.PENDING_EXPERT,
                },
            )
            notify(
                [consult.requested_by],
                consult=consult,
                kind="consult.routed",
                severity=None,
                title=gettext_lazy("Consultation %(number)s for %(name)s was sent to the experts"),
                body=gettext_lazy("Experts: %(experts)s"),
                params={"experts": ", ".join(str(u) for u, _i in target.experts)},
                exclude=actor,
            )
    except _Raced:
        raise refuse(
            actor=actor,
            action="consult.review",
            consult=consult,
            message=gettext_lazy("This consultation can no longer be routed."),
        ) from None
    audit_consult(
        actor=actor,
        action="consult.review",
        consult=consult,
        detail={"decision": "route", "target_kind": target.kind, "experts": target.expert_ids},
    )
    consult.refresh_from_db()
    return consult


class _Raced(Exception):
    """The consult changed between the checks and the write."""


def consult_resubmit(*, actor: User, consult_id: int, question: str, history: str = "") -> Consult:
    """The requester completes a returned consult and sends it back to pre-review.

    Raises
    ------
    AccessDenied, NotFound, InvalidRecord
    """
    action = "consult.resubmit"
    consult, _scope = load_consult(actor=actor, consult_id=consult_id, action=action)
    if consult.requested_by_id != actor.pk:
        raise deny(
            actor=actor,
            action=action,
            consult=consult,
            reason="not the requester",
            message=_("Only the doctor who asked can resubmit this consultation."),
        )
    question, history = question.strip(), history.strip()
    message = text_problem(question, history)
    if message is None and consult.status != Status.RETURNED:
        message = gettext_lazy("Only a returned consultation can be resubmitted.")
    if message is not None:
        raise refuse(actor=actor, action=action, consult=consult, message=message)
    now = timezone.now()
    respond_due, complete_due = due_times(consult.priority, now)
    proposed = proposed_expert_ids(consult)
    with transaction.atomic():
        updated = Consult.objects.filter(pk=consult.pk, status=Status.RETURNED).update(
            status=Status.PENDING_REVIEW,
            question=question,
            history=history,
            respond_due_at=respond_due,
            complete_due_at=complete_due,
            escalation_level=0,
            escalated_at=None,
        )
        if updated:
            event_add(
                consult=consult, kind="resubmitted", actor=actor, detail={"expert_ids": proposed}
            )
            consult.refresh_from_db()
            notify_review(consult, actor=actor)
    if not updated:
        raise refuse(
            actor=actor,
            action=action,
            consult=consult,
            message=gettext_lazy("Only a returned consultation can be resubmitted."),
        )
    audit_consult(actor=actor, action=action, consult=consult)
    return consult
