"""The lab JSON API, for browsers' scripts and for real clients (an analyser middleware).

Thin: every input is validated by a serializer of ``lab.serializers``; reads go through
``lab.access`` (and ``lab.ordering.order_detail_for_user``), writes through the services
of the workflow. ``AccessDenied`` and ``NotFound`` become 403 and 404 in
``core.api.exception_handler``; a refused change (``InvalidRecord``, already audited by
the service) is a 400 with the service's message as ``detail``, in the caller's language.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers as drf
from rest_framework import status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import User
from association.models import CentreKind, DiagnosticCentre
from association.selectors import actor_scope
from audit.models import Outcome
from audit.services import audit_record
from core.api import acting_user
from lab import critical, importing, ordering, receipt, results, shipping
from lab import serializers as s
from lab.access import ORDER_RELATED, lab_centre_ids, orders_visible_to
from lab.catalogue import catalogue_for_centre
from lab.critical_common import ALERT_RELATED
from lab.critical_selectors import critical_list_for_user
from lab.models import (
    OPEN_ORDER_STATUSES,
    AlertStatus,
    CriticalAlert,
    ImportBatch,
    ItemStatus,
    LabOrder,
    OrderItem,
    Result,
    Specimen,
)
from lab.results import ResultsRefused
from records.selectors import AccessDenied, NotFound
from records.services import InvalidRecord

SPECIMEN_RELATED = ("box", "collected_by")


class LabApiView(APIView):
    """A lab API view: a refused change is a 400 with the service's message."""

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, InvalidRecord):
            body: dict[str, Any] = {"detail": str(exc)}
            if isinstance(exc, ResultsRefused) and exc.errors:
                body["errors"] = {str(item): str(message) for item, message in exc.errors.items()}
            return Response(body, status=status.HTTP_400_BAD_REQUEST)
        return super().handle_exception(exc)


def _valid(serializer_class: type[drf.Serializer[Any]], data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    validated: dict[str, Any] = serializer.validated_data
    return validated


def _audit_list(actor: User, action: str, resource: str, count: int, **query: Any) -> None:
    audit_record(
        actor=actor,
        action=action,
        outcome=Outcome.ALLOWED,
        resource_type=resource,
        detail={"count": count} | {k: v for k, v in query.items() if v not in (None, "")},
    )


# --- Catalogue -----------------------------------------------------------------------------------


def _catalogue_centre(actor: User, centre_id: int) -> DiagnosticCentre:
    """A lab centre of one of the actor's associations (the catalogue is no patient data)."""
    centre = DiagnosticCentre.objects.filter(pk=centre_id, kind=CentreKind.LAB).first()
    scope = actor_scope(actor)
    if centre is not None and centre.association_id in scope.association_ids:
        return centre
    audit_record(
        actor=actor,
        action="lab.catalogue.view",
        outcome=Outcome.DENIED if centre else Outcome.FAILED,
        resource_type="lab_centre",
        resource_id=centre_id,
        reason="not a member of the centre's association" if centre else "no such lab centre",
    )
    if centre is None:
        raise NotFound(_("No such lab centre."))
    raise AccessDenied(_("This lab centre serves another association."))


class CatalogueApi(LabApiView):
    @extend_schema(
        parameters=[s.CatalogueQuerySerializer],
        responses=s.CatalogueSerializer,
        description="The centre's active tests and panels, names in the request's language.",
    )
    def get(self, request: Request) -> Response:
        query = _valid(s.CatalogueQuerySerializer, request.query_params)
        centre = _catalogue_centre(acting_user(request), query["centre"])
        return Response(s.CatalogueSerializer(catalogue_for_centre(centre.pk)).data)


# --- Orders --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderView:
    """What the API shows of one order to one caller."""

    order: LabOrder
    role: str
    items: list[OrderItem]
    specimens: list[Specimen]
    report: Any
    alerts: list[CriticalAlert]
    can_cancel: bool
    can_collect: bool
    results_shown: frozenset[int]


def order_view_for_user(*, actor: User, order_id: int) -> OrderView:
    """The order's detail as the order page has it (read audited there); results only when
    the caller may see them: lab staff always, others once the report is signed."""
    detail = ordering.order_detail_for_user(actor=actor, order_id=order_id)
    items = list(detail.items)
    report = detail.report
    if detail.is_lab:
        shown = frozenset(item.pk for item in items)
    elif report is not None:
        shown = frozenset(item.pk for item in items if item.status == ItemStatus.VALIDATED)
    else:
        shown = frozenset()
    return OrderView(
        order=detail.order,
        role="lab" if detail.is_lab else "clinic" if detail.is_clinic else "reader",
        items=items,
        specimens=list(detail.specimens),
        report=report,
        alerts=list(detail.alerts),
        can_cancel=bool(detail.can_cancel),
        can_collect=bool(detail.can_collect),
        results_shown=shown,
    )


def _detail(request: Request, order_id: int, *, code: int = status.HTTP_200_OK) -> Response:
    view = order_view_for_user(actor=acting_user(request), order_id=order_id)
    data = s.LabOrderDetailSerializer(view, context={"results_shown": view.results_shown}).data
    return Response(data, status=code)


def _orders(actor: User, query: dict[str, Any]) -> QuerySet[LabOrder]:
    qs = orders_visible_to(actor_scope(actor)).select_related(*ORDER_RELATED)
    if query["status"] == "open":
        qs = qs.filter(status__in=OPEN_ORDER_STATUSES)
    elif query["status"]:
        qs = qs.filter(status=query["status"])
    if query["patient"]:
        qs = qs.filter(patient_id=query["patient"])
    if query["centre"]:
        qs = qs.filter(centre_id=query["centre"])
    return qs.order_by("-created_at", "-id")


class OrderListApi(LabApiView):
    @extend_schema(
        parameters=[s.OrderListQuerySerializer],
        responses=s.LabOrderSerializer(many=True),
        description="Orders you may see: your clinic's, your lab centre's, or of residents "
        "whose record you may read; newest first.",
    )
    def get(self, request: Request) -> Response:
        query = _valid(s.OrderListQuerySerializer, request.query_params)
        actor = acting_user(request)
        start = query["offset"]
        orders = list(_orders(actor, query)[start : start + query["limit"]])
        _audit_list(
            actor,
            "lab.order.list",
            "lab_order",
            len(orders),
            status=query["status"],
            patient=query["patient"],
            centre=query["centre"],
        )
        return Response(s.LabOrderSerializer(orders, many=True).data)

    @extend_schema(
        request=s.LabOrderCreateSerializer,
        responses={201: s.LabOrderDetailSerializer},
        description="Order tests of a lab centre's catalogue for a resident.",
    )
    def post(self, request: Request) -> Response:
        data = _valid(s.LabOrderCreateSerializer, request.data)
        actor = acting_user(request)
        centre = DiagnosticCentre.objects.filter(pk=data["centre_id"], kind=CentreKind.LAB).first()
        if centre is None:
            raise drf.ValidationError({"centre_id": [_("No such lab centre.")]})
        order = ordering.order_create(
            actor=actor,
            patient_id=data["patient_id"],
            centre=centre,
            test_ids=data["test_ids"],
            panel_ids=data["panel_ids"],
            priority=data["priority"],
            clinical_note=data["clinical_note"],
            record_consent=data["record_consent"],
        )
        return _detail(request, order.pk, code=status.HTTP_201_CREATED)


class OrderDetailApi(LabApiView):
    @extend_schema(responses=s.LabOrderDetailSerializer)
    def get(self, request: Request, order_id: int) -> Response:
        return _detail(request, order_id)


class OrderCancelApi(LabApiView):
    @extend_schema(request=s.OrderCancelSerializer, responses=s.LabOrderDetailSerializer)
    def post(self, request: Request, order_id: int) -> Response:
        data = _valid(s.OrderCancelSerializer, request.data)
        ordering.order_cancel(actor=acting_user(request), order_id=order_id, reason=data["reason"])
        return _detail(request, order_id)


class OrderCollectApi(LabApiView):
    @extend_schema(
        request=s.OrderCollectSerializer,
        responses=s.LabOrderDetailSerializer,
        description="Record the collection: one labelled specimen per specimen type and "
        "container; the answer lists their barcodes.",
    )
    def post(self, request: Request, order_id: int) -> Response:
        data = _valid(s.OrderCollectSerializer, request.data)
        ordering.specimens_collect(
            actor=acting_user(request), order_id=order_id, collected_at=data["collected_at"]
        )
        return _detail(request, order_id)


# --- Receipt at the lab --------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    kind: str
    box: Any = None
    specimen: Specimen | None = None
    unshipped: bool = False
    warnings: tuple[str, ...] = ()


def _specimen(specimen: Specimen) -> Specimen:
    return Specimen.objects.select_related(*SPECIMEN_RELATED).get(pk=specimen.pk)


class ReceiveApi(LabApiView):
    @extend_schema(
        request=s.LabReceiveSerializer,
        responses=s.ReceiveAnswerSerializer,
        description="Scan at the lab: a box number (BX...) receives the box; a specimen "
        "barcode receives the specimen (flagged when it was never shipped).",
    )
    def post(self, request: Request) -> Response:
        data = _valid(s.LabReceiveSerializer, request.data)
        actor = acting_user(request)
        scanned = data["barcode"].strip()
        if shipping.is_box_number(scanned):
            box = receipt.box_receive(
                actor=actor, scanned_number=scanned.upper(), condition_note=data["condition_note"]
            )
            answer = Received(kind="box", box=box)
        else:
            outcome = receipt.specimen_receive(actor=actor, barcode=scanned)
            answer = Received(
                kind="specimen",
                specimen=_specimen(outcome.specimen),
                unshipped=bool(outcome.unshipped),
                warnings=tuple(outcome.warnings),
            )
        return Response(s.ReceiveAnswerSerializer(answer).data)


class SpecimenRejectApi(LabApiView):
    @extend_schema(
        request=s.SpecimenRejectSerializer,
        responses=s.LabSpecimenSerializer,
        description="Reject a specimen at receipt; the ordering clinic is told why.",
    )
    def post(self, request: Request) -> Response:
        data = _valid(s.SpecimenRejectSerializer, request.data)
        specimen = receipt.specimen_reject(
            actor=acting_user(request),
            barcode=data["barcode"].strip(),
            reason=data["reason"],
            note=data["note"],
        )
        return Response(s.LabSpecimenSerializer(_specimen(specimen)).data)


# --- Results and analyser imports ----------------------------------------------------------------


@dataclass(frozen=True)
class Saved:
    result: Result
    alert: CriticalAlert | None


class ResultSaveApi(LabApiView):
    @extend_schema(
        request=s.LabResultSaveSerializer,
        responses=s.LabResultSavedSerializer,
        description="Enter (or correct) the result of one ordered test. A critical value "
        "raises an alert to the ordering clinic at once.",
    )
    def post(self, request: Request) -> Response:
        data = _valid(s.LabResultSaveSerializer, request.data)
        result = results.result_save(
            actor=acting_user(request),
            item_id=data["item"],
            value=data["value"],
            comment=data["comment"],
            reason=data["reason"],
        )
        result = Result.objects.select_related("item__test").get(pk=result.pk)
        alert = (
            CriticalAlert.objects.filter(result=result, status=AlertStatus.OPEN)
            .select_related(*ALERT_RELATED)
            .first()
        )
        return Response(s.LabResultSavedSerializer(Saved(result=result, alert=alert)).data)


def _import_centre(actor: User, centre_id: int | None) -> int:
    """The centre named, or the only lab centre the actor works in."""
    if centre_id is not None:
        return centre_id
    centres = sorted(lab_centre_ids(actor_scope(actor)))
    if len(centres) == 1:
        return centres[0]
    if centres:
        raise drf.ValidationError({"centre": [_("You work at several lab centres: name one.")]})
    audit_record(
        actor=actor,
        action="lab.import.preview",
        outcome=Outcome.DENIED,
        resource_type="lab_import",
        reason="not staff of a lab centre",
    )
    raise AccessDenied(_("Only staff of the lab centre can do this."))


class ImportApi(LabApiView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        request={"multipart/form-data": s.ImportUploadSerializer},
        responses={201: s.ImportBatchSerializer},
        description="Upload an analyser export (CSV: barcode, test, value, unit [, comment, "
        "instrument]; or 条码, 项目, 结果, 单位). Nothing is saved yet: the answer is the "
        "preview with every row's outcome; apply it with POST .../apply/.",
    )
    def post(self, request: Request) -> Response:
        data = _valid(s.ImportUploadSerializer, request.data)
        actor = acting_user(request)
        upload = data["file"]
        batch = importing.import_preview(
            actor=actor,
            centre_id=_import_centre(actor, data["centre"]),
            filename=str(upload.name)[:200],
            data=upload.read(),
        )
        return Response(s.ImportBatchSerializer(batch).data, status=status.HTTP_201_CREATED)


class ImportDetailApi(LabApiView):
    @extend_schema(responses=s.ImportBatchSerializer, description="A preview, read again.")
    def get(self, request: Request, batch_id: int) -> Response:
        actor = acting_user(request)
        batch = importing.batch_get_for_user(actor=actor, batch_id=batch_id)
        audit_record(
            actor=actor,
            action=importing.ACTION_VIEW,
            outcome=Outcome.ALLOWED,
            resource_type="lab_import",
            resource_id=batch.pk,
        )
        return Response(s.ImportBatchSerializer(batch).data)


class ImportApplyApi(LabApiView):
    @extend_schema(
        request=None,
        responses=s.ImportAppliedSerializer,
        description="Save every row of a previewed file, or none: a file with an error row "
        "is refused whole, and so is one whose rows changed since the preview (read the "
        "preview again to see why).",
    )
    def post(self, request: Request, batch_id: int) -> Response:
        saved = importing.import_apply(actor=acting_user(request), batch_id=batch_id)
        batch = ImportBatch.objects.get(pk=batch_id)
        return Response(s.ImportAppliedSerializer({"batch": batch, "saved": saved}).data)


class ImportDiscardApi(LabApiView):
    @extend_schema(request=None, responses=s.ImportBatchSerializer, description="Drop a preview.")
    def post(self, request: Request, batch_id: int) -> Response:
        batch = importing.import_discard(actor=acting_user(request), batch_id=batch_id)
        return Response(s.ImportBatchSerializer(batch).data)


# --- Critical values -----------------------------------------------------------------------------


class CriticalListApi(LabApiView):
    @extend_schema(
        responses=s.CriticalAlertRowSerializer(many=True),
        description="Open critical values for you to act on (your clinic ordered, or your "
        "lab centre sent them), the most escalated first.",
    )
    def get(self, request: Request) -> Response:
        listing = critical_list_for_user(actor=acting_user(request))
        mine = {row.alert.pk for row in listing.to_acknowledge}
        rows = listing.to_acknowledge + [r for r in listing.lab_open if r.alert.pk not in mine]
        context = {"to_acknowledge": mine}
        return Response(s.CriticalAlertRowSerializer(rows, many=True, context=context).data)


class CriticalAckApi(LabApiView):
    @extend_schema(
        request=s.CriticalAckSerializer,
        responses=s.CriticalAlertSerializer,
        description="Acknowledge a critical value (the ordering clinic), with what was done.",
    )
    def post(self, request: Request, alert_id: int) -> Response:
        data = _valid(s.CriticalAckSerializer, request.data)
        alert = critical.alert_acknowledge(
            actor=acting_user(request), alert_id=alert_id, note=data["note"]
        )
        alert = CriticalAlert.objects.select_related(*ALERT_RELATED).get(pk=alert.pk)
        return Response(s.CriticalAlertSerializer(alert).data)
