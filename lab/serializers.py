"""Typed shapes of the lab API: what it answers, and what it accepts.

Answers are read-only serializers over the models (and over the small dataclasses of
``lab.api``); requests are plain serializers whose limits are those of the services
(``lab.workflow_common``), so a bad input is a 400 naming the field before any service runs.
"""

from __future__ import annotations

from typing import Any

from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

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
    decimal_or_none,
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


def _link(name: str, *args: object) -> str | None:
    try:
        return reverse(name, args=list(args))
    except NoReverseMatch:
        return None


# --- Answers -------------------------------------------------------------------------------------


class RefSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField(source="pk")
    name = serializers.CharField(source="__str__")


class PersonSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField(source="pk")
    name = serializers.SerializerMethodField()

    def get_name(self, obj: Any) -> str:
        return str(getattr(obj, "display_name", "") or obj.get_username())


class PatientRefSerializer(serializers.Serializer[Any]):
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
    centre = RefSerializer()
    tests = CatalogueTestSerializer(many=True)
    panels = CataloguePanelSerializer(many=True)


class OrderSerializer(serializers.ModelSerializer[LabOrder]):
    patient = PatientRefSerializer(read_only=True)
    requesting_institution = RefSerializer(read_only=True)
    requested_by = PersonSerializer(read_only=True)
    centre = RefSerializer(read_only=True)
    status_display = serializers.CharField(source="get_status_display")
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


class SpecimenSerializer(serializers.ModelSerializer[Specimen]):
    order = serializers.IntegerField(source="order_id")
    box = serializers.SerializerMethodField()
    status_display = serializers.CharField(source="get_status_display")
    collected_by = PersonSerializer(read_only=True)

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


class ResultSerializer(serializers.ModelSerializer[Result]):
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
        if obj.reference_text:
            return obj.reference_text
        if obj.reference_low is None and obj.reference_high is None:
            return ""
        return f"{decimal_or_none(obj.reference_low)}–{decimal_or_none(obj.reference_high)}"


class ItemSerializer(serializers.ModelSerializer[OrderItem]):
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
        return ResultSerializer(result).data if result is not None else None


class ReportVersionSerializer(serializers.ModelSerializer[LabReportVersion]):
    signed_by = PersonSerializer(read_only=True)
    pdf = serializers.SerializerMethodField()

    class Meta:
        model = LabReportVersion
        fields = ["version", "signed_by", "signed_at", "amendment_reason", "pdf"]
        read_only_fields = fields

    def get_pdf(self, obj: LabReportVersion) -> str | None:
        return _link("lab:report_pdf", obj.report.order_id, obj.version)


class ReportSerializer(serializers.ModelSerializer[LabReport]):
    signed_by = PersonSerializer(read_only=True)
    versions = ReportVersionSerializer(many=True)

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


class AlertSerializer(serializers.ModelSerializer[CriticalAlert]):
    order = serializers.IntegerField(source="order_id")
    number = serializers.CharField(source="order.number")
    patient = PatientRefSerializer(read_only=True)
    test = serializers.SerializerMethodField()
    flag_display = serializers.CharField(source="get_flag_display")
    status_display = serializers.CharField(source="get_status_display")
    level_display = serializers.CharField(source="get_level_display")
    acknowledged_by = PersonSerializer(read_only=True, allow_null=True)
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
        return _link("lab:critical", obj.pk) or f"/lab/critical/{obj.pk}/"


class PermissionsSerializer(serializers.Serializer[Any]):
    cancel = serializers.BooleanField(source="can_cancel")
    collect = serializers.BooleanField(source="can_collect")


class OrderDetailSerializer(serializers.Serializer[Any]):
    order = OrderSerializer()
    role = serializers.ChoiceField(
        choices=["clinic", "lab", "reader"],
        help_text="clinic: the ordering institution; lab: staff of the centre; "
        "reader: another clinician who may read the resident.",
    )
    items = ItemSerializer(many=True)
    specimens = SpecimenSerializer(many=True)
    report = ReportSerializer(allow_null=True)
    alerts = AlertSerializer(many=True)
    may = PermissionsSerializer(source="*")


class BoxSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField(source="pk")
    number = serializers.CharField()
    status = serializers.CharField()
    status_display = serializers.CharField(source="get_status_display")
    from_institution = RefSerializer()
    centre = RefSerializer()
    courier = serializers.CharField()
    shipped_at = serializers.DateTimeField(allow_null=True)
    received_at = serializers.DateTimeField(allow_null=True)
    temperature_note = serializers.CharField()


class ReceiveAnswerSerializer(serializers.Serializer[Any]):
    kind = serializers.ChoiceField(choices=["box", "specimen"])
    box = BoxSerializer(allow_null=True)
    specimen = SpecimenSerializer(allow_null=True)
    unshipped = serializers.BooleanField(
        help_text="The specimen arrived without having been shipped in a box."
    )
    warnings = serializers.ListField(child=serializers.CharField())


class ImportRowSerializer(serializers.Serializer[Any]):
    """One line of the analyser file as parsed: what would be saved, or why not."""

    line = serializers.IntegerField()
    barcode = serializers.CharField(allow_blank=True, required=False)
    code = serializers.CharField(allow_blank=True, required=False)
    value = serializers.CharField(allow_blank=True, required=False)
    unit = serializers.CharField(allow_blank=True, required=False)
    flag = serializers.CharField(allow_blank=True, required=False, allow_null=True)
    error = serializers.CharField(
        allow_blank=True, required=False, allow_null=True, help_text="Empty when the row is fine."
    )


class ImportBatchSerializer(serializers.ModelSerializer[ImportBatch]):
    centre = serializers.IntegerField(source="centre_id")
    rows = serializers.SerializerMethodField()
    errors = serializers.SerializerMethodField(help_text="Rows that cannot be saved.")

    class Meta:
        model = ImportBatch
        fields = ["id", "centre", "filename", "status", "created_at", "applied_at", "errors", "rows"]
        read_only_fields = fields

    @extend_schema_field(ImportRowSerializer(many=True))
    def get_rows(self, obj: ImportBatch) -> list[dict[str, Any]]:
        return [_row(row) for row in obj.rows]

    def get_errors(self, obj: ImportBatch) -> int:
        return sum(1 for row in obj.rows if row.get("error"))


# The stored rows may hold more keys than the schema names (the test's id, the reference);
# each is passed on as text so a middleware can show it.
def _row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v if v is None or isinstance(v, bool | int) else str(v)) for k, v in row.items()}



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


class OrderCreateSerializer(serializers.Serializer[Any]):
    patient_id = serializers.IntegerField(min_value=1)
    centre_id = serializers.IntegerField(min_value=1, help_text="The lab centre.")
    test_ids = _ids()
    panel_ids = _ids()
    priority = serializers.ChoiceField(choices=Priority.choices, default=Priority.ROUTINE)
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


class CancelSerializer(serializers.Serializer[Any]):
    reason = serializers.CharField(max_length=MAX_REASON)


class CollectSerializer(serializers.Serializer[Any]):
    collected_at = serializers.DateTimeField(
        required=False, allow_null=True, default=None, help_text="Default: now."
    )


class ReceiveSerializer(serializers.Serializer[Any]):
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


class RejectSerializer(serializers.Serializer[Any]):
    barcode = serializers.CharField(max_length=MAX_BARCODE)
    reason = serializers.ChoiceField(choices=RejectionReason.choices)
    note = serializers.CharField(max_length=MAX_REASON, required=False, allow_blank=True, default="")


class ResultSaveSerializer(serializers.Serializer[Any]):
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


class AckSerializer(serializers.Serializer[Any]):
    note = serializers.CharField(
        max_length=MAX_REASON,
        required=False,
        allow_blank=True,
        default="",
        help_text="What was done (patient called back, sent to hospital...).",
    )
