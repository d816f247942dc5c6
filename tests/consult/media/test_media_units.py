"""The forwarding pieces on their own: VP8 headers, frame assembly, forward tracks, relays."""

from __future__ import annotations

import asyncio
from fractions import Fraction

import av
import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtp import RtpPacket

from consult.media import forward
from consult.media.relay import Relay

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def vp8_frames(count: int = 3, size: tuple[int, int] = (64, 48)) -> list[bytes]:
    encoder = av.CodecContext.create("libvpx", "w")
    encoder.width, encoder.height = size
    encoder.pix_fmt = "yuv420p"
    encoder.time_base = Fraction(1, 90000)
    encoder.framerate = 15
    frames: list[bytes] = []
    for n in range(count):
        picture = av.VideoFrame.from_ndarray(
            np.full((size[1], size[0], 3), n * 40, np.uint8), format="rgb24"
        ).reformat(format="yuv420p")
        picture.pts = n * 6000
        frames += [bytes(p) for p in encoder.encode(picture)]
    frames += [bytes(p) for p in encoder.encode(None)]
    return frames


def rtp(seq: int, timestamp: int, data: bytes, *, marker: bool = False) -> RtpPacket:
    packet = RtpPacket(sequence_number=seq, timestamp=timestamp, marker=int(marker), ssrc=1234)
    packet._data = data  # type: ignore[attr-defined]
    return packet


def test_vp8_key_frames_and_their_size_are_read_from_the_header():
    key, inter, *_ = vp8_frames()
    assert forward.vp8_is_keyframe(key)
    assert forward.vp8_dimensions(key) == (64, 48)
    assert not forward.vp8_is_keyframe(inter)
    assert forward.vp8_dimensions(inter) is None
    assert not forward.vp8_is_keyframe(b"\x00")


def test_a_picture_is_released_with_its_marker_packet_not_with_the_next_picture():
    assembler = forward.VideoFrameAssembler()
    assert assembler.add(rtp(100, 3000, b"ab")) == (False, None)
    pli, frame = assembler.add(rtp(101, 3000, b"cd", marker=True))
    assert (pli, frame.data, frame.timestamp) == (False, b"abcd", 3000)
    assert assembler.last_ssrc == 1234


def test_a_gap_holds_the_picture_until_the_retransmission_arrives():
    assembler = forward.VideoFrameAssembler()
    assert assembler.add(rtp(10, 0, b"a"))[1] is None
    assert assembler.add(rtp(12, 0, b"c", marker=True))[1] is None
    frame = assembler.add(rtp(11, 0, b"b"))[1]
    assert frame.data == b"abc"


def test_a_picture_without_marker_ends_when_the_timestamp_changes():
    assembler = forward.VideoFrameAssembler()
    assembler.add(rtp(1, 0, b"a"))
    frame = assembler.add(rtp(2, 3000, b"b"))[1]
    assert (frame.data, frame.timestamp) == (b"a", 0)


def test_audio_packets_pass_at_once_and_late_ones_are_dropped():
    buffer = forward.AudioPassThrough()
    assert buffer.add(rtp(5, 960, b"x"))[1].data == b"x"
    assert buffer.add(rtp(7, 2880, b"z"))[1].data == b"z"
    assert buffer.add(rtp(6, 1920, b"y")) == (False, None)
    assert buffer.add(rtp(7, 2880, b"z")) == (False, None)  # a duplicate
    wrapping = forward.AudioPassThrough()
    wrapping.add(rtp(65535, 4800, b"v"))
    assert wrapping.add(rtp(0, 5760, b"w"))[1].data == b"w"  # the sequence number wraps


def packet(data: bytes, pts: int) -> av.Packet:
    p = av.Packet(data)
    p.pts = pts
    p.time_base = Fraction(1, 90000)
    return p


async def test_a_video_track_waits_for_a_key_frame_and_restarts_on_one_after_overflow():
    asked: list[int] = []
    track = forward.ForwardTrack("video", on_keyframe_needed=lambda: asked.append(1), max_queue=3)
    key, inter, *_ = vp8_frames()
    track.push(packet(inter, 0), keyframe=False)
    assert track.waiting_keyframe
    track.push(packet(key, 3000), keyframe=True)
    track.push(packet(inter, 6000), keyframe=False)
    assert bytes(await track.recv()) == key
    assert bytes(await track.recv()) == inter
    for n in range(4):  # the subscriber falls behind: the queue is dropped, a key frame asked
        track.push(packet(inter, 9000 + n), keyframe=False)
    assert track.waiting_keyframe
    assert asked == [1]
    track.end()
    with pytest.raises(forward.MediaStreamError):
        await asyncio.wait_for(track.recv(), 1)


async def test_a_relay_keeps_timestamps_running_across_a_new_publisher():
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        first = pc.addTransceiver("video", direction="recvonly").receiver
        second = pc.addTransceiver("video", direction="recvonly").receiver
        relay = Relay("video")
        track = relay.add_track()
        key = vp8_frames()[0]
        tap = relay.attach(first)
        tap.put((None, JitterFrame(key, 0)))
        tap.put((None, JitterFrame(key, 6000)))
        tap2 = relay.attach(second)
        tap.put((None, JitterFrame(key, 12000)))  # the replaced publisher: ignored
        tap2.put((None, JitterFrame(key, 500)))
        assert [(await track.recv()).pts for _ in range(3)] == [0, 6000, 9000]
        assert relay.frames == 3
        assert first._RTCRtpReceiver__decoder_queue is tap
    finally:
        await pc.close()
