"""People in the admin: the account, its language and its memberships in one place."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import Exists, OuterRef, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from accounts.models import User
from association.admin import MEMBERSHIP_CHOICES
from association.admin_scope import administered_association_ids
from association.models import Membership


class MembershipInline(admin.TabularInline):
    model = Membership
    fk_name = "user"
    extra = 0
    fields = ("institution", "role", "department", "centre", "active")
    autocomplete_fields = ("institution", "department", "centre")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Membership]:
        qs = super().get_queryset(request)
        ids = administered_association_ids(request)
        return qs if ids is None else qs.filter(institution__association_id__in=ids)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        ids = administered_association_ids(request)
        lookup = MEMBERSHIP_CHOICES.get(db_field.name)
        if ids is not None and lookup is not None:
            model = db_field.remote_field.model
            kwargs["queryset"] = model._default_manager.filter(**{f"{lookup}__in": ids})
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    """Association admins see their association's people and people not yet placed."""

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        qs = super().get_queryset(request)
        ids = administered_association_ids(request)
        if ids is None:
            return qs
        placed = Membership.objects.filter(user_id=OuterRef("pk"))
        return qs.filter(
            Exists(placed.filter(institution__association_id__in=ids)) | ~Exists(placed)
        ).filter(is_superuser=False)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = super().get_readonly_fields(request, obj)
        if request.user.is_superuser:
            return fields
        return (*fields, "is_staff", "is_superuser", "groups", "user_permissions", "last_login")

    list_display = ("username", "display_name", "phone", "is_active", "is_staff", "last_login")
    list_filter = ("is_active", "is_staff", "is_superuser", "preferred_language")
    search_fields = ("username", "display_name", "first_name", "last_name", "phone", "email")
    ordering = ("username",)
    inlines = (MembershipInline,)
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        (
            _("Person"),
            {
                "fields": (
                    "display_name",
                    "first_name",
                    "last_name",
                    "email",
                    "phone",
                    "preferred_language",
                )
            },
        ),
        (
            _("Permissions"),
            {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")},
        ),
        (_("Important dates"), {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": (
                    "username",
                    "display_name",
                    "preferred_language",
                    "password1",
                    "password2",
                ),
            },
        ),
    )
