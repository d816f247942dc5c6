"""WebSocket routes; each domain adds its consumers here."""

from django.urls import path

from realtime.consumers import NotificationConsumer

websocket_urlpatterns = [
    path("ws/notifications/", NotificationConsumer.as_asgi()),
]
