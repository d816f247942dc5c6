"""JSON API for residents' records. Thin: reads via selectors, writes via services."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from association.models import Association, Institution
from core.api import acting_user
from records import selectors, services, sharing
from records.models import Consent, ConsentScope, Patient, Sex, TimelineEvent


class InstitutionRefSerializer(serializers.Serializer[Institution]):
    id = serializers.IntegerField()
    name = serializers.CharField()
    level = serializers.CharField()


class PatientSerializer(serializers.ModelSerializer[Patient]):
    resident_id = serializers.CharField(source="masked_resident_id", read_only=True)
    age = serializers.IntegerField(read_only=True)
    home_institution = InstitutionRefSerializer(read_only=True)
    family_doctor = serializers.SerializerMethodField()

    class Meta:
        model = Patient
        fields = [
            "id",
            "resident_id",
            "name",
            "sex",
            "birth_date",
            "age",
            "phone",
            "address",
            "home_institution",
            "family_doctor",
            "registered_at",
            "updated_at",
        ]

    def get_family_doctor(self, obj: Patient) -> str | None:
        return str(obj.family_doctor) if obj.family_doctor_id else None


class PatientRegisterSerializer(serializers.Serializer[Any]):
    resident_id = serializers.CharField(max_length=30)
    name = serializers.CharField(max_length=100)
    sex = serializers.ChoiceField(choices=Sex.choices)
    birth_date = serializers.DateField()
    phone = serializers.RegexField(
        r"^[0-9+\- ]{0,20}$", required=False, allow_blank=True, default=""
    )
    address = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")
    home_institution = serializers.PrimaryKeyRelatedField(
        queryset=Institution.objects.filter(active=True),
        required=False,
        allow_null=True,
        default=None,
    )


class PatientUpdateSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=100, required=False)
    phone = serializers.RegexField(r"^[0-9+\- ]{0,20}$", required=False, allow_blank=True)
    address = serializers.CharField(max_length=300, required=False, allow_blank=True)


class ConsentSerializer(serializers.ModelSerializer[Consent]):
    grantee = serializers.SerializerMethodField()
    active = serializers.BooleanField(source="is_active", read_only=True)

    class Meta:
        model = Consent
        fields = [
            "id",
            "scope",
            "grantee",
            "grantee_association",
            "grantee_institution",
            "valid_from",
            "valid_until",
            "recorded_at",
            "note",
            "withdrawn_at",
            "withdrawal_reason",
            "active",
        ]

    def get_grantee(self, obj: Consent) -> str:
        return str(obj.grantee)


class ConsentCreateSerializer(serializers.Serializer[Any]):
    scope = serializers.ChoiceField(choices=ConsentScope.choices)
    grantee_association = serializers.PrimaryKeyRelatedField(
        queryset=Association.objects.all(), required=False, allow_null=True, default=None
    )
    grantee_institution = serializers.PrimaryKeyRelatedField(
        queryset=Institution.objects.all(), required=False, allow_null=True, default=None
    )
    valid_until = serializers.DateTimeField(required=False, allow_null=True, default=None)
    note = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")


class ConsentWithdrawSerializer(serializers.Serializer[Any]):
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")


class TimelineEventSerializer(serializers.ModelSerializer[TimelineEvent]):
    title = serializers.CharField(source="headline", read_only=True)
    institution = serializers.StringRelatedField()  # type: ignore[var-annotated]

    class Meta:
        model = TimelineEvent
        fields = ["id", "at", "kind", "title", "summary", "institution", "link", "data"]


def _invalid(exc: services.InvalidRecord) -> Response:
    return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)


class PatientListApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("q", str, description="name, phone prefix or full resident ID"),
            OpenApiParameter("resident_id", str, description="exact resident ID"),
        ],
        responses=PatientSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        query = str(request.query_params.get("q", ""))[:100]
        number = str(request.query_params.get("resident_id", ""))[:30]
        found = selectors.patient_search_for_user(
            actor=acting_user(request), query=query, resident_id=number
        )
        return Response(PatientSerializer(found, many=True).data)

    @extend_schema(
        request=PatientRegisterSerializer,
        responses={201: PatientSerializer, 200: PatientSerializer},
        description="Find the resident by resident ID or register them at your institution.",
    )
    def post(self, request: Request) -> Response:
        data = PatientRegisterSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            result = services.patient_find_or_register(
                actor=acting_user(request), **data.validated_data
            )
        except services.InvalidRecord as exc:
            return _invalid(exc)
        except services.DuplicateResident as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(
            PatientSerializer(result.patient).data,
            status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
        )


class PatientDetailApi(APIView):
    @extend_schema(responses=PatientSerializer)
    def get(self, request: Request, patient_id: int) -> Response:
        patient = selectors.patient_get_for_user(actor=acting_user(request), patient_id=patient_id)
        return Response(PatientSerializer(patient).data)

    @extend_schema(request=PatientUpdateSerializer, responses=PatientSerializer)
    def patch(self, request: Request, patient_id: int) -> Response:
        data = PatientUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if not data.validated_data:
            return Response({"detail": _("Nothing to change.")}, status=status.HTTP_400_BAD_REQUEST)
        patient = services.patient_update(
            actor=acting_user(request), patient_id=patient_id, **data.validated_data
        )
        return Response(PatientSerializer(patient).data)


class ConsentListApi(APIView):
    @extend_schema(responses=ConsentSerializer(many=True))
    def get(self, request: Request, patient_id: int) -> Response:
        consents = selectors.consent_list_for_patient(
            actor=acting_user(request), patient_id=patient_id
        )
        return Response(ConsentSerializer(consents, many=True).data)

    @extend_schema(request=ConsentCreateSerializer, responses={201: ConsentSerializer})
    def post(self, request: Request, patient_id: int) -> Response:
        data = ConsentCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            consent = sharing.consent_record(
                actor=acting_user(request), patient_id=patient_id, **data.validated_data
            )
        except services.InvalidRecord as exc:
            return _invalid(exc)
        return Response(ConsentSerializer(consent).data, status=status.HTTP_201_CREATED)


class ConsentWithdrawApi(APIView):
    @extend_schema(request=ConsentWithdrawSerializer, responses=ConsentSerializer)
    def post(self, request: Request, consent_id: int) -> Response:
        data = ConsentWithdrawSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            consent = sharing.consent_withdraw(
                actor=acting_user(request),
                consent_id=consent_id,
                reason=data.validated_data["reason"],
            )
        except services.InvalidRecord as exc:
            return _invalid(exc)
        return Response(ConsentSerializer(consent).data)


class TimelineApi(APIView):
    @extend_schema(responses=TimelineEventSerializer(many=True))
    def get(self, request: Request, patient_id: int) -> Response:
        events = selectors.timeline_for_patient(actor=acting_user(request), patient_id=patient_id)
        return Response(TimelineEventSerializer(events, many=True).data)
