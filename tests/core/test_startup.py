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

    server = daphne_cli().server_class(application=None, endpoints=["tcp:port=0"])
    assert server.request_buffer_size == REQUEST_BUFFER_BYTES == 1024 * 1024


def test_a_listening_port_accepts_one_connection_per_wake_up() -> None:
    import socket

    from twisted.internet.protocol import Factory, Protocol
    from twisted.internet.selectreactor import SelectReactor

    from config.startup import accept_one_at_a_time

    reactor = SelectReactor()  # a reactor of its own: the global one is never installed here
    factory = Factory.forProtocol(Protocol)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    try:
        port.stopReading()  # accepted here, by hand, not by a running reactor
        accept_one_at_a_time(port)
        address = port.getHost()
        clients = [socket.create_connection((address.host, address.port)) for _ in range(3)]
        accepted = []
        for _ in range(3):
            before = port.sessionno
            port.doRead()
            accepted.append(port.sessionno - before)
        assert accepted == [1, 1, 1]  # Twisted alone takes all three at the first wake-up
        for client in clients:
            client.close()
    finally:
        port.stopListening()
