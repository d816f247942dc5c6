"""Forward encoded media through aiortc without decoding it: the hooks into aiortc's internals.

aiortc 1.16 always decodes what an :class:`~aiortc.RTCRtpReceiver` receives: the receiver
reassembles RTP packets into encoded frames in its jitter buffer and hands them to a decoder
thread through a ``queue.Queue``. The media service needs the encoded frames, not pictures,
so this module, and only this module, reaches into the receiver and the sender:

* :func:`tap_receiver` replaces the receiver's jitter buffer with a frame assembler that
  releases a VP8 picture as soon as its last packet (RTP marker bit) arrived, and each Opus
  packet at once, and replaces the decoder queue with an :class:`EncodedFrameTap` that hands
  every encoded frame to a callback. The decoder thread is still started by aiortc, but it
  only ever receives the stop sentinel: no decoder is created.
* :func:`request_keyframe` sends a PLI (RTCP picture loss indication) to the publisher
  through the receiver's own RTCP sender.
* :func:`on_keyframe_request` calls back when a subscriber's PLI or FIR reaches one of our
  senders (aiortc would otherwise only flag its encoder, which we never use).
* :class:`ForwardTrack` is a track whose ``recv`` yields :class:`av.Packet`: aiortc's sender
  then packs the bytes (``Vp8Encoder.pack``, ``OpusEncoder.pack``: one picture or one Opus
  frame per call, new VP8 picture id, marker bit on the last packet) without encoding.
* :func:`cut_transports` closes a peer connection's ICE sockets without a word to the other
  side, as a network cut would.

Every private name used here is pinned by ``tests/consult/media/test_aiortc_internals.py``;
aiortc is pinned to 1.16.0 in ``pyproject.toml``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
from collections import deque
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import av
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

logger = logging.getLogger(__name__)

VIDEO_CLOCK = 90000
AUDIO_CLOCK = 48000
TIME_BASES = {"video": Fraction(1, VIDEO_CLOCK), "audio": Fraction(1, AUDIO_CLOCK)}

# The receiver's private attributes we replace (name-mangled by Python).
_JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"
_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"
_RECEIVER_STARTED = "_RTCRtpReceiver__started"

FrameCallback = Callable[[JitterFrame], None]


# --------------------------------------------------------------------------- VP8 headers


def vp8_is_keyframe(data: bytes) -> bool:
    """True for a VP8 key frame (RFC 6386 section 9.1: P bit 0 and the start code)."""
    return len(data) >= 10 and not data[0] & 1 and data[3:6] == b"\x9d\x01\x2a"


def vp8_dimensions(data: bytes) -> tuple[int, int] | None:
    """Width and height from a VP8 key frame header, or None for an inter frame."""
    if not vp8_is_keyframe(data):
        return None
    width = int.from_bytes(data[6:8], "little") & 0x3FFF
    height = int.from_bytes(data[8:10], "little") & 0x3FFF
    return width, height


# --------------------------------------------------------------------------- frame assembly


class VideoFrameAssembler(JitterBuffer):
    """aiortc's jitter buffer, releasing a picture when its marker packet arrives.

    aiortc's own buffer releases a picture only when the first packet of the *next* one
    arrives, which costs one frame interval (67 ms at 15 fps) per hop. The sender sets the
    marker bit on the last packet of each picture (RFC 7741 section 4.1), so a contiguous
    run of packets ending with the marker is a whole picture; a timestamp change without a
    marker still ends the picture, as in aiortc. Gaps wait for NACK retransmissions.
    """

    def __init__(self, capacity: int = 256) -> None:
        super().__init__(capacity=capacity, is_video=True)
        self.last_ssrc: int | None = None

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        self.last_ssrc = packet.ssrc
        return super().add(packet)

    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        assert self._origin is not None
        packets: list[RtpPacket] = []
        timestamp: int | None = None
        for count in range(self.capacity):
            packet = self._packets[(self._origin + count) % self._capacity]
            if packet is None:
                return None
            if timestamp is None:
                timestamp = packet.timestamp
            elif packet.timestamp != timestamp:
                self.remove(count)
                return _joined(packets, timestamp)
            packets.append(packet)
            if packet.marker:
                self.remove(count + 1)
                return _joined(packets, timestamp)
        return None


class AudioPassThrough(JitterBuffer):
    """Release every Opus packet at once (one packet is one frame); drop late ones.

    aiortc's audio buffer holds four packets back (80 ms) for its decoder; reordering is
    left to the subscriber's own jitter buffer.
    """

    def __init__(self) -> None:
        super().__init__(capacity=16, prefetch=0)
        self.last_ssrc: int | None = None
        self._last_seq: int | None = None

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        self.last_ssrc = packet.ssrc
        seq = packet.sequence_number
        if self._last_seq is not None and (self._last_seq - seq) % 65536 < 32768:
            return False, None  # a duplicate, or older than what was already forwarded
        self._last_seq = seq
        return False, JitterFrame(data=packet._data, timestamp=packet.timestamp)  # type: ignore[attr-defined]


def _joined(packets: list[RtpPacket], timestamp: int) -> JitterFrame:
    return JitterFrame(data=b"".join(p._data for p in packets), timestamp=timestamp)  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- receiver tap


class EncodedFrameTap:
    """Stands in for the receiver's decoder queue: frames go to a callback, not a decoder.

    The receiver calls :meth:`put` on the event loop with ``(codec, frame)``; the decoder
    thread aiortc starts blocks in :meth:`get` until the receiver stops and puts ``None``.
    """

    def __init__(self, kind: str, on_frame: FrameCallback) -> None:
        self.kind = kind
        self.on_frame = on_frame
        self.frames = 0
        self.bytes = 0
        self.codec: RTCRtpCodecParameters | None = None
        self.decoder_items = 0  # what the decoder thread was given besides the stop sentinel
        self._thread_queue: queue.Queue[Any] = queue.Queue()

    def put(self, item: tuple[RTCRtpCodecParameters, JitterFrame] | None) -> None:
        if item is None:
            self._thread_queue.put(None)
            return
        codec, frame = item
        self.codec = codec
        self.frames += 1
        self.bytes += len(frame.data)
        try:
            self.on_frame(frame)
        except Exception:
            logger.exception("forwarding a %s frame failed", self.kind)

    def get(self) -> Any:
        item = self._thread_queue.get()
        if item is not None:
            self.decoder_items += 1
        return item


def tap_receiver(receiver: RTCRtpReceiver, kind: str, on_frame: FrameCallback) -> EncodedFrameTap:
    """Hook ``receiver`` so that its encoded frames go to ``on_frame`` instead of a decoder.

    Must run before aiortc starts the receiver (it passes the queue to the decoder thread
    in ``receive()``): in the peer connection's ``track`` event or right after
    ``setRemoteDescription``.
    """
    if getattr(receiver, _RECEIVER_STARTED):
        raise RuntimeError("the receiver has already started")
    tap = EncodedFrameTap(kind, on_frame)
    assembler: JitterBuffer = VideoFrameAssembler() if kind == "video" else AudioPassThrough()
    setattr(receiver, _JITTER_BUFFER, assembler)
    setattr(receiver, _DECODER_QUEUE, tap)
    return tap


def request_keyframe(receiver: RTCRtpReceiver) -> bool:
    """Send a PLI to the publisher of ``receiver``'s stream; False when nothing arrived yet."""
    assembler = getattr(receiver, _JITTER_BUFFER, None)
    ssrc = getattr(assembler, "last_ssrc", None)
    if ssrc is None:
        return False
    task = asyncio.ensure_future(receiver._send_rtcp_pli(ssrc))
    task.add_done_callback(_log_failure)
    return True


def on_keyframe_request(sender: RTCRtpSender, callback: Callable[[], object]) -> None:
    """Call ``callback`` whenever the remote side asks ``sender`` for a key frame (PLI/FIR)."""
    original = sender._send_keyframe

    def send_keyframe() -> None:
        original()
        callback()

    sender._send_keyframe = send_keyframe  # type: ignore[method-assign]


async def cut_transports(pc: RTCPeerConnection) -> None:
    """Close ``pc``'s ICE sockets silently (no DTLS close, no RTCP BYE reaches the peer)."""
    connections = set()
    for transceiver in pc.getTransceivers():
        ice = transceiver.receiver.transport.transport
        connections.add(ice._connection)
    for connection in connections:
        with contextlib.suppress(Exception):
            await connection.close()


def _log_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.warning("sending a PLI failed: %s", task.exception())


# --------------------------------------------------------------------------- sending


class ForwardTrack(MediaStreamTrack):
    """A track yielding encoded :class:`av.Packet` objects that aiortc sends without encoding.

    Video waits for a key frame before it forwards anything (a decoder cannot start on an
    inter frame) and again after it had to drop frames because the subscriber fell behind.
    """

    def __init__(
        self,
        kind: str,
        *,
        on_keyframe_needed: Callable[[], object],
        on_started: Callable[[ForwardTrack], None] | None = None,
        max_queue: int | None = None,
    ) -> None:
        super().__init__()
        self.kind = kind
        self._on_keyframe_needed = on_keyframe_needed
        self._on_started = on_started
        self._max_queue = max_queue or (60 if kind == "video" else 100)
        self._queue: deque[av.Packet | None] = deque()
        self._ready = asyncio.Event()
        self._waiting_keyframe = kind == "video"
        self._started = False
        self.forwarded = 0
        self.dropped = 0

    @property
    def waiting_keyframe(self) -> bool:
        return self._waiting_keyframe

    def push(self, packet: av.Packet, *, keyframe: bool) -> None:
        """Queue one encoded frame (the same packet object is shared by every subscriber)."""
        if self.readyState != "live":
            return
        if self._waiting_keyframe:
            if not keyframe:
                self.dropped += 1
                return
            self._waiting_keyframe = False
        if len(self._queue) >= self._max_queue:
            self.dropped += len(self._queue)
            self._queue.clear()
            if self.kind == "video" and not keyframe:
                self._waiting_keyframe = True
                self.dropped += 1
                self._on_keyframe_needed()
                return
        self._queue.append(packet)
        self._ready.set()

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        if not self._started:
            self._started = True
            self._trim_backlog()
            if self._on_started is not None:
                self._on_started(self)
        while not self._queue:
            self._ready.clear()
            await self._ready.wait()
        packet = self._queue.popleft()
        if packet is None:
            self.stop()
            raise MediaStreamError
        self.forwarded += 1
        return packet

    def end(self) -> None:
        """Finish the track: the sender stops after what is queued."""
        self._queue.append(None)
        self._ready.set()

    def _trim_backlog(self) -> None:
        # The sender starts once ICE and DTLS are up; audio queued meanwhile is stale.
        if self.kind == "audio":
            while len(self._queue) > 3:
                self._queue.popleft()
