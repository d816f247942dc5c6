"""The lab pages people work from (part 5): home, queue, clinic orders, dashboard."""

from django.urls import URLPattern, URLResolver, path

from lab import views

urlpatterns: list[URLPattern | URLResolver] = [
    path("", views.lab_home, name="home"),
    path("queue/", views.queue, name="queue"),
    path("orders/", views.orders, name="orders"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("dashboard/data.json", views.dashboard_data, name="dashboard_data"),
]
