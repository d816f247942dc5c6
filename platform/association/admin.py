"""The association's structure in the admin: associations, institutions, centres, people's roles."""

from __future__ import annotations

from django.contrib import admin

from association.admin_scope import AssociationScopedAdmin
from association.models import (
    Association,
    Department,
    DiagnosticCentre,
    Institution,
    Membership,
    Specialty,
)


@admin.register(Association)
class AssociationAdmin(AssociationScopedAdmin):
    association_path = "id"
    scoped_choices = {"lead_institution": "association_id"}
    list_display = ("name", "code", "kind", "lead_institution", "created_at")
    list_filter = ("kind",)
    search_fields = ("name", "code")
    autocomplete_fields = ("lead_institution",)
    list_select_related = ("lead_institution",)


@admin.register(Institution)
class InstitutionAdmin(AssociationScopedAdmin):
    association_path = "association_id"
    scoped_choices = {"association": "id", "parent": "association_id"}
    list_display = ("name", "code", "level", "association", "parent", "active")
    list_filter = ("level", "active", "association")
    search_fields = ("name", "code")
    autocomplete_fields = ("association", "parent")
    list_select_related = ("association", "parent")


@admin.register(Specialty)
class SpecialtyAdmin(admin.ModelAdmin):
    list_display = ("name", "code")
    search_fields = ("name", "code")


@admin.register(Department)
class DepartmentAdmin(AssociationScopedAdmin):
    association_path = "institution__association_id"
    scoped_choices = {"institution": "association_id"}
    list_display = ("name", "institution", "specialty")
    list_filter = ("institution__association", "specialty")
    search_fields = ("name", "institution__name")
    autocomplete_fields = ("institution", "specialty")
    list_select_related = ("institution", "specialty")


@admin.register(DiagnosticCentre)
class DiagnosticCentreAdmin(AssociationScopedAdmin):
    association_path = "association_id"
    scoped_choices = {"host": "association_id", "association": "id"}
    list_display = ("name", "code", "kind", "host", "association")
    list_filter = ("kind", "association")
    search_fields = ("name", "code")
    autocomplete_fields = ("host", "association")
    list_select_related = ("host", "association")


MEMBERSHIP_CHOICES = {
    "institution": "association_id",
    "department": "institution__association_id",
    "centre": "association_id",
}


@admin.register(Membership)
class MembershipAdmin(AssociationScopedAdmin):
    association_path = "institution__association_id"
    scoped_choices = MEMBERSHIP_CHOICES
    list_display = ("user", "role", "institution", "department", "centre", "active", "created_at")
    list_filter = ("role", "active", "institution__association", "institution__level")
    search_fields = ("user__username", "user__display_name", "institution__name")
    autocomplete_fields = ("user", "institution", "department", "centre")
    list_select_related = ("user", "institution", "department", "centre")
