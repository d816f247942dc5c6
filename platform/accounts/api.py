"""Who am I, and tokens for machine clients."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView

from association.models import Membership
from association.selectors import actor_scope


class MembershipSerializer(serializers.ModelSerializer[Membership]):
    institution = serializers.StringRelatedField()  # type: ignore[var-annotated]
    centre = serializers.StringRelatedField()  # type: ignore[var-annotated]
    role_display = serializers.CharField(source="get_role_display")

    class Meta:
        model = Membership
        fields = [
            "id",
            "role",
            "role_display",
            "institution",
            "institution_id",
            "centre",
            "centre_id",
        ]


class MeSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    username = serializers.CharField()
    display_name = serializers.CharField()
    preferred_language = serializers.CharField()
    memberships = MembershipSerializer(many=True)


class MeApi(APIView):
    @extend_schema(responses=MeSerializer)
    def get(self, request: Request) -> Response:
        user = request.user
        scope = actor_scope(user)
        return Response(
            MeSerializer(
                {
                    "id": user.pk,
                    "username": user.get_username(),
                    "display_name": str(user),
                    "preferred_language": getattr(user, "preferred_language", ""),
                    "memberships": scope.memberships,
                }
            ).data
        )


class LoginThrottle(AnonRateThrottle):
    rate = "20/minute"


class TokenApi(ObtainAuthToken):
    """Exchange a username and password for a bearer token (``Authorization: Bearer …``)."""

    permission_classes = [AllowAny]
    throttle_classes = [LoginThrottle]
