"""Media benchmark: the media service (``telemed media``) forwarding a 480p VP8 stream.

    python bench/media.py [--receivers 2,8,32] [--seconds 10] [--markdown] [--json FILE]
    python bench/media.py --smoke        # a few seconds, small picture: for the test suite

Starts ``telemed media`` in its own process on a free loopback port (faults on, ICE host
candidates 127.0.0.1, a temporary data folder). This process plays every client, with
aiortc on loopback:

* a publisher sending a pre-encoded clip, 640x480 at 15 fps VP8 (libvpx, realtime, about
  600 kbps, moving texture with sensor-like noise) and Opus (20 ms), as ``av.Packet``
  objects so that no encoder runs during the measurement; a PLI from the service restarts
  the clip at its key frame. Each picture carries its index as a bar code in its top row.
* cheap receivers: their aiortc receivers are hooked (``consult.media.forward``) so that
  frames are assembled and counted, never decoded; each frame's arrival is matched with the
  time the publisher handed it to its sender (same bytes) -> transit time through the
  service;
* one decoding receiver (stock aiortc: jitter buffer and libvpx decoder): reads the bar
  code of every decoded picture -> glass-to-glass time (publisher hands the frame to its
  sender -> subscriber has the decoded picture; camera, encoder and display excluded).

Figures: join -> first decoded remote frame; the service process's CPU (utime + stime from
``/proc/<pid>/stat`` over a window) with 0 (publisher only), 2, 8 and 32 receivers, per
forwarded stream (audio + video to one receiver); transit through the service against a
direct aiortc connection in this process (the difference is the latency the service adds);
reconnect after a cut (``POST .../cut``, the publisher notices, publishes again, the
subscriber that kept its connection decodes again). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import json
import os
import platform
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import aioice.ice
import av
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from consult.media import forward, loopback  # noqa: E402

VENV_BIN = Path(sys.executable).parent
VIDEO_TB = fractions.Fraction(1, 90000)
AUDIO_TB = fractions.Fraction(1, 48000)
BITS = 8  # bar code: picture index within the clip
BLOCK = 32
ROOM = "consult-bench"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the clip


@dataclass
class Clip:
    """A pre-encoded loop starting with a key frame (the only one), and Opus packets.

    Asked for a key frame, the publisher plays the loop from its start again: a key frame
    from another encoder would not match the inter frames that follow it.
    """

    width: int
    height: int
    fps: int
    delta: list[bytes]
    audio: list[bytes]

    @property
    def kbps(self) -> float:
        return sum(map(len, self.delta)) * 8 * self.fps / len(self.delta) / 1000


def _encoder(width: int, height: int, fps: int, kbps: int, gop: int) -> Any:
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height = width, height
    codec.pix_fmt = "yuv420p"
    codec.time_base = VIDEO_TB
    codec.framerate = fps
    codec.bit_rate = kbps * 1000
    codec.gop_size = gop
    codec.options = {
        "deadline": "realtime",
        "cpu-used": "-6",
        "lag-in-frames": "0",
        "minrate": str(kbps * 1000),
        "maxrate": str(kbps * 1000),
        "bufsize": str(kbps * 1000),
        "undershoot-pct": "100",
        "overshoot-pct": "15",
    }
    return codec


def _picture(index: int, width: int, height: int, texture: np.ndarray) -> av.VideoFrame:
    luma = np.roll(texture, index * 6, axis=1)[:height, :width].copy()
    grain = np.random.default_rng(index).integers(0, 24, (height, width), np.uint8)
    luma = (luma + grain).astype(np.uint8)  # sensor noise: inter frames are not free
    for bit in range(BITS):
        on = (index >> bit) & 1
        luma[0:BLOCK, bit * BLOCK : (bit + 1) * BLOCK] = 235 if on else 16
    frame = av.VideoFrame(width, height, "yuv420p")
    frame.planes[0].update(np.ascontiguousarray(luma).tobytes())
    chroma = np.full((height // 2, width // 2), 128, np.uint8).tobytes()
    frame.planes[1].update(chroma)
    frame.planes[2].update(chroma)
    return frame


def read_index(frame: av.VideoFrame) -> int:
    plane = frame.planes[0]
    rows = np.frombuffer(bytes(plane), np.uint8).reshape(frame.height, plane.line_size)
    value = 0
    for bit in range(BITS):
        block = rows[8 : BLOCK - 8, bit * BLOCK + 8 : (bit + 1) * BLOCK - 8]
        if block.mean() > 128:
            value |= 1 << bit
    return value


def make_clip(width: int, height: int, fps: int, frames: int, kbps: int) -> Clip:
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 256, (height // 8 + 1, (width + frames * 6) // 8 + 1), np.uint8)
    texture = np.kron(noise, np.ones((8, 8), np.uint8))  # 8x8 blocks: compressible, not free
    texture = (texture // 2 + 64).astype(np.uint8)
    encoder = _encoder(width, height, fps, kbps, gop=10_000)
    delta: list[bytes] = []
    for index in range(frames):
        picture = _picture(index, width, height, texture)
        picture.pts = index * 90000 // fps
        picture.time_base = VIDEO_TB
        delta.append(b"".join(bytes(p) for p in encoder.encode(picture)))
    opus = av.CodecContext.create("libopus", "w")
    opus.sample_rate = 48000
    opus.layout = "mono"
    opus.format = "s16"
    opus.bit_rate = 32000
    audio: list[bytes] = []
    tone = (np.sin(np.arange(960 * 50) * 2 * np.pi * 440 / 48000) * 3000).astype(np.int16)
    for n in range(50):
        chunk = av.AudioFrame.from_ndarray(
            tone[None, n * 960 : (n + 1) * 960], format="s16", layout="mono"
        )
        chunk.sample_rate = 48000
        chunk.pts = n * 960
        audio += [bytes(p) for p in opus.encode(chunk)]
    assert all(delta), "the encoder held frames back"
    assert audio
    assert forward.vp8_is_keyframe(delta[0])
    assert not any(forward.vp8_is_keyframe(d) for d in delta[1:])
    return Clip(width, height, fps, delta, audio)


# --------------------------------------------------------------------------- publisher


@dataclass
class SendLog:
    by_bytes: dict[int, float] = field(default_factory=dict)  # hash(frame bytes) -> time
    by_index: dict[int, float] = field(default_factory=dict)  # clip index -> time


class ClipVideo(MediaStreamTrack):
    """Yields the clip's pictures as encoded packets, paced; a key frame when asked."""

    kind = "video"

    def __init__(self, clip: Clip, sent: SendLog) -> None:
        super().__init__()
        self.clip, self.sent = clip, sent
        self.count = 0
        self.pos = 0
        self.want_key = True
        self.keyframes_sent = 0
        self.start: float | None = None

    def request_key(self) -> None:
        self.want_key = True

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        if self.start is None:
            self.start = time.monotonic()
        await asyncio.sleep(max(0.0, self.start + self.count / self.clip.fps - time.monotonic()))
        if self.want_key:  # the clip starts with a key frame: play it from there
            self.pos = 0
            self.want_key = False
        index = self.pos
        self.pos = (self.pos + 1) % len(self.clip.delta)
        data = self.clip.delta[index]
        if index == 0:
            self.keyframes_sent += 1
        packet = av.Packet(data)
        packet.pts = self.count * 90000 // self.clip.fps
        packet.time_base = VIDEO_TB
        now = time.time()
        self.sent.by_bytes[hash(data)] = now
        self.sent.by_index[index] = now
        self.count += 1
        return packet


class ClipAudio(MediaStreamTrack):
    kind = "audio"

    def __init__(self, clip: Clip) -> None:
        super().__init__()
        self.clip = clip
        self.count = 0
        self.start: float | None = None

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        if self.start is None:
            self.start = time.monotonic()
        await asyncio.sleep(max(0.0, self.start + self.count * 0.02 - time.monotonic()))
        packet = av.Packet(self.clip.audio[self.count % len(self.clip.audio)])
        packet.pts = self.count * 960
        packet.time_base = AUDIO_TB
        self.count += 1
        return packet


def new_pc() -> RTCPeerConnection:
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


class Service:
    def __init__(self, base: str, secret: str) -> None:
        self.base, self.secret = base, secret
        self.session: aiohttp.ClientSession | None = None

    async def call(self, method: str, path: str, payload: Any = None) -> tuple[int, Any]:
        if self.session is None:
            self.session = aiohttp.ClientSession()
        async with self.session.request(
            method,
            self.base + path,
            json=payload,
            headers={"Authorization": f"Bearer {self.secret}"},
        ) as response:
            body = None if response.status == 204 else await response.json(content_type=None)
            return response.status, body

    async def negotiate(self, pc: RTCPeerConnection, path: str, payload: dict[str, Any]) -> None:
        await pc.setLocalDescription(await pc.createOffer())
        status, body = await self.call(
            "POST", path, {**payload, "sdp": pc.localDescription.sdp, "type": "offer"}
        )
        if status != 200:
            raise RuntimeError(f"{path}: {status} {body}")
        await pc.setRemoteDescription(RTCSessionDescription(sdp=body["sdp"], type="answer"))


@dataclass
class Publisher:
    pc: RTCPeerConnection
    video: ClipVideo


async def start_publisher(service: Service, clip: Clip, sent: SendLog, peer: str) -> Publisher:
    pc = new_pc()
    video = ClipVideo(clip, sent)
    pc.addTrack(ClipAudio(clip))
    sender = pc.addTrack(video)
    forward.on_keyframe_request(sender, video.request_key)
    await service.negotiate(pc, f"/rooms/{ROOM}/publish", {"peer": peer, "record": False})
    return Publisher(pc, video)


# --------------------------------------------------------------------------- receivers


@dataclass
class Receiver:
    pc: RTCPeerConnection
    started: float
    sent: SendLog
    video: int = 0
    audio: int = 0
    transit: list[float] = field(default_factory=list)  # seconds
    glass: list[float] = field(default_factory=list)
    first_frame: float | None = None
    last_frame: float | None = None
    task: asyncio.Task[None] | None = None

    def reset(self) -> None:
        self.video = self.audio = 0
        self.transit.clear()
        self.glass.clear()

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        await self.pc.close()


async def cheap_receiver(service: Service, peer: str, source: str, sent: SendLog) -> Receiver:
    """Counts frames and matches them with the publisher's send times; decodes nothing."""
    pc = new_pc()
    receiver = Receiver(pc, time.monotonic(), sent)
    audio = pc.addTransceiver("audio", direction="recvonly")
    video = pc.addTransceiver("video", direction="recvonly")

    def on_video(frame: Any) -> None:
        now = time.time()
        receiver.video += 1
        if receiver.first_frame is None:
            receiver.first_frame = time.monotonic()
        at = sent.by_bytes.get(hash(frame.data))
        if at is not None:
            receiver.transit.append(now - at)

    def on_audio(frame: Any) -> None:
        receiver.audio += 1

    forward.tap_receiver(video.receiver, "video", on_video)
    forward.tap_receiver(audio.receiver, "audio", on_audio)
    await service.negotiate(pc, f"/rooms/{ROOM}/subscribe", {"peer": peer, "source": source})
    return receiver


async def decoding_receiver(service: Service, peer: str, source: str, sent: SendLog) -> Receiver:
    """Stock aiortc: jitter buffer and decoder; reads each picture's bar code."""
    pc = new_pc()
    receiver = Receiver(pc, time.monotonic(), sent)
    pc.addTransceiver("audio", direction="recvonly")
    pc.addTransceiver("video", direction="recvonly")

    async def consume(track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                frame = await track.recv()
                now = time.time()
                if track.kind == "audio":
                    receiver.audio += 1
                    continue
                receiver.video += 1
                receiver.last_frame = time.monotonic()
                if receiver.first_frame is None:
                    receiver.first_frame = receiver.last_frame
                at = sent.by_index.get(read_index(frame))
                if at is not None and 0 <= now - at < 5:
                    receiver.glass.append(now - at)

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        task = asyncio.ensure_future(consume(track))
        if track.kind == "video":
            receiver.task = task

    await service.negotiate(pc, f"/rooms/{ROOM}/subscribe", {"peer": peer, "source": source})
    return receiver


async def wait_until(predicate: Any, timeout: float, what: str) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)
    return time.monotonic() - start


# --------------------------------------------------------------------------- measurements


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(value: float) -> str:
    return "n/a" if value != value else f"{value * 1000:.0f} ms"


async def measure_join(service: Service, sent: SendLog, joins: int) -> list[float]:
    times = []
    for n in range(joins):
        receiver = await decoding_receiver(service, f"join{n}", "pub", sent)
        await wait_until(lambda r=receiver: r.first_frame is not None, 10, "a first frame")
        assert receiver.first_frame is not None
        times.append(receiver.first_frame - receiver.started)
        await receiver.close()
        await service.call("DELETE", f"/rooms/{ROOM}/peers/join{n}")
    return times


async def measure_load(
    service: Service,
    pid: int,
    sent: SendLog,
    receivers: int,
    seconds: float,
    clip: Clip,
    warmup: float,
) -> dict[str, Any]:
    peers = [f"r{receivers}x{n}" for n in range(receivers)]
    connected: list[Receiver] = []
    if receivers:
        connected.append(await decoding_receiver(service, peers[0], "pub", sent))
        connected += await asyncio.gather(
            *(cheap_receiver(service, p, "pub", sent) for p in peers[1:])
        )
        await wait_until(
            lambda: all(r.video > 0 for r in connected), 30, f"{receivers} receivers' frames"
        )
    await asyncio.sleep(warmup)
    for receiver in connected:
        receiver.reset()
    client0, cpu0, t0 = time.process_time(), cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(seconds)
    cpu1, t1, client1 = cpu_seconds(pid), time.monotonic(), time.process_time()
    window = t1 - t0
    transit = [t for r in connected[1:] for t in r.transit]
    glass = connected[0].glass if connected else []
    result = {
        "receivers": receivers,
        "window_s": window,
        "service_cores": (cpu1 - cpu0) / window,
        "client_cores": (client1 - client0) / window,
        "fps_min": min((r.video / window for r in connected), default=0.0),
        "audio_pps_min": min((r.audio / window for r in connected), default=0.0),
        "transit_p50": pct(transit, 0.5),
        "transit_p95": pct(transit, 0.95),
        "transit_p99": pct(transit, 0.99),
        "glass_p50": pct(glass, 0.5),
        "glass_p95": pct(glass, 0.95),
        "frames_expected": clip.fps * window,
    }
    for receiver in connected:
        await receiver.close()
    for peer in peers:
        await service.call("DELETE", f"/rooms/{ROOM}/peers/{peer}")
    return result


async def measure_direct(clip: Clip, seconds: float) -> dict[str, float]:
    """Publisher -> receiver with no service in between (same process): the baseline."""
    sent = SendLog()
    a, b = new_pc(), new_pc()
    video = ClipVideo(clip, sent)
    a.addTrack(ClipAudio(clip))
    sender = a.addTrack(video)
    forward.on_keyframe_request(sender, video.request_key)
    transit: list[float] = []
    b_video = b.addTransceiver("video", direction="recvonly")
    b.addTransceiver("audio", direction="recvonly")

    def on_video(frame: Any) -> None:
        at = sent.by_bytes.get(hash(frame.data))
        if at is not None:
            transit.append(time.time() - at)

    forward.tap_receiver(b_video.receiver, "video", on_video)
    await b.setLocalDescription(await b.createOffer())
    await a.setRemoteDescription(b.localDescription)
    await a.setLocalDescription(await a.createAnswer())
    await b.setRemoteDescription(a.localDescription)
    await wait_until(lambda: bool(transit), 10, "direct frames")
    await asyncio.sleep(0.5)
    transit.clear()
    await asyncio.sleep(seconds)
    await a.close()
    await b.close()
    return {"p50": pct(transit, 0.5), "p95": pct(transit, 0.95), "p99": pct(transit, 0.99)}


async def measure_reconnect(
    service: Service, clip: Clip, sent: SendLog, publisher: Publisher
) -> tuple[dict[str, float], Publisher]:
    watcher = await decoding_receiver(service, "watcher", "pub", sent)
    await wait_until(lambda: watcher.video > 5, 10, "the watcher's frames")
    lost = asyncio.Event()

    @publisher.pc.on("connectionstatechange")
    def changed() -> None:
        if publisher.pc.connectionState in ("failed", "closed"):
            lost.set()

    t0 = time.monotonic()
    status, _ = await service.call("POST", f"/rooms/{ROOM}/peers/pub/cut")
    assert status == 204, status
    await asyncio.wait_for(lost.wait(), 60)
    t_detect = time.monotonic()
    await publisher.pc.close()
    publisher = await start_publisher(service, clip, sent, "pub")
    await wait_until(
        lambda: watcher.last_frame is not None and watcher.last_frame > t_detect,
        10,
        "a frame after the new publish",
    )
    assert watcher.last_frame is not None
    t_frame = watcher.last_frame
    await watcher.close()
    await service.call("DELETE", f"/rooms/{ROOM}/peers/watcher")
    return {
        "detect": t_detect - t0,
        "republish_to_frame": t_frame - t_detect,
        "total": t_frame - t0,
    }, publisher


# --------------------------------------------------------------------------- service process


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_service(tmp: Path, port: int, secret: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TELEMED_DATA_DIR": str(tmp),
        "TELEMED_MEDIA_SECRET": secret,
        "TELEMED_MEDIA_HOST_ADDRESSES": "127.0.0.1",
        "TELEMED_MEDIA_FAULTS": "1",
        "TELEMED_MEDIA_MAX_ROOM_PEERS": "64",
    }
    env.pop("DATABASE_URL", None)
    log_file = open(tmp / "media.log", "ab")  # noqa: SIM115  (closed with the process)
    proc = subprocess.Popen(
        [str(VENV_BIN / "telemed"), "media", "--port", str(port)],
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    log_file.close()
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    "telemed media did not start:\n" + (tmp / "media.log").read_text()[-2000:]
                ) from None
            time.sleep(0.2)


def stop_service(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


# --------------------------------------------------------------------------- main


async def run(ns: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    loopback.install_host_addresses(["127.0.0.1"])
    # Notice a dead link after two missed consent checks a second apart (aioice waits 30 s;
    # a browser reports "disconnected" after a few seconds).
    aioice.ice.CONSENT_INTERVAL = 0.5 if ns.smoke else 1  # type: ignore[assignment]
    aioice.ice.CONSENT_FAILURES = 2
    width, height = (320, 240) if ns.smoke else (640, 480)
    frames = 30 if ns.smoke else 90
    log(f"encoding the clip: {width}x{height}, {frames} pictures at {ns.fps} fps ...")
    clip = make_clip(width, height, ns.fps, frames, ns.kbps)
    log(f"  {clip.kbps:.0f} kbps video, key frame {len(clip.delta[0])} bytes")
    port, secret = free_port(), secrets.token_hex(16)
    proc = start_service(tmp, port, secret)
    service = Service(f"http://127.0.0.1:{port}", secret)
    results: dict[str, Any] = {
        "clip": {"width": width, "height": height, "fps": ns.fps, "kbps": clip.kbps}
    }
    try:
        sent = SendLog()
        t_cold = time.monotonic()
        publisher = await start_publisher(service, clip, sent, "pub")
        cold = await decoding_receiver(service, "cold", "pub", sent)
        await wait_until(lambda: cold.first_frame is not None, 10, "the cold first frame")
        assert cold.first_frame is not None
        results["cold_first_frame"] = cold.first_frame - t_cold
        await cold.close()
        await service.call("DELETE", f"/rooms/{ROOM}/peers/cold")
        log("join -> first decoded frame ...")
        results["join"] = await measure_join(service, sent, 1 if ns.smoke else 5)
        results["load"] = []
        for count in [0, *ns.receivers]:
            log(f"{count} receivers: {ns.seconds:.0f} s window ...")
            load = await measure_load(
                service, proc.pid, sent, count, ns.seconds, clip, 0.5 if ns.smoke else 2.0
            )
            results["load"].append(load)
            log(
                f"  service {load['service_cores']:.3f} cores, transit p50 "
                f"{ms(load['transit_p50'])}, lowest fps {load['fps_min']:.1f}"
            )
        log("direct connection (no service) ...")
        results["direct"] = await measure_direct(clip, ns.seconds)
        log("cut -> reconnect ...")
        results["reconnect"], publisher = await measure_reconnect(service, clip, sent, publisher)
        results["publisher_keyframes"] = publisher.video.keyframes_sent
        await publisher.pc.close()
        if service.session is not None:
            await service.session.close()
    finally:
        stop_service(proc)
        loopback.uninstall()
    return results


def table(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    rows: list[tuple[str, str, str, str]] = []
    joins = results["join"]
    worst = max(joins)
    rows.append(
        (
            f"join -> first decoded frame (median / worst of {len(joins)})",
            f"{ms(statistics.median(joins))} / {ms(worst)}",
            "< 2 s",
            "yes" if worst < 2 else "NO",
        )
    )
    rows.append(
        (
            "publish + subscribe at once -> first decoded frame",
            ms(results["cold_first_frame"]),
            "< 2 s",
            "yes" if results["cold_first_frame"] < 2 else "NO",
        )
    )
    base = results["load"][0]["service_cores"]
    rows.append(("service CPU, publisher only (ingest)", f"{base:.3f} cores", "", ""))
    direct = results["direct"]
    for load in results["load"][1:]:
        n = load["receivers"]
        per = load["service_cores"] / n
        rows.append(
            (
                f"service CPU per forwarded stream, {n} receivers",
                f"{per:.4f} cores ({load['service_cores']:.3f} total, "
                f"{(load['service_cores'] - base) / n:.4f} marginal)",
                "< 0.02 core",
                "yes" if per < 0.02 else "NO",
            )
        )
        added = load["transit_p50"] - direct["p50"]
        rows.append(
            (
                f"transit through the service, {n} receivers (p50 / p95 / p99)",
                f"{ms(load['transit_p50'])} / {ms(load['transit_p95'])} / {ms(load['transit_p99'])}"
                f"; added vs direct: {ms(added)} p50, "
                f"{ms(load['transit_p95'] - direct['p95'])} p95",
                "added < 100 ms",
                "yes" if load["transit_p95"] - direct["p95"] < 0.1 else "NO",
            )
        )
        rows.append(
            (
                f"glass-to-glass (decoding receiver), {n} receivers (p50 / p95)",
                f"{ms(load['glass_p50'])} / {ms(load['glass_p95'])}; lowest receiver "
                f"{load['fps_min']:.1f} fps",
                "",
                "",
            )
        )
    rows.append(
        (
            "direct aiortc connection, no service (p50 / p95)",
            f"{ms(direct['p50'])} / {ms(direct['p95'])}",
            "",
            "",
        )
    )
    rec = results["reconnect"]
    rows.append(("reconnect: cut -> publisher notices", ms(rec["detect"]), "", ""))
    rows.append(
        (
            "reconnect: new publish -> subscriber decodes again",
            ms(rec["republish_to_frame"]),
            "< 2 s",
            "yes" if rec["republish_to_frame"] < 2 else "NO",
        )
    )
    rows.append(("reconnect: cut -> subscriber decodes again", ms(rec["total"]), "", ""))
    return rows


def print_table(lines: Sequence[tuple[str, str, str, str]], markdown: bool) -> None:
    head = ("What", "measured", "target", "met?")
    if markdown:
        print("| " + " | ".join(head) + " |")
        print("|---|---|---|---|")
        for line in lines:
            print("| " + " | ".join(x.replace("|", "/") for x in line) + " |")
        return
    widths = [max(len(line[i]) for line in [head, *lines]) for i in range(4)]
    for line in [head, *lines]:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--receivers", default="2,8,32", help="receiver counts, comma-separated")
    parser.add_argument("--seconds", type=float, default=10.0, help="CPU window per count")
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument("--kbps", type=int, default=600)
    parser.add_argument("--smoke", action="store_true", help="320x240, 2 receivers, 1 s windows")
    parser.add_argument("--markdown", action="store_true", help="the table again as Markdown")
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    ns = parser.parse_args(argv)
    ns.receivers = [int(x) for x in ns.receivers.split(",") if x.strip()]
    if ns.smoke:
        ns.receivers, ns.seconds = [2], 1.0
    with tempfile.TemporaryDirectory(prefix="bench-media-") as tmp:
        results = asyncio.run(run(ns, Path(tmp)))
    results["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }
    lines = table(results)
    print_table(lines, markdown=False)
    if ns.markdown:
        print()
        print_table(lines, markdown=True)
    if ns.json:
        ns.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
