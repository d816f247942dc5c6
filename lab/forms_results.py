"""Forms of the results pages: typed input, checked before any service is called.

The entry and amendment forms have one field per ordered test (``value_<item id>``); the
services read and check the values themselves (comma decimals, qualifiers, plausible
ranges), so the forms only bound their length.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from django import forms
from django.core.files.uploadedfile import UploadedFile
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from lab.flags import MAX_TEXT
from lab.results import DEFAULT_VALID_DAYS, MAX_COMMENT, ResultEntry, ResultRow
from lab.workflow_common import MAX_IMPORT_BYTES, MAX_NOTE, MAX_REASON
from records.forms import DateInput


def _value_field(**attrs: str) -> forms.CharField:
    return forms.CharField(
        required=False,
        max_length=MAX_TEXT,
        strip=True,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", **attrs}),
    )


class ResultsEntryForm(forms.Form):
    """A value, a comment and (for a correction) a reason per editable test."""

    def __init__(self, *args: Any, rows: Sequence[ResultRow], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rows = list(rows)
        for row in self.rows:
            pk = row.item.pk
            numeric = row.item.test.value_kind == "numeric"
            self.fields[f"value_{pk}"] = _value_field(inputmode="decimal" if numeric else "text")
            self.fields[f"comment_{pk}"] = forms.CharField(required=False, max_length=MAX_COMMENT)
            self.fields[f"reason_{pk}"] = forms.CharField(required=False, max_length=MAX_REASON)
            if row.result is not None and not self.is_bound:
                self.initial[f"value_{pk}"] = _typed(row)
                self.initial[f"comment_{pk}"] = row.result.comment

    def entries(self) -> list[ResultEntry]:
        """The values typed (blank fields are left alone)."""
        data = self.cleaned_data
        return [
            ResultEntry(
                item_id=row.item.pk,
                value=data.get(f"value_{row.item.pk}") or "",
                comment=data.get(f"comment_{row.item.pk}") or "",
                reason=data.get(f"reason_{row.item.pk}") or "",
            )
            for row in self.rows
            if data.get(f"value_{row.item.pk}")
        ]

    def field_for(self, item_id: int) -> str:
        return f"value_{item_id}"

    def lines(self) -> dict[int, dict[str, Any]]:
        """The bound fields of each test, by item id (for the template)."""
        return {
            row.item.pk: {
                "value": self[f"value_{row.item.pk}"],
                "comment": self[f"comment_{row.item.pk}"],
                "reason": self[f"reason_{row.item.pk}"],
                "original": _typed(row),
            }
            for row in self.rows
        }


def _typed(row: ResultRow) -> str:
    """A stored value as the technician would type it again (no padding zeros)."""
    result = row.result
    if result is None:
        return ""
    if result.value_numeric is None:
        return result.value_text
    return format(result.value_numeric.normalize(), "f")


class ValidateForm(forms.Form):
    items = forms.TypedMultipleChoiceField(
        coerce=int,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": _("Tick the results to validate.")},
    )

    def __init__(self, *args: Any, rows: Sequence[ResultRow], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = [(row.item.pk, row.item.test.code) for row in rows]
        self.fields["items"].choices = choices  # type: ignore[attr-defined]
        if not self.is_bound:
            self.initial["items"] = [pk for pk, _label in choices]


class SignForm(forms.Form):
    mutual_recognition = forms.BooleanField(
        label=_("Mutually recognised result (结果互认)"), required=False, initial=True
    )
    valid_until = forms.DateField(label=_("Valid until"), required=False, widget=DateInput())
    comment = forms.CharField(
        label=_("Comment on the report"),
        required=False,
        max_length=MAX_NOTE,
        widget=forms.Textarea(attrs={"rows": 3}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial["valid_until"] = default_valid_until()

    def clean_valid_until(self) -> dt.date | None:
        day: dt.date | None = self.cleaned_data.get("valid_until")
        if day is not None and day < timezone.localdate():
            raise forms.ValidationError(_("The validity must end today or later."), code="past")
        return day


def default_valid_until() -> dt.date:
    return timezone.localdate() + dt.timedelta(days=DEFAULT_VALID_DAYS)


class AmendForm(forms.Form):
    """New values for signed results, and why."""

    reason = forms.CharField(label=_("Reason for the amendment"), max_length=MAX_REASON)
    comment = forms.CharField(
        label=_("Comment on the report"),
        required=False,
        max_length=MAX_NOTE,
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def __init__(
        self, *args: Any, rows: Sequence[ResultRow], comment: str = "", **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.rows = list(rows)
        self.original = {row.item.pk: _typed(row) for row in self.rows}
        self.original_comment = comment
        for row in self.rows:
            self.fields[f"amend_{row.item.pk}"] = _value_field()
            if not self.is_bound:
                self.initial[f"amend_{row.item.pk}"] = self.original[row.item.pk]
        if not self.is_bound:
            self.initial["comment"] = comment

    def lines(self) -> list[dict[str, Any]]:
        return [
            {
                "row": row,
                "field": self[f"amend_{row.item.pk}"],
                "original": self.original[row.item.pk],
            }
            for row in self.rows
        ]

    def values(self) -> dict[int, str]:
        """The values that differ from the signed ones."""
        data = self.cleaned_data
        changed: dict[int, str] = {}
        for pk, before in self.original.items():
            typed = data.get(f"amend_{pk}") or ""
            if typed and typed != before:
                changed[pk] = typed
        return changed

    def new_comment(self) -> str | None:
        typed: str = self.cleaned_data.get("comment") or ""
        return typed if typed.strip() != self.original_comment.strip() else None


class ImportUploadForm(forms.Form):
    file = forms.FileField(
        label=_("Analyser export (CSV)"),
        help_text=_(
            "Columns: barcode (条码), test (项目), value (结果), unit (单位); optionally"
            " comment (备注) and instrument (仪器). UTF-8 or GB18030, comma, semicolon or tab."
        ),
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.txt,text/csv"}),
    )
    centre = forms.TypedChoiceField(label=_("Lab centre"), coerce=int)

    def __init__(self, *args: Any, centres: Sequence[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["centre"].choices = [(c.pk, c.name) for c in centres]  # type: ignore[attr-defined]
        if len(centres) == 1:
            self.fields["centre"].initial = centres[0].pk
            self.fields["centre"].widget = forms.HiddenInput()

    def clean_file(self) -> UploadedFile:
        upload: UploadedFile = self.cleaned_data["file"]
        if upload.size is not None and upload.size > MAX_IMPORT_BYTES:
            raise forms.ValidationError(
                _("The file is too large (at most %(mb)s MB); split the export."),
                code="too_large",
                params={"mb": MAX_IMPORT_BYTES // (1024 * 1024)},
            )
        return upload

    def data_bytes(self) -> bytes:
        upload: UploadedFile = self.cleaned_data["file"]
        upload.seek(0)
        return upload.read(MAX_IMPORT_BYTES + 1)
