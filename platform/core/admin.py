"""Admin building blocks shared by the domains."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse

from audit.models import Outcome
from audit.services import audit_record


class ReadOnlyAdmin(admin.ModelAdmin):
    """Look, never add, change or delete: such data changes under its domain's checks."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class AuditedReadOnlyAdmin(ReadOnlyAdmin):
    """Read-only, superusers only, and every list or record opened is audited.

    ``audit_action`` names the events (``<action>_list``, ``<action>_view``);
    :meth:`audit_target` says which resource and patient an opened record is.
    """

    audit_action = ""
    audit_resource = ""

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    def audit_target(self, object_id: str) -> tuple[str, int | None]:
        return object_id, None

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        resource_id, patient_id = self.audit_target(object_id)
        audit_record(
            actor=request.user,
            action=f"{self.audit_action}_view",
            outcome=Outcome.ALLOWED,
            resource_type=self.audit_resource,
            resource_id=resource_id,
            patient_id=patient_id,
        )
        return super().change_view(request, object_id, form_url, extra_context)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        audit_record(
            actor=request.user,
            action=f"{self.audit_action}_list",
            outcome=Outcome.ALLOWED,
            resource_type=self.audit_resource,
            detail={"query": request.GET.get("q", "")[:100]},
        )
        return super().changelist_view(request, extra_context)
