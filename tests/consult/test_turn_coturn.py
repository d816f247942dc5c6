"""TURN REST credentials issued by Django against a real coturn (Debian's ``turnserver``).

coturn runs with ``use-auth-secret`` on a free loopback port; aioice allocates a relay
with what :func:`consult.ice.turn_credentials` hands out. A fresh credential allocates
(UDP and TCP), a stale one and a forged one are refused by coturn itself.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest
from aioice import stun
from aioice.turn import create_turn_endpoint
from django.test import override_settings

from consult.ice import ice_servers_for, turn_credentials

SECRET = "coturn-test-shared-secret"
TTL = 600
USER_ID = 42


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _free_turn_port() -> int:
    """A port free for both UDP and TCP (coturn listens on both)."""
    for _ in range(50):
        port = _free_port(socket.SOCK_DGRAM)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port for coturn")


@pytest.fixture(scope="module")
def coturn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """coturn on a free loopback port with a shared auth secret; yields the port."""
    binary = shutil.which("turnserver")
    if binary is None:
        message = "coturn is not installed (apt-get install coturn); .ci/run installs it"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    folder = tmp_path_factory.mktemp("coturn")
    port = _free_turn_port()
    log = (folder / "turnserver.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            "-n",  # no configuration file
            "--listening-ip=127.0.0.1",
            "--relay-ip=127.0.0.1",
            f"--listening-port={port}",
            "--min-port=49152",  # coturn skips relay ports in use
            "--max-port=65535",
            "--use-auth-secret",
            f"--static-auth-secret={SECRET}",
            "--realm=telemed.test",
            "--no-tls",
            "--no-dtls",
            "--no-cli",
            "--simple-log",
            "--log-file=stdout",
            f"--pidfile={folder / 'turnserver.pid'}",
            f"--userdb={folder / 'turndb'}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 15
    while True:
        with socket.socket() as probe:
            probe.settimeout(0.5)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            log.close()
            pytest.fail(
                "turnserver did not start:\n" + (folder / "turnserver.log").read_text()[-3000:]
            )
        time.sleep(0.1)
    yield port
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


def _turn_settings(port: int) -> override_settings:
    return override_settings(
        TURN={
            "SECRET": SECRET,
            "URLS": [
                f"turn:127.0.0.1:{port}?transport=udp",
                f"turn:127.0.0.1:{port}?transport=tcp",
            ],
            "TTL_SECONDS": TTL,
        }
    )


async def _allocate(port: int, username: str, password: str, transport: str = "udp") -> str:
    """Allocate a relay on coturn; returns the relayed address as ``host:port``."""
    turn, _protocol = await asyncio.wait_for(
        create_turn_endpoint(
            asyncio.DatagramProtocol,
            server_addr=("127.0.0.1", port),
            username=username,
            password=password,
            transport=transport,
        ),
        timeout=10,
    )
    try:
        host, relayed_port = turn.get_extra_info("sockname")
        return f"{host}:{relayed_port}"
    finally:
        turn.close()


async def test_fresh_credentials_allocate_a_relay_over_udp(coturn: int) -> None:
    with _turn_settings(coturn):
        username, password, _expires = turn_credentials(user_id=USER_ID)
    relayed = await _allocate(coturn, username, password)
    assert relayed.startswith("127.0.0.1:")


async def test_fresh_credentials_allocate_a_relay_over_tcp_for_firewalled_clinics(
    coturn: int,
) -> None:
    with _turn_settings(coturn):
        username, password, _expires = turn_credentials(user_id=USER_ID)
    relayed = await _allocate(coturn, username, password, transport="tcp")
    assert relayed.startswith("127.0.0.1:")


async def test_the_browser_ice_servers_entry_allocates(coturn: int) -> None:
    with _turn_settings(coturn):
        (server,) = ice_servers_for(USER_ID)
    assert all(url.startswith("turn:127.0.0.1:") for url in server["urls"])
    await _allocate(coturn, server["username"], server["credential"])


async def test_a_stale_credential_is_refused(coturn: int) -> None:
    with _turn_settings(coturn):
        username, password, expires = turn_credentials(user_id=USER_ID, now=time.time() - 2 * TTL)
    assert expires < time.time()
    with pytest.raises(stun.TransactionFailed) as refused:
        await _allocate(coturn, username, password)
    assert refused.value.response.attributes["ERROR-CODE"][0] == 401


async def test_a_credential_signed_with_another_secret_is_refused(coturn: int) -> None:
    with override_settings(TURN={"SECRET": "not-the-secret", "URLS": [], "TTL_SECONDS": TTL}):
        username, password, _expires = turn_credentials(user_id=USER_ID)
    with pytest.raises(stun.TransactionFailed) as refused:
        await _allocate(coturn, username, password)
    assert refused.value.response.attributes["ERROR-CODE"][0] == 401
