"""The lab centre in the admin.

* The catalogue (tests with their reference ranges, panels) and each centre's critical-value
  policy: editable by superusers and by association admins for the lab centres of the
  associations they administer (``association.admin_scope``), under the same checks as the
  catalogue pages (``lab.catalogue``). Tests and panels are deactivated, never deleted:
  orders and reports name them. Every change is audited.
* Orders, specimens, boxes, results, imports, reports and critical values: superusers may
  look, nobody may add, change or delete (they change through the workflow's services,
  under its checks); opening a list or a record is audited, as for residents' records.
  Clinical text and values stay behind the pages' access checks.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from association.admin_scope import AssociationScopedAdmin, administered_association_ids
from association.models import CentreKind, DiagnosticCentre
from audit.models import Outcome
from audit.services import audit_record
from core.admin import AuditedReadOnlyAdmin
from lab.catalogue_checks import (
    LabTestData,
    PanelData,
    RangeData,
    lab_test_problems,
    panel_problems,
    range_problems,
)
from lab.models import (
    AlertStep,
    Box,
    CriticalAlert,
    ImportBatch,
    LabOrder,
    LabPolicy,
    LabReport,
    LabTest,
    OrderItem,
    Panel,
    ReferenceRange,
    Result,
    Specimen,
    SpecimenEvent,
)

# --- Shared --------------------------------------------------------------------------------------


def lab_centres_administered(request: HttpRequest) -> QuerySet[DiagnosticCentre]:
    """The lab centres whose catalogue and policy the admin user may change."""
    centres = DiagnosticCentre.objects.filter(kind=CentreKind.LAB)
    ids = administered_association_ids(request)
    return centres if ids is None else centres.filter(association_id__in=ids)


def _add_problems(form: forms.ModelForm[Any], problems: list[tuple[str | None, Any]]) -> None:
    for field, message in problems:
        form.add_error(field if field in form.fields else None, message)


class _CentreScopedAdmin(AssociationScopedAdmin):
    """A row of one lab centre: listed and chosen within the administered associations;
    every saved change is audited."""

    association_path = "centre__association_id"
    audit_action = ""
    audit_resource = ""

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "centre":
            kwargs["queryset"] = lab_centres_administered(request)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        obj = form.instance
        audit_record(
            actor=request.user,
            action=f"{self.audit_action}_{'change' if change else 'add'}",
            outcome=Outcome.ALLOWED,
            resource_type=self.audit_resource,
            resource_id=obj.pk,
            detail={"centre": obj.centre_id, "fields": sorted(form.changed_data)},
        )


# --- Catalogue -----------------------------------------------------------------------------------


class ReferenceRangeFormSet(forms.BaseInlineFormSet):
    """The test's reference ranges are checked together (no overlapping age bands)."""

    def clean(self) -> None:
        super().clean()
        if any(form.errors for form in self.forms):
            return
        kept = [
            form.cleaned_data
            for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE")
        ]
        ranges = [
            RangeData(
                sex=row.get("sex") or "",
                age_min_days=row.get("age_min_days") or 0,
                age_max_days=row.get("age_max_days"),
                low=row.get("low"),
                high=row.get("high"),
                text=row.get("text") or "",
            )
            for row in kept
        ]
        value_kind = getattr(self.instance, "value_kind", "")
        problems = range_problems(ranges, value_kind=value_kind)
        if problems:
            raise forms.ValidationError([message for _field, message in problems])


class ReferenceRangeInline(admin.TabularInline[ReferenceRange, LabTest]):
    model = ReferenceRange
    formset = ReferenceRangeFormSet
    extra = 0
    fields = ("sex", "age_min_days", "age_max_days", "low", "high", "text")


class LabTestForm(forms.ModelForm[LabTest]):
    class Meta:
        model = LabTest
        fields = [
            "centre",
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
            "active",
            "sort_order",
        ]

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        centre = cleaned.get("centre")
        if cleaned.get("code"):
            cleaned["code"] = cleaned["code"].strip().upper()
        if centre is None:
            return cleaned
        names = {f.name for f in fields(LabTestData)}
        data = LabTestData(**{k: v for k, v in cleaned.items() if k in names and v is not None})
        _add_problems(self, lab_test_problems(data, centre_id=centre.pk, test_id=self.instance.pk))
        return cleaned


@admin.register(LabTest)
class LabTestAdmin(_CentreScopedAdmin):
    form = LabTestForm
    audit_action = "lab.catalogue.test.admin"
    audit_resource = "lab_test"
    inlines = [ReferenceRangeInline]
    list_display = (
        "code",
        "name",
        "name_en",
        "centre",
        "specimen_type",
        "container",
        "unit",
        "critical_low",
        "critical_high",
        "turnaround_minutes",
        "active",
    )
    list_filter = ("active", "specimen_type", "centre")
    search_fields = ("code", "name", "name_en", "loinc")
    list_select_related = ("centre",)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # orders and reports name the test: deactivate instead


class PanelForm(forms.ModelForm[Panel]):
    class Meta:
        model = Panel
        fields = ["centre", "code", "name", "name_en", "tests", "active"]

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        centre = cleaned.get("centre")
        if centre is None:
            return cleaned
        data = PanelData(
            code=cleaned.get("code") or "",
            name=cleaned.get("name") or "",
            name_en=cleaned.get("name_en") or "",
            test_ids=[t.pk for t in cleaned.get("tests") or []],
        )
        _add_problems(self, panel_problems(data, centre_id=centre.pk, panel_id=self.instance.pk))
        return cleaned


@admin.register(Panel)
class PanelAdmin(_CentreScopedAdmin):
    form = PanelForm
    audit_action = "lab.catalogue.panel.admin"
    audit_resource = "lab_panel"
    list_display = ("code", "name", "name_en", "centre", "active")
    list_filter = ("active", "centre")
    search_fields = ("code", "name", "name_en")
    list_select_related = ("centre",)
    filter_horizontal = ("tests",)

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "tests":
            tests = LabTest.objects.select_related("centre").order_by("centre", "code")
            ids = administered_association_ids(request)
            if ids is not None:
                tests = tests.filter(centre__association_id__in=ids)
            kwargs["queryset"] = tests
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # orders name the panel: deactivate instead


@admin.register(LabPolicy)
class LabPolicyAdmin(_CentreScopedAdmin):
    """A centre without a policy uses the TELEMED_LAB_* defaults (docs/configuration.md)."""

    audit_action = "lab.policy.admin"
    audit_resource = "lab_policy"
    list_display = (
        "centre",
        "ack_minutes",
        "escalate_minutes",
        "specimen_max_age_hours",
        "missing_after_hours",
    )
    list_select_related = ("centre",)


# --- The workflow's records: look only, audited --------------------------------------------------


class _ReadOnlyInline(admin.TabularInline[Any, Any]):
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class OrderItemInline(_ReadOnlyInline):
    model = OrderItem
    fields = ("test", "panel", "specimen", "status")
    readonly_fields = fields


class SpecimenInline(_ReadOnlyInline):
    model = Specimen
    fields = ("barcode", "specimen_type", "container", "status", "box", "collected_at")
    readonly_fields = fields


class _LabRecordAdmin(AuditedReadOnlyAdmin):
    """A row that belongs to one order: audited against that order's resident.

    ``order_path`` is the lookup from the row to its order (``None``: the row is the order).
    """

    audit_resource = "lab_order"
    order_path: str | None = "order"

    def audit_target(self, object_id: str) -> tuple[str, int | None]:
        if self.order_path is None:
            order = LabOrder.objects.filter(pk=object_id).only("patient_id").first()
            return object_id, order.patient_id if order else None
        row = (
            self.model._default_manager.filter(pk=object_id).select_related(self.order_path).first()
        )
        parent: LabOrder | None = _follow(row, self.order_path)
        if parent is None:
            return object_id, None
        return str(parent.pk), parent.patient_id


def _follow(row: Model | None, path: str) -> Any:
    for name in path.split("__"):
        if row is None:
            return None
        row = getattr(row, name, None)
    return row


@admin.register(LabOrder)
class LabOrderAdmin(_LabRecordAdmin):
    audit_action = "lab.order.admin"
    order_path = None
    list_display = (
        "number",
        "patient",
        "priority",
        "status",
        "requesting_institution",
        "requested_by",
        "centre",
        "created_at",
        "reported_at",
    )
    list_filter = ("status", "priority", "centre", "requesting_institution__association")
    search_fields = ("=number", "patient__name")
    list_select_related = ("patient", "requesting_institution", "requested_by", "centre")
    exclude = ("clinical_note",)
    readonly_fields = ("note_length",)
    inlines = [OrderItemInline, SpecimenInline]
    date_hierarchy = "created_at"
    show_full_result_count = False

    @admin.display(description=_("clinical note"))
    def note_length(self, obj: LabOrder) -> str:
        # The clinical text is read on the order's page, under its access check.
        return _("%(count)d characters") % {"count": len(obj.clinical_note)}


class SpecimenEventInline(_ReadOnlyInline):
    model = SpecimenEvent
    fk_name = "specimen"
    fields = ("at", "kind", "actor", "box", "detail")
    readonly_fields = fields


@admin.register(Specimen)
class SpecimenAdmin(_LabRecordAdmin):
    audit_action = "lab.specimen.admin"
    list_display = (
        "barcode",
        "order",
        "specimen_type",
        "container",
        "status",
        "box",
        "collected_at",
        "received_at",
        "received_unshipped",
        "rejection_reason",
    )
    list_filter = ("status", "specimen_type", "received_unshipped", "rejection_reason")
    search_fields = ("=barcode", "=order__number", "=box__number")
    list_select_related = ("order", "box")
    inlines = [SpecimenEventInline]
    date_hierarchy = "collected_at"
    show_full_result_count = False


class BoxEventInline(_ReadOnlyInline):
    model = SpecimenEvent
    fk_name = "box"
    fields = ("at", "kind", "actor", "specimen", "detail")
    readonly_fields = fields


@admin.register(Box)
class BoxAdmin(AuditedReadOnlyAdmin):
    audit_action = "lab.box.admin"
    audit_resource = "lab_box"
    list_display = (
        "number",
        "from_institution",
        "centre",
        "status",
        "courier",
        "shipped_at",
        "received_at",
    )
    list_filter = ("status", "centre", "from_institution")
    search_fields = ("=number", "courier")
    list_select_related = ("from_institution", "centre")
    inlines = [BoxEventInline]
    date_hierarchy = "created_at"
    show_full_result_count = False


@admin.register(Result)
class ResultAdmin(_LabRecordAdmin):
    audit_action = "lab.result.admin"
    order_path = "item__order"
    list_display = (
        "item",
        "flag",
        "source",
        "entered_by",
        "entered_at",
        "tech_validated_at",
        "validated_at",
    )
    list_filter = ("flag", "source")
    search_fields = ("=item__order__number",)
    list_select_related = ("item", "entered_by")
    # The value is read on the results page, under its access check.
    exclude = ("value_numeric", "value_text", "comment")
    date_hierarchy = "entered_at"
    show_full_result_count = False


@admin.register(LabReport)
class LabReportAdmin(_LabRecordAdmin):
    audit_action = "lab.report.admin"
    list_display = ("order", "version", "signed_by", "signed_at", "mutual_recognition")
    list_filter = ("mutual_recognition",)
    search_fields = ("=order__number",)
    list_select_related = ("order", "signed_by")
    exclude = ("comment",)
    show_full_result_count = False


@admin.register(ImportBatch)
class ImportBatchAdmin(AuditedReadOnlyAdmin):
    audit_action = "lab.import.admin"
    audit_resource = "lab_import"
    list_display = ("filename", "centre", "uploaded_by", "status", "created_at", "applied_at")
    list_filter = ("status", "centre")
    search_fields = ("filename", "=sha256")
    list_select_related = ("centre", "uploaded_by")
    exclude = ("rows",)  # barcodes and values: the import page shows them under its check
    date_hierarchy = "created_at"
    show_full_result_count = False


class AlertStepInline(_ReadOnlyInline):
    model = AlertStep
    fields = ("at", "kind", "channel", "level", "recipient", "recipient_text", "actor")
    readonly_fields = fields


@admin.register(CriticalAlert)
class CriticalAlertAdmin(_LabRecordAdmin):
    audit_action = "lab.critical.admin"
    list_display = (
        "order",
        "patient",
        "flag",
        "status",
        "level",
        "raised_at",
        "escalate_at",
        "acknowledged_by",
        "acknowledged_at",
    )
    list_filter = ("status", "level", "flag")
    search_fields = ("=order__number",)
    list_select_related = ("order", "patient", "acknowledged_by")
    exclude = ("value", "ack_note")
    inlines = [AlertStepInline]
    date_hierarchy = "raised_at"
    show_full_result_count = False
