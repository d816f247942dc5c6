"""``telemed serve --workers N``: N Daphne processes accepting on one listening socket.

One Daphne process runs Python on one core at a time. A server with more cores serves
more at once with more processes: this parent binds the address, starts N children
(``telemed serve --adopt ...``) that each adopt the listening socket (the kernel hands
each new connection to one of them), and waits. SIGTERM or SIGINT stops every child and
exits 0. If a child exits on its own, the others are stopped and the parent exits with
an error, so that the orchestrator (compose's ``restart:``, systemd) starts it afresh.

The processes share nothing in memory, so WebSockets of different processes meet only
through the channel layer: more than one worker needs ``REDIS_URL``. Per-process caches
stay per process (the API rate limit applies per process; a DICOMweb grant remembered by
one process is asked for again by another).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from types import FrameType

from django.conf import settings

IN_MEMORY_LAYER = "channels.layers.InMemoryChannelLayer"


class WorkersUnavailable(Exception):
    """More than one worker was asked for where processes could not work together."""


def adopt_description(sock: socket.socket) -> str:
    """The endpoint with which a child adopts ``sock``, inherited under the same number.

    Daphne's ``fd`` endpoint adopts IPv4 sockets only (it cannot name another family).
    """
    return f"fd:fileno={sock.fileno()}"


def serve_workers(*, host: str, port: int, workers: int) -> int:
    """Bind ``host:port``, serve it with ``workers`` Daphne children; their exit status."""
    if settings.CHANNEL_LAYERS["default"]["BACKEND"] == IN_MEMORY_LAYER:
        raise WorkersUnavailable(
            "--workers above 1 needs REDIS_URL: WebSockets served by different processes"
            " reach each other only through a shared channel layer"
        )
    if ":" in host:
        raise WorkersUnavailable("--workers above 1 listens on an IPv4 address (e.g. 0.0.0.0)")
    try:
        listener = socket.create_server((host, port), backlog=1024)
    except OSError as exc:
        raise WorkersUnavailable(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    listener.set_inheritable(True)
    command = [sys.executable, "-m", "config.cli", "serve", "--adopt", adopt_description(listener)]
    children = [
        subprocess.Popen(command, pass_fds=(listener.fileno(),))  # noqa: S603  (our own)
        for _ in range(workers)
    ]
    listener.close()  # the children hold it now
    stopping = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        _terminate(children)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        pid, status = os.wait()  # the first child to exit
    finally:
        _terminate(children)
        for child in children:
            child.wait()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if stopping:
        return 0
    code = os.waitstatus_to_exitcode(status)
    print(f"telemed serve: worker {pid} exited ({code}); stopping the others", file=sys.stderr)
    return code or 1


def _terminate(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.terminate()
