"""Binds the request's origin for audit events written during it."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from audit.context import reset_context, set_context


def client_ip(meta: dict[str, str]) -> str | None:
    """The client address as the server saw it.

    Behind the proxy, ``telemed serve`` runs Daphne with ``--proxy-headers``, which puts
    the forwarded client address here; without a proxy nobody can fake it with a header.
    """
    return meta.get("REMOTE_ADDR") or None


class RequestContextMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = set_context(
            ip=client_ip(request.META),
            user_agent=request.META.get("HTTP_USER_AGENT", ""),
            channel="api" if request.path.startswith("/api/") else "web",
        )
        try:
            return self.get_response(request)
        finally:
            reset_context(token)
