"""Notifications in the admin, read-only: they are sent by the capabilities, not typed in."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from realtime.models import Notification


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ("created_at", "recipient", "kind", "severity", "title", "read_at")
    list_filter = ("severity", "kind")
    search_fields = ("title", "kind", "recipient__username", "recipient__display_name")
    raw_id_fields = ("recipient", "patient")
    list_select_related = ("recipient",)
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
