"""A publisher's media as the service fans it out: one :class:`Relay` per kind.

A :class:`Source` belongs to a peer for as long as it is in the room, longer than any one
publish peer connection: when the peer publishes again (after a cut, or to switch to
audio only), the new receivers feed the same relays, timestamps continue where they were,
a key frame is asked for, and subscribers keep their peer connections.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import av
from aiortc import RTCRtpReceiver
from aiortc.jitterbuffer import JitterFrame

from consult.media import forward

logger = logging.getLogger(__name__)

KINDS = ("audio", "video")
# One frame interval, put between the last timestamp of one publisher and the next one's first.
_STEP = {"video": 3000, "audio": 960}

PacketSink = Callable[[str, av.Packet, bool], None]


class Relay:
    """Fan one kind of a publisher's encoded frames out to subscriber tracks (and a recorder)."""

    def __init__(self, kind: str, *, keyframe_interval: float = 0.5) -> None:
        self.kind = kind
        self.time_base = forward.TIME_BASES[kind]
        self.keyframe_interval = keyframe_interval
        self.tracks: set[forward.ForwardTrack] = set()
        self.sinks: list[PacketSink] = []
        self.receiver: RTCRtpReceiver | None = None
        self.frames = 0
        self.keyframes = 0
        self.keyframe_requests = 0  # PLIs sent to the publisher
        self._offset = 0
        self._last_pts: int | None = None
        self._rebase = True
        self._last_request = float("-inf")
        self._pending_request = False

    # -- publisher side

    def attach(self, receiver: RTCRtpReceiver) -> forward.EncodedFrameTap:
        """Take frames from a new publisher receiver from now on."""

        def on_frame(frame: JitterFrame) -> None:
            if self.receiver is receiver:  # a replaced publisher's last frames are dropped
                self.feed(frame)

        tap = forward.tap_receiver(receiver, self.kind, on_frame)
        if self.receiver is not receiver:
            self.receiver = receiver
            self._rebase = True
        return tap

    def detach(self, receiver: RTCRtpReceiver) -> None:
        if self.receiver is receiver:
            self.receiver = None

    def restore(self, receiver: RTCRtpReceiver) -> None:
        """Feed from an already attached receiver again (a replacing publish failed)."""
        if self.receiver is not receiver:
            self.receiver = receiver
            self._rebase = True

    def feed(self, frame: JitterFrame) -> None:
        """One encoded frame from the publisher: timestamp it and hand it to every track."""
        if self._rebase:
            start = 0 if self._last_pts is None else self._last_pts + _STEP[self.kind]
            self._offset = start - frame.timestamp
            self._rebase = False
        pts = frame.timestamp + self._offset
        self._last_pts = pts
        keyframe = self.kind == "audio" or forward.vp8_is_keyframe(frame.data)
        packet = av.Packet(frame.data)
        packet.pts = pts
        packet.dts = pts
        packet.time_base = self.time_base
        if keyframe:
            packet.is_keyframe = True
        self.frames += 1
        if self.kind == "video" and keyframe:
            self.keyframes += 1
        if self._pending_request and self.kind == "video":
            self._pending_request = False
            self.request_keyframe(force=True)
        elif self.kind == "video" and not keyframe and self._anyone_waiting():
            # Chromium ignores a request that comes soon after its last key frame: keep
            # asking (at most once per interval) while a subscriber still waits for one.
            self.request_keyframe()
        for track in tuple(self.tracks):
            track.push(packet, keyframe=keyframe)
        for sink in self.sinks:
            try:
                sink(self.kind, packet, keyframe)
            except Exception:
                logger.exception("a %s sink failed", self.kind)

    def _anyone_waiting(self) -> bool:
        return any(track.waiting_keyframe for track in self.tracks)

    def request_keyframe(self, *, force: bool = False) -> bool:
        """Ask the publisher for a key frame: at most once per interval unless ``force``."""
        if self.kind != "video":
            return False
        now = time.monotonic()
        if not force and now - self._last_request < self.keyframe_interval:
            return False
        if self.receiver is None or not forward.request_keyframe(self.receiver):
            self._pending_request = True  # asked again with the publisher's first frame
            return False
        self._last_request = now
        self.keyframe_requests += 1
        return True

    # -- subscriber side

    def add_track(self) -> forward.ForwardTrack:
        """A new subscriber track, waiting for a key frame that is requested at once."""
        track = forward.ForwardTrack(
            self.kind,
            on_keyframe_needed=self.request_keyframe,
            on_started=self._track_started,
        )
        self.tracks.add(track)
        if self.kind == "video":
            self.request_keyframe(force=True)
        return track

    def remove_track(self, track: forward.ForwardTrack) -> None:
        self.tracks.discard(track)
        track.end()

    def _track_started(self, track: forward.ForwardTrack) -> None:
        # The subscriber's transport is up now; the key frame asked for at subscription
        # may have come and gone while ICE and DTLS connected.
        if track.waiting_keyframe:
            self.request_keyframe(force=True)

    def close(self) -> None:
        for track in tuple(self.tracks):
            self.remove_track(track)
        self.sinks.clear()
        self.receiver = None

    def stats(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "keyframes": self.keyframes,
            "keyframe_requests": self.keyframe_requests,
            "subscribers": len(self.tracks),
            "forwarded": sum(t.forwarded for t in self.tracks),
            "dropped": sum(t.dropped for t in self.tracks),
        }


class Source:
    """A peer's published media: an audio and a video relay."""

    def __init__(self, peer: str, *, keyframe_interval: float = 0.5) -> None:
        self.peer = peer
        self.relays = {kind: Relay(kind, keyframe_interval=keyframe_interval) for kind in KINDS}

    def request_keyframe(self, *, force: bool = False) -> bool:
        return self.relays["video"].request_keyframe(force=force)

    def close(self) -> None:
        for relay in self.relays.values():
            relay.close()
