"""The consult JSON API, mounted at /api/consults/ (OpenAPI at /api/schema/)."""

from django.urls import URLPattern, path

from consult import api

urlpatterns: list[URLPattern] = [
    path("", api.ConsultListApi.as_view(), name="api-consults"),
    path("<int:consult_id>/", api.ConsultDetailApi.as_view(), name="api-consult"),
    path("<int:consult_id>/respond/", api.ConsultRespondApi.as_view(), name="api-consult-respond"),
    path("<int:consult_id>/review/", api.ConsultReviewApi.as_view(), name="api-consult-review"),
    path("<int:consult_id>/book/", api.ConsultBookApi.as_view(), name="api-consult-book"),
    path("<int:consult_id>/cancel/", api.ConsultCancelApi.as_view(), name="api-consult-cancel"),
    path("slots/", api.SlotListApi.as_view(), name="api-consult-slots"),
    path("slots/<int:slot_id>/", api.SlotDetailApi.as_view(), name="api-consult-slot"),
]
