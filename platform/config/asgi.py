"""ASGI entry point: Django for HTTP, Channels for WebSockets (served by Daphne)."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# What get_asgi_application() does, with our handler: one thread hop per request on a
# pooled thread instead of several hops and a new thread (see config.asgi_handler).
django.setup(set_prefix=False)

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from config.asgi_handler import PlatformASGIHandler  # noqa: E402
from config.routing import websocket_urlpatterns  # noqa: E402
from realtime.security import AllowedHostsOriginValidator  # noqa: E402

django_asgi_app = PlatformASGIHandler()

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)
