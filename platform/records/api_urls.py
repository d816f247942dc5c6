from django.urls import path

from records import api

urlpatterns = [
    path("patients/", api.PatientListApi.as_view(), name="api-patients"),
    path("patients/<int:patient_id>/", api.PatientDetailApi.as_view(), name="api-patient"),
    path("patients/<int:patient_id>/consents/", api.ConsentListApi.as_view(), name="api-consents"),
    path("patients/<int:patient_id>/timeline/", api.TimelineApi.as_view(), name="api-timeline"),
    path(
        "consents/<int:consent_id>/withdraw/",
        api.ConsentWithdrawApi.as_view(),
        name="api-consent-withdraw",
    ),
]
