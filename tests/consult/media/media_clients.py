"""Real aiortc clients of the media service for the tests: publishers and subscribers.

A publisher sends a synthetic 320x240 picture at 15 fps (VP8, encoded by aiortc) and
silence (Opus); a subscriber decodes what it receives and counts frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, MediaStreamTrack
from av import VideoFrame

VIDEO_CLOCK = 90000
FPS = 15


class SyntheticVideo(MediaStreamTrack):
    """A moving gradient, paced at ``fps``."""

    kind = "video"

    def __init__(self, width: int = 320, height: int = 240, fps: int = FPS) -> None:
        super().__init__()
        self.width, self.height, self.fps = width, height, fps
        self.count = 0
        self._start: float | None = None
        ramp = np.linspace(0, 255, width, dtype=np.uint8)
        self._base = np.repeat(ramp[None, :], height, axis=0)

    async def recv(self) -> VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self.count / self.fps
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        luma = np.roll(self._base, self.count * 4, axis=1)
        rgb = np.stack([luma, 255 - luma, np.full_like(luma, self.count % 256)], axis=2)
        frame = VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = self.count * VIDEO_CLOCK // self.fps
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self.count += 1
        return frame


async def post(base: str, secret: str, path: str, payload: dict[str, Any]) -> tuple[int, Any]:
    """POST JSON to the service; (status, JSON body or None)."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            base + path, json=payload, headers={"Authorization": f"Bearer {secret}"}
        ) as response,
    ):
        body = None if response.status == 204 else await response.json(content_type=None)
        return response.status, body


async def call(base: str, secret: str, method: str, path: str) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method, base + path, headers={"Authorization": f"Bearer {secret}"}
        ) as response,
    ):
        body = None if response.status == 204 else await response.json(content_type=None)
        return response.status, body


@dataclass
class Publisher:
    pc: RTCPeerConnection
    video: SyntheticVideo | None
    keyframe_requests: int = 0

    async def close(self) -> None:
        await self.pc.close()


@dataclass
class Subscriber:
    pc: RTCPeerConnection
    started: float
    frames: dict[str, int] = field(default_factory=lambda: {"audio": 0, "video": 0})
    first_video_at: float | None = None
    first_video: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def first_frame_seconds(self) -> float | None:
        return None if self.first_video_at is None else self.first_video_at - self.started

    async def wait_video(self, count: int = 1, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while self.frames["video"] < count:
            assert time.monotonic() < deadline, f"only {self.frames} frames decoded"
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await self.pc.close()


def new_pc() -> RTCPeerConnection:
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


async def publish(
    base: str,
    secret: str,
    room: str,
    peer: str,
    *,
    video: bool = True,
    audio: bool = True,
    record: bool = False,
    consult_id: int | None = None,
    user_id: int | None = None,
) -> Publisher:
    pc = new_pc()
    track = SyntheticVideo() if video else None
    if audio:
        pc.addTrack(AudioStreamTrack())
    if track is not None:
        sender = pc.addTrack(track)
        original = sender._send_keyframe
        publisher = Publisher(pc, track)

        def counted() -> None:
            publisher.keyframe_requests += 1
            original()

        sender._send_keyframe = counted  # type: ignore[method-assign]
    else:
        publisher = Publisher(pc, None)
    await pc.setLocalDescription(await pc.createOffer())
    payload: dict[str, Any] = {
        "peer": peer,
        "sdp": pc.localDescription.sdp,
        "type": "offer",
        "record": record,
    }
    if consult_id is not None:
        payload.update(consult_id=consult_id, user_id=user_id)
    status, body = await post(base, secret, f"/rooms/{room}/publish", payload)
    assert status == 200, body
    await pc.setRemoteDescription(RTCSessionDescription(sdp=body["sdp"], type="answer"))
    return publisher


async def subscribe(
    base: str,
    secret: str,
    room: str,
    peer: str,
    source: str,
    *,
    kinds: tuple[str, ...] = ("audio", "video"),
) -> Subscriber:
    pc = new_pc()
    subscriber = Subscriber(pc, started=time.monotonic())
    for kind in kinds:
        pc.addTransceiver(kind, direction="recvonly")

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        subscriber.tasks.append(asyncio.ensure_future(_consume(subscriber, track)))

    await pc.setLocalDescription(await pc.createOffer())
    status, body = await post(
        base,
        secret,
        f"/rooms/{room}/subscribe",
        {"peer": peer, "source": source, "sdp": pc.localDescription.sdp, "type": "offer"},
    )
    assert status == 200, body
    await pc.setRemoteDescription(RTCSessionDescription(sdp=body["sdp"], type="answer"))
    return subscriber


async def _consume(subscriber: Subscriber, track: MediaStreamTrack) -> None:
    with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
        while True:
            await track.recv()
            subscriber.frames[track.kind] += 1
            if track.kind == "video" and subscriber.first_video_at is None:
                subscriber.first_video_at = time.monotonic()
                subscriber.first_video.set()


async def wait_for(predicate: Any, timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)
