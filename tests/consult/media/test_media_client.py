"""consult.media_client against the real service (in this process), and `telemed media`."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from aiortc import RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack

from config.cli import build_parser
from consult import media_client
from tests.consult.media.media_clients import SyntheticVideo, new_pc

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def client_settings(media, settings):
    settings.MEDIA_SERVICE = {**settings.MEDIA_SERVICE, "URL": media.base, "SECRET": media.secret}
    return media


async def test_the_client_publishes_reads_the_room_asks_a_keyframe_cuts_and_leaves(
    client_settings,
):
    pc = new_pc()
    pc.addTrack(AudioStreamTrack())
    pc.addTrack(SyntheticVideo())
    try:
        await pc.setLocalDescription(await pc.createOffer())
        answer = await media_client.publish(
            consult_id=7, user_id=3, sdp=pc.localDescription.sdp, record=False
        )
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        assert await media_client.room_state(consult_id=7) == {
            "peers": [{"peer": "u3", "kinds": ["audio", "video"], "subscriptions": []}]
        }
        await media_client.keyframe(consult_id=7, user_id=3)
        await media_client.cut(consult_id=7, user_id=3)
        assert (await media_client.room_state(consult_id=7))["peers"][0]["kinds"] == []
        await media_client.leave(consult_id=7, user_id=3)
        await media_client.leave(consult_id=7, user_id=3)  # twice is fine
        assert await media_client.room_state(consult_id=7) == {"peers": []}
        assert (await media_client.health())["status"] == "ok"
    finally:
        await pc.close()


async def test_a_refusal_carries_the_services_code_and_status(client_settings):
    with pytest.raises(media_client.MediaError) as refused:
        await media_client.publish(consult_id=7, user_id=3, sdp="hello", record=False)
    assert (refused.value.code, refused.value.status) == ("bad_sdp", 422)
    with pytest.raises(media_client.MediaError) as refused:
        await media_client.subscribe(consult_id=7, user_id=3, source_peer="u4", sdp="v=0")
    assert refused.value.status in (404, 422)


async def test_a_wrong_secret_or_no_service_is_a_media_error(client_settings, settings):
    settings.MEDIA_SERVICE = {**settings.MEDIA_SERVICE, "SECRET": "wrong"}
    with pytest.raises(media_client.MediaError) as refused:
        await media_client.room_state(consult_id=7)
    assert (refused.value.code, refused.value.status) == ("unauthorized", 401)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings.MEDIA_SERVICE = {**settings.MEDIA_SERVICE, "URL": f"http://127.0.0.1:{port}"}
    with pytest.raises(media_client.MediaError) as refused:
        await media_client.health()
    assert (refused.value.code, refused.value.status) == ("unavailable", 503)


def test_peer_and_room_names():
    assert media_client.peer_id(12) == "u12"
    assert media_client.room_name(5) == "consult-5"


def test_the_media_command_defaults_to_loopback_port_8001():
    ns = build_parser().parse_args(["media"])
    assert (ns.host, ns.port) == ("127.0.0.1", 8001)
    assert build_parser().parse_args(["demo"]).media_port == 8001
    assert build_parser().parse_args(["demo", "--media-port", "0"]).media_port == 0


def test_telemed_media_serves_health_and_stops_on_sigterm(tmp_path: Path):
    telemed = shutil.which("telemed", path=str(Path(sys.executable).parent))
    assert telemed is not None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "TELEMED_DATA_DIR": str(tmp_path),
        "TELEMED_MEDIA_HOST_ADDRESSES": "127.0.0.1",
    }
    env.pop("DATABASE_URL", None)
    proc = subprocess.Popen(
        [telemed, "media", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                    assert r.read() == b'{"status": "ok", "rooms": 0, "peers": 0}'
                    break
            except OSError:
                assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
                assert time.monotonic() < deadline, "telemed media did not answer"
                time.sleep(0.2)
    finally:
        proc.terminate()
        output = proc.communicate(timeout=15)[0].decode()
    assert proc.returncode == 0, output
    assert "ICE host addresses: 127.0.0.1" in output
