"""Top-level URL map: web pages, the JSON API, health, admin and i18n."""

from django.contrib import admin
from django.urls import include, path
from django.utils.translation import gettext_lazy as _
from drf_spectacular.views import SpectacularAPIView

admin.site.site_header = _("Telemedicine administration")
admin.site.site_title = _("Telemedicine administration")
admin.site.index_title = _("The association's institutions and people")

urlpatterns = [
    path("", include("core.urls")),
    path("accounts/", include("accounts.urls")),
    path("patients/", include("records.urls")),
    path("audit/", include("audit.urls")),
    path("objects/", include("objectstore.urls")),
    path("imaging/", include("imaging.urls")),
    path("imaging/", include("imaging.urls_export")),
    path("dicomweb/", include("imaging.dicomweb.urls")),
    path("consults/", include("consult.urls")),
    path("lab/", include("lab.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/consults/", include("consult.api_urls")),
    path("api/lab/", include("lab.api_urls")),
    path("api/", include("config.api_urls")),
]

handler400 = "core.views.bad_request"
handler403 = "core.views.permission_denied"
handler404 = "core.views.page_not_found"
handler500 = "core.views.server_error"
