"""Imaging centre: the DICOM index (study, series, instance), requests, reports, AE titles.

Original DICOM bytes live in object storage (``Instance.object_key``); the database holds
what QIDO-RS, the worklist and the viewer need. Studies link to the resident's record
(``Study.patient``) once matched, and to the imaging request they answer.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class MatchStatus(models.TextChoices):
    MATCHED = "matched", _("Matched to a resident")
    PENDING = "pending", _("Waiting to be matched")


class Priority(models.TextChoices):
    ROUTINE = "routine", _("Routine")
    URGENT = "urgent", _("Urgent")
    EMERGENCY = "emergency", _("Emergency")


# Sort order for worklists: emergencies first.
PRIORITY_RANK = {Priority.EMERGENCY: 0, Priority.URGENT: 1, Priority.ROUTINE: 2}


class Modality(models.TextChoices):
    CR = "CR", _("Computed radiography (X-ray)")
    DX = "DX", _("Digital radiography (X-ray)")
    CT = "CT", _("CT")
    MR = "MR", _("MRI")
    US = "US", _("Ultrasound")
    MG = "MG", _("Mammography")
    XA = "XA", _("Angiography")
    OT = "OT", _("Other")


class Study(models.Model):
    study_uid = models.CharField(_("Study Instance UID"), max_length=64, unique=True)
    patient = models.ForeignKey(
        "records.Patient",
        verbose_name=_("resident"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="studies",
    )
    match_status = models.CharField(
        _("match"), max_length=10, choices=MatchStatus.choices, default=MatchStatus.PENDING
    )
    source_institution = models.ForeignKey(
        "association.Institution",
        verbose_name=_("sent by"),
        on_delete=models.PROTECT,
        related_name="sent_studies",
    )
    request = models.ForeignKey(
        "ImagingRequest",
        verbose_name=_("imaging request"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="studies",
    )
    # Attributes as the modality sent them (QIDO-RS matches on these).
    dicom_patient_id = models.CharField(
        _("DICOM patient ID"), max_length=64, blank=True, db_index=True
    )
    dicom_patient_name = models.CharField(_("DICOM patient name"), max_length=324, blank=True)
    patient_birth_date = models.CharField(max_length=8, blank=True)
    patient_sex = models.CharField(max_length=16, blank=True)
    study_date = models.CharField(max_length=8, blank=True, db_index=True)
    study_time = models.CharField(max_length=16, blank=True)
    accession_number = models.CharField(max_length=16, blank=True, db_index=True)
    study_id = models.CharField(max_length=16, blank=True)
    study_description = models.CharField(max_length=64, blank=True)
    referring_physician = models.CharField(max_length=324, blank=True)
    modalities = models.CharField(max_length=64, blank=True)  # backslash-separated
    specific_character_set = models.CharField(max_length=128, blank=True)
    num_series = models.PositiveIntegerField(default=0)
    num_instances = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("study")
        verbose_name_plural = _("studies")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.study_date} {self.modalities} {self.study_description}".strip()


class Series(models.Model):
    series_uid = models.CharField(_("Series Instance UID"), max_length=64, unique=True)
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="series")
    modality = models.CharField(max_length=16, blank=True, db_index=True)
    series_number = models.IntegerField(null=True, blank=True)
    series_description = models.CharField(max_length=64, blank=True)
    body_part = models.CharField(max_length=16, blank=True)
    num_instances = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("series")
        verbose_name_plural = _("series")
        ordering = ["series_number", "id"]

    def __str__(self) -> str:
        return f"{self.modality} {self.series_number} {self.series_description}".strip()


class Instance(models.Model):
    sop_uid = models.CharField(_("SOP Instance UID"), max_length=64, unique=True)
    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="instances")
    sop_class_uid = models.CharField(max_length=64)
    instance_number = models.IntegerField(null=True, blank=True)
    transfer_syntax_uid = models.CharField(max_length=64)
    rows = models.PositiveIntegerField(null=True, blank=True)
    columns = models.PositiveIntegerField(null=True, blank=True)
    frames = models.PositiveIntegerField(default=1)
    bits_allocated = models.PositiveIntegerField(null=True, blank=True)
    photometric = models.CharField(max_length=16, blank=True)
    object_key = models.CharField(max_length=200, unique=True)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    # DICOM JSON (PS3.18 F.2) of the instance without bulk data; WADO-RS /metadata adds
    # BulkDataURIs at answer time.
    metadata: models.JSONField[Any] = models.JSONField(default=dict)
    received_via = models.CharField(max_length=10)  # upload, stow, dimse
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("instance")
        verbose_name_plural = _("instances")
        ordering = ["instance_number", "id"]

    def __str__(self) -> str:
        return self.sop_uid


class AETitle(models.Model):
    """A calling AE title allowed to send by DIMSE, and the institution it sends for."""

    ae_title = models.CharField(_("AE title"), max_length=16, unique=True)
    institution = models.ForeignKey(
        "association.Institution",
        verbose_name=_("institution"),
        on_delete=models.PROTECT,
        related_name="ae_titles",
    )
    description = models.CharField(_("description"), max_length=200, blank=True)
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("AE title")
        verbose_name_plural = _("AE titles")
        ordering = ["ae_title"]

    def __str__(self) -> str:
        return self.ae_title


class RequestStatus(models.TextChoices):
    REQUESTED = "requested", _("Requested")
    IMAGES_RECEIVED = "images_received", _("Images received")
    IN_PROGRESS = "in_progress", _("Being read")
    REPORTED = "reported", _("Reported")
    CANCELLED = "cancelled", _("Cancelled")


class ImagingRequest(models.Model):
    """A clinic asks the imaging centre to read an exam."""

    patient = models.ForeignKey(
        "records.Patient",
        verbose_name=_("resident"),
        on_delete=models.PROTECT,
        related_name="imaging_requests",
    )
    requesting_institution = models.ForeignKey(
        "association.Institution",
        verbose_name=_("requesting institution"),
        on_delete=models.PROTECT,
        related_name="+",
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("requested by"),
        on_delete=models.PROTECT,
        related_name="+",
    )
    centre = models.ForeignKey(
        "association.DiagnosticCentre",
        verbose_name=_("imaging centre"),
        on_delete=models.PROTECT,
        related_name="imaging_requests",
    )
    accession_number = models.CharField(_("accession number"), max_length=16, unique=True)
    modality = models.CharField(_("modality"), max_length=16, choices=Modality.choices)
    exam = models.CharField(_("exam"), max_length=200)
    clinical_question = models.TextField(_("clinical question"))
    priority = models.CharField(
        _("priority"), max_length=10, choices=Priority.choices, default=Priority.ROUTINE
    )
    status = models.CharField(
        _("status"), max_length=20, choices=RequestStatus.choices, default=RequestStatus.REQUESTED
    )
    share = models.ForeignKey(
        "records.PatientShare", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("radiologist"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    images_received_at = models.DateTimeField(null=True, blank=True)
    reported_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(_("requested at"), default=timezone.now, db_index=True)

    class Meta:
        verbose_name = _("imaging request")
        verbose_name_plural = _("imaging requests")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.accession_number} {self.exam}"


class ReportStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    SIGNED = "signed", _("Signed")


class Report(models.Model):
    """The current version of a request's report; every signed version is kept."""

    request = models.OneToOneField(ImagingRequest, on_delete=models.PROTECT, related_name="report")
    study = models.ForeignKey(Study, on_delete=models.PROTECT, related_name="reports")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("radiologist"),
        on_delete=models.PROTECT,
        related_name="+",
    )
    template = models.CharField(_("template"), max_length=40, blank=True)
    findings = models.TextField(_("findings"), blank=True)
    impression = models.TextField(_("impression"), blank=True)
    critical = models.BooleanField(_("critical finding"), default=False)
    mutual_recognition = models.BooleanField(_("mutually recognised (结果互认)"), default=True)
    valid_until = models.DateField(_("valid until"), null=True, blank=True)
    measurements: models.JSONField[Any] = models.JSONField(
        _("measurements"), default=list, blank=True
    )
    key_images: models.JSONField[Any] = models.JSONField(_("key images"), default=list, blank=True)
    status = models.CharField(
        max_length=10, choices=ReportStatus.choices, default=ReportStatus.DRAFT
    )
    version = models.PositiveIntegerField(default=0)  # signed versions so far
    signed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("report")
        verbose_name_plural = _("reports")

    def __str__(self) -> str:
        return f"{self.request} v{self.version}"


class ReportVersion(models.Model):
    """A signed version, frozen: amendments add a version, nothing is overwritten."""

    report = models.ForeignKey(Report, on_delete=models.PROTECT, related_name="versions")
    version = models.PositiveIntegerField()
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    findings = models.TextField()
    impression = models.TextField()
    critical = models.BooleanField()
    mutual_recognition = models.BooleanField()
    valid_until = models.DateField(null=True, blank=True)
    measurements: models.JSONField[Any] = models.JSONField(default=list)
    key_images: models.JSONField[Any] = models.JSONField(default=list)
    amendment_reason = models.CharField(max_length=300, blank=True)
    signed_at = models.DateTimeField()

    class Meta:
        ordering = ["report", "version"]
        constraints = [
            models.UniqueConstraint(fields=["report", "version"], name="report_version_unique")
        ]

    def __str__(self) -> str:
        return f"{self.report_id} v{self.version}"


class UploadStatus(models.TextChoices):
    RECEIVING = "receiving", _("Receiving")
    COMPLETE = "complete", _("Complete")
    FAILED = "failed", _("Failed")


class Upload(models.Model):
    """One file (a DICOM file or a zip) uploaded from a browser in resumable chunks."""

    id = models.UUIDField(primary_key=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    institution = models.ForeignKey(
        "association.Institution", on_delete=models.PROTECT, related_name="+"
    )
    request = models.ForeignKey(
        ImagingRequest, on_delete=models.PROTECT, null=True, blank=True, related_name="uploads"
    )
    filename = models.CharField(max_length=255)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    received = models.BigIntegerField(default=0)
    status = models.CharField(
        max_length=10, choices=UploadStatus.choices, default=UploadStatus.RECEIVING
    )
    # Per-file outcomes once ingested: [{"name", "status", "reason", "sop_uid", "study_uid"}].
    outcome: models.JSONField[Any] = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.filename} ({self.received}/{self.size})"


class InstitutionPatientId(models.Model):
    """An institution's own patient ID (DICOM PatientID) for a resident, learnt on matching."""

    institution = models.ForeignKey(
        "association.Institution", on_delete=models.PROTECT, related_name="+"
    )
    value = models.CharField(max_length=64)
    patient = models.ForeignKey(
        "records.Patient", on_delete=models.PROTECT, related_name="institution_ids"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["institution", "value"], name="institution_patient_id")
        ]

    def __str__(self) -> str:
        return f"{self.institution_id}:{self.value}"
