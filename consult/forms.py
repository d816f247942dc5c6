"""Forms of the consult pages: typed input, checked before any service is called.

Choices (hospitals, specialties, experts, the resident's studies, free slots) come from the
view, which reads them through ``consult.selectors``; a form only checks that what was sent
is one of them and that the combination makes sense.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from django import forms
from django.core.files.uploadedfile import UploadedFile
from django.utils import timezone
from django.utils.functional import lazy
from django.utils.translation import gettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _

from consult.models import Mode, Priority, Status, TargetKind
from consult.selectors import LIST_SCOPES
from consult.workflow_common import (
    MAX_ATTACHMENT_BYTES,
    MAX_HISTORY,
    MAX_LAB_REFERENCE,
    MAX_LAB_REFERENCES,
    MAX_MDT,
    MAX_NOTE,
    MAX_QUESTION,
    MAX_REASON,
    MAX_STUDIES,
)
from records.forms import DateInput

MAX_FILES = 10
MAX_SLOTS_AT_ONCE = 48
SLOT_MINUTES = [15, 20, 30, 45, 60]

Choices = Sequence[tuple[int, str]]


class PatientQueryForm(forms.Form):
    """``?patient=<id>``: whose consult is requested."""

    patient = forms.IntegerField(min_value=1, widget=forms.HiddenInput)


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files from one ``<input type=file multiple>``."""

    widget = MultipleFileInput

    def __init__(self, *, max_files: int, max_bytes: int, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)
        self.max_files = max_files
        self.max_bytes = max_bytes

    def clean(self, data: Any, initial: Any = None) -> list[UploadedFile]:
        files = [f for f in (data if isinstance(data, list | tuple) else [data]) if f]
        if len(files) > self.max_files:
            raise forms.ValidationError(
                _("Attach at most %(count)d files.") % {"count": self.max_files},
                code="too_many",
            )
        cleaned = [super(MultipleFileField, self).clean(f, initial) for f in files]
        for upload in cleaned:
            if upload.size is not None and upload.size > self.max_bytes:
                raise forms.ValidationError(
                    _("“%(name)s” is larger than %(limit)d MB.")
                    % {"name": upload.name, "limit": self.max_bytes // (1024 * 1024)},
                    code="too_large",
                )
        return cleaned


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


class ConsultRequestForm(forms.Form):
    question = forms.CharField(
        label=_("Question for the expert"),
        max_length=MAX_QUESTION,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=_("What should the expert answer? Be specific."),
    )
    history = forms.CharField(
        label=_("History and findings so far"),
        max_length=MAX_HISTORY,
        required=False,
        widget=forms.Textarea(attrs={"rows": 6}),
    )
    priority = forms.ChoiceField(
        label=_("Priority"),
        choices=Priority.choices,
        initial=Priority.ROUTINE,
        widget=forms.RadioSelect,
    )
    mode = forms.ChoiceField(
        label=_("How the consult takes place"),
        choices=Mode.choices,
        initial=Mode.VIDEO,
        widget=forms.RadioSelect,
    )
    target_kind = forms.ChoiceField(
        label=_("Whom to ask"),
        choices=TargetKind.choices,
        initial=TargetKind.SPECIALTY,
        widget=forms.RadioSelect,
    )
    target_institution = forms.TypedChoiceField(
        label=_("Hospital"), coerce=int, required=False, empty_value=None
    )
    target_specialty = forms.TypedChoiceField(
        label=_("Specialty"), coerce=int, required=False, empty_value=None
    )
    expert = forms.TypedChoiceField(label=_("Expert"), coerce=int, required=False, empty_value=None)
    experts = forms.TypedMultipleChoiceField(
        label=_("Experts"),
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("Choose at least two experts for a multidisciplinary consult."),
    )
    studies = forms.TypedMultipleChoiceField(
        label=_("Imaging studies to attach"),
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    lab_references = forms.CharField(
        label=_("Lab results"),
        required=False,
        max_length=MAX_LAB_REFERENCES * (MAX_LAB_REFERENCE + 1),
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("One lab report number or result per line."),
    )
    recording_consent = forms.BooleanField(
        label=_("The resident consents to the video consult being recorded"), required=False
    )
    share_consent = forms.BooleanField(
        label=_(
            "The resident consents to sharing the record and these attachments with the"
            " experts consulted"
        ),
        required=True,
        error_messages={
            "required": _(
                "Ask the resident first: the experts can only see the record with consent."
            )
        },
    )

    def __init__(
        self,
        *args: Any,
        institutions: Choices,
        specialties: Choices,
        experts: Choices,
        studies: Choices,
        max_file_bytes: int = MAX_ATTACHMENT_BYTES,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        blank: list[tuple[Any, str]] = [("", "—")]
        self.fields["target_institution"].choices = blank + list(institutions)  # type: ignore[attr-defined]
        self.fields["target_specialty"].choices = blank + list(specialties)  # type: ignore[attr-defined]
        self.fields["expert"].choices = blank + list(experts)  # type: ignore[attr-defined]
        self.fields["experts"].choices = list(experts)  # type: ignore[attr-defined]
        self.fields["studies"].choices = list(studies)  # type: ignore[attr-defined]
        self.fields["files"] = MultipleFileField(
            label=_("Files"),
            max_files=MAX_FILES,
            max_bytes=max_file_bytes,
            help_text=_(
                "Photos, ECGs, scanned reports: up to %(count)d files of %(limit)d MB each."
            )
            % {"count": MAX_FILES, "limit": max_file_bytes // (1024 * 1024)},
        )

    def clean_lab_references(self) -> list[str]:
        references = _lines(self.cleaned_data.get("lab_references") or "")
        if len(references) > MAX_LAB_REFERENCES:
            raise forms.ValidationError(
                _("List at most %(count)d lab results.") % {"count": MAX_LAB_REFERENCES},
                code="too_many",
            )
        if any(len(r) > MAX_LAB_REFERENCE for r in references):
            raise forms.ValidationError(
                _("A lab result reference has at most %(count)d characters.")
                % {"count": MAX_LAB_REFERENCE},
                code="too_long",
            )
        return references

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        kind = data.get("target_kind")
        if kind == TargetKind.SPECIALTY:
            if not data.get("target_institution"):
                self.add_error("target_institution", _("Choose the hospital to ask."))
            if not data.get("target_specialty"):
                self.add_error("target_specialty", _("Choose the specialty to ask."))
        elif kind == TargetKind.EXPERT:
            if not data.get("expert"):
                self.add_error("expert", _("Choose the expert to ask."))
        elif kind == TargetKind.MDT:
            chosen = len(set(data.get("experts") or []))
            if chosen < 2:
                self.add_error(
                    "experts", _("Choose at least two experts for a multidisciplinary consult.")
                )
            elif chosen > MAX_MDT:
                self.add_error(
                    "experts",
                    _("Choose at most %(count)d experts.") % {"count": MAX_MDT},
                )
        if len(data.get("studies") or []) > MAX_STUDIES:
            self.add_error(
                "studies", _("Attach at most %(count)d studies.") % {"count": MAX_STUDIES}
            )
        return data

    def service_kwargs(self) -> dict[str, Any]:
        """The request as ``consult.services.consult_request`` takes it (files apart)."""
        data = self.cleaned_data
        kind = data["target_kind"]
        expert_ids: tuple[int, ...] = ()
        if kind == TargetKind.EXPERT:
            expert_ids = (data["expert"],)
        elif kind == TargetKind.MDT:
            expert_ids = tuple(dict.fromkeys(data["experts"]))
        specialty = kind == TargetKind.SPECIALTY
        return {
            "question": data["question"],
            "history": data["history"],
            "priority": data["priority"],
            "mode": data["mode"],
            "target_kind": kind,
            "target_institution_id": data["target_institution"] if specialty else None,
            "target_specialty_id": data["target_specialty"] if specialty else None,
            "expert_ids": expert_ids,
            "recording_consent": bool(data["recording_consent"]),
            "study_ids": tuple(data["studies"]),
            "lab_references": tuple(data["lab_references"]),
        }

    def uploads(self) -> list[UploadedFile]:
        files: list[UploadedFile] = self.cleaned_data.get("files") or []
        return files


class ResubmitForm(forms.Form):
    question = forms.CharField(
        label=_("Question for the expert"),
        max_length=MAX_QUESTION,
        widget=forms.Textarea(attrs={"rows": 4}),
    )
    history = forms.CharField(
        label=_("History and findings so far"),
        max_length=MAX_HISTORY,
        required=False,
        widget=forms.Textarea(attrs={"rows": 6}),
    )


class ReviewForm(forms.Form):
    decision = forms.ChoiceField(
        label=_("Decision"),
        choices=[
            ("route", _("Route to the experts")),
            ("return", _("Return to the requester")),
        ],
        widget=forms.RadioSelect,
    )
    experts = forms.TypedMultipleChoiceField(
        label=_("Experts"), coerce=int, required=False, widget=forms.CheckboxSelectMultiple
    )
    target_institution = forms.TypedChoiceField(
        label=_("Hospital"), coerce=int, required=False, empty_value=None
    )
    note = forms.CharField(
        label=_("Note"),
        max_length=MAX_NOTE,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Required when returning: say what is missing."),
    )

    def __init__(self, *args: Any, experts: Choices, institutions: Choices, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["experts"].choices = list(experts)  # type: ignore[attr-defined]
        self.fields["target_institution"].choices = [("", "—"), *institutions]  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("decision") == "return" and not (data.get("note") or "").strip():
            self.add_error("note", _("Say what is missing so the requester can complete it."))
        return data

    def service_kwargs(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "decision": data["decision"],
            "note": data["note"],
            "expert_ids": tuple(dict.fromkeys(data["experts"])),
            "target_institution_id": data["target_institution"],
        }


class RespondForm(forms.Form):
    decision = forms.ChoiceField(
        label=_("Your answer"),
        choices=[("accept", _("Accept")), ("decline", _("Decline"))],
        widget=forms.RadioSelect,
    )
    reason = forms.CharField(
        label=_("Reason"),
        max_length=MAX_REASON,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Required when declining; the requester reads it."),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("decision") == "decline" and not (data.get("reason") or "").strip():
            self.add_error("reason", _("Give a reason for declining."))
        return data


class BookForm(forms.Form):
    slot = forms.TypedChoiceField(label=_("Slot"), coerce=int, widget=forms.RadioSelect)

    def __init__(self, *args: Any, slots: Choices, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["slot"].choices = list(slots)  # type: ignore[attr-defined]


def _minutes(minutes: int) -> str:
    return gettext("%(minutes)d min") % {"minutes": minutes}


_minutes_label = lazy(_minutes, str)


class SlotRangeForm(forms.Form):
    """A period on one day, cut into slots of one length."""

    day = forms.DateField(label=_("Day"), widget=DateInput())
    start = forms.TimeField(
        label=pgettext_lazy("slot start time", "From"),
        widget=forms.TimeInput(attrs={"type": "time"}),
    )
    end = forms.TimeField(label=_("Until"), widget=forms.TimeInput(attrs={"type": "time"}))
    minutes = forms.TypedChoiceField(
        label=_("Length of a slot"),
        coerce=int,
        choices=[(m, _minutes_label(m)) for m in SLOT_MINUTES],
        initial=30,
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        day, start, end = data.get("day"), data.get("start"), data.get("end")
        if day is None or start is None or end is None or "minutes" not in data:
            return data
        if end <= start:
            self.add_error("end", _("The end must be after the start."))
            return data
        if day < timezone.localdate():
            self.add_error("day", _("The date must not be in the past."))
            return data
        if len(self.periods()) == 0:
            self.add_error("end", _("The period is shorter than one slot."))
        elif len(self.periods()) > MAX_SLOTS_AT_ONCE:
            self.add_error(
                "end",
                _("Add at most %(count)d slots at once.") % {"count": MAX_SLOTS_AT_ONCE},
            )
        return data

    def periods(self) -> list[tuple[dt.datetime, dt.datetime]]:
        """The (start, end) of every slot, in the current time zone."""
        data = self.cleaned_data
        zone = timezone.get_current_timezone()
        begin = dt.datetime.combine(data["day"], data["start"], tzinfo=zone)
        finish = dt.datetime.combine(data["day"], data["end"], tzinfo=zone)
        step = dt.timedelta(minutes=data["minutes"])
        periods = []
        at = begin
        while at + step <= finish:
            periods.append((at, at + step))
            at += step
        return periods


class SlotDeleteForm(forms.Form):
    slot = forms.IntegerField(min_value=1, widget=forms.HiddenInput)


class CancelForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=MAX_REASON)


class NoShowForm(forms.Form):
    reason = forms.CharField(label=_("Note"), max_length=MAX_REASON, required=False)


SCOPES = LIST_SCOPES


class ListFilterForm(forms.Form):
    scope = forms.ChoiceField(
        choices=[(s, s) for s in SCOPES], required=False, widget=forms.HiddenInput
    )
    status = forms.ChoiceField(
        label=_("Status"),
        required=False,
        choices=[
            ("", _("All")),
            ("open", pgettext_lazy("consult status filter", "Open")),
            *Status.choices,
        ],
    )
    priority = forms.ChoiceField(
        label=_("Priority"), required=False, choices=[("", _("All")), *Priority.choices]
    )


def choices_of(items: Iterable[Any], label: Any = str) -> list[tuple[int, str]]:
    """``[(pk, label)]`` of model objects, for a form's choices."""
    return [(item.pk, label(item)) for item in items]
