"""Results, reports and analyser imports (names in the ``lab`` namespace)."""

from django.urls import URLPattern, URLResolver, path

from lab import views_import, views_results

urlpatterns: list[URLPattern | URLResolver] = [
    path("orders/<int:pk>/results/", views_results.results, name="results"),
    path("orders/<int:pk>/results/save/", views_results.results_save_view, name="results_save"),
    path("orders/<int:pk>/results/validate/", views_results.validate_tech, name="validate_tech"),
    path("orders/<int:pk>/results/sign/", views_results.sign, name="sign"),
    path("orders/<int:pk>/results/amend/", views_results.amend, name="amend"),
    path(
        "orders/<int:pk>/report/<int:version>.pdf",
        views_results.report_pdf,
        name="report_pdf",
    ),
    path("import/", views_import.import_upload, name="import"),
    path("import/<int:pk>/", views_import.import_preview_view, name="import_preview"),
    path("import/<int:pk>/apply/", views_import.import_apply_view, name="import_apply"),
    path("import/<int:pk>/discard/", views_import.import_discard_view, name="import_discard"),
]
