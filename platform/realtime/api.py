"""JSON API for the user's own notification inbox (the socket's twin; docs/protocols.md)."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import acting_user
from realtime import selectors, services
from realtime.models import Severity
from realtime.schemas import MAX_ACK_IDS, MAX_ID

MAX_PAGE = 100


class NotificationSerializer(serializers.Serializer[Any]):
    """Documents ``Notification.as_message()``, the shape shared with the socket."""

    id = serializers.IntegerField()
    kind = serializers.CharField(help_text=_("What happened, e.g. consult.requested."))
    severity = serializers.ChoiceField(choices=Severity.choices)
    title = serializers.CharField()
    body = serializers.CharField(allow_blank=True)
    link = serializers.CharField(allow_blank=True, help_text=_("Where to open it in the web UI."))
    patient_id = serializers.IntegerField(allow_null=True)
    payload = serializers.JSONField()
    created_at = serializers.DateTimeField()
    read = serializers.BooleanField()


class NotificationListQuerySerializer(serializers.Serializer[Any]):
    after = serializers.IntegerField(
        min_value=0,
        max_value=MAX_ID,
        required=False,
        default=0,
        help_text=_("Only notifications with a greater id."),
    )
    unread = serializers.BooleanField(
        required=False, default=False, help_text=_("Only unread notifications.")
    )
    limit = serializers.IntegerField(min_value=1, max_value=MAX_PAGE, required=False, default=50)


class NotificationPageSerializer(serializers.Serializer[Any]):
    unread = serializers.IntegerField(
        help_text=_("How many of the user's notifications are unread.")
    )
    more = serializers.BooleanField(help_text=_("Older matching notifications were left out."))
    results = NotificationSerializer(many=True, help_text=_("Newest first."))


class NotificationReadSerializer(serializers.Serializer[Any]):
    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_ID),
        allow_empty=False,
        max_length=MAX_ACK_IDS,
        help_text=_("Ids of the user's own notifications; other ids are ignored."),
    )


class NotificationReadResultSerializer(serializers.Serializer[Any]):
    marked = serializers.IntegerField(help_text=_("How many were unread and are now read."))
    unread = serializers.IntegerField()


class NotificationListApi(APIView):
    @extend_schema(
        tags=["notifications"],
        operation_id="notifications_list",
        summary="The user's own notifications",
        parameters=[NotificationListQuerySerializer],
        responses=NotificationPageSerializer,
    )
    def get(self, request: Request) -> Response:
        user = acting_user(request)
        query = NotificationListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        limit: int = query.validated_data["limit"]
        found = selectors.notification_list_for_user(
            user=user,
            after_id=query.validated_data["after"],
            unread_only=query.validated_data["unread"],
            limit=limit + 1,
        )
        return Response(
            {
                "unread": selectors.unread_count(user=user),
                "more": len(found) > limit,
                "results": [n.as_message() for n in found[:limit]],
            }
        )


class NotificationReadApi(APIView):
    @extend_schema(
        tags=["notifications"],
        operation_id="notifications_read",
        summary="Mark the user's own notifications read",
        request=NotificationReadSerializer,
        responses=NotificationReadResultSerializer,
    )
    def post(self, request: Request) -> Response:
        user = acting_user(request)
        body = NotificationReadSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        marked = services.notification_mark_read(
            user=user, notification_ids=sorted(set(body.validated_data["ids"]))
        )
        return Response({"marked": marked, "unread": selectors.unread_count(user=user)})
