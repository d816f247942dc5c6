from django.urls import path

from association import api

urlpatterns = [
    path("institutions/", api.InstitutionListApi.as_view(), name="api-institutions"),
    path("centres/", api.CentreListApi.as_view(), name="api-centres"),
]
