"""The room over channels-redis, as with several Daphne processes: presence, chat, viewer.

Each event crosses a real Redis server (msgpack-encoded), which is the path between
processes; skipped when ``redis-server`` is not installed.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import override_settings

from tests.consult.room.room_sockets import drain, join, new_consult, receive_until

pytestmark = pytest.mark.django_db(transaction=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = _free_port()
    folder: Path = tmp_path_factory.mktemp("redis")
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(10)


async def test_presence_chat_and_viewer_state_cross_a_redis_channel_layer(redis_url: str) -> None:
    layers = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [redis_url], "prefix": "telemed-test-room"},
        }
    }
    with override_settings(CHANNEL_LAYERS=layers):
        consult = await new_consult()
        expert, _ = await join(consult.pk, "specialist")
        requester, _ = await join(consult.pk, "township")
        seen = await receive_until(requester, "presence", timeout=5)
        assert {p["role"]: p["online"] for p in seen["participants"]} == {
            "expert": True,
            "requester": True,
        }
        await expert.send_json_to({"type": "admit", "user_id": consult.requested_by_id})
        await receive_until(requester, "admitted", timeout=5)
        await requester.send_json_to({"type": "chat", "text": "通过 Redis"})
        assert (await receive_until(expert, "chat", timeout=5))["text"] == "通过 Redis"
        await requester.send_json_to({"type": "viewer.state", "state": {"zoom": 2.5, "a": [1]}})
        got = await receive_until(expert, "viewer.state", timeout=5)
        assert got["state"] == {"zoom": 2.5, "a": [1]}
        await drain(expert)
        await requester.disconnect()
        left = await receive_until(expert, "presence", timeout=5)
        assert {p["role"]: p["online"] for p in left["participants"]}["requester"] is False
        await expert.disconnect()
