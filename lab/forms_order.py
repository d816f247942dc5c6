"""Forms of ordering, cancelling, collecting and reprinting: typed input before any service."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from association.models import DiagnosticCentre
from lab.catalogue import Catalogue
from lab.models import Priority
from lab.workflow_common import MAX_NOTE, MAX_REASON


class PatientQueryForm(forms.Form):
    """``?patient=<id>[&centre=<id>]``: whose tests are ordered, and at which centre."""

    patient = forms.IntegerField(min_value=1, widget=forms.HiddenInput)
    centre = forms.IntegerField(min_value=1, required=False, widget=forms.HiddenInput)


class OrderForm(forms.Form):
    centre = forms.TypedChoiceField(label=_("Lab centre"), coerce=int)
    tests = forms.TypedMultipleChoiceField(
        label=_("Tests"), coerce=int, required=False, widget=forms.CheckboxSelectMultiple
    )
    panels = forms.TypedMultipleChoiceField(
        label=_("Panels"), coerce=int, required=False, widget=forms.CheckboxSelectMultiple
    )
    priority = forms.ChoiceField(
        label=_("Priority"),
        choices=Priority.choices,
        initial=Priority.ROUTINE,
        widget=forms.RadioSelect,
    )
    clinical_note = forms.CharField(
        label=_("Clinical note"),
        max_length=MAX_NOTE,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Symptoms, medication, what the results should answer."),
    )
    record_consent = forms.BooleanField(
        label=_(
            "The resident consents to sending the specimens and the record to the lab"
            " centre's hospital"
        ),
        required=False,
    )

    def __init__(
        self,
        *args: Any,
        centres: Sequence[DiagnosticCentre],
        catalogue: Catalogue | None,
        ask_consent: bool,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._centres = {c.pk: c for c in centres}
        self.fields["centre"].choices = [(c.pk, c.name) for c in centres]  # type: ignore[attr-defined]
        if catalogue is not None:
            self.fields["centre"].initial = catalogue.centre.pk
            self.fields["tests"].choices = [  # type: ignore[attr-defined]
                (t.pk, f"{t.code} {t.display_name}") for t in catalogue.tests
            ]
            self.fields["panels"].choices = [  # type: ignore[attr-defined]
                (p.pk, f"{p.code} {p.display_name}") for p in catalogue.panels
            ]
        if not ask_consent:
            del self.fields["record_consent"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if not self.errors and not cleaned.get("tests") and not cleaned.get("panels"):
            raise forms.ValidationError(_("Choose at least one test or panel."), code="empty")
        return cleaned

    def chosen(self, name: str) -> set[int]:
        """The ids ticked (for drawing the checkboxes again after an error)."""
        if self.is_bound:
            values = self.data.getlist(name) if hasattr(self.data, "getlist") else []
            return {int(v) for v in values if str(v).isdigit()}
        return set()

    def service_kwargs(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "centre": self._centres[data["centre"]],
            "test_ids": list(data["tests"]),
            "panel_ids": list(data["panels"]),
            "priority": data["priority"],
            "clinical_note": data["clinical_note"],
            "record_consent": bool(data.get("record_consent")),
        }


class CancelOrderForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=MAX_REASON)


class CollectForm(forms.Form):
    """When the specimens were drawn: now, or earlier today."""

    collected_time = forms.TimeField(
        label=_("Drawn at (earlier today)"),
        required=False,
        widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
        help_text=_("Leave empty when drawn just now."),
    )

    def clean_collected_time(self) -> dt.time | None:
        value: dt.time | None = self.cleaned_data.get("collected_time")
        if value is not None and self._as_datetime(value) > timezone.now():
            raise forms.ValidationError(
                _("The collection time cannot be in the future."), code="future"
            )
        return value

    @staticmethod
    def _as_datetime(value: dt.time) -> dt.datetime:
        return timezone.make_aware(dt.datetime.combine(timezone.localdate(), value))

    def collected_at(self) -> dt.datetime | None:
        value = self.cleaned_data.get("collected_time")
        return self._as_datetime(value) if value is not None else None


class ReprintForm(forms.Form):
    reason = forms.CharField(
        label=_("Why print again?"),
        max_length=MAX_REASON,
        help_text=_("For example: the label was smudged or came off the tube."),
    )
