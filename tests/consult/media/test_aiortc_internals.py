"""Pin every aiortc and aioice internal the media service hooks (consult/media/forward.py,
consult/media/loopback.py): an upgrade that moves one of them fails here, loudly."""

from __future__ import annotations

import inspect
from fractions import Fraction

import aioice
import aioice.ice
import aiortc
import aiortc.rtcrtpreceiver
import av
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.codecs.opus import OpusEncoder
from aiortc.codecs.vpx import Vp8Encoder, VpxPayloadDescriptor
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtcicetransport import RTCIceTransport

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def params(func: object) -> list[str]:
    return list(inspect.signature(func).parameters)  # type: ignore[arg-type]


def source(func: object) -> str:
    return inspect.getsource(func)  # type: ignore[arg-type]


def test_the_versions_are_the_pinned_ones():
    assert aiortc.__version__ == "1.16.0"
    assert aioice.__version__ == "0.13.0"


async def test_a_receiver_keeps_its_jitter_buffer_and_decoder_queue_where_we_replace_them():
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        receiver = pc.addTransceiver("video", direction="recvonly").receiver
        assert isinstance(receiver._RTCRtpReceiver__jitter_buffer, JitterBuffer)
        assert hasattr(receiver._RTCRtpReceiver__decoder_queue, "put")
        assert receiver._RTCRtpReceiver__started is False
        assert receiver._RTCRtpReceiver__decoder_thread is None
    finally:
        await pc.close()


def test_the_receiver_feeds_the_decoder_queue_from_the_jitter_buffer():
    handle = source(RTCRtpReceiver._handle_rtp_packet)
    assert "self.__jitter_buffer.add(packet)" in handle
    assert "self.__decoder_queue.put((codec, encoded_frame))" in handle
    assert "encoded_frame.timestamp = self.__timestamp_mapper.map(" in handle
    assert "packet._data = depayload(codec, packet.payload)" in handle
    receive = source(RTCRtpReceiver.receive)
    assert "self.__decoder_queue," in receive  # handed to the thread at receive() time
    assert "if not self.__started:" in receive
    worker = source(aiortc.rtcrtpreceiver.decoder_worker)
    assert params(aiortc.rtcrtpreceiver.decoder_worker) == [
        "loop",
        "input_q",
        "output_q",
        "decode_error",
    ]
    assert "input_q.get()" in worker
    assert "get_decoder(codec)" in worker
    stop = source(RTCRtpReceiver._RTCRtpReceiver__stop_decoder)
    assert "self.__decoder_queue.put(None)" in stop


def test_the_jitter_buffer_internals_the_assembler_overrides():
    assert params(JitterBuffer.__init__) == ["self", "capacity", "prefetch", "is_video"]
    assert params(JitterBuffer.add) == ["self", "packet"]
    assert params(JitterBuffer._remove_frame) == ["self", "sequence_number"]
    assert params(JitterBuffer.remove) == ["self", "count"]
    assert "return pli_flag, self._remove_frame(packet.sequence_number)" in source(JitterBuffer.add)
    buffer = JitterBuffer(capacity=16)
    assert (buffer._origin, buffer._capacity, len(buffer._packets)) == (None, 16, 16)
    assert params(JitterFrame.__init__) == ["self", "data", "timestamp"]


def test_picture_loss_is_sent_and_handled_where_we_hook_it():
    assert params(RTCRtpReceiver._send_rtcp_pli) == ["self", "media_ssrc"]
    assert params(RTCRtpSender._send_keyframe) == ["self"]
    handle = source(RTCRtpSender._handle_rtcp_packet)
    assert "RTCP_PSFB_PLI" in handle
    assert "RTCP_PSFB_FIR" in handle
    assert "self._send_keyframe()" in handle


def test_the_sender_packs_av_packets_without_encoding():
    nxt = source(RTCRtpSender._next_encoded_frame)
    assert "if isinstance(data, Frame):" in nxt
    assert "payloads, timestamp = self.__encoder.pack(data)" in nxt
    run = source(RTCRtpSender._run_rtp)
    assert "packet.marker = (i == len(enc_frame.payloads) - 1) and 1 or 0" in run
    assert params(Vp8Encoder.pack) == params(OpusEncoder.pack) == ["self", "packet"]


def test_vp8_pack_makes_one_picture_with_a_new_picture_id_and_the_packets_timestamp():
    encoder = Vp8Encoder()
    packet = av.Packet(bytes(3000))
    packet.pts = 9000
    packet.time_base = Fraction(1, 90000)
    first_id = encoder.picture_id
    payloads, timestamp = encoder.pack(packet)
    assert timestamp == 9000
    assert len(payloads) == 3
    descriptors = [VpxPayloadDescriptor.parse(p)[0] for p in payloads]
    assert [d.partition_start for d in descriptors] == [1, 0, 0]
    assert {d.picture_id for d in descriptors} == {first_id}
    encoder.pack(packet)
    assert encoder.picture_id == (first_id + 2) % (1 << 15)


def test_opus_pack_sends_the_packet_as_is():
    packet = av.Packet(b"\x78" * 40)
    packet.pts = 960
    packet.time_base = Fraction(1, 48000)
    assert OpusEncoder().pack(packet) == ([b"\x78" * 40], 960)


def test_ice_transports_expose_the_aioice_connection_we_cut():
    gatherer = aiortc.rtcicetransport.RTCIceGatherer
    assert "self._connection = Connection(" in source(gatherer.__init__)
    assert "self._connection = gatherer._connection" in source(RTCIceTransport.__init__)
    assert params(aioice.Connection.close) == ["self"]


def test_aioice_gathers_host_candidates_through_the_function_we_replace():
    assert params(aioice.ice.get_host_addresses) == ["use_ipv4", "use_ipv6"]
    assert "addresses = get_host_addresses(" in source(aioice.Connection.gather_candidates)
    assert 'ip.ip != "127.0.0.1"' in source(aioice.ice.get_host_addresses)
