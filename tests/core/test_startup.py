"""Serving commands freeze their start-up objects for the garbage collector."""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = (
    "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings');"
    "django.setup(); from config.startup import warm_and_freeze; print(warm_and_freeze())"
)


def _frozen(**env: str) -> int:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env={**os.environ, "TELEMED_DEBUG": "1", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return int(result.stdout.strip().splitlines()[-1])


def test_the_views_are_imported_and_frozen_before_serving() -> None:
    assert _frozen() > 100_000  # every URLconf and view module, in the permanent generation


def test_freezing_can_be_turned_off_to_compare() -> None:
    assert _frozen(TELEMED_GC_FREEZE="0") == 0


def test_daphne_passes_request_bodies_in_one_mebibyte_pieces() -> None:
    from config.startup import REQUEST_BUFFER_BYTES, daphne_cli

    server_class = daphne_cli().server_class
    assert server_class.keywords == {"request_buffer_size": REQUEST_BUFFER_BYTES}
    assert REQUEST_BUFFER_BYTES == 1024 * 1024
