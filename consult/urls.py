"""Pages of the consult workflow, mounted at /consults/ (namespace "consult").

The room, its file sharing and the opinion pages live in their own modules; each exports
a plain ``urlpatterns`` list that is concatenated here.
"""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from consult import views, views_actions
from consult.room.urls import urlpatterns as file_urls
from consult.urls_opinion import urlpatterns as opinion_urls
from consult.urls_room import urlpatterns as room_urls

app_name = "consult"
urlpatterns: list[URLPattern | URLResolver] = [
    path("", views.consult_list, name="list"),
    path("new/", views.consult_new, name="request"),
    path("availability/", views_actions.availability, name="availability"),
    path("availability/remove/", views_actions.slot_remove, name="slot-remove"),
    path("<int:consult_id>/", views.consult_detail, name="detail"),
    path(
        "<int:consult_id>/attachments/<int:attachment_id>/",
        views.attachment_download,
        name="attachment",
    ),
    path("<int:consult_id>/attach/", views_actions.attach, name="attach"),
    path("<int:consult_id>/review/", views_actions.review, name="review"),
    path("<int:consult_id>/resubmit/", views_actions.resubmit, name="resubmit"),
    path("<int:consult_id>/respond/", views_actions.respond, name="respond"),
    path("<int:consult_id>/book/", views_actions.book, name="book"),
    path("<int:consult_id>/cancel/", views_actions.cancel, name="cancel"),
    path("<int:consult_id>/no-show/", views_actions.no_show, name="no-show"),
]

urlpatterns += [*room_urls, *file_urls, *opinion_urls]
