"""Shipment pages: boxes at the clinic, the receiving desk and the discrepancies."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from lab import views_shipping as views

urlpatterns: list[URLPattern | URLResolver] = [
    path("boxes/", views.box_list, name="boxes"),
    path("boxes/new/", views.box_new, name="box_new"),
    path("boxes/<int:pk>/", views.box_detail, name="box"),
    path("boxes/<int:pk>/add/", views.box_add_view, name="box_add"),
    path("boxes/<int:pk>/remove/", views.box_remove_view, name="box_remove"),
    path("boxes/<int:pk>/ship/", views.box_ship_view, name="box_ship"),
    path("boxes/<int:pk>/manifest.pdf", views.manifest, name="manifest"),
    path("receive/", views.receive, name="receive"),
    path("receive/reject/", views.reject, name="specimen_reject"),
    path("discrepancies/", views.discrepancies, name="discrepancies"),
]
