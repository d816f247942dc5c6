"""Pages of the imaging centre, mounted at /imaging/."""

from django.urls import URLPattern, URLResolver, path

from imaging import views
from imaging.urls_upload import urlpatterns as upload_patterns

app_name = "imaging"
urlpatterns: list[URLPattern | URLResolver] = [
    path("requests/", views.request_list, name="requests"),
    path("requests/new/", views.request_new, name="request-new"),
    path("requests/<int:request_id>/", views.request_detail, name="request"),
    path("requests/<int:request_id>/attach/", views.request_attach, name="request-attach"),
    path("requests/<int:request_id>/cancel/", views.request_cancel, name="request-cancel"),
    path("requests/<int:request_id>/read/", views.read, name="read"),
    path("requests/<int:request_id>/amend/", views.amend, name="amend"),
    path("worklist/", views.worklist, name="worklist"),
    path("worklist/<int:request_id>/claim/", views.claim, name="claim"),
    path("worklist/<int:request_id>/release/", views.release, name="release"),
    path("studies/<str:study_uid>/view/", views.study_view, name="study-view"),
    *upload_patterns,
]
