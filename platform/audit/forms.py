"""The audit search form: every filter optional, all of them typed."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from audit.models import Outcome
from audit.selectors import AuditFilters


def _start_of_day(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


class AuditSearchForm(forms.Form):
    username = forms.CharField(label=_("Username"), required=False, max_length=150)
    action = forms.CharField(
        label=_("Action"),
        required=False,
        max_length=60,
        help_text=_("For example patient.view, or patient. for every patient action."),
    )
    outcome = forms.ChoiceField(
        label=_("Outcome"), required=False, choices=[("", _("Any")), *Outcome.choices]
    )
    patient = forms.IntegerField(label=_("Patient number"), required=False, min_value=1)
    date_from = forms.DateField(
        label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        label=_("To"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def clean(self) -> dict[str, object]:
        cleaned = super().clean() or {}
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if isinstance(start, dt.date) and isinstance(end, dt.date) and start > end:
            self.add_error("date_to", _("The end date is before the start date."))
        return cleaned

    def filters(self) -> AuditFilters:
        """The cleaned filters; an unbound form means no filter at all."""
        if not self.is_bound:
            return AuditFilters()
        data = self.cleaned_data
        start: dt.date | None = data.get("date_from")
        end: dt.date | None = data.get("date_to")
        return AuditFilters(
            username=data.get("username", ""),
            action=data.get("action", ""),
            outcome=data.get("outcome", ""),
            patient_id=data.get("patient"),
            since=_start_of_day(start) if start else None,
            until=_start_of_day(end + dt.timedelta(days=1)) if end else None,
        )
