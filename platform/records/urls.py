"""Residents' pages, mounted at /patients/."""

from django.urls import path

from records import views

app_name = "records"
urlpatterns = [
    path("", views.patient_search, name="search"),
    path("register/", views.patient_register, name="register"),
    path("<int:patient_id>/", views.patient_detail, name="detail"),
    path("<int:patient_id>/edit/", views.patient_edit, name="edit"),
    path("<int:patient_id>/consents/", views.consent_add, name="consent-add"),
    path(
        "<int:patient_id>/consents/<int:consent_id>/withdraw/",
        views.consent_withdraw_view,
        name="consent-withdraw",
    ),
]
