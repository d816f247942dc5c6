"""CORS for viewers served from another origin (OHIF on its own host).

Allowed origins come from ``settings.DICOMWEB_CORS_ORIGINS`` (environment variable
``TELEMED_DICOMWEB_CORS_ORIGINS``, comma-separated, e.g. ``https://viewer.example.cn``).
Listed origins may send credentials (cookies, ``Authorization``). A lone ``*`` allows any
origin but without credentials, so a foreign page can never ride a user's session.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.utils.cache import patch_vary_headers

ALLOW_HEADERS = "Authorization, Accept, Content-Type, X-CSRFToken, X-Requested-With"
EXPOSE_HEADERS = "Content-Type, Content-Length, Content-Location, Warning"
MAX_AGE_SECONDS = 600

View = Callable[..., HttpResponseBase]


def _configured() -> tuple[frozenset[str], bool]:
    origins = getattr(settings, "DICOMWEB_CORS_ORIGINS", []) or []
    normalized = frozenset(str(o).strip().rstrip("/").lower() for o in origins if str(o).strip())
    return normalized - {"*"}, "*" in normalized


def apply_cors(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
    """Add the CORS headers the request's ``Origin`` is entitled to."""
    patch_vary_headers(response, ("Origin",))
    origin = request.headers.get("Origin")
    if not origin:
        return response
    listed, anyone = _configured()
    if origin.rstrip("/").lower() in listed:
        response["Access-Control-Allow-Origin"] = origin
        response["Access-Control-Allow-Credentials"] = "true"
    elif anyone:
        response["Access-Control-Allow-Origin"] = "*"
    else:
        return response
    response["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
    return response


def with_cors(methods: tuple[str, ...]) -> Callable[[View], View]:
    """Answer preflight ``OPTIONS`` requests and add CORS headers to every answer."""
    allow = ", ".join((*methods, "OPTIONS"))

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if request.method == "OPTIONS":
                preflight = HttpResponse(status=204)
                preflight["Allow"] = allow
                if request.headers.get("Access-Control-Request-Method"):
                    preflight["Access-Control-Allow-Methods"] = allow
                    preflight["Access-Control-Allow-Headers"] = ALLOW_HEADERS
                    preflight["Access-Control-Max-Age"] = str(MAX_AGE_SECONDS)
                return apply_cors(request, preflight)
            response = view(request, *args, **kwargs)
            # Pixels and renderings may be embedded by a cross-origin-isolated viewer.
            response["Cross-Origin-Resource-Policy"] = "cross-origin"
            return apply_cors(request, response)

        return wrapper

    return decorator
