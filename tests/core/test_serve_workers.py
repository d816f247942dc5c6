"""``telemed serve --workers N``: N Daphne processes on one port, stopped together."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.cli import build_parser

REDIS_URL = "redis://127.0.0.1:6379/9"
SERVE = [sys.executable, "-m", "config.cli", "serve"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(TELEMED_DATA_DIR=str(tmp_path), TELEMED_DEBUG="1", **extra)
    return env


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _has_socket(pid: int) -> bool:
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # an fd closed while we look
            if os.readlink(fd).startswith("socket:"):
                return True
    return False


def _live(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=5) as reply:
        return int(reply.status)


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = _free_port()
    server = subprocess.Popen(
        [*SERVE, "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
        env=_env(tmp_path, REDIS_URL=REDIS_URL),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 90
    while len(_children(server.pid)) < 2 or not _answers(port):
        assert server.poll() is None, server.stderr.read().decode() if server.stderr else ""
        assert time.monotonic() < deadline, "telemed serve --workers 2 did not answer"
        time.sleep(0.3)
    yield server, port
    if server.poll() is None:
        server.kill()
        server.wait(10)
    for child in _children(server.pid):
        os.kill(child, signal.SIGKILL)


def _answers(port: int) -> bool:
    try:
        return _live(port) == 200
    except OSError:
        return False


def test_two_processes_share_the_port_and_stop_together_on_sigterm(two_workers) -> None:
    server, port = two_workers
    children = _children(server.pid)
    assert len(children) == 2
    for child in children:  # each adopted the one listening socket the parent bound
        assert _has_socket(child)
    assert all(_live(port) == 200 for _ in range(10))
    server.send_signal(signal.SIGTERM)
    assert server.wait(30) == 0
    assert not any(Path(f"/proc/{child}").exists() for child in children)


def test_when_one_process_dies_the_others_stop_and_the_exit_is_an_error(two_workers) -> None:
    server, _port = two_workers
    first, second = _children(server.pid)
    os.kill(first, signal.SIGKILL)
    assert server.wait(30) != 0
    assert b"stopping the others" in (server.stderr.read() if server.stderr else b"")
    assert not Path(f"/proc/{second}").exists()  # stopped and reaped by the parent


def test_more_than_one_process_needs_a_shared_channel_layer(tmp_path: Path) -> None:
    run = subprocess.run(
        [*SERVE, "--port", str(_free_port()), "--workers", "2"],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    assert "needs REDIS_URL" in run.stderr


@pytest.mark.parametrize("value", ["0", "65", "two"])
def test_the_number_of_processes_is_checked(value: str, capsys) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--workers", value])
    assert "--workers" in capsys.readouterr().err
