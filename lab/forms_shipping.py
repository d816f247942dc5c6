"""Forms of the shipment pages: typed input, checked before any service is called.

Scans are short text fields: the services tell a malformed barcode from an unknown one,
so the forms only bound the length and require something.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from association.models import DiagnosticCentre
from lab.models import RejectionReason
from lab.workflow_common import MAX_COURIER, MAX_REASON

MAX_SCAN = 40
MAX_CONDITION = 200

_SCAN_ATTRS = {
    "autocomplete": "off",
    "autocapitalize": "characters",
    "spellcheck": "false",
    "inputmode": "text",
    "class": "scan-input",
}


class OpenBoxForm(forms.Form):
    """Which lab centre the new box goes to; the service decides whether the actor may."""

    centre = forms.IntegerField(label=_("Lab centre"), min_value=1)

    def __init__(self, *args: Any, centres: Sequence[DiagnosticCentre], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["centre"]
        field.widget = forms.Select(choices=[(c.pk, c.name) for c in centres])
        if len(centres) == 1:
            field.initial = centres[0].pk


class ScanForm(forms.Form):
    """One specimen barcode, scanned or typed."""

    barcode = forms.CharField(
        label=_("Specimen barcode"),
        max_length=MAX_SCAN,
        widget=forms.TextInput(attrs=_SCAN_ATTRS | {"autofocus": True}),
        error_messages={"required": _("Scan or type a specimen barcode.")},
    )


class ShipForm(forms.Form):
    """The hand-over: the box's own label scanned, and who takes it."""

    scanned_number = forms.CharField(
        label=_("Scan the box's label"),
        max_length=MAX_SCAN,
        widget=forms.TextInput(attrs=_SCAN_ATTRS),
        error_messages={"required": _("Scan the number on the box's label.")},
    )
    courier = forms.CharField(
        label=_("Courier"),
        max_length=MAX_COURIER,
        help_text=_("Name (and phone) of the person who takes the box."),
        error_messages={"required": _("Name the courier who takes the box.")},
    )


class ReceiveScanForm(forms.Form):
    """At the lab: a box number (BX…) or a specimen barcode."""

    code = forms.CharField(
        label=_("Scan a box or a specimen"),
        max_length=MAX_SCAN,
        widget=forms.TextInput(attrs=_SCAN_ATTRS | {"autofocus": True}),
        error_messages={"required": _("Scan a box number or a specimen barcode.")},
    )
    condition_note = forms.CharField(
        label=_("Condition of the box on arrival"),
        max_length=MAX_CONDITION,
        required=False,
        help_text=_("For a box: temperature, ice packs, damage. Leave empty if all is well."),
    )


class RejectForm(forms.Form):
    barcode = forms.CharField(
        label=_("Specimen barcode"),
        max_length=MAX_SCAN,
        widget=forms.TextInput(attrs=_SCAN_ATTRS),
        error_messages={"required": _("Scan or type the barcode of the specimen to reject.")},
    )
    reason = forms.ChoiceField(label=_("Reason"), choices=RejectionReason.choices)
    note = forms.CharField(
        label=_("Note"),
        max_length=MAX_REASON,
        required=False,
        help_text=_("Required when the reason is “Other”."),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("reason") == RejectionReason.OTHER and not data.get("note", "").strip():
            self.add_error(
                "note",
                forms.ValidationError(
                    _("Describe the reason in the note when you choose “Other”."),
                    code="note_required",
                ),
            )
        return data


class CentreFilterForm(forms.Form):
    """``?centre=<id>`` on the discrepancies page (optional)."""

    centre = forms.IntegerField(min_value=1, required=False)


class BoxQueryForm(forms.Form):
    """``?box=<id>`` on the receiving desk (optional)."""

    box = forms.IntegerField(min_value=1, required=False)
