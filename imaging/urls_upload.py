"""The upload page; included from imaging/urls.py, so its name is ``imaging:upload``."""

from django.urls import path

from imaging import views_upload

urlpatterns = [
    path("upload/", views_upload.upload_page, name="upload"),
]
