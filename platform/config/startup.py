"""Server start-up: load what the first requests would load, then freeze it for the collector.

A Django process holds some 376,000 long-lived objects once its views are imported
(modules, classes, URL patterns, settings, translations). CPython's full (generation 2)
collection walks all of them: on the 2-core machine this takes 87–96 ms, during which the
event loop serves nobody: the tail of the consult-room signaling latency
(docs/benchmarks.md). ``gc.freeze()`` moves the
objects alive at start-up into a permanent generation that collections skip; garbage made
while serving is collected as before. Instagram's Django fleet does the same.

Only the serving commands call this (``telemed serve``, ``telemed demo``); tests do not.
``TELEMED_GC_FREEZE=0`` turns it off (for comparison in ``bench/signaling.py``).
"""

from __future__ import annotations

import gc
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from daphne.cli import CommandLineInterface


def warm_and_freeze() -> int:
    """Import the ASGI application and every view module, then freeze; returns objects frozen."""
    from django.urls import get_resolver

    import config.asgi  # noqa: F401  (the application Daphne will serve, imported once)

    get_resolver().url_patterns  # noqa: B018  (imports every URLconf and view module)
    if os.environ.get("TELEMED_GC_FREEZE", "1") == "0":
        return 0
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


# Daphne hands a request body to the application in pieces of this size. Its default,
# 8 KiB, turns a 5 MB STOW-RS batch into some 640 queue messages and as many writes on the
# event loop (the loop then spent more time moving the body than the view spent storing
# it; docs/benchmarks.md). 1 MiB pieces keep memory per request bounded all the same.
REQUEST_BUFFER_BYTES = 1024 * 1024


def daphne_cli() -> CommandLineInterface:
    """Daphne's command line, with a server that passes request bodies in 1 MiB pieces and
    accepts one connection per wake-up (:func:`accept_one_at_a_time`)."""
    from daphne.cli import CommandLineInterface
    from daphne.server import Server

    class _Server(Server):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("request_buffer_size", REQUEST_BUFFER_BYTES)
            super().__init__(*args, **kwargs)

        def listen_success(self, port: Any) -> None:
            accept_one_at_a_time(port)
            super().listen_success(port)

    class _CommandLine(CommandLineInterface):
        server_class = _Server

    return _CommandLine()


def accept_one_at_a_time(port: Any) -> None:
    """Make a listening Twisted port accept one connection each time the loop wakes it.

    Twisted accepts up to 100 waiting connections at once (and raises that as traffic
    grows). Processes sharing a listening socket (``telemed serve --workers``) are all woken
    by a new connection, and the first to run would take every connection waiting; a burst
    of clients could all land on one process while the other idles. One at a time, a busy
    process leaves the next connection to an idle one.
    """
    if not hasattr(port, "numberAccepts"):
        return
    read = port.doRead

    def do_read() -> Any:
        port.numberAccepts = 1  # Twisted scales it after every read: set before each
        return read()

    port.doRead = do_read
