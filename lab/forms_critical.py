"""Forms of the critical-value pages: typed input, checked before any service is called."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from lab.critical_common import MAX_ACK_NOTE, MAX_REACHED, MAX_STEP_NOTE


class AcknowledgeForm(forms.Form):
    """The clinic acknowledges: what was done about the value (optional but asked for)."""

    note = forms.CharField(
        label=_("Action taken"),
        max_length=MAX_ACK_NOTE,
        required=False,
        strip=True,
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
        help_text=_("For example: patient called back, sent to the county hospital."),
    )
    next = forms.CharField(required=False, max_length=300, widget=forms.HiddenInput)


class CallLogForm(forms.Form):
    """The lab logs a telephone call to the clinic."""

    reached = forms.CharField(
        label=_("Person reached"),
        max_length=MAX_REACHED,
        strip=True,
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
        help_text=_("Name and role, for example: Dr Zhao, village clinic; or: nobody answered."),
    )
    acknowledged = forms.BooleanField(
        label=_("They read the value back and take charge (acknowledges the alert)"),
        required=False,
    )
    note = forms.CharField(
        label=_("Outcome of the call"),
        max_length=MAX_STEP_NOTE,
        required=False,
        strip=True,
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
