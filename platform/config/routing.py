"""WebSocket routes; each domain adds its consumers here."""

from django.urls import path

from consult.room.consumer import ConsultRoomConsumer
from realtime.consumers import NotificationConsumer

websocket_urlpatterns = [
    path("ws/notifications/", NotificationConsumer.as_asgi()),
    path("ws/consults/<int:consult_id>/", ConsultRoomConsumer.as_asgi()),
]
