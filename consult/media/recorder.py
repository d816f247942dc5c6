"""Record a publisher's forwarded Opus and VP8 into WebM as it goes by: no decode, no encode.

The relays hand the recorder the same encoded frames they forward; PyAV's Matroska muxer
writes them to a spool file. FFmpeg opens an encoder context per stream only to write the
stream headers (Opus ``CodecPrivate``); no frame is ever encoded or decoded. When the
publication ends the file is uploaded to object storage under ``recordings/`` and
registered against the consult (:func:`store_recording`, run in a worker thread).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
import uuid
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from django.db import close_old_connections
from django.utils import timezone

from consult.media import forward

logger = logging.getLogger(__name__)

MAX_PENDING_AUDIO = 500  # 10 s of Opus held while the first video key frame is awaited
WAIT_FOR_VIDEO_SECONDS = 5.0  # then the file starts without video


@dataclass(frozen=True)
class RecordingFile:
    """A finished spool file and what it holds."""

    path: Path
    size: int
    sha256: str
    started_at: dt.datetime
    ended_at: dt.datetime
    packets: dict[str, int]


class WebmRecorder:
    """Mux encoded frames of one publication into a WebM spool file.

    Each stream's timestamps start at the wall-clock arrival of its first frame, so audio and
    video keep the offset they had on the wire.
    """

    def __init__(self, *, path: Path, kinds: set[str], consult_id: int, user_id: int) -> None:
        self.path = path
        self.kinds = set(kinds)
        self.consult_id = consult_id
        self.user_id = user_id
        self.started_at = timezone.now()
        self.packets = {"audio": 0, "video": 0}
        self._t0 = time.monotonic()
        self._container: Any = None
        self._streams: dict[str, Any] = {}
        self._offsets: dict[str, int] = {}
        self._last_pts: dict[str, int] = {}
        self._pending: list[tuple[str, av.Packet, bool, float]] = []
        self._closed = False

    def write(self, kind: str, packet: av.Packet, keyframe: bool) -> None:
        """Add one encoded frame (a copy is muxed; the relay's packet is shared)."""
        if self._closed or kind not in self.kinds:
            return
        arrival = time.monotonic()
        if self._container is None:
            if not self._start(kind, packet, keyframe, arrival):
                self._pending.append((kind, packet, keyframe, arrival))
                del self._pending[:-MAX_PENDING_AUDIO]
                return
            pending, self._pending = self._pending, []
            for item in pending:
                self._mux(*item)
        self._mux(kind, packet, keyframe, arrival)

    def _start(self, kind: str, packet: av.Packet, keyframe: bool, arrival: float) -> bool:
        size = forward.vp8_dimensions(bytes(packet)) if kind == "video" else None
        waited = arrival - self._t0 > WAIT_FOR_VIDEO_SECONDS
        if "video" in self.kinds and size is None and not waited:
            return False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        container = av.open(str(self.path), mode="w", format="webm")
        if "video" in self.kinds and size is not None:
            video = container.add_stream("libvpx", rate=30)
            video.width, video.height = size
            video.time_base = forward.TIME_BASES["video"]
            self._streams["video"] = video
        else:
            self.kinds.discard("video")
        if "audio" in self.kinds:
            audio = container.add_stream("libopus", rate=forward.AUDIO_CLOCK)
            audio.time_base = forward.TIME_BASES["audio"]
            self._streams["audio"] = audio
        self._container = container
        return True

    def _mux(self, kind: str, packet: av.Packet, keyframe: bool, arrival: float) -> None:
        stream = self._streams.get(kind)
        if stream is None or packet.pts is None:
            return
        if kind == "video" and not self.packets["video"] and not keyframe:
            return  # the file's video starts on a key frame
        time_base: Fraction = forward.TIME_BASES[kind]
        if kind not in self._offsets:
            self._offsets[kind] = round((arrival - self._t0) / time_base) - packet.pts
        pts = packet.pts + self._offsets[kind]
        last = self._last_pts.get(kind)
        if last is not None and pts <= last:
            pts = last + 1
        self._last_pts[kind] = pts
        copy = av.Packet(bytes(packet))
        copy.pts = copy.dts = pts
        copy.time_base = time_base
        copy.is_keyframe = keyframe
        copy.stream = stream
        try:
            self._container.mux(copy)
        except av.FFmpegError:
            logger.exception("muxing a %s packet failed", kind)
            return
        self.packets[kind] += 1

    def close(self) -> RecordingFile | None:
        """Finish the file; None when nothing was recorded (the spool file is removed)."""
        if self._closed:
            return None
        self._closed = True
        ended_at = timezone.now()
        if self._container is None:
            return None
        self._container.close()
        if not any(self.packets.values()):
            self.path.unlink(missing_ok=True)
            return None
        digest = hashlib.sha256()
        with self.path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        return RecordingFile(
            path=self.path,
            size=self.path.stat().st_size,
            sha256=digest.hexdigest(),
            started_at=self.started_at,
            ended_at=ended_at,
            packets=dict(self.packets),
        )


def spool_path(spool_dir: Path, *, consult_id: int, user_id: int) -> Path:
    stamp = timezone.now().strftime("%Y%m%dT%H%M%S")
    return spool_dir / f"consult-{consult_id}-u{user_id}-{stamp}-{uuid.uuid4().hex[:8]}.webm"


def store_recording(recording: RecordingFile, *, consult_id: int, user_id: int) -> Any:
    """Upload a finished recording and register it against the consult (blocking).

    The spool file is removed once the object and its row exist, and also when the consult
    refuses the recording (no consent: ``recording_register`` deletes the object and audits
    the refusal). When storage fails it stays in the spool folder and the error is logged.
    """
    from consult.recordings import recording_register
    from objectstore import get_store
    from records.selectors import NotFound
    from records.services import InvalidRecord

    try:
        with recording.path.open("rb") as fh:
            stored = get_store().put(
                fh,
                prefix="recordings",
                content_type="video/webm",
                expected_sha256=recording.sha256,
                size=recording.size,
            )
        row = recording_register(
            consult_id=consult_id,
            user_id=user_id,
            object_key=stored.key,
            size=stored.size,
            sha256=stored.sha256,
            started_at=recording.started_at,
            ended_at=recording.ended_at,
        )
    except (InvalidRecord, NotFound) as exc:
        logger.warning("recording of consult %s refused, deleted: %s", consult_id, exc)
        recording.path.unlink(missing_ok=True)
        return None
    except Exception:
        logger.exception("keeping %s: storing the recording failed", recording.path)
        return None
    finally:
        close_old_connections()
    recording.path.unlink(missing_ok=True)
    return row
