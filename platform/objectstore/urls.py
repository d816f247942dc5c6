from django.urls import path

from objectstore import views

app_name = "objectstore"
urlpatterns = [
    path("<str:token>/", views.download, name="download"),
]
