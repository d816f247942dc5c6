"""Typed shapes of the lab API: what it answers, and what it accepts.

Answers are read-only serializers over the models (and over the small dataclasses of
``lab.api``); requests are plain serializers whose limits are those of the services
(``lab.workflow_common``), so a bad input is a 400 naming the field before any service runs.
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from lab.flags import reference_label
from lab.importing import error_count, row_error
from lab.models import (
    CriticalAlert,
    ImportBatch,
    LabOrder,
    LabReport,
    LabReportVersion,
    LabTest,
    OrderItem,
    OrderStatus,
    Panel,
    Priority,
    ReferenceRange,
    RejectionReason,
    Result,
    Specimen,
)
from lab.workflow_common import (
    MAX_IMPORT_BYTES,
    MAX_ITEMS_PER_ORDER,
    MAX_NOTE,
    MAX_REASON,
    order_link,
)

MAX_BARCODE = 40  # a scan: a 12-digit barcode or a box number, with room for a wrong one
MAX_VALUE = 200
MAX_COMMENT = 300
MAX_CONDITION = 200
MAX_LIST = 500


# The priority is described by a pattern, not an enum: consult has a "priority" enum with
# other labels, and two enums of one name make drf-spectacular rename both with a warning.
@extend_schema_field(
    {
        "type": "string",
        "pattern": f"^({'|'.join(Priority.values)})$",
        "description": "routine, urgent or emergency (STAT).",
    }
)
class PriorityField(serializers.ChoiceField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=Priority.choices, **kwargs)


# --- Answers -------------------------------------------------------------------------------------


class LabRefSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField(source="pk")
    name = serializers.CharField(source="__str__")


class LabPersonSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField(source="pk")
    name = serializers.SerializerMethodField()

    def get_name(self, obj: Any) -> str:
        return str(getattr(obj, "display_name", "") or obj.get_username())


class LabPatientSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField(source="pk")
    name = serializers.CharField()
    resident_id = serializers.CharField(source="masked_resident_id")
    sex = serializers.CharField()
    age = serializers.IntegerField()


class ReferenceRangeSerializer(serializers.ModelSerializer[ReferenceRange]):
    class Meta:
        model = ReferenceRange
        fields = ["sex", "age_min_days", "age_max_days", "low", "high", "text"]
        read_only_fields = fields


class CatalogueTestSerializer(serializers.ModelSerializer[LabTest]):
    name = serializers.CharField(source="display_name", help_text="In the request's language.")
    specimen_type_display = serializers.CharField(source="get_specimen_type_display")
    container_display = serializers.CharField(source="get_container_display")
    ranges = ReferenceRangeSerializer(many=True)

    class Meta:
        model = LabTest
        fields = [
            "id",
            "code",
            "name",
            "loinc",
            "specimen_type",
            "specimen_type_display",
            "container",
            "container_display",
            "value_kind",
            "unit",
            "decimals",
            "critical_low",
            "critical_high",
            "turnaround_minutes",
            "ranges",
        ]
        read_only_fields = fields


class CataloguePanelSerializer(serializers.ModelSerializer[Panel]):
    name = serializers.CharField(source="display_name", help_text="In the request's language.")
    tests = serializers.SerializerMethodField(help_text="Ids of the panel's active tests.")

    class Meta:
        model = Panel
        fields = ["id", "code", "name", "tests"]
        read_only_fields = fields

    def get_tests(self, obj: Panel) -> list[int]:
        return [t.pk for t in obj.tests.all() if t.active]


class CatalogueSerializer(serializers.Serializer[Any]):
    centre = LabRefSerializer()
    tests = CatalogueTestSerializer(many=True)
    panels = CataloguePanelSerializer(many=True)


class LabOrderSerializer(serializers.ModelSerializer[LabOrder]):
    patient = LabPatientSerializer(read_only=True)
    requesting_institution = LabRefSerializer(read_only=True)
    requested_by = LabPersonSerializer(read_only=True)
    centre = LabRefSerializer(read_only=True)
    status_display = serializers.CharField(source="get_status_display")
    priority = PriorityField()
    priority_display = serializers.CharField(source="get_priority_display")
    url = serializers.SerializerMethodField()

    class Meta:
        model = LabOrder
        fields = [
            "id",
            "number",
            "status",
            "status_display",
            "priority",
            "priority_display",
            "patient",
            "requesting_institution",
            "requested_by",
            "centre",
            "clinical_note",
            "cancel_reason",
            "created_at",
            "collected_at",
            "received_at",
            "reported_at",
            "url",
        ]
        read_only_fields = fields

    def get_url(self, obj: LabOrder) -> str:
        return order_link(obj)


class LabSpecimenSerializer(serializers.ModelSerializer[Specimen]):
    order = serializers.IntegerField(source="order_id")
    box = serializers.SerializerMethodField()
    status_display = serializers.CharField(source="get_status_display")
    collected_by = LabPersonSerializer(read_only=True)
    rejection_reason = serializers.CharField(help_text="Why it was rejected (see reject).")

    class Meta:
        model = Specimen
        fields = [
            "id",
            "barcode",
            "order",
            "specimen_type",
            "container",
            "status",
            "status_display",
            "collected_by",
            "collected_at",
            "box",
            "labels_printed",
            "received_at",
            "received_unshipped",
            "rejection_reason",
            "rejection_note",
        ]
        read_only_fields = fields

    def get_box(self, obj: Specimen) -> str | None:
        return obj.box.number if obj.box_id and obj.box else None


class LabResultSerializer(serializers.ModelSerializer[Result]):
    item = serializers.IntegerField(source="item_id")
    value = serializers.CharField(source="display_value")
    flag_display = serializers.CharField(source="get_flag_display")
    critical = serializers.BooleanField(source="is_critical")
    reference = serializers.SerializerMethodField()

    class Meta:
        model = Result
        fields = [
            "item",
            "value",
            "unit",
            "flag",
            "flag_display",
            "critical",
            "reference",
            "comment",
            "source",
            "entered_at",
            "tech_validated_at",
            "validated_at",
        ]
        read_only_fields = fields

    def get_reference(self, obj: Result) -> str:
        return reference_label(obj.reference_low, obj.reference_high, obj.reference_text)


class OrderItemSerializer(serializers.ModelSerializer[OrderItem]):
    """An ordered test; ``result`` is null until the caller may see it (see ``lab.api``)."""

    test = serializers.SerializerMethodField()
    panel = serializers.SerializerMethodField()
    specimen = serializers.SerializerMethodField()
    status_display = serializers.CharField(source="get_status_display")
    result = serializers.SerializerMethodField()

    class Meta:
        model = OrderItem
        fields = ["id", "test", "panel", "specimen", "status", "status_display", "result"]
        read_only_fields = fields

    def get_test(self, obj: OrderItem) -> dict[str, Any]:
        return {"id": obj.test_id, "code": obj.test.code, "name": obj.test.display_name}

    def get_panel(self, obj: OrderItem) -> str | None:
        return obj.panel.code if obj.panel_id and obj.panel else None

    def get_specimen(self, obj: OrderItem) -> str | None:
        return obj.specimen.barcode if obj.specimen_id and obj.specimen else None

    def get_result(self, obj: OrderItem) -> dict[str, Any] | None:
        shown: set[int] = self.context.get("results_shown", set())
        result = getattr(obj, "result", None) if obj.pk in shown else None
        return LabResultSerializer(result).data if result is not None else None


class LabReportVersionSerializer(serializers.ModelSerializer[LabReportVersion]):
    signed_by = LabPersonSerializer(read_only=True)
    pdf = serializers.SerializerMethodField()

    class Meta:
        model = LabReportVersion
        fields = ["version", "signed_by", "signed_at", "amendment_reason", "pdf"]
        read_only_fields = fields

    def get_pdf(self, obj: LabReportVersion) -> str | None:
        return reverse("lab:report_pdf", args=[obj.report.order_id, obj.version])


class LabReportSerializer(serializers.ModelSerializer[LabReport]):
    signed_by = LabPersonSerializer(read_only=True)
    versions = LabReportVersionSerializer(many=True)

    class Meta:
        model = LabReport
        fields = [
            "version",
            "signed_by",
            "signed_at",
            "mutual_recognition",
            "valid_until",
            "comment",
            "versions",
        ]
        read_only_fields = fields


class CriticalAlertSerializer(serializers.ModelSerializer[CriticalAlert]):
    order = serializers.IntegerField(source="order_id")
    number = serializers.CharField(source="order.number")
    patient = LabPatientSerializer(read_only=True)
    test = serializers.SerializerMethodField()
    flag_display = serializers.CharField(source="get_flag_display")
    status_display = serializers.CharField(source="get_status_display")
    level_display = serializers.CharField(source="get_level_display")
    acknowledged_by = LabPersonSerializer(read_only=True, allow_null=True)
    url = serializers.SerializerMethodField()

    class Meta:
        model = CriticalAlert
        fields = [
            "id",
            "order",
            "number",
            "patient",
            "test",
            "value",
            "flag",
            "flag_display",
            "status",
            "status_display",
            "level",
            "level_display",
            "raised_at",
            "escalate_at",
            "acknowledged_by",
            "acknowledged_at",
            "ack_note",
            "url",
        ]
        read_only_fields = fields

    def get_test(self, obj: CriticalAlert) -> dict[str, Any]:
        test = obj.result.item.test
        return {"id": test.pk, "code": test.code, "name": test.display_name, "unit": test.unit}

    def get_url(self, obj: CriticalAlert) -> str:
        return reverse("lab:critical", args=[obj.pk])


class CriticalAlertRowSerializer(serializers.Serializer[Any]):
    """An open alert with its clock against the acknowledgement deadline."""

    alert = CriticalAlertSerializer()
    deadline = serializers.DateTimeField(help_text="When it should have been acknowledged.")
    ack_minutes = serializers.IntegerField()
    minutes_open = serializers.IntegerField()
    overdue = serializers.BooleanField()
    told = serializers.ListField(child=serializers.CharField(), help_text="Who was told.")
    action = serializers.SerializerMethodField(
        help_text="acknowledge: your clinic ordered it; call: your lab centre sent it."
    )

    def get_action(self, obj: Any) -> str:
        mine: set[int] = self.context.get("to_acknowledge", set())
        return "acknowledge" if obj.alert.pk in mine else "call"


class LabResultSavedSerializer(serializers.Serializer[Any]):
    result = LabResultSerializer()
    alert = CriticalAlertSerializer(
        allow_null=True, help_text="The critical-value alert the value raised."
    )


class OrderPermissionsSerializer(serializers.Serializer[Any]):
    cancel = serializers.BooleanField(source="can_cancel")
    collect = serializers.BooleanField(source="can_collect")


class LabOrderDetailSerializer(serializers.Serializer[Any]):
    order = LabOrderSerializer()
    role = serializers.ChoiceField(
        choices=["clinic", "lab", "reader"],
        help_text="clinic: the ordering institution; lab: staff of the centre; "
        "reader: another clinician who may read the resident.",
    )
    items = OrderItemSerializer(many=True)
    specimens = LabSpecimenSerializer(many=True)
    report = LabReportSerializer(allow_null=True)
    alerts = CriticalAlertSerializer(many=True)
    may = OrderPermissionsSerializer(source="*")


class LabBoxSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField(source="pk")
    number = serializers.CharField()
    status = serializers.CharField()
    status_display = serializers.CharField(source="get_status_display")
    from_institution = LabRefSerializer()
    centre = LabRefSerializer()
    courier = serializers.CharField()
    shipped_at = serializers.DateTimeField(allow_null=True)
    received_at = serializers.DateTimeField(allow_null=True)
    temperature_note = serializers.CharField()


class ReceiveAnswerSerializer(serializers.Serializer[Any]):
    kind = serializers.ChoiceField(choices=["box", "specimen"])
    box = LabBoxSerializer(allow_null=True)
    specimen = LabSpecimenSerializer(allow_null=True)
    unshipped = serializers.BooleanField(
        help_text="The specimen arrived without having been shipped in a box."
    )
    warnings = serializers.ListField(child=serializers.CharField())


class ImportRowSerializer(serializers.Serializer[Any]):
    """One line of the analyser file as parsed: what would be saved, or why not."""

    line = serializers.IntegerField(help_text="The line in the file (the header is line 1).")
    barcode = serializers.CharField(allow_blank=True)
    code = serializers.CharField(allow_blank=True, help_text="The test as the file names it.")
    test_name = serializers.CharField(allow_blank=True)
    value = serializers.CharField(allow_blank=True)
    unit = serializers.CharField(allow_blank=True)
    comment = serializers.CharField(allow_blank=True)
    instrument = serializers.CharField(allow_blank=True)
    item = serializers.IntegerField(allow_null=True, help_text="The ordered test it fills.")
    order = serializers.CharField(allow_blank=True, help_text="The order number.")
    patient = serializers.CharField(allow_blank=True)
    flag = serializers.CharField(
        allow_blank=True, help_text="N, L, H, LL, HH or A; empty on error."
    )
    reference = serializers.CharField(allow_blank=True, help_text="The reference range applied.")
    error = serializers.CharField(
        allow_blank=True, help_text="Why the row cannot be saved, in your language; empty if fine."
    )


ROW_TEXT_FIELDS = (
    "barcode",
    "code",
    "test_name",
    "value",
    "unit",
    "comment",
    "instrument",
    "order",
    "patient",
    "flag",
    "reference",
)


def _row(row: dict[str, Any]) -> dict[str, Any]:
    """A stored preview row as the API shows it (the error in the active language)."""
    shown = {name: row.get(name, "") for name in ROW_TEXT_FIELDS}
    shown["line"] = row.get("line", 0)
    shown["item"] = row.get("item")
    shown["error"] = row_error(row) if row.get("error") else ""
    return shown


class ImportBatchSerializer(serializers.ModelSerializer[ImportBatch]):
    centre = serializers.IntegerField(source="centre_id")
    rows = serializers.SerializerMethodField()
    error_rows = serializers.SerializerMethodField(help_text="How many rows cannot be saved.")

    class Meta:
        model = ImportBatch
        fields = [
            "id",
            "centre",
            "filename",
            "status",
            "created_at",
            "applied_at",
            "error_rows",
            "rows",
        ]
        read_only_fields = fields

    @extend_schema_field(ImportRowSerializer(many=True))
    def get_rows(self, obj: ImportBatch) -> list[dict[str, Any]]:
        return [ImportRowSerializer(_row(row)).data for row in obj.rows]

    def get_error_rows(self, obj: ImportBatch) -> int:
        return error_count(obj.rows)


class ImportAppliedSerializer(serializers.Serializer[Any]):
    batch = ImportBatchSerializer()
    saved = serializers.IntegerField(help_text="Results saved from the file.")


# --- Requests ------------------------------------------------------------------------------------


class CatalogueQuerySerializer(serializers.Serializer[Any]):
    centre = serializers.IntegerField(min_value=1, help_text="The lab centre (see /api/centres/).")


ORDER_LIST_STATUSES = [("open", _("Open")), *OrderStatus.choices]


class OrderListQuerySerializer(serializers.Serializer[Any]):
    status = serializers.ChoiceField(choices=ORDER_LIST_STATUSES, required=False, default=None)
    patient = serializers.IntegerField(min_value=1, required=False, default=None)
    centre = serializers.IntegerField(min_value=1, required=False, default=None)
    limit = serializers.IntegerField(min_value=1, max_value=MAX_LIST, required=False, default=100)
    offset = serializers.IntegerField(min_value=0, required=False, default=0)


def _ids() -> serializers.ListField:
    return serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        required=False,
        default=list,
        max_length=MAX_ITEMS_PER_ORDER,
    )


class LabOrderCreateSerializer(serializers.Serializer[Any]):
    patient_id = serializers.IntegerField(min_value=1)
    centre_id = serializers.IntegerField(min_value=1, help_text="The lab centre.")
    test_ids = _ids()
    panel_ids = _ids()
    priority = PriorityField(default=Priority.ROUTINE)
    clinical_note = serializers.CharField(
        max_length=MAX_NOTE, required=False, allow_blank=True, default=""
    )
    record_consent = serializers.BooleanField(
        required=False,
        default=False,
        help_text="The resident consents to the lab centre reading the results' record "
        "(recorded with the order when no consent covers the centre yet; only the "
        "resident's home institution can record it).",
    )


class OrderCancelSerializer(serializers.Serializer[Any]):
    reason = serializers.CharField(max_length=MAX_REASON)


class OrderCollectSerializer(serializers.Serializer[Any]):
    collected_at = serializers.DateTimeField(
        required=False, allow_null=True, default=None, help_text="Default: now."
    )


class LabReceiveSerializer(serializers.Serializer[Any]):
    barcode = serializers.CharField(
        max_length=MAX_BARCODE,
        help_text="A specimen barcode (12 digits) or a box number (BX...), as scanned.",
    )
    condition_note = serializers.CharField(
        max_length=MAX_CONDITION,
        required=False,
        allow_blank=True,
        default="",
        help_text="For a box: its condition on arrival (temperature, damage).",
    )


class SpecimenRejectSerializer(serializers.Serializer[Any]):
    barcode = serializers.CharField(max_length=MAX_BARCODE)
    reason = serializers.ChoiceField(choices=RejectionReason.choices)
    note = serializers.CharField(
        max_length=MAX_REASON, required=False, allow_blank=True, default=""
    )


class LabResultSaveSerializer(serializers.Serializer[Any]):
    item = serializers.IntegerField(min_value=1, help_text="The ordered test (item id).")
    value = serializers.CharField(max_length=MAX_VALUE)
    comment = serializers.CharField(
        max_length=MAX_COMMENT, required=False, allow_blank=True, default=""
    )
    reason = serializers.CharField(
        max_length=MAX_REASON,
        required=False,
        allow_blank=True,
        default="",
        help_text="Why a value already entered is changed.",
    )


class ImportUploadSerializer(serializers.Serializer[Any]):
    file = serializers.FileField(
        max_length=200, help_text="The analyser export (CSV, UTF-8 with or without BOM, GB18030)."
    )
    centre = serializers.IntegerField(
        min_value=1,
        required=False,
        default=None,
        help_text="The lab centre; default: the only one you work in.",
    )

    def validate_file(self, value: Any) -> Any:
        if value.size > MAX_IMPORT_BYTES:
            raise serializers.ValidationError(
                _("The file is larger than %(size)d MiB.") % {"size": MAX_IMPORT_BYTES // 1024**2}
            )
        return value


class CriticalAckSerializer(serializers.Serializer[Any]):
    note = serializers.CharField(
        max_length=MAX_REASON,
        required=False,
        allow_blank=True,
        default="",
        help_text="What was done (patient called back, sent to hospital...).",
    )
