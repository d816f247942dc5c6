"""Residents' records in the admin: read-only, resident IDs masked, opening a record audited.

Records change through the web pages, where the home institution's clinicians edit them
under the same checks and audit as everywhere else; the admin is for looking, not writing.
"""

from __future__ import annotations

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from core.admin import AuditedReadOnlyAdmin, ReadOnlyAdmin
from records.models import Consent, Patient, PatientShare, TimelineEvent


@admin.register(Patient)
class PatientAdmin(AuditedReadOnlyAdmin):
    audit_action = "patient.admin"
    audit_resource = "patient"
    list_display = (
        "name",
        "masked_id",
        "sex",
        "birth_date",
        "home_institution",
        "family_doctor",
        "registered_at",
    )
    list_filter = ("sex", "home_institution__association", "home_institution")
    search_fields = ("name", "phone", "=resident_id")
    list_select_related = ("home_institution", "family_doctor")
    fields = (
        "masked_id",
        "name",
        "sex",
        "birth_date",
        "phone",
        "address",
        "home_institution",
        "family_doctor",
        "registered_by",
        "registered_at",
        "updated_at",
    )
    readonly_fields = ("masked_id",)
    date_hierarchy = "registered_at"

    @admin.display(description=_("resident ID"), ordering="resident_id")
    def masked_id(self, obj: Patient) -> str:
        return obj.masked_resident_id

    def audit_target(self, object_id: str) -> tuple[str, int | None]:
        return object_id, int(object_id) if object_id.isdigit() else None


@admin.register(Consent)
class ConsentAdmin(ReadOnlyAdmin):
    list_display = (
        "patient",
        "scope",
        "grantee",
        "valid_from",
        "valid_until",
        "withdrawn_at",
        "recorded_by",
    )
    list_filter = ("scope", "grantee_association")
    search_fields = ("patient__name", "=patient__resident_id", "note")
    list_select_related = ("patient", "grantee_association", "grantee_institution", "recorded_by")
    date_hierarchy = "recorded_at"


@admin.register(PatientShare)
class PatientShareAdmin(ReadOnlyAdmin):
    list_display = (
        "patient",
        "reason",
        "reference",
        "grantee_institution",
        "grantee_centre",
        "grantee_user",
        "granted_at",
        "expires_at",
        "revoked_at",
    )
    list_filter = ("reason",)
    search_fields = ("patient__name", "reference")
    list_select_related = ("patient", "grantee_institution", "grantee_centre", "grantee_user")


@admin.register(TimelineEvent)
class TimelineEventAdmin(ReadOnlyAdmin):
    list_display = ("at", "patient", "kind", "headline", "institution", "actor")
    list_filter = ("kind",)
    search_fields = ("patient__name", "title", "kind")
    list_select_related = ("patient", "institution", "actor")
    date_hierarchy = "at"
