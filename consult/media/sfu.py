"""Rooms, peers, publications and subscriptions: the selective forwarding unit.

Every participant publishes one peer connection (Opus audio and VP8 video, receive-only on
our side); every subscriber gets one send-only peer connection per source. Encoded frames
go from the publisher's receivers through the source's relays to the subscribers' senders
(:mod:`consult.media.relay`); nothing is decoded or re-encoded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCSessionDescription
from aiortc import sdp as aiortc_sdp
from aiortc.rtcrtpparameters import RTCRtpCodecCapability
from django.utils.translation import gettext as _

from consult.media import forward, recorder
from consult.media.config import MediaConfig, rtc_configuration
from consult.media.relay import KINDS, Source

logger = logging.getLogger(__name__)

NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# The codecs we forward, per kind (RTX for VP8 retransmissions).
FORWARDED = {"audio": ("audio/opus",), "video": ("video/vp8",)}
_PREFERRED = {"audio": ("audio/opus",), "video": ("video/vp8", "video/rtx")}


class Refusal(Exception):
    """A request the service refuses: HTTP status, stable error code, readable message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def codec_preferences(kind: str) -> list[RTCRtpCodecCapability]:
    capabilities = RTCRtpReceiver.getCapabilities(kind)
    assert capabilities is not None
    return [c for c in capabilities.codecs if c.mimeType.lower() in _PREFERRED[kind]]


def check_offer(text: str) -> set[str]:
    """The media kinds of an SDP offer we can forward; refuses malformed or foreign offers."""
    try:
        description = aiortc_sdp.SessionDescription.parse(text)
    except Exception:
        raise Refusal(422, "bad_sdp", _("The session description could not be read.")) from None
    if not description.media:
        raise Refusal(422, "bad_sdp", _("The session description has no media section."))
    kinds: list[str] = []
    for media in description.media:
        if media.kind not in KINDS:
            continue
        if media.dtls is None or not media.dtls.fingerprints:
            raise Refusal(422, "bad_sdp", _("The session description has no DTLS fingerprint."))
        if media.ice is None or not media.ice.usernameFragment or not media.ice.password:
            raise Refusal(422, "bad_sdp", _("The session description has no ICE credentials."))
        offered = {codec.mimeType.lower() for codec in media.rtp.codecs}
        if not offered.intersection(FORWARDED[media.kind]):
            raise Refusal(
                415,
                "unsupported_codec",
                _("Only Opus audio and VP8 video can be forwarded; the offer has %(codecs)s.")
                % {"codecs": ", ".join(sorted(offered)) or "-"},
            )
        kinds.append(media.kind)
    if not kinds:
        raise Refusal(
            415, "unsupported_codec", _("The offer has neither Opus audio nor VP8 video.")
        )
    if len(kinds) != len(set(kinds)):
        raise Refusal(
            415, "unsupported_codec", _("One audio and one video stream at most per connection.")
        )
    return set(kinds)


@dataclass(eq=False)
class Publication:
    pc: RTCPeerConnection
    kinds: set[str]
    receivers: dict[str, RTCRtpReceiver] = field(default_factory=dict)
    taps: dict[str, forward.EncodedFrameTap] = field(default_factory=dict)
    recorder: recorder.WebmRecorder | None = None
    started: float = field(default_factory=time.monotonic)


@dataclass(eq=False)
class Subscription:
    pc: RTCPeerConnection
    source: str
    tracks: dict[str, forward.ForwardTrack] = field(default_factory=dict)


@dataclass(eq=False)
class Peer:
    id: str
    source: Source
    publication: Publication | None = None
    subscriptions: dict[str, Subscription] = field(default_factory=dict)


@dataclass(eq=False)
class Room:
    name: str
    peers: dict[str, Peer] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class SFU:
    """All rooms of one media service process."""

    def __init__(self, config: MediaConfig) -> None:
        self.config = config
        self.rooms: dict[str, Room] = {}
        self._tasks: set[asyncio.Future[Any]] = set()

    # ------------------------------------------------------------------ lookups

    def _room(self, name: str, *, create: bool = False) -> Room:
        room = self.rooms.get(name)
        if room is None:
            if not create:
                raise Refusal(404, "unknown_room", _("There is no such room."))
            room = self.rooms[name] = Room(name)
        return room

    def _peer(self, room: Room, peer_id: str) -> Peer:
        peer = room.peers.get(peer_id)
        if peer is None:
            raise Refusal(404, "unknown_peer", _("There is no such participant in the room."))
        return peer

    def _join(self, room: Room, peer_id: str) -> Peer:
        peer = room.peers.get(peer_id)
        if peer is None:
            if len(room.peers) >= self.config.max_room_peers:
                raise Refusal(
                    409,
                    "room_full",
                    _("The room is full (%(count)d participants at most).")
                    % {"count": self.config.max_room_peers},
                )
            peer = Peer(peer_id, Source(peer_id, keyframe_interval=self.config.keyframe_interval))
            room.peers[peer_id] = peer
        return peer

    def _forget_if_idle(self, room: Room, peer: Peer) -> None:
        if peer.publication is None and not peer.subscriptions:
            room.peers.pop(peer.id, None)
            peer.source.close()
        if not room.peers:
            self.rooms.pop(room.name, None)

    # ------------------------------------------------------------------ publish

    async def publish(
        self,
        room_name: str,
        peer_id: str,
        offer: str,
        *,
        record: bool = False,
        consult_id: int | None = None,
        user_id: int | None = None,
    ) -> str:
        """Answer a publisher's offer; a new publish replaces the peer's previous one."""
        kinds = check_offer(offer)
        room = self._room(room_name, create=True)
        async with room.lock:
            fresh = peer_id not in room.peers
            try:
                peer = self._join(room, peer_id)
            except Refusal:
                if not room.peers:
                    self.rooms.pop(room.name, None)
                raise
            previous = peer.publication
            pc = RTCPeerConnection(rtc_configuration())
            publication = Publication(pc=pc, kinds=kinds)
            for kind in sorted(kinds):
                transceiver = pc.addTransceiver(kind, direction="recvonly")
                transceiver.setCodecPreferences(codec_preferences(kind))
                publication.receivers[kind] = transceiver.receiver
            try:
                await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
                # Before aiortc starts the receivers (its connect task has not run yet).
                for kind, receiver in publication.receivers.items():
                    publication.taps[kind] = peer.source.relays[kind].attach(receiver)
                await pc.setLocalDescription(await pc.createAnswer())
            except Exception as exc:
                for kind, receiver in publication.receivers.items():
                    peer.source.relays[kind].detach(receiver)
                    if previous is not None and kind in previous.receivers:
                        peer.source.relays[kind].restore(previous.receivers[kind])
                await pc.close()
                if fresh:
                    self._forget_if_idle(room, peer)
                logger.info("publish offer of %s/%s refused: %s", room_name, peer_id, exc)
                raise Refusal(
                    422,
                    "bad_sdp",
                    _("The session description was refused: %(error)s")
                    % {"error": exc or type(exc).__name__},
                ) from None
            if previous is not None:  # replaced only once the new offer is answered
                await self._end_publication(peer, previous)
            if record and consult_id is not None and user_id is not None:
                publication.recorder = recorder.WebmRecorder(
                    path=recorder.spool_path(
                        self.config.spool_dir, consult_id=consult_id, user_id=user_id
                    ),
                    kinds=kinds,
                    consult_id=consult_id,
                    user_id=user_id,
                )
                for kind in kinds:
                    peer.source.relays[kind].sinks.append(publication.recorder.write)
            peer.publication = publication
            self._watch(pc, lambda: self._publication_lost(room, peer, publication))
            for kind in kinds:  # subscribers waiting on a previous publish need a key frame
                if peer.source.relays[kind].tracks:
                    peer.source.relays[kind].request_keyframe(force=True)
            return pc.localDescription.sdp

    async def _publication_lost(self, room: Room, peer: Peer, publication: Publication) -> None:
        async with room.lock:
            if peer.publication is publication:
                await self._end_publication(peer, publication)

    async def _end_publication(self, peer: Peer, publication: Publication) -> None:
        if peer.publication is publication:
            peer.publication = None
        for kind, receiver in publication.receivers.items():
            relay = peer.source.relays[kind]
            relay.detach(receiver)  # a no-op when a newer publish feeds the relay already
            if publication.recorder is not None:
                with contextlib.suppress(ValueError):
                    relay.sinks.remove(publication.recorder.write)
        if publication.recorder is not None:
            rec = publication.recorder
            finished = rec.close()
            if finished is not None:
                self._spawn(
                    asyncio.to_thread(
                        recorder.store_recording,
                        finished,
                        consult_id=rec.consult_id,
                        user_id=rec.user_id,
                    )
                )
        await publication.pc.close()

    # ------------------------------------------------------------------ subscribe

    async def subscribe(self, room_name: str, peer_id: str, source_id: str, offer: str) -> str:
        """Answer a subscriber's receive-only offer with the source's forwarded tracks."""
        kinds = check_offer(offer)
        if source_id == peer_id:
            raise Refusal(400, "bad_request", _("A participant cannot subscribe to itself."))
        room = self._room(room_name)
        async with room.lock:
            source = room.peers.get(source_id)
            if source is None or source.publication is None:
                raise Refusal(404, "unknown_source", _("That participant is not publishing."))
            fresh = peer_id not in room.peers
            peer = self._join(room, peer_id)
            previous = peer.subscriptions.pop(source_id, None)
            if previous is not None:
                await self._end_subscription(room, peer, previous)
            pc = RTCPeerConnection(rtc_configuration())
            subscription = Subscription(pc=pc, source=source_id)
            for kind in sorted(kinds):
                relay = source.source.relays[kind]
                track = relay.add_track()
                subscription.tracks[kind] = track
                transceiver = pc.addTransceiver(track, direction="sendonly")
                transceiver.setCodecPreferences(codec_preferences(kind))
                if kind == "video":
                    forward.on_keyframe_request(transceiver.sender, relay.request_keyframe)
            try:
                await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
                await pc.setLocalDescription(await pc.createAnswer())
            except Exception as exc:
                await self._end_subscription(room, peer, subscription)
                if fresh:
                    self._forget_if_idle(room, peer)
                logger.info("subscribe offer of %s/%s refused: %s", room_name, peer_id, exc)
                raise Refusal(
                    422,
                    "bad_sdp",
                    _("The session description was refused: %(error)s")
                    % {"error": exc or type(exc).__name__},
                ) from None
            peer.subscriptions[source_id] = subscription
            self._watch(pc, lambda: self._subscription_lost(room, peer, subscription))
            return pc.localDescription.sdp

    async def _subscription_lost(self, room: Room, peer: Peer, subscription: Subscription) -> None:
        async with room.lock:
            if peer.subscriptions.get(subscription.source) is subscription:
                del peer.subscriptions[subscription.source]
                await self._end_subscription(room, peer, subscription)

    async def _end_subscription(self, room: Room, peer: Peer, subscription: Subscription) -> None:
        source = room.peers.get(subscription.source)
        for kind, track in subscription.tracks.items():
            if source is not None:
                source.source.relays[kind].remove_track(track)
            else:
                track.end()
        await subscription.pc.close()

    # ------------------------------------------------------------------ peers

    async def leave(self, room_name: str, peer_id: str) -> None:
        """Remove a peer: its publication (recording stored), its and others' subscriptions."""
        room = self._room(room_name)
        async with room.lock:
            peer = self._peer(room, peer_id)
            await self._drop_connections(room, peer)
            for other in list(room.peers.values()):
                subscription = other.subscriptions.pop(peer_id, None)
                if subscription is not None:
                    await self._end_subscription(room, other, subscription)
            room.peers.pop(peer_id, None)
            peer.source.close()
            if not room.peers:
                self.rooms.pop(room.name, None)

    async def cut(self, room_name: str, peer_id: str) -> None:
        """Fault injection: drop the peer's transports silently, as a network cut would.

        The peer stays in the room and its subscribers keep their connections: its next
        publish feeds them again.
        """
        if not self.config.faults:
            raise Refusal(404, "not_found", _("Fault injection is off."))
        room = self._room(room_name)
        async with room.lock:
            peer = self._peer(room, peer_id)
            pcs = [s.pc for s in peer.subscriptions.values()]
            if peer.publication is not None:
                pcs.append(peer.publication.pc)
            await asyncio.gather(*(forward.cut_transports(pc) for pc in pcs))
            await self._drop_connections(room, peer)

    async def _drop_connections(self, room: Room, peer: Peer) -> None:
        if peer.publication is not None:
            await self._end_publication(peer, peer.publication)
        subscriptions = list(peer.subscriptions.values())
        peer.subscriptions.clear()
        for subscription in subscriptions:
            await self._end_subscription(room, peer, subscription)

    async def request_keyframe(self, room_name: str, peer_id: str) -> None:
        room = self._room(room_name)
        peer = self._peer(room, peer_id)
        if peer.publication is None or "video" not in peer.publication.kinds:
            raise Refusal(404, "unknown_source", _("That participant is not publishing video."))
        peer.source.request_keyframe(force=True)

    # ------------------------------------------------------------------ reports

    def room_state(self, room_name: str) -> dict[str, Any]:
        room = self._room(room_name)
        return {
            "peers": [
                {
                    "peer": peer.id,
                    "kinds": sorted(peer.publication.kinds) if peer.publication else [],
                    "subscriptions": sorted(peer.subscriptions),
                }
                for peer in room.peers.values()
            ]
        }

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "rooms": len(self.rooms),
            "peers": sum(len(r.peers) for r in self.rooms.values()),
        }

    def stats(self) -> dict[str, Any]:
        rooms: dict[str, Any] = {}
        for room in self.rooms.values():
            peers: dict[str, Any] = {}
            for peer in room.peers.values():
                publication = peer.publication
                peers[peer.id] = {
                    "publishing": sorted(publication.kinds) if publication else [],
                    "relays": {k: r.stats() for k, r in peer.source.relays.items()},
                    "received_frames": {k: t.frames for k, t in publication.taps.items()}
                    if publication
                    else {},
                    "decoder_items": sum(t.decoder_items for t in publication.taps.values())
                    if publication
                    else 0,
                    "recording": dict(publication.recorder.packets)
                    if publication and publication.recorder
                    else None,
                    "subscriptions": sorted(peer.subscriptions),
                }
            rooms[room.name] = peers
        return {**self.health(), "rooms_detail": rooms}

    # ------------------------------------------------------------------ lifecycle

    def _watch(self, pc: RTCPeerConnection, on_lost: Any) -> None:
        @pc.on("connectionstatechange")
        def _changed() -> None:
            if pc.connectionState in ("failed", "closed"):
                self._spawn(on_lost())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for background work (closing connections, storing recordings)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Leave every room (recordings are stored) and wait for the background work."""
        for room in list(self.rooms.values()):
            for peer_id in list(room.peers):
                with contextlib.suppress(Refusal):
                    await self.leave(room.name, peer_id)
        await self.drain()
