"""The catalogue's pages (lab staff of the centre): tests with their ranges, panels."""

from django.urls import URLPattern, URLResolver, path

from lab import views_catalogue as views

urlpatterns: list[URLPattern | URLResolver] = [
    path("catalogue/", views.catalogue, name="catalogue"),
    path("catalogue/tests/new/", views.test_new, name="test_new"),
    path("catalogue/tests/<int:pk>/", views.test_edit, name="test_edit"),
    path("catalogue/panels/new/", views.panel_new, name="panel_new"),
    path("catalogue/panels/<int:pk>/", views.panel_edit, name="panel_edit"),
]
