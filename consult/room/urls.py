"""File sharing in the consult room; included in consult/urls.py (namespace ``consult``)."""

from django.urls import path

from consult.room import views

urlpatterns = [
    path("<int:consult_id>/room/files/", views.room_file_upload, name="room-file"),
    path(
        "<int:consult_id>/room/files/<int:attachment_id>/",
        views.room_file_download,
        name="room-file-download",
    ),
]
