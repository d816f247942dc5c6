"""The consult room page and the pre-call check; included by consult/urls.py ("consult")."""

from __future__ import annotations

from django.urls import URLPattern, path

from consult import views_room

urlpatterns: list[URLPattern] = [
    path("<int:pk>/room/", views_room.room, name="room"),
    path("precall/", views_room.precall, name="precall"),
    path("precall/ice/", views_room.precall_ice, name="precall-ice"),
    path("precall/offer/", views_room.precall_offer, name="precall-offer"),
    path("precall/leave/", views_room.precall_leave, name="precall-leave"),
]
