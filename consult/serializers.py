"""Typed shapes of the consult API: what it answers, and what it accepts."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from rest_framework import serializers

from consult.models import (
    Attachment,
    Consult,
    ConsultEvent,
    ConsultExpert,
    Mode,
    Priority,
    Slot,
    TargetKind,
)
from consult.selectors import LIST_SCOPES, ConsultDetail
from consult.sla import SlaClock
from consult.workflow_common import (
    MAX_HISTORY,
    MAX_LAB_REFERENCE,
    MAX_LAB_REFERENCES,
    MAX_MDT,
    MAX_NOTE,
    MAX_QUESTION,
    MAX_REASON,
    MAX_STUDIES,
)

# --- Answers -------------------------------------------------------------------------------------


class RefSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField(source="pk")
    name = serializers.CharField(source="__str__")


class PatientRefSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField(source="pk")
    name = serializers.CharField()
    resident_id = serializers.CharField(source="masked_resident_id")
    sex = serializers.CharField()
    age = serializers.IntegerField()


class ConsultSerializer(serializers.ModelSerializer[Consult]):
    patient = PatientRefSerializer(read_only=True)
    requesting_institution = RefSerializer(read_only=True)
    requested_by = RefSerializer(read_only=True)
    target_institution = RefSerializer(read_only=True, allow_null=True)
    target_specialty = RefSerializer(read_only=True, allow_null=True)
    url = serializers.SerializerMethodField()

    class Meta:
        model = Consult
        fields = [
            "id",
            "number",
            "status",
            "priority",
            "mode",
            "target_kind",
            "patient",
            "requesting_institution",
            "requested_by",
            "target_institution",
            "target_specialty",
            "question",
            "history",
            "recording_consent",
            "respond_due_at",
            "complete_due_at",
            "scheduled_start",
            "scheduled_end",
            "review_note",
            "closed_reason",
            "created_at",
            "url",
        ]
        read_only_fields = fields

    def get_url(self, obj: Consult) -> str:
        return reverse("consult:detail", args=[obj.pk])


class ExpertSerializer(serializers.ModelSerializer[ConsultExpert]):
    user = RefSerializer(read_only=True)
    institution = RefSerializer(read_only=True)

    class Meta:
        model = ConsultExpert
        fields = ["user", "institution", "status", "lead", "decline_reason", "responded_at"]
        read_only_fields = fields


class AttachmentSerializer(serializers.ModelSerializer[Attachment]):
    study_uid = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()

    class Meta:
        model = Attachment
        fields = [
            "id",
            "kind",
            "title",
            "content_type",
            "size",
            "study_uid",
            "lab_reference",
            "created_at",
            "url",
        ]
        read_only_fields = fields

    def get_study_uid(self, obj: Attachment) -> str | None:
        return obj.study.study_uid if obj.study_id and obj.study else None

    def get_url(self, obj: Attachment) -> str | None:
        if not obj.object_key:
            return None
        return reverse("consult:attachment", args=[obj.consult_id, obj.pk])


class EventSerializer(serializers.ModelSerializer[ConsultEvent]):
    actor = RefSerializer(read_only=True, allow_null=True)

    class Meta:
        model = ConsultEvent
        fields = ["at", "kind", "actor", "detail"]
        read_only_fields = fields


class ClockSerializer(serializers.Serializer[SlaClock]):
    name = serializers.CharField()
    due_at = serializers.DateTimeField(allow_null=True)
    running = serializers.BooleanField()
    overdue = serializers.BooleanField()
    minutes_left = serializers.IntegerField()


class PermissionsSerializer(serializers.Serializer[ConsultDetail]):
    review = serializers.BooleanField(source="can_review")
    respond = serializers.BooleanField(source="can_respond")
    book = serializers.BooleanField(source="can_book")
    cancel = serializers.BooleanField(source="can_cancel")
    sign = serializers.BooleanField(source="can_sign")
    join_room = serializers.BooleanField(source="can_join_room")
    resubmit = serializers.BooleanField(source="can_resubmit")
    no_show = serializers.BooleanField(source="can_no_show")
    attach = serializers.BooleanField(source="can_attach")


class ConsultDetailSerializer(serializers.Serializer[ConsultDetail]):
    consult = ConsultSerializer()
    role = serializers.CharField(allow_null=True)
    experts = ExpertSerializer(many=True)
    attachments = AttachmentSerializer(many=True)
    events = EventSerializer(many=True)
    respond_clock = ClockSerializer()
    opinion_clock = ClockSerializer()
    may = PermissionsSerializer(source="*")


class SlotSerializer(serializers.ModelSerializer[Slot]):
    booked = serializers.SerializerMethodField()
    consult = serializers.SerializerMethodField()

    class Meta:
        model = Slot
        fields = ["id", "expert", "start", "end", "booked", "consult"]
        read_only_fields = fields

    def get_booked(self, obj: Slot) -> bool:
        return obj.consult_id is not None

    def get_consult(self, obj: Slot) -> int | None:
        return obj.consult_id


# --- Requests ------------------------------------------------------------------------------------


class ListQuerySerializer(serializers.Serializer[Any]):
    scope = serializers.ChoiceField(choices=LIST_SCOPES, required=False, default="all")
    status = serializers.CharField(required=False, max_length=20, default=None, allow_null=True)


class ConsultCreateSerializer(serializers.Serializer[Any]):
    patient_id = serializers.IntegerField(min_value=1)
    question = serializers.CharField(max_length=MAX_QUESTION)
    history = serializers.CharField(
        max_length=MAX_HISTORY, required=False, allow_blank=True, default=""
    )
    priority = serializers.ChoiceField(choices=Priority.choices)
    mode = serializers.ChoiceField(choices=Mode.choices)
    target_kind = serializers.ChoiceField(choices=TargetKind.choices)
    target_institution_id = serializers.IntegerField(
        min_value=1, required=False, allow_null=True, default=None
    )
    target_specialty_id = serializers.IntegerField(
        min_value=1, required=False, allow_null=True, default=None
    )
    expert_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        required=False,
        default=list,
        max_length=MAX_MDT,
    )
    recording_consent = serializers.BooleanField(required=False, default=False)
    study_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        required=False,
        default=list,
        max_length=MAX_STUDIES,
    )
    lab_references = serializers.ListField(
        child=serializers.CharField(max_length=MAX_LAB_REFERENCE),
        required=False,
        default=list,
        max_length=MAX_LAB_REFERENCES,
    )
    consent_given = serializers.BooleanField(
        required=False,
        default=False,
        help_text="The resident consents to sharing the record with the experts (recorded "
        "with the request when no consent covers them yet).",
    )


class RespondSerializer(serializers.Serializer[Any]):
    accept = serializers.BooleanField()
    reason = serializers.CharField(
        max_length=MAX_REASON, required=False, allow_blank=True, default=""
    )


class ReviewSerializer(serializers.Serializer[Any]):
    decision = serializers.ChoiceField(choices=["route", "return"])
    note = serializers.CharField(max_length=MAX_NOTE, required=False, allow_blank=True, default="")
    expert_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        required=False,
        default=list,
        max_length=MAX_MDT,
    )
    target_institution_id = serializers.IntegerField(
        min_value=1, required=False, allow_null=True, default=None
    )


class BookSerializer(serializers.Serializer[Any]):
    slot_id = serializers.IntegerField(min_value=1)


class CancelSerializer(serializers.Serializer[Any]):
    reason = serializers.CharField(max_length=MAX_REASON)


class SlotCreateSerializer(serializers.Serializer[Any]):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()


class SlotQuerySerializer(serializers.Serializer[Any]):
    expert = serializers.IntegerField(min_value=1, required=False, default=None, allow_null=True)
    include_booked = serializers.BooleanField(required=False, default=False)
