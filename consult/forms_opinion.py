"""Forms of the opinion page and the PDF link: typed input, checked before a service runs."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from consult.models import Recommendation
from consult.opinion import MAX_ADVICE, MAX_DIAGNOSIS, MAX_FINDINGS, MAX_REASON
from records.forms import DateInput


class OpinionForm(forms.Form):
    """The structured opinion; a draft may be partial, the service checks what signing needs."""

    findings = forms.CharField(
        label=pgettext_lazy("consult opinion", "Findings"),
        required=False,
        max_length=MAX_FINDINGS,
        widget=forms.Textarea(attrs={"rows": 8}),
        help_text=_("What you saw in the history, the images, the results and the consult."),
    )
    diagnosis = forms.CharField(
        label=_("Diagnosis"),
        required=False,
        max_length=MAX_DIAGNOSIS,
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    advice = forms.CharField(
        label=_("Advice"),
        required=False,
        max_length=MAX_ADVICE,
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text=_("Treatment, tests and what to watch for, for the requesting doctor."),
    )
    recommendation = forms.ChoiceField(
        label=_("Recommendation"),
        required=False,
        choices=Recommendation.choices,
        widget=forms.RadioSelect,
    )
    follow_up_on = forms.DateField(
        label=_("Follow up on"),
        required=False,
        widget=DateInput(),
        help_text=_("Needed when the recommendation is a follow-up."),
    )

    def clean_follow_up_on(self) -> dt.date | None:
        day: dt.date | None = self.cleaned_data.get("follow_up_on")
        if day is not None and day <= timezone.localdate():
            raise forms.ValidationError(_("The follow-up date must be after today."), code="past")
        return day

    def content(self) -> dict[str, Any]:
        """The opinion's fields as the services take them."""
        data = self.cleaned_data
        return {
            "findings": data["findings"],
            "diagnosis": data["diagnosis"],
            "advice": data["advice"],
            "recommendation": data["recommendation"],
            "follow_up_on": data["follow_up_on"],
        }


class DraftForm(OpinionForm):
    """The page's form before signing: save the draft, or save and sign."""

    action = forms.ChoiceField(
        choices=[("save", _("Save draft")), ("sign", _("Sign the opinion"))],
        widget=forms.HiddenInput,
        initial="save",
    )


class AmendForm(OpinionForm):
    """After signing: an amended version, with its reason."""

    reason = forms.CharField(
        label=_("Reason for the amendment"),
        max_length=MAX_REASON,
        help_text=_("The requesting doctor sees it beside the new version."),
    )


class PdfQueryForm(forms.Form):
    """``?version=N`` on the PDF link; the latest version when absent."""

    version = forms.IntegerField(min_value=1, max_value=10_000, required=False)
