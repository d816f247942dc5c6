"""Forms of the residents' pages: typed input, checked before any service is called."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.core.validators import RegexValidator
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from association.models import CLINICAL_ROLES, Association, Institution
from records import resident_id as rid
from records.models import ConsentScope, Patient, Sex

_phone = RegexValidator(r"^[0-9+\- ]*$", _("A phone number has digits only (and + or -)."))


class DateInput(forms.DateInput):
    """A browser date picker; the value is always ISO so the picker can read it."""

    input_type = "date"

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs=attrs, format="%Y-%m-%d")


class PatientSearchForm(forms.Form):
    q = forms.CharField(label=_("Name, phone or resident ID"), required=False, max_length=100)


class PatientRegistrationForm(forms.Form):
    resident_id = forms.CharField(
        label=_("Resident ID"),
        max_length=24,
        help_text=_("The 18 characters on the resident identity card."),
        widget=forms.TextInput(
            attrs={
                "autocomplete": "off",
                "spellcheck": "false",
                "inputmode": "text",
                "autocapitalize": "characters",
            }
        ),
    )
    name = forms.CharField(label=_("Name"), max_length=100)
    sex = forms.ChoiceField(label=_("Sex"), choices=Sex.choices, widget=forms.RadioSelect)
    birth_date = forms.DateField(label=_("Birth date"), widget=DateInput())
    phone = forms.CharField(
        label=_("Phone"),
        required=False,
        max_length=20,
        validators=[_phone],
        widget=forms.TextInput(attrs={"inputmode": "tel"}),
    )
    address = forms.CharField(label=_("Address"), required=False, max_length=300)
    home_institution = forms.TypedChoiceField(label=_("Home institution"), coerce=int)

    def __init__(self, *args: Any, institutions: Sequence[Institution], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._institutions = {i.pk: i for i in institutions}
        if len(institutions) > 1:
            self.fields["home_institution"].choices = [(i.pk, i.name) for i in institutions]  # type: ignore[attr-defined]
        else:
            del self.fields["home_institution"]

    def clean_resident_id(self) -> str:
        try:
            return rid.parse(self.cleaned_data["resident_id"]).number
        except rid.InvalidResidentId as exc:
            raise forms.ValidationError(str(exc), code="invalid_resident_id") from None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        number, born, sex = (
            cleaned.get("resident_id"),
            cleaned.get("birth_date"),
            cleaned.get("sex"),
        )
        if number:
            parsed = rid.parse(number)
            if born and parsed.birth_date != born:
                self.add_error(
                    "birth_date",
                    forms.ValidationError(
                        _("The birth date does not match the one in the resident ID."),
                        code="mismatch",
                    ),
                )
            if sex and parsed.sex != sex:
                self.add_error(
                    "sex",
                    forms.ValidationError(
                        _("The sex does not match the one in the resident ID."), code="mismatch"
                    ),
                )
        return cleaned

    def service_kwargs(self) -> dict[str, Any]:
        data = self.cleaned_data
        home = data.get("home_institution")
        return {
            "resident_id": data["resident_id"],
            "name": data["name"],
            "sex": data["sex"],
            "birth_date": data["birth_date"],
            "phone": data["phone"],
            "address": data["address"],
            "home_institution": self._institutions.get(home) if home else None,
        }


class PatientEditForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100)
    phone = forms.CharField(
        label=_("Phone"),
        required=False,
        max_length=20,
        validators=[_phone],
        widget=forms.TextInput(attrs={"inputmode": "tel"}),
    )
    address = forms.CharField(label=_("Address"), required=False, max_length=300)
    family_doctor = forms.ModelChoiceField(
        label=_("Contracted family doctor"),
        required=False,
        queryset=get_user_model().objects.none(),
    )

    def __init__(self, *args: Any, patient: Patient, **kwargs: Any) -> None:
        kwargs["initial"] = {
            "name": patient.name,
            "phone": patient.phone,
            "address": patient.address,
            "family_doctor": patient.family_doctor_id,
        }
        super().__init__(*args, **kwargs)
        # Only clinicians of the resident's own institution can be the family doctor.
        self.fields["family_doctor"].queryset = (  # type: ignore[attr-defined]
            get_user_model()
            .objects.filter(
                memberships__institution_id=patient.home_institution_id,
                memberships__active=True,
                memberships__role__in=CLINICAL_ROLES,
                is_active=True,
            )
            .distinct()
            .order_by("username")
        )

    def changes(self) -> dict[str, Any]:
        """Only the fields that changed, named as ``patient_update`` expects."""
        out: dict[str, Any] = {}
        for name in self.changed_data:
            if name == "family_doctor":
                doctor = self.cleaned_data["family_doctor"]
                out["family_doctor_id"] = doctor.pk if doctor else None
            else:
                out[name] = self.cleaned_data[name]
        return out


class ConsentForm(forms.Form):
    scope = forms.ChoiceField(label=_("What is shared"), choices=ConsentScope.choices)
    grantee = forms.ChoiceField(label=_("Shared with"))
    valid_until = forms.DateField(
        label=_("Valid until"),
        required=False,
        widget=DateInput(),
        help_text=_("Leave empty for no end date."),
    )
    note = forms.CharField(label=_("Note"), required=False, max_length=300)

    def __init__(self, *args: Any, association: Association, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._association = association
        self._institutions = {
            i.pk: i for i in Institution.objects.filter(association=association, active=True)
        }
        self.fields["grantee"].choices = [  # type: ignore[attr-defined]
            (_("Association"), [(f"a:{association.pk}", association.name)]),
            (_("Institution"), [(f"i:{pk}", i.name) for pk, i in self._institutions.items()]),
        ]

    def clean_valid_until(self) -> dt.datetime | None:
        day: dt.date | None = self.cleaned_data.get("valid_until")
        if day is None:
            return None
        if day < timezone.localdate():
            raise forms.ValidationError(_("The date must not be in the past."), code="past")
        # Valid through the whole chosen day, in the association's time zone.
        return timezone.make_aware(dt.datetime.combine(day + dt.timedelta(days=1), dt.time.min))

    def service_kwargs(self) -> dict[str, Any]:
        data = self.cleaned_data
        kind, _sep, pk = data["grantee"].partition(":")
        return {
            "scope": data["scope"],
            "grantee_association": self._association if kind == "a" else None,
            "grantee_institution": self._institutions[int(pk)] if kind == "i" else None,
            "valid_until": data["valid_until"],
            "note": data["note"],
        }


class ConsentWithdrawForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), required=False, max_length=300)
