"""The audit trail for auditors, as JSON (the same search as the web page)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.models import AuditEvent, Outcome
from audit.selectors import AuditFilters, audit_event_search
from core.api import acting_user


class AuditQuerySerializer(serializers.Serializer[Any]):
    username = serializers.CharField(max_length=150, required=False, default="")
    action = serializers.CharField(max_length=60, required=False, default="")
    outcome = serializers.ChoiceField(choices=Outcome.choices, required=False, default="")
    patient = serializers.IntegerField(min_value=1, required=False, default=None)
    since = serializers.DateTimeField(required=False, default=None)
    until = serializers.DateTimeField(required=False, default=None)


class AuditEventSerializer(serializers.ModelSerializer[AuditEvent]):
    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "at",
            "actor",
            "actor_username",
            "action",
            "resource_type",
            "resource_id",
            "patient",
            "outcome",
            "reason",
            "ip",
            "user_agent",
            "channel",
            "request_id",
            "detail",
        ]


class AuditEventListApi(APIView):
    """Auditors only; everyone else gets 403, and the refusal is itself audited."""

    @extend_schema(parameters=[AuditQuerySerializer], responses=AuditEventSerializer(many=True))
    def get(self, request: Request) -> Response:
        query = AuditQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        events = audit_event_search(
            actor=acting_user(request),
            filters=AuditFilters(
                username=data["username"],
                action=data["action"],
                outcome=data["outcome"],
                patient_id=data["patient"],
                since=data["since"],
                until=data["until"],
            ),
        )
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(events, request, view=self)
        return paginator.get_paginated_response(AuditEventSerializer(page, many=True).data)
