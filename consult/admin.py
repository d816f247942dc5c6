"""Consultations in the admin.

* Consults, their experts, attachments, events, opinions and recordings: superusers may
  look, nobody may add, change or delete (they change through the workflow's services,
  under its checks); opening a consult or a list is audited, as for residents' records.
* Availability slots: editable, for fixing an expert's calendar by hand (a booked slot is
  not deleted here: cancel or reschedule the consult instead).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from consult.models import (
    Attachment,
    Consult,
    ConsultEvent,
    ConsultExpert,
    Opinion,
    OpinionVersion,
    Recording,
    Slot,
)
from core.admin import AuditedReadOnlyAdmin


class _ConsultChildAdmin(AuditedReadOnlyAdmin):
    """A row belonging to one consult: its opening is audited against that consult's resident."""

    audit_resource = "consult"

    def audit_target(self, object_id: str) -> tuple[str, int | None]:
        row = self.model._default_manager.filter(pk=object_id).select_related("consult").first()
        consult = getattr(row, "consult", None)
        if consult is None:
            return object_id, None
        return str(consult.pk), consult.patient_id


class ConsultExpertInline(admin.TabularInline[ConsultExpert, Consult]):
    model = ConsultExpert
    extra = 0
    can_delete = False
    fields = (
        "user",
        "institution",
        "status",
        "lead",
        "decline_reason",
        "invited_at",
        "responded_at",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Consult)
class ConsultAdmin(AuditedReadOnlyAdmin):
    audit_action = "consult.admin"
    audit_resource = "consult"
    list_display = (
        "number",
        "patient",
        "priority",
        "mode",
        "status",
        "requesting_institution",
        "requested_by",
        "respond_due_at",
        "complete_due_at",
        "created_at",
    )
    list_filter = ("status", "priority", "mode", "requesting_institution__association")
    search_fields = ("=number", "patient__name")
    list_select_related = ("patient", "requesting_institution", "requested_by")
    exclude = ("question", "history")
    readonly_fields = ("question_length",)
    inlines = [ConsultExpertInline]
    date_hierarchy = "created_at"
    show_full_result_count = False

    @admin.display(description=_("question"))
    def question_length(self, obj: Consult) -> str:
        # The clinical text is read on the consult's page, under its access check.
        return _("%(count)d characters") % {"count": len(obj.question)}

    def audit_target(self, object_id: str) -> tuple[str, int | None]:
        consult = Consult.objects.filter(pk=object_id).only("patient_id").first()
        return object_id, consult.patient_id if consult else None


@admin.register(Attachment)
class AttachmentAdmin(_ConsultChildAdmin):
    audit_action = "consult.attachment.admin"
    list_display = ("title", "consult", "kind", "content_type", "size", "uploaded_by", "created_at")
    list_filter = ("kind",)
    search_fields = ("=consult__number", "title")
    list_select_related = ("consult", "uploaded_by")
    exclude = ("object_key",)


@admin.register(ConsultEvent)
class ConsultEventAdmin(_ConsultChildAdmin):
    audit_action = "consult.event.admin"
    list_display = ("consult", "at", "kind", "actor")
    list_filter = ("kind",)
    search_fields = ("=consult__number",)
    list_select_related = ("consult", "actor")
    date_hierarchy = "at"


@admin.register(Opinion)
class OpinionAdmin(_ConsultChildAdmin):
    audit_action = "consult.opinion.admin"
    list_display = ("consult", "author", "status", "version", "recommendation", "signed_at")
    list_filter = ("status", "recommendation")
    search_fields = ("=consult__number",)
    list_select_related = ("consult", "author")


@admin.register(OpinionVersion)
class OpinionVersionAdmin(AuditedReadOnlyAdmin):
    audit_action = "consult.opinion_version.admin"
    audit_resource = "consult"
    list_display = ("opinion", "version", "author", "recommendation", "signed_at")
    search_fields = ("=opinion__consult__number",)
    list_select_related = ("opinion", "author")
    exclude = ("pdf_key",)

    def audit_target(self, object_id: str) -> tuple[str, int | None]:
        row = OpinionVersion.objects.filter(pk=object_id).select_related("opinion__consult").first()
        if row is None:
            return object_id, None
        consult = row.opinion.consult
        return str(consult.pk), consult.patient_id


@admin.register(Recording)
class RecordingAdmin(_ConsultChildAdmin):
    audit_action = "consult.recording.admin"
    list_display = (
        "consult",
        "participant",
        "size",
        "started_at",
        "ended_at",
        "retain_until",
        "deleted_at",
    )
    list_filter = ("deleted_at",)
    search_fields = ("=consult__number",)
    list_select_related = ("consult", "participant")
    exclude = ("object_key",)


@admin.register(Slot)
class SlotAdmin(admin.ModelAdmin[Slot]):
    list_display = ("expert", "start", "end", "consult")
    list_filter = ("expert",)
    search_fields = ("expert__username", "expert__display_name", "=consult__number")
    list_select_related = ("expert", "consult")
    raw_id_fields = ("expert",)
    readonly_fields = ("consult",)
    date_hierarchy = "start"

    def has_delete_permission(self, request: HttpRequest, obj: Slot | None = None) -> bool:
        if obj is not None and obj.consult_id is not None:
            return False  # booked: cancel or reschedule the consult instead
        return super().has_delete_permission(request, obj)
