"""Ordering, the order page, collection and labels."""

from django.urls import URLPattern, URLResolver, path

from lab import views_orders as views

urlpatterns: list[URLPattern | URLResolver] = [
    path("orders/new/", views.order_new, name="order_new"),
    path("orders/<int:pk>/", views.order_detail, name="order"),
    path("orders/<int:pk>/cancel/", views.order_cancel_view, name="order_cancel"),
    path("orders/<int:pk>/collect/", views.collect, name="collect"),
    path("orders/<int:pk>/labels/", views.labels, name="labels"),
    path("specimens/<int:pk>/label/", views.label, name="label"),
]
