from django.urls import path

from core import views

app_name = "core"
urlpatterns = [
    path("", views.home, name="home"),
    path("health/ready", views.health_ready, name="health-ready"),
    path("health/live", views.health_live, name="health-live"),
]
