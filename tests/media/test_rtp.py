"""Unit tests: RTP header/sequence/timestamp handling, depacketizers, RTCP, SDP."""

from __future__ import annotations

import base64
import struct

import pytest

from viis.media.rtp import (
    AacDepacketizer,
    RtpStream,
    aac_config_info,
    ntp_to_utc_ms,
    parse_rtcp,
    parse_rtp_header,
)
from viis.media.sdp import MediaDescription, SdpError, parse_sdp, resolve_control

# ---------------------------------------------------------------------------
# helpers


def rtp(seq, ts, payload, marker=False, pt=96, ssrc=0x11223344, csrc=(), ext=None, pad=0):
    b0 = 0x80 | len(csrc)
    if ext is not None:
        b0 |= 0x10
    if pad:
        b0 |= 0x20
    out = struct.pack("!BBHII", b0, (0x80 if marker else 0) | pt, seq & 0xFFFF,
                      ts & 0xFFFFFFFF, ssrc)
    for c in csrc:
        out += struct.pack("!I", c)
    if ext is not None:
        assert len(ext) % 4 == 0
        out += struct.pack("!HH", 0xBEDE, len(ext) // 4) + ext
    out += payload
    if pad:
        out += b"\x00" * (pad - 1) + bytes((pad,))
    return out


def media(codec="h264", pt=96, rate=90000, kind="video", **kw):
    return MediaDescription(index=0, kind=kind, codec=codec, payload_type=pt, clock_rate=rate,
                            **kw)


def stream(codec="h264", wait_keyframe=True, **kw):
    units = []
    st = RtpStream(0, media(codec, **kw), units.append, wall_clock=lambda: 1234,
                   wait_keyframe=wait_keyframe)
    return st, units


SPS = bytes([0x67, 0x42, 0xC0, 0x1E, 0xD9, 0x00, 0xA0, 0x47, 0xFE, 0xC8])
PPS = bytes([0x68, 0xCE, 0x3C, 0x80])
IDR = bytes([0x65, 0x88, 0x84]) + bytes(range(200)) * 20  # 4003 bytes
NONIDR = bytes([0x41, 0x9A, 0x02]) + bytes(range(50))


def fu_a(nal, size=1000):
    """Split one H.264 NAL unit into FU-A payloads."""
    hdr, body = nal[0], nal[1:]
    chunks = [body[i:i + size] for i in range(0, len(body), size)]
    out = []
    for i, c in enumerate(chunks):
        fh = hdr & 0x1F
        if i == 0:
            fh |= 0x80
        if i == len(chunks) - 1:
            fh |= 0x40
        out.append(bytes(((hdr & 0xE0) | 28, fh)) + c)
    return out


def stap_a(*nals):
    out = b"\x18"
    for n in nals:
        out += struct.pack("!H", len(n)) + n
    return out


# ---------------------------------------------------------------------------
# RTP header


def test_header_csrc_extension_padding():
    payload = NONIDR
    pkt = rtp(7, 1000, payload, marker=True, csrc=(1, 2, 3), ext=b"\x01\x02\x03\x04" * 2, pad=4)
    h = parse_rtp_header(pkt)
    assert (h.seq, h.timestamp, h.marker, h.payload_type) == (7, 1000, True, 96)
    assert h.csrc == [1, 2, 3] and h.ext_profile == 0xBEDE and len(h.ext_data) == 8
    assert pkt[h.payload_offset:h.payload_end] == payload
    st, units = stream(wait_keyframe=False)
    st.feed(pkt)
    assert len(units) == 1 and units[0].data == [payload]
    assert units[0].wall_ms == 1234 and units[0].ts == 1000 and not units[0].key


def test_bad_packets_are_counted_not_fatal():
    st, units = stream(wait_keyframe=False)
    st.feed(b"\x80\x60\x00")  # too short
    st.feed(b"\x40" + bytes(20))  # version 1
    st.feed(rtp(1, 0, NONIDR, marker=True, pt=97))  # other payload type
    assert st.bad == 2 and st.other_pt == 1 and not units
    with pytest.raises(ValueError):
        parse_rtp_header(b"\x00" * 12)


# ---------------------------------------------------------------------------
# H.264


def test_h264_stap_a_keyframe_and_parameter_sets():
    st, units = stream()
    st.feed(rtp(1, 3000, stap_a(SPS, PPS), marker=False))
    for i, p in enumerate(fu_a(IDR)):
        st.feed(rtp(2 + i, 3000, p, marker=(i == 4)))
    assert len(units) == 1
    u = units[0]
    assert u.key and u.data == [SPS, PPS, IDR] and u.ts == 3000 and not u.discont
    assert st.parameter_sets == {"sps": SPS, "pps": PPS}
    assert st.dep.keyframes == 1 and st.lost == 0


def test_h264_fu_a_start_middle_end_reassembles():
    st, units = stream(wait_keyframe=False)
    parts = fu_a(IDR, 1500)
    assert len(parts) == 3 and parts[0][1] & 0x80 and parts[2][1] & 0x40
    assert not (parts[1][1] & 0xC0)
    for i, p in enumerate(parts):
        st.feed(rtp(100 + i, 9000, p, marker=(i == 2)))
    assert [u.data for u in units] == [[IDR]]


def test_h264_lost_middle_fragment_drops_unit_and_waits_for_keyframe():
    st, units = stream()
    seq = 0
    ts = 0

    def send_nal(nal, drop_middle=False):
        nonlocal seq, ts
        parts = fu_a(nal, 1000) if len(nal) > 1000 else [nal]
        for i, p in enumerate(parts):
            if not (drop_middle and i == 1):
                st.feed(rtp(seq, ts, p, marker=(i == len(parts) - 1)))
            seq += 1
        ts += 3600

    send_nal(IDR)
    send_nal(IDR, drop_middle=True)  # damaged keyframe
    send_nal(NONIDR)  # decodable? no: refers to the lost picture -> skipped
    send_nal(NONIDR)
    send_nal(IDR)  # recovery
    send_nal(NONIDR)
    assert [u.key for u in units] == [True, True, False]
    assert [u.discont for u in units] == [False, True, False]
    assert units[1].ts == 4 * 3600
    assert st.lost == 1 and st.dep.damaged_units == 1 and st.dep.skipped_units == 2
    assert st.stats()["awaiting_keyframe"] is False


def test_h264_loss_without_wait_keyframe_flags_discontinuity():
    st, units = stream(wait_keyframe=False)
    st.feed(rtp(1, 0, NONIDR, marker=True))
    # seq 2 (ts 3600, a whole picture) lost
    st.feed(rtp(3, 7200, NONIDR, marker=True))  # might miss its first slice: dropped
    st.feed(rtp(4, 10800, NONIDR, marker=True))
    assert [u.ts for u in units] == [0, 10800]
    assert units[1].discont and st.lost == 1


def test_h264_fragment_without_start_is_dropped():
    st, units = stream(wait_keyframe=False)
    parts = fu_a(IDR, 1500)
    st.feed(rtp(1, 0, parts[1]))
    st.feed(rtp(2, 0, parts[2], marker=True))
    assert units == [] and st.dep.damaged_units == 0  # nothing usable arrived at all
    st.feed(rtp(3, 3600, NONIDR, marker=True))
    assert len(units) == 1 and units[0].discont


def test_boundary_on_timestamp_change_without_marker():
    st, units = stream(wait_keyframe=False)
    st.feed(rtp(1, 0, NONIDR))
    st.feed(rtp(2, 0, NONIDR))
    assert units == []
    st.feed(rtp(3, 3600, NONIDR))
    assert len(units) == 1 and units[0].data == [NONIDR, NONIDR]
    st.feed(rtp(4, 7200, NONIDR, marker=True))
    assert len(units) == 3 and [u.ts for u in units] == [0, 3600, 7200]
    st.feed(rtp(5, 10800, NONIDR))
    st.flush()  # end of stream: an unterminated unit may be incomplete
    assert len(units) == 3 and st.dep.damaged_units == 1


def test_marker_on_parameter_set_packet_does_not_split_unit():
    st, units = stream()
    st.feed(rtp(1, 0, SPS, marker=True))
    st.feed(rtp(2, 0, PPS, marker=True))
    st.feed(rtp(3, 0, bytes([0x65, 1, 2, 3]), marker=True))
    assert len(units) == 1 and len(units[0].data) == 3 and units[0].key


def test_timestamp_and_sequence_wraparound():
    st, units = stream(wait_keyframe=False)
    ts = 0xFFFFFFFF - 3600 * 2 + 1
    seq = 0xFFFE
    exts = []
    for _ in range(5):
        st.feed(rtp(seq, ts, NONIDR, marker=True))
        exts.append(ts)
        seq = (seq + 1) & 0xFFFF
        ts = (ts + 3600) & 0xFFFFFFFF
    got = [u.ts for u in units]
    assert got == [exts[0] + 3600 * i for i in range(5)]
    assert got[-1] > 0xFFFFFFFF
    assert st.lost == 0 and st.cycles == 0x10000
    # receiver report: extended highest sequence number crosses the wrap
    rr = st.build_receiver_report()
    items = parse_rtcp(rr)
    assert [pt for pt, _ in items] == [201, 202]
    ssrc, lost_word, ext_max = struct.unpack_from("!III", items[0][1], 8)
    assert ssrc == 0x11223344 and lost_word == 0 and ext_max == 0x10000 + 2


def test_duplicate_and_late_packets_are_ignored():
    st, units = stream(wait_keyframe=False)
    st.feed(rtp(10, 0, NONIDR, marker=True))
    st.feed(rtp(11, 3600, NONIDR, marker=True))
    st.feed(rtp(11, 3600, NONIDR, marker=True))
    st.feed(rtp(9, 0, NONIDR, marker=True))
    assert len(units) == 2 and st.duplicates == 2 and st.lost == 0


def test_large_sequence_jump_is_a_resync_not_a_huge_loss():
    st, units = stream(wait_keyframe=False)
    st.feed(rtp(10, 0, NONIDR, marker=True))
    st.feed(rtp(20000, 3600, NONIDR, marker=True))
    st.feed(rtp(20001, 7200, NONIDR, marker=True))
    assert st.lost == 0 and st.resyncs == 1
    assert [u.ts for u in units] == [0, 7200] and units[1].discont


# ---------------------------------------------------------------------------
# H.265


def h265_nal(t, body):
    return bytes(((t << 1) & 0x7E, 0x01)) + body


def h265_fu(nal, size):
    t = (nal[0] >> 1) & 0x3F
    body = nal[2:]
    chunks = [body[i:i + size] for i in range(0, len(body), size)]
    out = []
    for i, c in enumerate(chunks):
        fh = t | (0x80 if i == 0 else 0) | (0x40 if i == len(chunks) - 1 else 0)
        out.append(bytes(((nal[0] & 0x81) | (49 << 1), nal[1], fh)) + c)
    return out


def test_h265_ap_fu_and_irap_keyframes():
    vps, sps, pps = h265_nal(32, b"\x0c\x01"), h265_nal(33, b"\x01\x01\x60"), h265_nal(34, b"\xc1")
    idr = h265_nal(19, bytes(range(256)) * 10)
    trail = h265_nal(1, b"\xaa" * 100)
    cra = h265_nal(21, b"\xbb" * 3000)
    st, units = stream("h265")
    ap = bytes(((48 << 1), 1))
    for n in (vps, sps, pps):
        ap += struct.pack("!H", len(n)) + n
    st.feed(rtp(1, 0, ap))
    parts = h265_fu(idr, 1000)
    assert len(parts) == 3
    for i, p in enumerate(parts):
        st.feed(rtp(2 + i, 0, p, marker=i == 2))
    st.feed(rtp(5, 3600, trail, marker=True))
    for i, p in enumerate(h265_fu(cra, 1400)):
        st.feed(rtp(6 + i, 7200, p, marker=i == 2))
    assert [u.key for u in units] == [True, False, True]
    assert units[0].data == [vps, sps, pps, idr]
    assert units[1].data == [trail] and units[2].data == [cra]
    assert st.parameter_sets == {"vps": vps, "sps": sps, "pps": pps}


def test_h265_lost_fu_fragment_drops_unit():
    st, units = stream("h265", wait_keyframe=False)
    idr = h265_nal(19, bytes(3000))
    parts = h265_fu(idr, 1000)
    st.feed(rtp(1, 0, parts[0]))
    st.feed(rtp(3, 0, parts[2], marker=True))
    st.feed(rtp(4, 3600, h265_nal(1, b"x"), marker=True))
    assert len(units) == 1 and units[0].ts == 3600 and units[0].discont
    assert st.dep.damaged_units == 1 and st.lost == 1


# ---------------------------------------------------------------------------
# audio


def aac_payload(frames, sizelength=13, indexlength=3):
    bits = 0
    nbits = 0
    for f in frames:
        bits = (bits << (sizelength + indexlength)) | (len(f) << indexlength)
        nbits += sizelength + indexlength
    nbytes = (nbits + 7) // 8
    hdr = (bits << (nbytes * 8 - nbits)).to_bytes(nbytes, "big")
    return struct.pack("!H", nbits) + hdr + b"".join(frames)


def test_aac_hbr_several_units_per_packet():
    st, units = stream("aac", pt=97, rate=48000, kind="audio", sizelength=13, indexlength=3,
                       indexdeltalength=3, aac_config=bytes.fromhex("1188"))
    frames = [bytes([i]) * (100 + i) for i in range(3)]
    st.feed(rtp(1, 48000, aac_payload(frames), marker=True, pt=97))
    st.feed(rtp(2, 48000 + 3 * 1024, aac_payload(frames[:1]), marker=True, pt=97))
    assert [u.data for u in units] == frames + frames[:1]
    assert [u.ts - 48000 for u in units] == [0, 1024, 2048, 3072]
    assert all(u.key for u in units)


def test_aac_fragmented_unit_and_loss():
    units = []
    d = AacDepacketizer(0, units.append, lambda: 0)
    big = bytes(range(256)) * 12  # 3072 bytes, fragmented over 3 packets
    whole = aac_payload([big])
    hdr, body = whole[:4], whole[4:]
    chunks = [body[i:i + 1100] for i in range(0, len(body), 1100)]
    for i, c in enumerate(chunks):
        pkt = hdr + c
        d.push(memoryview(pkt), 0, len(pkt), i == len(chunks) - 1, 5000)
    assert [u.data for u in units] == [big]
    # lose the middle fragment of the next one
    for i, c in enumerate(chunks):
        if i == 1:
            d.loss()
            continue
        pkt = hdr + c
        d.push(memoryview(pkt), 0, len(pkt), i == len(chunks) - 1, 9000)
    assert len(units) == 1 and d.damaged_units == 1
    small = aac_payload([b"abc"])
    d.push(memoryview(small), 0, len(small), True, 13000)
    assert units[-1].data == b"abc" and units[-1].discont


def test_aac_lbr_generic_header_lengths():
    st, units = stream("aac", pt=97, rate=16000, kind="audio", sizelength=6, indexlength=2,
                       indexdeltalength=2)
    frames = [b"a" * 10, b"b" * 20, b"c" * 30]
    st.feed(rtp(1, 0, aac_payload(frames, 6, 2), marker=True, pt=97))
    assert [u.data for u in units] == frames


def test_aac_config_info():
    assert aac_config_info(bytes.fromhex("1188")) == (2, 48000, 1, 1024)
    assert aac_config_info(bytes.fromhex("1408")) == (2, 16000, 1, 1024)
    assert aac_config_info(bytes.fromhex("1214")) == (2, 44100, 2, 960)
    assert aac_config_info(b"") == (0, 0, 0, 0)


def test_g711_one_frame_per_packet():
    st, units = stream("pcma", pt=8, rate=8000, kind="audio")
    st.feed(rtp(1, 160, b"\xd5" * 160, pt=8))
    st.feed(rtp(3, 480, b"\x55" * 160, pt=8))
    assert [u.ts for u in units] == [160, 480]
    assert units[1].discont and not units[0].discont and st.lost == 1
    assert units[0].data == b"\xd5" * 160


def test_latm_single_subframe():
    st, units = stream("aac_latm", pt=96, rate=44100, kind="audio")
    frame = bytes(range(256)) + b"xyz"
    payload = b"\xff" + bytes((len(frame) - 255,)) + frame
    st.feed(rtp(1, 0, payload[:100], pt=96))
    st.feed(rtp(2, 0, payload[100:], pt=96, marker=True))
    assert [u.data for u in units] == [frame]


# ---------------------------------------------------------------------------
# RTCP


def test_sender_report_to_utc_and_receiver_report_fields():
    st, units = stream(wait_keyframe=False)
    for seq in (1, 2, 4, 5):  # one loss
        st.feed(rtp(seq, seq * 3600, NONIDR, marker=True))
    ntp_sec = 3_990_000_000
    ntp_frac = 1 << 31  # .5 s
    sr = struct.pack("!BBHIIIIII", 0x80, 200, 6, 0x11223344, ntp_sec, ntp_frac, 5 * 3600, 4, 400)
    bye = struct.pack("!BBHI", 0x81, 203, 1, 0x11223344)
    st.feed_rtcp(sr + bye)
    last = st.last_sr
    assert last.utc_ms == (ntp_sec - 2208988800) * 1000 + 500
    assert last.rtp_ts == 5 * 3600 and last.ext_ts == 5 * 3600 and st.bye
    assert st.rtp_to_utc_ms(5 * 3600 + 90000) == last.utc_ms + 1000
    rr = st.build_receiver_report(now_mono=last.mono + 0.5)
    (pt, body), _ = parse_rtcp(rr)
    assert pt == 201 and body[0] & 0x1F == 1
    src, lost_word, ext_max, jitter, lsr, dlsr = struct.unpack_from("!IIIIII", body, 8)
    assert src == 0x11223344 and ext_max == 5
    assert lost_word & 0xFFFFFF == 1 and lost_word >> 24 == 256 // 5
    assert lsr == ((ntp_sec & 0xFFFF) << 16) | (ntp_frac >> 16)
    assert dlsr == 32768
    assert ntp_to_utc_ms(2208988800, 0) == 0


# ---------------------------------------------------------------------------
# SDP


def _b64(b):
    return base64.b64encode(b).decode()


HIK_SDP = (
    "v=0\r\n"
    "o=- 1109162014219182 1109162014219192 IN IP4 192.168.1.64\r\n"
    "s=Media Presentation\r\n"
    "e=NONE\r\n"
    "b=AS:5050\r\n"
    "t=0 0\r\n"
    "a=control:rtsp://192.168.1.64:554/Streaming/Channels/101/?transportmode=unicast\r\n"
    "m=video 0 RTP/AVP 96\r\n"
    "c=IN IP4 0.0.0.0\r\n"
    "b=AS:5000\r\n"
    "a=recvonly\r\n"
    "a=x-dimensions:1920,1080\r\n"
    "a=control:rtsp://admin:12345@192.168.1.64:554/Streaming/Channels/101/trackID=1"
    "?transportmode=unicast\r\n"
    "a=rtpmap:96 H264/90000\r\n"
    f"a=fmtp:96 profile-level-id=420029; packetization-mode=1; "
    f"sprop-parameter-sets={_b64(SPS)},{_b64(PPS)}\r\n"
    "a=Media_header:MEDIAINFO=494D4B48010100000400010010710110401F000000FA00000000;\r\n"
    "a=appversion:1.0\r\n"
    "m=audio 0 RTP/AVP 8\r\n"
    "c=IN IP4 0.0.0.0\r\n"
    "b=AS:50\r\n"
    "a=recvonly\r\n"
    "a=control:rtsp://192.168.1.64:554/Streaming/Channels/101/trackID=2?transportmode=unicast\r\n"
    "a=rtpmap:8 PCMA/8000   \r\n"
)

DAHUA_SDP = (
    "v=0\n"
    "o=- 2251938202 2251938202 IN IP4 0.0.0.0\n"
    "s=Media Server\n"
    "c=IN IP4 0.0.0.0\n"
    "t=0 0\n"
    "a=control:*\n"
    "a=packetization-supported:DH\n"
    "a=rtppayload-supported:DH\n"
    "a=range:npt=now-\n"
    "m=video 0 RTP/AVP 98\n"
    "a=control:trackID=0\n"
    "a=framerate:25.000000\n"
    "a=rtpmap:98 h265/90000\n"
    f"a=fmtp:98 profile-id=1;sprop-sps={_b64(b'B' * 20)};sprop-pps={_b64(b'D' * 5)};"
    f"sprop-vps={_b64(b'@' * 12)}\n"
    "a=recvonly\n"
    "m=audio 0 RTP/AVP 97\n"
    "a=control:trackID=1\n"
    "a=rtpmap:97 MPEG4-GENERIC/16000\n"
    "a=fmtp:97 streamtype=5;profile-level-id=15;mode=AAC-hbr;config=1408;sizeLength=13;"
    "indexLength=3;indexDeltaLength=3;\n"
    "a=recvonly\n"
    "m=application 0 RTP/AVP 107\n"
    "a=control:trackID=4\n"
    "a=rtpmap:107 vnd.onvif.metadata/90000\n"
    "a=recvonly\n"
)


def test_sdp_hikvision_like():
    sd = parse_sdp(HIK_SDP.encode(), "rtsp://192.168.1.64:554/Streaming/Channels/101")
    v, a = sd.media
    assert sd.name == "Media Presentation"
    assert sd.control == "rtsp://192.168.1.64:554/Streaming/Channels/101/?transportmode=unicast"
    assert (v.kind, v.codec, v.payload_type, v.clock_rate) == ("video", "h264", 96, 90000)
    assert v.packetization_mode == 1 and v.profile_level_id == "420029"
    assert v.sprop_parameter_sets == [SPS, PPS] and v.parameter_sets == [SPS, PPS]
    # credentials echoed by the camera are stripped
    assert v.control == ("rtsp://192.168.1.64:554/Streaming/Channels/101/trackID=1"
                         "?transportmode=unicast")
    assert (a.codec, a.payload_type, a.clock_rate, a.channels) == ("pcma", 8, 8000, 1)
    assert a.direction == "recvonly" and a.supported


def test_sdp_dahua_like_relative_controls_and_case():
    base = "rtsp://192.168.1.108:554/cam/realmonitor?channel=1&subtype=0/"
    sd = parse_sdp(DAHUA_SDP, base)
    v, a, meta = sd.media
    assert sd.control == base and sd.range == "npt=now-" and sd.range_start is None
    assert v.codec == "h265" and v.encoding_name == "H265" and v.framerate == 25.0
    assert v.sprop_vps == [b"@" * 12] and v.sprop_sps == [b"B" * 20] and v.sprop_pps == [b"D" * 5]
    assert v.parameter_sets == [b"@" * 12, b"B" * 20, b"D" * 5]
    assert v.control == "rtsp://192.168.1.108:554/cam/realmonitor?channel=1&subtype=0/trackID=0"
    assert (a.codec, a.clock_rate, a.aac_config, a.mode) == ("aac", 16000, b"\x14\x08", "AAC-hbr")
    assert (a.sizelength, a.indexlength, a.indexdeltalength) == (13, 3, 3)
    assert meta.kind == "application" and meta.codec == "unknown" and not meta.supported


def test_sdp_gstreamer_like_latm_and_static_payload_without_rtpmap():
    text = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=Session\r\nt=0 0\r\n"
            "a=range:npt=0-12.5\r\na=control:rtsp://127.0.0.1:8554/test/\r\n"
            "m=audio 0 RTP/AVP 0\r\na=control:stream=0\r\n"
            "m=audio 0 RTP/AVP 96\r\na=rtpmap:96 MP4A-LATM/44100/2\r\n"
            "a=fmtp:96 cpresent=0;config=40002420\r\na=control:stream=1\r\n")
    sd = parse_sdp(text, "rtsp://127.0.0.1:8554/test/")
    assert (sd.range_start, sd.range_end) == (0.0, 12.5)
    pcmu, latm = sd.media
    assert (pcmu.codec, pcmu.clock_rate) == ("pcmu", 8000)
    assert pcmu.control == "rtsp://127.0.0.1:8554/test/stream=0"
    assert (latm.codec, latm.clock_rate, latm.channels) == ("aac_latm", 44100, 2)
    assert latm.aac_config == bytes.fromhex("40002420")


def test_resolve_control_variants():
    assert resolve_control("rtsp://h/live", "trackID=1") == "rtsp://h/live/trackID=1"
    assert resolve_control("rtsp://h/live/", "trackID=1") == "rtsp://h/live/trackID=1"
    assert resolve_control("rtsp://u:p@h/live/", "*") == "rtsp://h/live/"
    assert resolve_control("rtsp://h:554/a/b", "/x/y") == "rtsp://h:554/x/y"
    assert resolve_control("rtsp://h/a", "RTSP://other/z") == "RTSP://other/z"


def test_sdp_missing_fields_are_tolerated():
    sd = parse_sdp("v=0\nm=video 0 RTP/AVP 96\na=rtpmap:96 H264/90000\n", None)
    (v,) = sd.media
    assert v.codec == "h264" and v.packetization_mode == 0 and v.sprop_parameter_sets == []
    assert v.control == "" and v.fmtp == {}


@pytest.mark.parametrize(
    "bad, msg",
    [
        ("v=0\r\n" + "a=x:" + "y" * 70000, "too large"),
        (b"v=0\r\nm=video 0 RTP/AVP 96\x00\x01\x02", "NUL"),
        ("<html><body>404 Not Found</body></html>", "not a session description"),
        ("v=0\n" + "m=video 0 RTP/AVP 96\n" * 40, "more than 32 media"),
        ("v=0\n" + "a=a\n" * 3000, "too many lines"),
        ("v=0\nm=video\n", "malformed m="),
    ],
)
def test_sdp_hostile_input_is_rejected(bad, msg):
    with pytest.raises(SdpError, match=msg):
        parse_sdp(bad, "rtsp://h/x")
