"""The consult JSON API. Thin: reads via ``consult.selectors``, writes via ``consult.services``.

``AccessDenied`` and ``NotFound`` become 403 and 404 in ``core.api.exception_handler``; a
refused change (``InvalidRecord``) is a 400 with the service's message as ``detail``, in
the language the client asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from consult import serializers as s
from consult import services
from consult.selectors import (
    consult_detail_for_user,
    consult_list_for_user,
    slots_for_expert,
)
from core.api import acting_user
from records.services import InvalidRecord


def _invalid(exc: InvalidRecord) -> Response:
    return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)


def _detail(request: Request, consult_id: int, *, code: int = 200) -> Response:
    detail = consult_detail_for_user(actor=acting_user(request), consult_id=consult_id)
    return Response(s.ConsultDetailSerializer(detail).data, status=code)


def _valid(serializer_class: type[Any], data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    validated: dict[str, Any] = serializer.validated_data
    return validated


class ConsultListApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("scope", str, enum=["mine", "review", "invited", "all"]),
            OpenApiParameter("status", str, description="a status, or 'open'"),
        ],
        responses=s.ConsultSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        query = _valid(s.ListQuerySerializer, request.query_params)
        try:
            consults = consult_list_for_user(
                actor=acting_user(request), scope=query["scope"], status=query["status"] or None
            )
        except InvalidRecord as exc:
            return _invalid(exc)
        return Response(s.ConsultSerializer(consults, many=True).data)

    @extend_schema(
        request=s.ConsultCreateSerializer,
        responses={201: s.ConsultDetailSerializer},
        description="Request a consultation (files are added in the web page or the room).",
    )
    def post(self, request: Request) -> Response:
        data = _valid(s.ConsultCreateSerializer, request.data)
        try:
            consult = services.consult_request(actor=acting_user(request), **data)
        except InvalidRecord as exc:
            return _invalid(exc)
        return _detail(request, consult.pk, code=status.HTTP_201_CREATED)


def _change(
    request: Request,
    consult_id: int,
    serializer: type[Any],
    service: Callable[..., Any],
) -> Response:
    """Validate the body, run the service as the caller, answer with the consult."""
    data = _valid(serializer, request.data)
    try:
        service(actor=acting_user(request), consult_id=consult_id, **data)
    except InvalidRecord as exc:
        return _invalid(exc)
    return _detail(request, consult_id)


class ConsultDetailApi(APIView):
    @extend_schema(responses=s.ConsultDetailSerializer)
    def get(self, request: Request, consult_id: int) -> Response:
        return _detail(request, consult_id)


class ConsultRespondApi(APIView):
    @extend_schema(request=s.RespondSerializer, responses=s.ConsultDetailSerializer)
    def post(self, request: Request, consult_id: int) -> Response:
        return _change(request, consult_id, s.RespondSerializer, services.consult_respond)


class ConsultReviewApi(APIView):
    @extend_schema(request=s.ReviewSerializer, responses=s.ConsultDetailSerializer)
    def post(self, request: Request, consult_id: int) -> Response:
        return _change(request, consult_id, s.ReviewSerializer, services.consult_review)


class ConsultBookApi(APIView):
    @extend_schema(request=s.BookSerializer, responses=s.ConsultDetailSerializer)
    def post(self, request: Request, consult_id: int) -> Response:
        return _change(request, consult_id, s.BookSerializer, services.consult_book)


class ConsultCancelApi(APIView):
    @extend_schema(request=s.CancelSerializer, responses=s.ConsultDetailSerializer)
    def post(self, request: Request, consult_id: int) -> Response:
        return _change(request, consult_id, s.CancelSerializer, services.consult_cancel)


class SlotListApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("expert", int, description="the expert (default: yourself)"),
            OpenApiParameter("include_booked", bool),
        ],
        responses=s.SlotSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        query = _valid(s.SlotQuerySerializer, request.query_params)
        actor = acting_user(request)
        slots = slots_for_expert(
            actor=actor,
            expert_id=query["expert"] or actor.pk,
            include_booked=query["include_booked"],
        )
        return Response(s.SlotSerializer(slots[:500], many=True).data)

    @extend_schema(request=s.SlotCreateSerializer, responses={201: s.SlotSerializer})
    def post(self, request: Request) -> Response:
        data = _valid(s.SlotCreateSerializer, request.data)
        try:
            slot = services.slot_create(actor=acting_user(request), **data)
        except InvalidRecord as exc:
            return _invalid(exc)
        return Response(s.SlotSerializer(slot).data, status=status.HTTP_201_CREATED)


class SlotDetailApi(APIView):
    @extend_schema(responses={204: None})
    def delete(self, request: Request, slot_id: int) -> Response:
        try:
            services.slot_delete(actor=acting_user(request), slot_id=slot_id)
        except InvalidRecord as exc:
            return _invalid(exc)
        return Response(status=status.HTTP_204_NO_CONTENT)
