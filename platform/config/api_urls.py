"""The JSON API under /api/ (OpenAPI 3 at /api/schema/)."""

from django.urls import include, path

urlpatterns = [
    path("", include("accounts.api_urls")),
    path("", include("association.api_urls")),
    path("", include("records.api_urls")),
    path("", include("realtime.api_urls")),
    path("", include("audit.api_urls")),
    path("imaging/", include("imaging.api_urls")),
]
