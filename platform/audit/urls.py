"""The audit trail's web pages, mounted at /audit/."""

from django.urls import path

from audit import views

app_name = "audit"
urlpatterns = [
    path("", views.audit_search, name="search"),
]
