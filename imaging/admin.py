"""The imaging centre in the admin.

* Calling AE titles (who may send by DIMSE, for which institution): association admins
  manage their own association's, like its other screens.
* The DICOM index (studies, series, instances): superusers may look, nobody may add,
  change or delete (images arrive by upload, STOW-RS or C-STORE, under ingest's checks);
  opening a study or the list is audited, as for residents' records.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from association.admin_scope import AssociationScopedAdmin
from core.admin import AuditedReadOnlyAdmin
from imaging.models import AETitle, Instance, Series, Study


@admin.register(AETitle)
class AETitleAdmin(AssociationScopedAdmin):
    association_path = "institution__association_id"
    scoped_choices = {"institution": "association_id"}
    list_display = ("ae_title", "institution", "description", "active")
    list_filter = ("active", "institution__association")
    search_fields = ("ae_title", "institution__name", "description")
    autocomplete_fields = ("institution",)
    list_select_related = ("institution",)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the audit trail names AE titles: deactivate instead


@admin.register(Study)
class StudyAdmin(AuditedReadOnlyAdmin):
    list_display = (
        "study_date",
        "modalities",
        "study_description",
        "dicom_patient_name",
        "patient",
        "match_status",
        "source_institution",
        "num_series",
        "num_instances",
        "created_at",
    )
    list_filter = ("match_status", "source_institution__association", "source_institution")
    search_fields = ("=study_uid", "=accession_number", "=dicom_patient_id", "study_description")
    list_select_related = ("patient", "source_institution")
    date_hierarchy = "created_at"
    show_full_result_count = False

    audit_action = "study.admin"
    audit_resource = "study"

    def audit_target(self, object_id: str) -> tuple[str, int | None]:
        study = Study.objects.filter(pk=object_id).only("study_uid", "patient_id").first()
        return (study.study_uid, study.patient_id) if study else (object_id, None)


@admin.register(Series)
class SeriesAdmin(AuditedReadOnlyAdmin):
    list_display = (
        "series_uid",
        "study",
        "modality",
        "series_number",
        "series_description",
        "num_instances",
    )
    list_filter = ("modality",)
    search_fields = ("=series_uid", "=study__study_uid")
    list_select_related = ("study",)
    show_full_result_count = False


@admin.register(Instance)
class InstanceAdmin(AuditedReadOnlyAdmin):
    list_display = (
        "sop_uid",
        "series",
        "instance_number",
        "sop_class_uid",
        "transfer_syntax_uid",
        "size",
        "received_via",
        "received_at",
    )
    list_filter = ("received_via",)
    search_fields = ("=sop_uid", "=series__series_uid", "=series__study__study_uid")
    list_select_related = ("series",)
    exclude = ("metadata",)  # the whole DICOM JSON header: long, and shown by the viewer
    date_hierarchy = "received_at"
    show_full_result_count = False
