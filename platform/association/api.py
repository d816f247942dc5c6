"""The directory of the caller's associations: institutions and centres (no patient data)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from association.models import DiagnosticCentre, Institution
from association.selectors import actor_scope


class InstitutionSerializer(serializers.ModelSerializer[Institution]):
    class Meta:
        model = Institution
        fields = ["id", "code", "name", "level", "association", "parent"]


class CentreSerializer(serializers.ModelSerializer[DiagnosticCentre]):
    class Meta:
        model = DiagnosticCentre
        fields = ["id", "code", "name", "kind", "host", "association"]


class InstitutionListApi(APIView):
    @extend_schema(responses=InstitutionSerializer(many=True))
    def get(self, request: Request) -> Response:
        scope = actor_scope(request.user)
        qs = Institution.objects.filter(association_id__in=scope.association_ids, active=True)
        return Response(InstitutionSerializer(qs, many=True).data)


class CentreListApi(APIView):
    @extend_schema(responses=CentreSerializer(many=True))
    def get(self, request: Request) -> Response:
        scope = actor_scope(request.user)
        qs = DiagnosticCentre.objects.filter(association_id__in=scope.association_ids)
        return Response(CentreSerializer(qs, many=True).data)
