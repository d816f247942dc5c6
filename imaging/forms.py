"""Forms of the reading workflow: typed input, checked before any service is called."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from django import forms
from django.core.validators import RegexValidator
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from association.models import DiagnosticCentre
from imaging.models import Modality, Priority, RequestStatus
from imaging.report_templates import template_choices
from imaging.workflow_common import (
    MAX_EXAM,
    MAX_FINDINGS,
    MAX_IMPRESSION,
    MAX_QUESTION,
    MAX_REASON,
)
from records.forms import DateInput

_uid = RegexValidator(
    r"^[0-9]+(\.[0-9]+)*$", _("A DICOM UID has digits and dots only."), code="invalid_uid"
)


class PatientQueryForm(forms.Form):
    """``?patient=<id>``: whose imaging is requested."""

    patient = forms.IntegerField(min_value=1, widget=forms.HiddenInput)


class ImagingRequestForm(forms.Form):
    centre = forms.TypedChoiceField(label=_("Imaging centre"), coerce=int)
    modality = forms.ChoiceField(label=_("Modality"), choices=Modality.choices)
    exam = forms.CharField(
        label=_("Exam"),
        max_length=MAX_EXAM,
        help_text=_("For example: chest PA, head CT without contrast, upper abdomen ultrasound."),
        widget=forms.TextInput(attrs={"list": "exam-suggestions", "autocomplete": "off"}),
    )
    clinical_question = forms.CharField(
        label=_("Clinical question"),
        max_length=MAX_QUESTION,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=_("History, findings so far and what the reading should answer."),
    )
    priority = forms.ChoiceField(
        label=_("Priority"),
        choices=Priority.choices,
        initial=Priority.ROUTINE,
        widget=forms.RadioSelect,
    )
    record_consent = forms.BooleanField(
        label=_(
            "The resident consents to sharing these images and the record with the imaging"
            " centre's hospital"
        ),
        required=False,
    )

    def __init__(
        self, *args: Any, centres: Sequence[DiagnosticCentre], ask_consent: bool, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._centres = {c.pk: c for c in centres}
        self.fields["centre"].choices = [(c.pk, c.name) for c in centres]  # type: ignore[attr-defined]
        if len(centres) == 1:
            self.fields["centre"].initial = centres[0].pk
        if not ask_consent:
            del self.fields["record_consent"]

    def service_kwargs(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "centre": self._centres[data["centre"]],
            "modality": data["modality"],
            "exam": data["exam"],
            "clinical_question": data["clinical_question"],
            "priority": data["priority"],
            "record_consent": bool(data.get("record_consent")),
        }


class AttachStudyForm(forms.Form):
    study_uid = forms.CharField(label=_("Study"), max_length=64, validators=[_uid])


class CancelRequestForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=MAX_REASON)


class WorklistFilterForm(forms.Form):
    status = forms.ChoiceField(
        label=_("Status"),
        required=False,
        choices=[("", _("Open")), *RequestStatus.choices],
    )


class JSONListField(forms.CharField):
    """A hidden field carrying a JSON list of objects (the viewer's measurements, key images)."""

    widget = forms.HiddenInput
    default_error_messages = {
        "invalid_json": _("The data from the viewer could not be read."),
    }

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("max_length", 256 * 1024)
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> Any:
        text = super().to_python(value)
        if not text:
            return []
        try:
            parsed = json.loads(text)
        except ValueError:
            raise forms.ValidationError(
                self.error_messages["invalid_json"], code="invalid_json"
            ) from None
        if not isinstance(parsed, list) or not all(isinstance(i, dict) for i in parsed):
            raise forms.ValidationError(self.error_messages["invalid_json"], code="invalid_json")
        return parsed

    def validate(self, value: Any) -> None:
        """The length limit applies to the JSON text (checked in ``run_validators``)."""

    def run_validators(self, value: Any) -> None:
        super().run_validators(json.dumps(value, ensure_ascii=False))

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list):
            return json.dumps(value, ensure_ascii=False)
        return value


class ReportForm(forms.Form):
    template = forms.ChoiceField(label=_("Template"), required=False)
    findings = forms.CharField(
        label=_("Findings"),
        required=False,
        max_length=MAX_FINDINGS,
        widget=forms.Textarea(attrs={"rows": 10}),
    )
    impression = forms.CharField(
        label=_("Impression"),
        required=False,
        max_length=MAX_IMPRESSION,
        widget=forms.Textarea(attrs={"rows": 4}),
    )
    critical = forms.BooleanField(
        label=_("Critical finding: tell the requesting doctor at once"), required=False
    )
    mutual_recognition = forms.BooleanField(
        label=_("Mutually recognised result (结果互认)"),
        required=False,
        help_text=_(
            "Other institutions of the association accept this result without repeating the exam."
        ),
    )
    valid_until = forms.DateField(label=_("Valid until"), required=False, widget=DateInput())
    measurements = JSONListField()
    key_images = JSONListField()

    def __init__(self, *args: Any, modality: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["template"].choices = template_choices(modality)  # type: ignore[attr-defined]

    def clean_valid_until(self) -> dt.date | None:
        day: dt.date | None = self.cleaned_data.get("valid_until")
        if day is not None and day < timezone.localdate():
            raise forms.ValidationError(_("The date must not be in the past."), code="past")
        return day

    def content(self) -> dict[str, Any]:
        """The report's fields as the services take them."""
        data = self.cleaned_data
        return {
            "template": data["template"],
            "findings": data["findings"],
            "impression": data["impression"],
            "critical": data["critical"],
            "mutual_recognition": data["mutual_recognition"],
            "valid_until": data["valid_until"],
            "measurements": data["measurements"],
            "key_images": data["key_images"],
        }


class ReadingForm(ReportForm):
    """The reading page's form: save the draft, or save and sign."""

    action = forms.ChoiceField(
        choices=[("save", _("Save draft")), ("sign", _("Sign report"))],
        widget=forms.HiddenInput,
        initial="save",
    )


class AmendForm(ReportForm):
    reason = forms.CharField(
        label=_("Reason for the amendment"),
        max_length=MAX_REASON,
        help_text=_("The requesting doctor sees it beside the new version."),
    )
