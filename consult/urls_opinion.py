"""URLs of the opinion and recordings pages; included by ``consult.urls`` (namespace "consult")."""

from __future__ import annotations

from django.urls import URLPattern, path

from consult import views_opinion

urlpatterns: list[URLPattern] = [
    path("<int:pk>/opinion/", views_opinion.opinion, name="opinion"),
    path("<int:pk>/opinion.pdf", views_opinion.opinion_pdf, name="opinion-pdf"),
    path("<int:pk>/recordings/", views_opinion.recordings, name="recordings"),
    path("recordings/<int:pk>/", views_opinion.recording, name="recording"),
]
