"""Pages that change a consult: pre-review, the expert's answer, booking, cancelling,
no-show, resubmitting, adding attachments, and an expert's own availability.

Each page shows the consult beside its form (an audited read through
``consult.selectors``); the change itself is a POST to a service, which checks who acts
and audits. A page the actor may not use is an audited 403 before any form is shown.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from itertools import groupby
from typing import Any, BinaryIO, cast

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods, require_POST

from accounts.views import acting_user, session_required
from association.models import Role
from association.selectors import actor_scope
from consult.forms import (
    MAX_FILES,
    BookForm,
    CancelForm,
    NoShowForm,
    RespondForm,
    ResubmitForm,
    ReviewForm,
    SlotDeleteForm,
    SlotRangeForm,
)
from consult.models import ExpertStatus, Mode, Slot, Status
from consult.selectors import ConsultDetail, consult_detail_for_user, slots_for_expert
from consult.services import (
    consult_attach_file,
    consult_attach_study,
    consult_book,
    consult_cancel,
    consult_no_show,
    consult_respond,
    consult_resubmit,
    consult_review,
    slot_create,
    slot_delete,
)
from consult.views import detail_context, detail_page
from consult.views_common import deny_page, expert_choices, study_choices, target_choices
from core.views import audit_invalid_form, domain_errors
from records.services import InvalidRecord

TITLES = {
    "consult/review.html": gettext_lazy("Pre-review"),
    "consult/resubmit.html": gettext_lazy("Complete and send again"),
    "consult/respond.html": gettext_lazy("Accept or decline"),
    "consult/book.html": gettext_lazy("Book a slot"),
    "consult/cancel.html": gettext_lazy("Cancel the consultation"),
}


def _refused(
    request: HttpRequest, detail: ConsultDetail, action: str, message: str
) -> HttpResponse:
    consult = detail.consult
    return deny_page(
        request,
        action=action,
        reason=f"page not open to {detail.role or 'this actor'} in status {consult.status}",
        message=message,
        consult_id=consult.pk,
        patient_id=consult.patient_id,
    )


def _action_page(
    request: HttpRequest,
    detail: ConsultDetail,
    template: str,
    form: forms.BaseForm,
    *,
    status: int = 200,
    **extra: Any,
) -> HttpResponse:
    context = {**detail_context(detail), "form": form, "title": TITLES[template], **extra}
    if extra.get("mode") == "no_show":
        context["title"] = _("Record a no-show")
    return render(request, template, context, status=status)


def _submit(
    request: HttpRequest,
    detail: ConsultDetail,
    template: str,
    form: forms.BaseForm,
    *,
    action: str,
    change: Callable[[], Any],
    done: str,
    **extra: Any,
) -> HttpResponse:
    """Validate ``form``, run ``change`` (a service call), and go back to the consult."""
    consult = detail.consult
    if not form.is_valid():
        audit_invalid_form(request, form, action=action, patient_id=consult.patient_id)
        return _action_page(request, detail, template, form, status=400, **extra)
    try:
        change()
    except InvalidRecord as exc:  # audited by the service
        form.add_error(None, str(exc))
        return _action_page(request, detail, template, form, status=400, **extra)
    messages.success(request, done)
    return redirect("consult:detail", consult_id=consult.pk)


# --- Pre-review (coordinator) ------------------------------------------------------------------


@session_required
@require_http_methods(["GET", "POST"])
@domain_errors
def review(request: HttpRequest, consult_id: int) -> HttpResponse:
    action = "consult.review"
    actor = acting_user(request)
    detail = consult_detail_for_user(actor=actor, consult_id=consult_id)
    if not detail.can_review:
        return _refused(
            request, detail, action, _("Only a coordinator pre-reviews, before an expert takes it.")
        )
    institutions, _specialties = target_choices(actor)
    choices = {"experts": expert_choices(actor), "institutions": institutions}
    template = "consult/review.html"
    if request.method != "POST":
        initial = {
            "decision": "route",
            "experts": [u.pk for u in detail.proposed_experts],
        }
        return _action_page(request, detail, template, ReviewForm(initial=initial, **choices))
    form = ReviewForm(request.POST, **choices)
    return _submit(
        request,
        detail,
        template,
        form,
        action=action,
        change=lambda: consult_review(actor=actor, consult_id=consult_id, **form.service_kwargs()),
        done=_("Pre-review recorded. The requester and the experts are notified."),
    )


@session_required
@require_http_methods(["GET", "POST"])
@domain_errors
def resubmit(request: HttpRequest, consult_id: int) -> HttpResponse:
    action = "consult.resubmit"
    actor = acting_user(request)
    detail = consult_detail_for_user(actor=actor, consult_id=consult_id)
    if not detail.can_resubmit:
        return _refused(
            request, detail, action, _("Only the requester completes a returned consultation.")
        )
    template = "consult/resubmit.html"
    consult = detail.consult
    if request.method != "POST":
        form = ResubmitForm(initial={"question": consult.question, "history": consult.history})
        return _action_page(request, detail, template, form)
    form = ResubmitForm(request.POST)
    return _submit(
        request,
        detail,
        template,
        form,
        action=action,
        change=lambda: consult_resubmit(
            actor=actor,
            consult_id=consult_id,
            question=form.cleaned_data["question"],
            history=form.cleaned_data["history"],
        ),
        done=_("Sent again for pre-review."),
    )


# --- The expert's answer and the appointment ---------------------------------------------------


@session_required
@require_http_methods(["GET", "POST"])
@domain_errors
def respond(request: HttpRequest, consult_id: int) -> HttpResponse:
    action = "consult.respond"
    actor = acting_user(request)
    detail = consult_detail_for_user(actor=actor, consult_id=consult_id)
    if not detail.can_respond:
        return _refused(
            request, detail, action, _("Only an invited expert answers, while the request is open.")
        )
    template = "consult/respond.html"
    if request.method != "POST":
        return _action_page(request, detail, template, RespondForm())
    form = RespondForm(request.POST)
    if not form.is_valid():
        audit_invalid_form(request, form, action=action, patient_id=detail.consult.patient_id)
        return _action_page(request, detail, template, form, status=400)
    try:
        consult = consult_respond(
            actor=actor,
            consult_id=consult_id,
            accept=form.cleaned_data["decision"] == "accept",
            reason=form.cleaned_data["reason"],
        )
    except InvalidRecord as exc:  # audited by the service
        form.add_error(None, str(exc))
        return _action_page(request, detail, template, form, status=400)
    leads = consult.experts.filter(user=actor, lead=True, status=ExpertStatus.ACCEPTED).exists()
    if leads and consult.mode == Mode.VIDEO and consult.status == Status.ACCEPTED:
        messages.success(request, _("Accepted. Book a slot for the live consultation."))
        return redirect("consult:book", consult_id=consult_id)
    messages.success(request, _("Your answer is recorded. The requester is notified."))
    return redirect("consult:detail", consult_id=consult_id)


@session_required
@require_http_methods(["GET", "POST"])
@domain_errors
def book(request: HttpRequest, consult_id: int) -> HttpResponse:
    action = "consult.book"
    actor = acting_user(request)
    detail = consult_detail_for_user(actor=actor, consult_id=consult_id)
    if not detail.can_book:
        return _refused(
            request,
            detail,
            action,
            _("Only the lead expert books a live consultation they accepted."),
        )
    choices = [(s.pk, _slot_label(s)) for s in detail.slots_free]
    template = "consult/book.html"
    if request.method != "POST":
        return _action_page(request, detail, template, BookForm(slots=choices))
    form = BookForm(request.POST, slots=choices)
    return _submit(
        request,
        detail,
        template,
        form,
        action=action,
        change=lambda: consult_book(
            actor=actor, consult_id=consult_id, slot_id=form.cleaned_data["slot"]
        ),
        done=_("Booked. The requesting doctor is notified."),
    )


def _slot_label(slot: Slot) -> str:
    start = timezone.localtime(slot.start)
    end = timezone.localtime(slot.end)
    return f"{start:%Y-%m-%d %H:%M}–{end:%H:%M}"


# --- Closing -----------------------------------------------------------------------------------


def _close(
    request: HttpRequest,
    consult_id: int,
    *,
    action: str,
    allowed: Callable[[Any], bool],
    refusal: str,
    form_class: type[forms.Form],
    service: Callable[..., Any],
    done: str,
    mode: str,
) -> HttpResponse:
    """Cancel or record a no-show: the same page, form (a reason) and flow."""
    actor = acting_user(request)
    detail = consult_detail_for_user(actor=actor, consult_id=consult_id)
    if not allowed(detail):
        return _refused(request, detail, action, refusal)
    template = "consult/cancel.html"
    if request.method != "POST":
        return _action_page(request, detail, template, form_class(), mode=mode)
    form = form_class(request.POST)
    return _submit(
        request,
        detail,
        template,
        form,
        action=action,
        change=lambda: service(
            actor=actor, consult_id=consult_id, reason=form.cleaned_data["reason"]
        ),
        done=done,
        mode=mode,
    )


@session_required
@require_http_methods(["GET", "POST"])
@domain_errors
def cancel(request: HttpRequest, consult_id: int) -> HttpResponse:
    return _close(
        request,
        consult_id,
        action="consult.cancel",
        allowed=lambda detail: detail.can_cancel,
        refusal=_(
            "Only the requester, a coordinator or the lead expert cancels an open consultation."
        ),
        form_class=CancelForm,
        service=consult_cancel,
        done=_("The consultation was cancelled. Everyone involved is notified."),
        mode="cancel",
    )


@session_required
@require_http_methods(["GET", "POST"])
@domain_errors
def no_show(request: HttpRequest, consult_id: int) -> HttpResponse:
    return _close(
        request,
        consult_id,
        action="consult.no_show",
        allowed=lambda detail: detail.can_no_show,
        refusal=_("A no-show is recorded by an expert, once the appointment has started."),
        form_class=NoShowForm,
        service=consult_no_show,
        done=_("The no-show is recorded."),
        mode="no_show",
    )


# --- Attachments added later -------------------------------------------------------------------


class AttachForm(forms.Form):
    study = forms.TypedChoiceField(coerce=int, required=False, empty_value=None)


@session_required
@require_POST
@domain_errors
def attach(request: HttpRequest, consult_id: int) -> HttpResponse:
    """Add files or a study to an open consult (from its page)."""
    actor = acting_user(request)
    detail = consult_detail_for_user(actor=actor, consult_id=consult_id)
    consult = detail.consult
    form = AttachForm(request.POST)
    form.fields["study"].choices = [("", "—"), *study_choices(actor, consult.patient)]  # type: ignore[attr-defined]
    files = request.FILES.getlist("files")
    if not form.is_valid() or (not files and form.cleaned_data.get("study") is None):
        audit_invalid_form(request, form, action="consult.attach", patient_id=consult.patient_id)
        return _detail_error(request, detail, _("Choose a file or a study to attach."))
    if len(files) > MAX_FILES:
        return _detail_error(
            request, detail, _("Attach at most %(count)d files.") % {"count": MAX_FILES}
        )
    try:
        if form.cleaned_data.get("study") is not None:
            consult_attach_study(
                actor=actor, consult_id=consult_id, study_id=form.cleaned_data["study"]
            )
        for upload in files:
            consult_attach_file(
                actor=actor,
                consult_id=consult_id,
                name=upload.name or "",
                fileobj=cast(BinaryIO, upload),
                content_type=upload.content_type or "",
                size=upload.size or 0,
            )
    except InvalidRecord as exc:  # audited by the service
        return _detail_error(request, detail, str(exc))
    messages.success(request, _("Attached."))
    return redirect("consult:detail", consult_id=consult_id)


def _detail_error(request: HttpRequest, detail: ConsultDetail, message: str) -> HttpResponse:
    detail = consult_detail_for_user(actor=acting_user(request), consult_id=detail.consult.pk)
    return detail_page(request, detail, status=400, attach_error=message)


# --- An expert's availability ------------------------------------------------------------------


def _availability_page(
    request: HttpRequest, *, form: SlotRangeForm, status: int = 200, error: str = ""
) -> HttpResponse:
    actor = acting_user(request)
    slots = list(
        slots_for_expert(actor=actor, expert_id=actor.pk, include_booked=True).select_related(
            "consult", "consult__patient"
        )
    )

    def day_of(slot: Slot) -> dt.date:
        return timezone.localtime(slot.start).date()

    days = [(day, list(group)) for day, group in groupby(slots, key=day_of)]
    context = {
        "form": form,
        "days": days,
        "error": error,
        "free": sum(1 for s in slots if s.consult_id is None),
        "booked": sum(1 for s in slots if s.consult_id is not None),
    }
    return render(request, "consult/availability.html", context, status=status)


def _is_specialist(request: HttpRequest) -> bool:
    return any(
        m.role == Role.SPECIALIST and m.centre_id is None
        for m in actor_scope(request.user).memberships
    )


@session_required
@require_http_methods(["GET", "POST"])
@domain_errors
def availability(request: HttpRequest) -> HttpResponse:
    action = "consult.slot.create"
    if not _is_specialist(request):
        return deny_page(
            request,
            action=action,
            reason="no specialist",
            message=_("Only specialists offer consultation slots."),
        )
    if request.method != "POST":
        today = timezone.localdate() + dt.timedelta(days=1)
        initial = {"day": today, "start": dt.time(14, 0), "end": dt.time(17, 0), "minutes": 30}
        return _availability_page(request, form=SlotRangeForm(initial=initial))
    form = SlotRangeForm(request.POST)
    if not form.is_valid():
        audit_invalid_form(request, form, action=action)
        return _availability_page(request, form=form, status=400)
    actor = acting_user(request)
    added, refusals = 0, []
    for start, end in form.periods():
        try:
            slot_create(actor=actor, start=start, end=end)
            added += 1
        except InvalidRecord as exc:  # audited by the service
            refusals.append(str(exc))
    if not added:
        return _availability_page(request, form=form, status=400, error=refusals[0])
    if refusals:
        messages.warning(
            request,
            _("%(added)d slots added; %(skipped)d were left out: %(reason)s")
            % {"added": added, "skipped": len(refusals), "reason": refusals[0]},
        )
    else:
        messages.success(request, _("%(added)d slots added.") % {"added": added})
    return redirect("consult:availability")


@session_required
@require_POST
@domain_errors
def slot_remove(request: HttpRequest) -> HttpResponse:
    form = SlotDeleteForm(request.POST)
    if not form.is_valid():
        audit_invalid_form(request, form, action="consult.slot.delete")
        return _availability_page(
            request, form=SlotRangeForm(), status=400, error=_("Choose a slot to remove.")
        )
    try:
        slot_delete(actor=acting_user(request), slot_id=form.cleaned_data["slot"])
    except InvalidRecord as exc:  # audited by the service
        return _availability_page(request, form=SlotRangeForm(), status=400, error=str(exc))
    messages.success(request, _("The slot was removed."))
    return redirect("consult:availability")
