from django.urls import path

from imaging import views_export

app_name = "imaging_export"
urlpatterns = [
    path("studies/<str:study_uid>/export.zip", views_export.study_export, name="study-export"),
]
