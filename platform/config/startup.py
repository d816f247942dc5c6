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
