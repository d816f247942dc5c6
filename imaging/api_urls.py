"""The imaging JSON API, mounted at /api/imaging/ (OpenAPI at /api/schema/)."""

from django.urls import path

from imaging import upload_api

urlpatterns = [
    path("uploads/", upload_api.UploadListApi.as_view(), name="api-imaging-uploads"),
    path(
        "uploads/<uuid:upload_id>/",
        upload_api.UploadDetailApi.as_view(),
        name="api-imaging-upload",
    ),
    path(
        "uploads/<uuid:upload_id>/finish/",
        upload_api.UploadFinishApi.as_view(),
        name="api-imaging-upload-finish",
    ),
]
