"""Placeholder until the critical-value part lands: the periodic escalation thread."""

from __future__ import annotations

import threading


def start_periodic(interval: float = 30) -> tuple[threading.Thread, threading.Event]:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, name="lab-periodic", daemon=True)
    thread.start()
    return thread, stop
