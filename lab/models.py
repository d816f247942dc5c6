"""The lab centre: catalogue, orders, specimens, boxes, results, reports, critical values.

A clinic orders tests of a lab centre's catalogue for a resident; the clinic collects the
specimens (one tube per specimen type and container), labels them with a barcode, packs
them into a box and hands the box to the courier; the centre receives the box and scans
each tube (or rejects it), enters or imports the results, validates them technically and
clinically and signs a report that is filed to the resident's record. A critical value
raises a :class:`CriticalAlert` that is escalated until the ordering side acknowledges it.

Every read or write goes through ``lab.access`` and the services; nothing here checks
access. Numbers and barcodes are made by ``lab.numbering``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _

# --- Shared choices ----------------------------------------------------------------------------


class Priority(models.TextChoices):
    ROUTINE = "routine", _("Routine")
    URGENT = "urgent", _("Urgent")
    EMERGENCY = "emergency", _("Emergency (STAT)")


PRIORITY_RANK = {Priority.EMERGENCY: 0, Priority.URGENT: 1, Priority.ROUTINE: 2}


class SpecimenType(models.TextChoices):
    WHOLE_BLOOD = "whole_blood", _("Whole blood")
    SERUM = "serum", _("Serum")
    PLASMA = "plasma", _("Plasma")
    URINE = "urine", _("Urine")
    STOOL = "stool", _("Stool")
    SWAB = "swab", _("Swab")
    SPUTUM = "sputum", _("Sputum")
    CSF = "csf", _("Cerebrospinal fluid")
    OTHER = "other", _("Other")


class Container(models.TextChoices):
    EDTA = "edta", _("EDTA tube (purple cap)")
    SERUM_GEL = "serum_gel", _("Serum gel tube (yellow cap)")
    PLAIN = "plain", _("Plain tube (red cap)")
    CITRATE = "citrate", _("Citrate tube (blue cap)")
    HEPARIN = "heparin", _("Heparin tube (green cap)")
    FLUORIDE = "fluoride", _("Fluoride tube (grey cap)")
    URINE_CUP = "urine_cup", _("Urine cup")
    STOOL_CUP = "stool_cup", _("Stool container")
    SWAB_TUBE = "swab_tube", _("Swab with transport medium")
    STERILE = "sterile", _("Sterile container")


class ValueKind(models.TextChoices):
    NUMERIC = "numeric", _("Number")
    TEXT = "text", _("Text")


class Flag(models.TextChoices):
    """How a result compares with its reference range and critical limits."""

    NORMAL = "N", _("Normal")
    LOW = "L", _("Low")
    HIGH = "H", _("High")
    CRITICAL_LOW = "LL", _("Critically low")
    CRITICAL_HIGH = "HH", _("Critically high")
    ABNORMAL = "A", _("Abnormal")  # a text result the technician marks abnormal


CRITICAL_FLAGS = frozenset({Flag.CRITICAL_LOW, Flag.CRITICAL_HIGH})


# --- Catalogue ---------------------------------------------------------------------------------


class LabTest(models.Model):
    """One test a lab centre offers; the centre edits its own catalogue."""

    centre = models.ForeignKey(
        "association.DiagnosticCentre",
        verbose_name=_("lab centre"),
        on_delete=models.PROTECT,
        related_name="lab_tests",
    )
    code = models.CharField(_("code"), max_length=20)
    name = models.CharField(_("name"), max_length=100)
    name_en = models.CharField(_("English name"), max_length=100, blank=True)
    loinc = models.CharField(_("LOINC code"), max_length=10, blank=True)
    specimen_type = models.CharField(
        _("specimen type"), max_length=16, choices=SpecimenType.choices
    )
    container = models.CharField(_("container"), max_length=16, choices=Container.choices)
    value_kind = models.CharField(
        _("kind of value"), max_length=8, choices=ValueKind.choices, default=ValueKind.NUMERIC
    )
    unit = models.CharField(_("unit"), max_length=20, blank=True)
    decimals = models.PositiveSmallIntegerField(_("decimals shown"), default=1)
    # A value outside the plausible range is refused as a typing or unit error.
    plausible_low = models.DecimalField(
        _("lowest plausible value"), max_digits=12, decimal_places=4, null=True, blank=True
    )
    plausible_high = models.DecimalField(
        _("highest plausible value"), max_digits=12, decimal_places=4, null=True, blank=True
    )
    critical_low = models.DecimalField(
        _("critical low limit"), max_digits=12, decimal_places=4, null=True, blank=True
    )
    critical_high = models.DecimalField(
        _("critical high limit"), max_digits=12, decimal_places=4, null=True, blank=True
    )
    turnaround_minutes = models.PositiveIntegerField(
        _("turnaround target (minutes, routine)"), default=24 * 60
    )
    active = models.BooleanField(_("active"), default=True)
    sort_order = models.PositiveIntegerField(_("order"), default=0)

    class Meta:
        verbose_name = _("lab test")
        verbose_name_plural = _("lab tests")
        ordering = ["centre", "sort_order", "code"]
        constraints = [
            models.UniqueConstraint(fields=["centre", "code"], name="lab_test_code_per_centre")
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.display_name}"

    @property
    def display_name(self) -> str:
        """The name in the active language (the English name when English is active)."""
        language = translation.get_language() or ""
        if language.startswith("en") and self.name_en:
            return self.name_en
        return self.name


class ReferenceRange(models.Model):
    """A reference interval for a test, by sex and age; the narrowest match applies."""

    test = models.ForeignKey(LabTest, on_delete=models.CASCADE, related_name="ranges")
    # "" for both sexes, else records.Sex ("M"/"F").
    sex = models.CharField(_("sex"), max_length=1, blank=True)
    age_min_days = models.PositiveIntegerField(_("from age (days)"), default=0)
    age_max_days = models.PositiveIntegerField(_("to age (days, exclusive)"), null=True, blank=True)
    low = models.DecimalField(_("low"), max_digits=12, decimal_places=4, null=True, blank=True)
    high = models.DecimalField(_("high"), max_digits=12, decimal_places=4, null=True, blank=True)
    text = models.CharField(_("expected (text results)"), max_length=60, blank=True)

    class Meta:
        verbose_name = _("reference range")
        verbose_name_plural = _("reference ranges")
        ordering = ["test", "sex", "age_min_days"]

    def __str__(self) -> str:
        return f"{self.test_id} {self.sex or '*'} {self.age_min_days}-{self.age_max_days}"


class Panel(models.Model):
    """A named group of tests ordered together (e.g. 肝功能 liver panel)."""

    centre = models.ForeignKey(
        "association.DiagnosticCentre",
        verbose_name=_("lab centre"),
        on_delete=models.PROTECT,
        related_name="lab_panels",
    )
    code = models.CharField(_("code"), max_length=20)
    name = models.CharField(_("name"), max_length=100)
    name_en = models.CharField(_("English name"), max_length=100, blank=True)
    tests = models.ManyToManyField(LabTest, verbose_name=_("tests"), related_name="panels")
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("panel")
        verbose_name_plural = _("panels")
        ordering = ["centre", "code"]
        constraints = [
            models.UniqueConstraint(fields=["centre", "code"], name="lab_panel_code_per_centre")
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.display_name}"

    @property
    def display_name(self) -> str:
        language = translation.get_language() or ""
        if language.startswith("en") and self.name_en:
            return self.name_en
        return self.name


class LabPolicy(models.Model):
    """A lab centre's critical-value policy (defaults from settings.LAB when missing)."""

    centre = models.OneToOneField(
        "association.DiagnosticCentre", on_delete=models.CASCADE, related_name="lab_policy"
    )
    ack_minutes = models.PositiveIntegerField(
        _("minutes for the ordering doctor to acknowledge a critical value"), default=10
    )
    escalate_minutes = models.PositiveIntegerField(
        _("minutes for the clinic's other doctors before the centre calls"), default=10
    )
    specimen_max_age_hours = models.PositiveIntegerField(
        _("oldest specimen accepted (hours since collection)"), default=48
    )
    missing_after_hours = models.PositiveIntegerField(
        _("shipped specimens count as missing after (hours)"), default=24
    )

    class Meta:
        verbose_name = _("lab policy")
        verbose_name_plural = _("lab policies")

    def __str__(self) -> str:
        return str(self.centre_id)


# --- Orders ------------------------------------------------------------------------------------


class OrderStatus(models.TextChoices):
    ORDERED = "ordered", _("Ordered")
    COLLECTED = "collected", _("Collected")
    SHIPPED = "shipped", _("Shipped")
    RECEIVED = "received", _("Received at the lab")
    IN_PROGRESS = "in_progress", _("Results in progress")
    REPORTED = "reported", _("Reported")
    CANCELLED = "cancelled", _("Cancelled")
    REJECTED = "rejected", _("Specimens rejected")


OPEN_ORDER_STATUSES = (
    OrderStatus.ORDERED,
    OrderStatus.COLLECTED,
    OrderStatus.SHIPPED,
    OrderStatus.RECEIVED,
    OrderStatus.IN_PROGRESS,
)


class LabOrder(models.Model):
    """A clinic's order of tests for one resident at one lab centre."""

    number = models.CharField(_("order number"), max_length=16, unique=True)
    patient = models.ForeignKey(
        "records.Patient",
        verbose_name=_("resident"),
        on_delete=models.PROTECT,
        related_name="lab_orders",
    )
    requesting_institution = models.ForeignKey(
        "association.Institution",
        verbose_name=_("ordering institution"),
        on_delete=models.PROTECT,
        related_name="+",
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("ordering doctor"),
        on_delete=models.PROTECT,
        related_name="+",
    )
    centre = models.ForeignKey(
        "association.DiagnosticCentre",
        verbose_name=_("lab centre"),
        on_delete=models.PROTECT,
        related_name="lab_orders",
    )
    priority = models.CharField(
        _("priority"), max_length=10, choices=Priority.choices, default=Priority.ROUTINE
    )
    clinical_note = models.TextField(_("clinical note"), blank=True)
    status = models.CharField(
        _("status"), max_length=12, choices=OrderStatus.choices, default=OrderStatus.ORDERED
    )
    share = models.ForeignKey(
        "records.PatientShare", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    cancel_reason = models.CharField(_("reason for cancelling"), max_length=300, blank=True)
    created_at = models.DateTimeField(_("ordered at"), default=timezone.now, db_index=True)
    collected_at = models.DateTimeField(_("collected at"), null=True, blank=True)
    received_at = models.DateTimeField(_("received at"), null=True, blank=True)
    reported_at = models.DateTimeField(_("reported at"), null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("lab order")
        verbose_name_plural = _("lab orders")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["centre", "status"])]

    def __str__(self) -> str:
        return self.number


class ItemStatus(models.TextChoices):
    PENDING = "pending", _("Waiting for a result")
    RESULTED = "resulted", _("Result entered")
    TECH_VALIDATED = "tech_validated", _("Technically validated")
    VALIDATED = "validated", _("Clinically validated")
    CANCELLED = "cancelled", _("Cancelled")
    REJECTED = "rejected", _("Specimen rejected")


class OrderItem(models.Model):
    """One test of an order; ``specimen`` is set when the specimens are collected."""

    order = models.ForeignKey(LabOrder, on_delete=models.CASCADE, related_name="items")
    test = models.ForeignKey(LabTest, verbose_name=_("test"), on_delete=models.PROTECT)
    panel = models.ForeignKey(
        Panel, verbose_name=_("panel"), on_delete=models.PROTECT, null=True, blank=True
    )
    specimen = models.ForeignKey(
        "lab.Specimen", on_delete=models.PROTECT, null=True, blank=True, related_name="items"
    )
    status = models.CharField(
        _("status"), max_length=16, choices=ItemStatus.choices, default=ItemStatus.PENDING
    )

    class Meta:
        verbose_name = _("ordered test")
        verbose_name_plural = _("ordered tests")
        ordering = ["order", "id"]
        constraints = [models.UniqueConstraint(fields=["order", "test"], name="lab_item_test_once")]

    def __str__(self) -> str:
        return f"{self.order_id}:{self.test_id}"


# --- Specimens and boxes -----------------------------------------------------------------------


class SpecimenStatus(models.TextChoices):
    COLLECTED = "collected", _("Collected")
    PACKED = "packed", _("Packed")
    SHIPPED = "shipped", _("Shipped")
    RECEIVED = "received", _("Received")
    REJECTED = "rejected", _("Rejected")


class RejectionReason(models.TextChoices):
    HAEMOLYSED = "haemolysed", _("Haemolysed")
    INSUFFICIENT = "insufficient", _("Insufficient volume")
    WRONG_CONTAINER = "wrong_container", _("Wrong container")
    TOO_OLD = "too_old", _("Too old")
    CLOTTED = "clotted", _("Clotted")
    LEAKED = "leaked", _("Leaked or broken")
    MISLABELLED = "mislabelled", _("Missing or wrong label")
    OTHER = "other", _("Other")


class Specimen(models.Model):
    """One labelled tube or container of an order."""

    barcode = models.CharField(_("barcode"), max_length=16, unique=True)
    order = models.ForeignKey(LabOrder, on_delete=models.PROTECT, related_name="specimens")
    specimen_type = models.CharField(
        _("specimen type"), max_length=16, choices=SpecimenType.choices
    )
    container = models.CharField(_("container"), max_length=16, choices=Container.choices)
    status = models.CharField(
        _("status"),
        max_length=12,
        choices=SpecimenStatus.choices,
        default=SpecimenStatus.COLLECTED,
    )
    collected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("collected by"),
        on_delete=models.PROTECT,
        related_name="+",
    )
    collected_at = models.DateTimeField(_("collected at"))
    box = models.ForeignKey(
        "lab.Box", on_delete=models.PROTECT, null=True, blank=True, related_name="specimens"
    )
    labels_printed = models.PositiveSmallIntegerField(_("labels printed"), default=0)
    received_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("received by"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    received_at = models.DateTimeField(_("received at"), null=True, blank=True)
    # Received at the centre without having been shipped in a box (a discrepancy).
    received_unshipped = models.BooleanField(_("received without shipment"), default=False)
    rejection_reason = models.CharField(
        _("reason for rejection"), max_length=16, choices=RejectionReason.choices, blank=True
    )
    rejection_note = models.CharField(_("note"), max_length=300, blank=True)

    class Meta:
        verbose_name = _("specimen")
        verbose_name_plural = _("specimens")
        ordering = ["-collected_at", "-id"]

    def __str__(self) -> str:
        return self.barcode


class BoxStatus(models.TextChoices):
    PACKING = "packing", _("Being packed")
    SHIPPED = "shipped", _("Handed to the courier")
    RECEIVED = "received", _("Received at the lab")


class Box(models.Model):
    """A transport box of specimens from one institution to one lab centre."""

    number = models.CharField(_("box number"), max_length=16, unique=True)
    from_institution = models.ForeignKey(
        "association.Institution",
        verbose_name=_("from"),
        on_delete=models.PROTECT,
        related_name="+",
    )
    centre = models.ForeignKey(
        "association.DiagnosticCentre",
        verbose_name=_("lab centre"),
        on_delete=models.PROTECT,
        related_name="lab_boxes",
    )
    status = models.CharField(
        _("status"), max_length=10, choices=BoxStatus.choices, default=BoxStatus.PACKING
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(_("opened at"), default=timezone.now)
    courier = models.CharField(_("courier"), max_length=100, blank=True)
    shipped_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    shipped_at = models.DateTimeField(_("handed over at"), null=True, blank=True)
    received_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    received_at = models.DateTimeField(_("received at"), null=True, blank=True)
    temperature_note = models.CharField(_("condition on arrival"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("box")
        verbose_name_plural = _("boxes")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.number


class SpecimenEvent(models.Model):
    """The chain of custody: every scan and change of a specimen (and of its box)."""

    specimen = models.ForeignKey(
        Specimen, on_delete=models.CASCADE, null=True, blank=True, related_name="events"
    )
    box = models.ForeignKey(
        Box, on_delete=models.CASCADE, null=True, blank=True, related_name="events"
    )
    # collected, label_printed, label_reprinted, packed, unpacked, shipped, box_received,
    # received, received_unshipped, rejected, missing
    kind = models.CharField(max_length=24)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    at = models.DateTimeField(default=timezone.now, db_index=True)
    detail: models.JSONField[dict[str, Any]] = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.kind}@{self.at:%Y-%m-%d %H:%M}"


# --- Results and reports -----------------------------------------------------------------------


class ResultSource(models.TextChoices):
    MANUAL = "manual", _("Entered by hand")
    IMPORT = "import", _("Analyser import")


class Result(models.Model):
    """The current result of one ordered test (earlier values are kept as ResultChange)."""

    item = models.OneToOneField(OrderItem, on_delete=models.PROTECT, related_name="result")
    value_numeric = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    value_text = models.CharField(_("result"), max_length=200, blank=True)
    unit = models.CharField(_("unit"), max_length=20, blank=True)
    flag = models.CharField(_("flag"), max_length=2, choices=Flag.choices, default=Flag.NORMAL)
    # The reference interval applied, as shown on the report ("3.5–5.3").
    reference_low = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    reference_high = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    reference_text = models.CharField(_("reference range"), max_length=60, blank=True)
    comment = models.CharField(_("comment"), max_length=300, blank=True)
    source = models.CharField(max_length=8, choices=ResultSource.choices)
    batch = models.ForeignKey(
        "lab.ImportBatch", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    entered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    entered_at = models.DateTimeField(default=timezone.now)
    tech_validated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    tech_validated_at = models.DateTimeField(null=True, blank=True)
    validated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    validated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("result")
        verbose_name_plural = _("results")

    def __str__(self) -> str:
        return f"{self.item_id}={self.display_value}"

    @property
    def display_value(self) -> str:
        if self.value_numeric is None:
            return self.value_text
        places = self.item.test.decimals if self.item_id else 2
        return f"{self.value_numeric:.{places}f}"

    @property
    def is_critical(self) -> bool:
        return self.flag in CRITICAL_FLAGS


class ResultChange(models.Model):
    """A result value replaced before or after signing (kept for the record)."""

    result = models.ForeignKey(Result, on_delete=models.CASCADE, related_name="changes")
    old_value = models.CharField(max_length=200)
    new_value = models.CharField(max_length=200)
    reason = models.CharField(max_length=300, blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.result_id}: {self.old_value} -> {self.new_value}"


class BatchStatus(models.TextChoices):
    PREVIEW = "preview", _("Preview")
    APPLIED = "applied", _("Saved")
    DISCARDED = "discarded", _("Discarded")


class ImportBatch(models.Model):
    """An analyser export, parsed and shown before anything is saved."""

    centre = models.ForeignKey(
        "association.DiagnosticCentre", on_delete=models.PROTECT, related_name="+"
    )
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    filename = models.CharField(max_length=200)
    sha256 = models.CharField(max_length=64)
    # The parsed rows: [{"line", "barcode", "code", "value", "unit", "error", "flag", ...}]
    rows: models.JSONField[list[dict[str, Any]]] = models.JSONField(default=list)
    status = models.CharField(
        max_length=10, choices=BatchStatus.choices, default=BatchStatus.PREVIEW
    )
    created_at = models.DateTimeField(default=timezone.now)
    applied_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("analyser import")
        verbose_name_plural = _("analyser imports")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.filename


class LabReport(models.Model):
    """The signed report of an order (current version; every version kept)."""

    order = models.OneToOneField(LabOrder, on_delete=models.PROTECT, related_name="report")
    version = models.PositiveIntegerField(default=0)
    signed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    signed_at = models.DateTimeField()
    mutual_recognition = models.BooleanField(_("mutually recognised (结果互认)"), default=True)
    valid_until = models.DateField(_("valid until"), null=True, blank=True)
    comment = models.TextField(_("comment"), blank=True)

    class Meta:
        verbose_name = _("lab report")
        verbose_name_plural = _("lab reports")

    def __str__(self) -> str:
        return f"{self.order_id} v{self.version}"


class LabReportVersion(models.Model):
    """One signed version: the results as signed, its PDF and why it was amended."""

    report = models.ForeignKey(LabReport, on_delete=models.PROTECT, related_name="versions")
    version = models.PositiveIntegerField()
    signed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    signed_at = models.DateTimeField()
    # [{"code", "name", "value", "unit", "flag", "reference"}] as printed.
    results: models.JSONField[list[dict[str, Any]]] = models.JSONField(default=list)
    mutual_recognition = models.BooleanField(default=True)
    valid_until = models.DateField(null=True, blank=True)
    comment = models.TextField(blank=True)
    amendment_reason = models.CharField(max_length=300, blank=True)
    pdf_key = models.CharField(max_length=200, blank=True)
    pdf_sha256 = models.CharField(max_length=64, blank=True)
    pdf_size = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["report", "version"]
        constraints = [
            models.UniqueConstraint(fields=["report", "version"], name="lab_report_version_once")
        ]

    def __str__(self) -> str:
        return f"{self.report_id} v{self.version}"


# --- Critical values ---------------------------------------------------------------------------


class AlertStatus(models.TextChoices):
    OPEN = "open", _("Waiting for acknowledgement")
    ACKNOWLEDGED = "acknowledged", _("Acknowledged")
    WITHDRAWN = "withdrawn", _("Withdrawn (result corrected)")


class AlertLevel(models.IntegerChoices):
    ORDERING_DOCTOR = 0, _("Ordering doctor")
    CLINIC = 1, _("The clinic's other doctors")
    CENTRE_CALLS = 2, _("The lab centre calls")


class CriticalAlert(models.Model):
    """A critical value to be acknowledged by the ordering side; escalated until it is."""

    result = models.ForeignKey(Result, on_delete=models.PROTECT, related_name="alerts")
    order = models.ForeignKey(LabOrder, on_delete=models.PROTECT, related_name="alerts")
    patient = models.ForeignKey("records.Patient", on_delete=models.PROTECT, related_name="+")
    # What was critical, as sent (the result may later change).
    value = models.CharField(max_length=200)
    flag = models.CharField(max_length=2, choices=Flag.choices)
    status = models.CharField(
        _("status"), max_length=12, choices=AlertStatus.choices, default=AlertStatus.OPEN
    )
    level = models.PositiveSmallIntegerField(
        _("escalation level"), choices=AlertLevel.choices, default=AlertLevel.ORDERING_DOCTOR
    )
    raised_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    raised_at = models.DateTimeField(default=timezone.now, db_index=True)
    # When the next escalation is due while open.
    escalate_at = models.DateTimeField(null=True, blank=True, db_index=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    ack_note = models.CharField(_("action taken"), max_length=300, blank=True)

    class Meta:
        verbose_name = _("critical value")
        verbose_name_plural = _("critical values")
        ordering = ["-raised_at", "-id"]

    def __str__(self) -> str:
        return f"{self.order_id}:{self.value}"


class AlertChannel(models.TextChoices):
    SOCKET = "socket", _("Notification (in the browser)")
    PHONE = "phone", _("Telephone")
    IN_PERSON = "in_person", _("In person")
    SYSTEM = "system", _("System")


class AlertStep(models.Model):
    """Who was told, when, by which channel, and who acknowledged: the alert's log."""

    alert = models.ForeignKey(CriticalAlert, on_delete=models.CASCADE, related_name="steps")
    # raised, notified, escalated, called, acknowledged, withdrawn
    kind = models.CharField(max_length=16)
    channel = models.CharField(max_length=10, choices=AlertChannel.choices)
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # For a call: the person reached, as told by the caller ("Dr Zhao, village clinic").
    recipient_text = models.CharField(max_length=100, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    level = models.PositiveSmallIntegerField(default=0)
    note = models.CharField(max_length=300, blank=True)
    notification_id = models.BigIntegerField(null=True, blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.alert_id}:{self.kind}"


def decimal_or_none(value: Decimal | None) -> str:
    """A decimal for display without trailing zeros ("3.5", not "3.5000")."""
    if value is None:
        return ""
    text = format(value.normalize(), "f")
    return text
