"""The audit trail in the admin: superusers may look, nobody may add, change or delete."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = (
        "at",
        "actor_username",
        "action",
        "outcome",
        "resource_type",
        "resource_id",
        "patient_id",
        "ip",
        "channel",
    )
    list_filter = ("outcome", "channel", "resource_type")
    search_fields = ("actor_username", "=action", "=resource_id", "=request_id", "reason")
    date_hierarchy = "at"
    show_full_result_count = False  # a count(*) over the whole trail on every page is costly
    readonly_fields = [f.name for f in AuditEvent._meta.fields]

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
