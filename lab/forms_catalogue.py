"""Forms of the catalogue: a test with its reference ranges (an inline formset), a panel.

The forms check what a person can fix beside the field, with the checks of
``lab.catalogue_checks`` that the services (``lab.catalogue``) run again, auditing a refusal.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, cast

from django import forms
from django.forms import BaseInlineFormSet, inlineformset_factory
from django.utils.translation import gettext_lazy as _

from lab.catalogue import DAYS_PER_YEAR, days_of, years_of
from lab.catalogue_checks import (
    LabTestData,
    PanelData,
    RangeData,
    lab_test_problems,
    panel_problems,
    range_problems,
)
from lab.models import LabTest, Panel, ReferenceRange, ValueKind, decimal_or_none
from records.models import Sex

MAX_AGE_YEARS = Decimal(130)
TEST_FIELDS = [
    "code",
    "name",
    "name_en",
    "loinc",
    "specimen_type",
    "container",
    "value_kind",
    "unit",
    "decimals",
    "plausible_low",
    "plausible_high",
    "critical_low",
    "critical_high",
    "turnaround_minutes",
    "sort_order",
    "active",
]


DECIMAL_FIELDS = ("plausible_low", "plausible_high", "critical_low", "critical_high")


def _plain_decimals(form: forms.BaseForm, names: tuple[str, ...]) -> None:
    """Show stored decimals as typed ("2.8", not "2.8000")."""
    for name in names:
        value = form.initial.get(name)
        if isinstance(value, Decimal):
            form.initial[name] = decimal_or_none(value)


class CentreQueryForm(forms.Form):
    """``?centre=<id>``: which of the actor's lab centres (optional when there is one)."""

    centre = forms.IntegerField(min_value=1, required=False, widget=forms.HiddenInput)


class LabTestForm(forms.ModelForm):
    class Meta:
        model = LabTest
        fields = TEST_FIELDS
        help_texts = {
            "plausible_low": _("Values outside the plausible range are refused as typing errors."),
            "critical_low": _("A result beyond a critical limit alerts the ordering doctor."),
            "turnaround_minutes": _(
                "From receipt at the lab to the signed report, for a routine order."
            ),
        }

    def __init__(self, *args: Any, centre_id: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.centre_id = centre_id
        self.fields["unit"].help_text = _("Required for numeric tests, e.g. mmol/L.")
        _plain_decimals(self, DECIMAL_FIELDS)

    def data_for_service(self) -> LabTestData:
        data = self.cleaned_data
        return LabTestData(**{name: data[name] for name in TEST_FIELDS})

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        for name, message in lab_test_problems(
            self.data_for_service(), centre_id=self.centre_id, test_id=self.instance.pk
        ):
            self.add_error(name, str(message))
        return cleaned

    def validate_unique(self) -> None:
        """Code uniqueness per centre is checked in ``clean`` (centre is not a form field)."""


class ReferenceRangeForm(forms.ModelForm):
    """One reference range; ages are typed in years and stored in days."""

    age_from = forms.DecimalField(
        label=_("From age (years)"),
        min_value=Decimal(0),
        max_value=MAX_AGE_YEARS,
        decimal_places=2,
        required=False,
        initial=0,
    )
    age_to = forms.DecimalField(
        label=_("To age (years, not included)"),
        min_value=Decimal(0),
        max_value=MAX_AGE_YEARS,
        decimal_places=2,
        required=False,
        help_text=_("Empty: no upper age."),
    )
    sex = forms.ChoiceField(label=_("Sex"), choices=[("", _("Both")), *Sex.choices], required=False)

    class Meta:
        model = ReferenceRange
        fields = ["sex", "low", "high", "text"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _plain_decimals(self, ("low", "high"))
        if self.instance.pk:
            self.initial["age_from"] = years_of(self.instance.age_min_days)
            if self.instance.age_max_days is not None:
                self.initial["age_to"] = years_of(self.instance.age_max_days)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        start, end = cleaned.get("age_from"), cleaned.get("age_to")
        if start is not None and end is not None and end <= start:
            self.add_error("age_to", _("The upper age must be above the lower."))
        low, high = cleaned.get("low"), cleaned.get("high")
        if low is not None and high is not None and low >= high:
            self.add_error("high", _("High must be above low."))
        return cleaned

    def range_data(self) -> RangeData:
        data = self.cleaned_data
        start = data.get("age_from") or Decimal(0)
        end = data.get("age_to")
        return RangeData(
            sex=data.get("sex") or "",
            age_min_days=days_of(start),
            age_max_days=days_of(end) if end is not None else None,
            low=data.get("low"),
            high=data.get("high"),
            text=(data.get("text") or "").strip(),
        )


class BaseRangeFormSet(BaseInlineFormSet):
    """The ranges of one test, checked together (no two for the same sex and age)."""

    value_kind: str = ValueKind.NUMERIC

    def kept_forms(self) -> list[ReferenceRangeForm]:
        return [
            f
            for f in self.forms
            if (f.instance.pk or f.has_changed())
            and not (self.can_delete and f.cleaned_data.get("DELETE"))
        ]

    def range_data(self) -> list[RangeData]:
        return [f.range_data() for f in self.kept_forms()]

    def clean(self) -> None:
        super().clean()
        if any(self.errors):
            return
        for _field, message in range_problems(self.range_data(), value_kind=self.value_kind):
            raise forms.ValidationError(str(message), code="ranges")


RangeFormSet = inlineformset_factory(
    LabTest,
    ReferenceRange,
    form=ReferenceRangeForm,
    formset=BaseRangeFormSet,
    extra=2,
    can_delete=True,
    max_num=20,
    validate_max=True,
)


def range_formset(
    *, data: Any = None, instance: LabTest | None = None, value_kind: str = ValueKind.NUMERIC
) -> BaseRangeFormSet:
    formset = cast(BaseRangeFormSet, RangeFormSet(data, instance=instance, prefix="ranges"))
    formset.value_kind = value_kind
    return formset


class LabTestChoiceField(forms.ModelMultipleChoiceField):
    """The centre's tests as "K · Potassium"."""

    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.code} · {obj.display_name}"


class PanelForm(forms.ModelForm):
    tests = LabTestChoiceField(
        label=_("Tests"),
        queryset=LabTest.objects.none(),
        widget=forms.CheckboxSelectMultiple,
    )

    class Meta:
        model = Panel
        fields = ["code", "name", "name_en", "tests", "active"]

    def __init__(self, *args: Any, centre_id: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.centre_id = centre_id
        field = self.fields["tests"]
        assert isinstance(field, forms.ModelMultipleChoiceField)
        field.queryset = LabTest.objects.filter(centre_id=centre_id).order_by("sort_order", "code")

    def data_for_service(self) -> PanelData:
        data = self.cleaned_data
        return PanelData(
            code=data["code"],
            name=data["name"],
            name_en=data.get("name_en") or "",
            test_ids=[t.pk for t in data["tests"]],
            active=bool(data.get("active")),
        )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        for name, message in panel_problems(
            self.data_for_service(), centre_id=self.centre_id, panel_id=self.instance.pk
        ):
            self.add_error(name, str(message))
        return cleaned

    def validate_unique(self) -> None:
        """Code uniqueness per centre is checked in ``clean``."""


__all__ = [
    "DAYS_PER_YEAR",
    "CentreQueryForm",
    "LabTestForm",
    "PanelForm",
    "RangeFormSet",
    "ReferenceRangeForm",
    "range_formset",
]
