"""The lab JSON API, mounted at /api/lab/ (OpenAPI at /api/schema/)."""

from django.urls import URLPattern, path

from lab import api

urlpatterns: list[URLPattern] = [
    path("catalogue/", api.CatalogueApi.as_view(), name="api-lab-catalogue"),
    path("orders/", api.OrderListApi.as_view(), name="api-lab-orders"),
    path("orders/<int:order_id>/", api.OrderDetailApi.as_view(), name="api-lab-order"),
    path(
        "orders/<int:order_id>/cancel/", api.OrderCancelApi.as_view(), name="api-lab-order-cancel"
    ),
    path(
        "orders/<int:order_id>/collect/",
        api.OrderCollectApi.as_view(),
        name="api-lab-order-collect",
    ),
    path("receive/", api.ReceiveApi.as_view(), name="api-lab-receive"),
    path("specimens/reject/", api.SpecimenRejectApi.as_view(), name="api-lab-specimen-reject"),
    path("results/", api.ResultSaveApi.as_view(), name="api-lab-results"),
    path("imports/", api.ImportApi.as_view(), name="api-lab-imports"),
    path("imports/<int:batch_id>/", api.ImportDetailApi.as_view(), name="api-lab-import"),
    path(
        "imports/<int:batch_id>/apply/", api.ImportApplyApi.as_view(), name="api-lab-import-apply"
    ),
    path(
        "imports/<int:batch_id>/discard/",
        api.ImportDiscardApi.as_view(),
        name="api-lab-import-discard",
    ),
    path("critical/", api.CriticalListApi.as_view(), name="api-lab-critical"),
    path("critical/<int:alert_id>/ack/", api.CriticalAckApi.as_view(), name="api-lab-critical-ack"),
]
