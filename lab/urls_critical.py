"""Critical values: the list, one alert, acknowledge (the clinic), log a call (the lab)."""

from django.urls import URLPattern, URLResolver, path

from lab import views_critical

urlpatterns: list[URLPattern | URLResolver] = [
    path("critical/", views_critical.critical_list, name="critical_list"),
    path("critical/<int:pk>/", views_critical.critical_detail, name="critical"),
    path("critical/<int:pk>/ack/", views_critical.critical_ack, name="critical_ack"),
    path("critical/<int:pk>/call/", views_critical.critical_call, name="critical_call"),
]
