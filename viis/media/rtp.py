"""RTP/RTCP receiving: header parsing, sequence/timestamp tracking, depacketizers.

Hot path design: the RTSP transport hands every interleaved RTP packet to
:meth:`RtpStream.on_rtp` as ``(memoryview, start, end)`` into its receive buffer.
Nothing here keeps a view into that buffer: payload bytes are copied exactly once
into the ``bytes`` (or FU reassembly ``bytearray``) that end up in an
:class:`AccessUnit`.  No per-packet objects are created besides that copy and the
header tuple from ``struct``.

Access unit boundary: marker bit (video: only once the unit holds a VCL NAL unit,
some cameras mark parameter-set packets) or a timestamp change.  A lost packet
inside an access unit drops that unit and the unit of the next packet (the lost
packet may have been the start of it); they are counted in ``damaged_units`` and
the next emitted unit carries ``discont=True``.  Video streams with
``wait_keyframe`` (default) also skip units until the next keyframe after a loss
and at the start (counted in ``skipped_units``), so nothing undecodable is emitted
silently.

Specifications: RFC 3550 (RTP/RTCP), RFC 6184 (H.264), RFC 7798 (H.265),
RFC 3640 (AAC mpeg4-generic), RFC 6416 (MP4A-LATM), RFC 3551 (G.711).
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Callable

from viis.media.sdp import MediaDescription

__all__ = [
    "AccessUnit",
    "AacDepacketizer",
    "Depacketizer",
    "G711Depacketizer",
    "H264Depacketizer",
    "H265Depacketizer",
    "LatmDepacketizer",
    "RawDepacketizer",
    "RtpHeader",
    "RtpStream",
    "SenderReport",
    "aac_config_info",
    "make_depacketizer",
    "ntp_to_utc_ms",
    "parse_rtcp",
    "parse_rtp_header",
]

_RTP = struct.Struct("!BBHII")
_RTCP_HDR = struct.Struct("!BBH")
_SR = struct.Struct("!IIIIII")
_NTP_UNIX_OFFSET = 2208988800
MAX_DROPOUT = 3000
MAX_MISORDER = 100


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


_monotonic = time.monotonic


class AccessUnit:
    """One access unit (video picture or audio frame).

    ``data`` is a list of NAL unit payloads (``bytes``, no start codes) for video
    and the frame ``bytes`` for audio.  ``ts`` is the extended (64-bit, unwrapped)
    RTP timestamp in the stream's clock rate.  ``wall_ms`` is the receive time in
    UTC milliseconds from the injectable wall clock, ``mono`` the receive
    ``time.monotonic()``.  ``discont`` is True on the first unit after lost or
    dropped data.
    """

    __slots__ = ("stream", "ts", "data", "key", "wall_ms", "mono", "discont")

    def __init__(self, stream, ts, data, key, wall_ms, mono, discont=False):
        self.stream = stream
        self.ts = ts
        self.data = data
        self.key = key
        self.wall_ms = wall_ms
        self.mono = mono
        self.discont = discont

    @property
    def size(self) -> int:
        d = self.data
        if isinstance(d, list):
            return sum(len(n) for n in d)
        return len(d)

    def __repr__(self) -> str:
        n = len(self.data) if isinstance(self.data, list) else 1
        return (f"AccessUnit(stream={self.stream}, ts={self.ts}, key={self.key}, "
                f"parts={n}, size={self.size}, discont={self.discont})")


class RtpHeader:
    """Parsed RTP header (diagnostics and tests; the hot path does not use it)."""

    __slots__ = ("version", "padding", "extension", "csrc", "marker", "payload_type",
                 "seq", "timestamp", "ssrc", "ext_profile", "ext_data",
                 "payload_offset", "payload_end")

    def __repr__(self) -> str:
        return (f"RtpHeader(pt={self.payload_type}, seq={self.seq}, ts={self.timestamp}, "
                f"ssrc={self.ssrc:#010x}, m={self.marker}, csrc={len(self.csrc)}, "
                f"payload={self.payload_offset}:{self.payload_end})")


class RtpError(ValueError):
    pass


def parse_rtp_header(pkt: bytes | bytearray | memoryview) -> RtpHeader:
    """Parse an RTP header including CSRC list, header extension and padding."""
    n = len(pkt)
    if n < 12:
        raise RtpError(f"RTP packet too short ({n} bytes)")
    b0, b1, seq, ts, ssrc = _RTP.unpack_from(pkt, 0)
    if b0 >> 6 != 2:
        raise RtpError(f"not RTP version 2 (version {b0 >> 6})")
    h = RtpHeader()
    h.version = 2
    h.padding = bool(b0 & 0x20)
    h.extension = bool(b0 & 0x10)
    cc = b0 & 0x0F
    h.marker = bool(b1 & 0x80)
    h.payload_type = b1 & 0x7F
    h.seq, h.timestamp, h.ssrc = seq, ts, ssrc
    p = 12 + 4 * cc
    if p > n:
        raise RtpError("RTP CSRC list exceeds packet")
    h.csrc = list(struct.unpack_from(f"!{cc}I", pkt, 12)) if cc else []
    h.ext_profile = None
    h.ext_data = b""
    if h.extension:
        if p + 4 > n:
            raise RtpError("RTP header extension exceeds packet")
        prof, words = struct.unpack_from("!HH", pkt, p)
        if p + 4 + 4 * words > n:
            raise RtpError("RTP header extension exceeds packet")
        h.ext_profile = prof
        h.ext_data = bytes(pkt[p + 4:p + 4 + 4 * words])
        p += 4 + 4 * words
    end = n
    if h.padding:
        pad = pkt[n - 1]
        if pad == 0 or n - pad < p:
            raise RtpError("invalid RTP padding")
        end = n - pad
    h.payload_offset, h.payload_end = p, end
    return h


def ntp_to_utc_ms(ntp_sec: int, ntp_frac: int) -> int:
    """NTP timestamp (RFC 5905, era 0/1 aware) -> UTC milliseconds."""
    if ntp_sec < 0x80000000:  # era 1 (after 2036-02-07)
        ntp_sec += 1 << 32
    return (ntp_sec - _NTP_UNIX_OFFSET) * 1000 + ((ntp_frac * 1000) >> 32)


class SenderReport:
    """Last RTCP sender report of a stream: camera clock vs RTP timestamp."""

    __slots__ = ("ssrc", "ntp", "utc_ms", "rtp_ts", "ext_ts", "packet_count",
                 "octet_count", "wall_ms", "mono")

    def __init__(self, ssrc, ntp, utc_ms, rtp_ts, ext_ts, packet_count, octet_count,
                 wall_ms, mono):
        self.ssrc = ssrc
        self.ntp = ntp
        self.utc_ms = utc_ms
        self.rtp_ts = rtp_ts
        self.ext_ts = ext_ts
        self.packet_count = packet_count
        self.octet_count = octet_count
        self.wall_ms = wall_ms
        self.mono = mono

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__slots__}

    def __repr__(self) -> str:
        return (f"SenderReport(ssrc={self.ssrc:#010x}, utc_ms={self.utc_ms}, "
                f"rtp_ts={self.rtp_ts}, packets={self.packet_count})")


def parse_rtcp(buf) -> list[tuple[int, bytes]]:
    """Split a compound RTCP packet into ``(packet_type, packet_bytes)`` items."""
    out = []
    q, e = 0, len(buf)
    while q + 4 <= e:
        b0, pt, ln = _RTCP_HDR.unpack_from(buf, q)
        end = q + 4 + 4 * ln
        if b0 >> 6 != 2 or end > e:
            break
        out.append((pt, bytes(buf[q:end])))
        q = end
    return out


# --------------------------------------------------------------------------
# depacketizers


class Depacketizer:
    """Base: ``push(mv, start, end, marker, ext_ts)`` per RTP payload."""

    __slots__ = ("index", "emit", "wall_clock", "units", "damaged_units", "bad_packets",
                 "discont")

    is_video = False

    def __init__(self, index: int, emit: Callable[[AccessUnit], None],
                 wall_clock: Callable[[], int] | None = None):
        self.index = index
        self.emit = emit
        self.wall_clock = wall_clock or _wall_ms
        self.units = 0
        self.damaged_units = 0
        self.bad_packets = 0
        self.discont = False

    def push(self, mv, p: int, e: int, marker: int, ts: int) -> None:  # pragma: no cover
        raise NotImplementedError

    def loss(self) -> None:
        """Packets were lost before the next pushed packet."""
        self.discont = True

    def flush(self) -> None:
        """End of stream: emit or drop what is pending."""

    def stats(self) -> dict:
        return {"units": self.units, "damaged_units": self.damaged_units,
                "bad_packets": self.bad_packets}


class _VideoDepacketizer(Depacketizer):
    __slots__ = ("nals", "fu", "ts", "open", "damaged", "pending", "key", "vcl",
                 "wait_keyframe", "need_key", "keyframes", "skipped_units", "params")

    is_video = True

    def __init__(self, index, emit, wall_clock=None, wait_keyframe=True):
        super().__init__(index, emit, wall_clock)
        self.nals: list[bytes] = []
        self.fu: bytearray | None = None
        self.ts = 0
        self.open = False
        self.damaged = False
        self.pending = False
        self.key = False
        self.vcl = False
        self.wait_keyframe = wait_keyframe
        self.need_key = wait_keyframe
        self.keyframes = 0
        self.skipped_units = 0
        self.params: dict[str, bytes] = {}

    def loss(self) -> None:
        # the unit in progress lost packets, and the next packet's unit may have
        # lost its first packets
        self.damaged = True
        self.pending = True
        self.discont = True

    def flush(self) -> None:
        # end of stream: an unfinished unit (no marker, no next timestamp) may
        # be incomplete, so it is dropped and counted rather than emitted
        if self.open:
            if self.nals or self.fu is not None:
                self.damaged = True
            self._finish()

    def _begin(self, ts: int) -> None:
        if self.open:
            self._finish()
        self.open = True
        self.ts = ts
        self.damaged = self.pending
        self.pending = False

    def _finish(self) -> None:
        nals = self.nals
        if self.fu is not None:
            self.damaged = True
            self.fu = None
        if self.damaged:
            if nals:
                self.damaged_units += 1
                self.nals = []
            self.discont = True
            if self.wait_keyframe:
                self.need_key = True
        elif nals:
            self.nals = []
            key = self.key
            if self.need_key and not key:
                self.skipped_units += 1
            else:
                self.need_key = False
                self.units += 1
                if key:
                    self.keyframes += 1
                d = self.discont
                self.discont = False
                self.emit(AccessUnit(self.index, self.ts, nals, key, self.wall_clock(),
                                     _monotonic(), d))
        self.open = False
        self.key = False
        self.vcl = False
        self.damaged = False

    def stats(self) -> dict:
        d = Depacketizer.stats(self)
        d.update(keyframes=self.keyframes, skipped_units=self.skipped_units,
                 awaiting_keyframe=self.need_key)
        return d


class H264Depacketizer(_VideoDepacketizer):
    """RFC 6184 packetization modes 0 and 1: single NAL, STAP-A, FU-A."""

    __slots__ = ()

    def set_parameter_sets(self, nals: list[bytes]) -> None:
        for n in nals:
            if n:
                t = n[0] & 0x1F
                if t == 7:
                    self.params["sps"] = n
                elif t == 8:
                    self.params["pps"] = n

    def _nal(self, nal: bytes, t: int) -> None:
        self.nals.append(nal)
        if 0 < t < 6:
            self.vcl = True
            if t == 5:
                self.key = True
        elif t == 7:
            self.params["sps"] = nal
        elif t == 8:
            self.params["pps"] = nal

    def push(self, mv, p, e, marker, ts):
        if not self.open or ts != self.ts:
            self._begin(ts)
        else:
            self.pending = False
        if p < e:
            h = mv[p]
            t = h & 0x1F
            if t == 28:  # FU-A
                if e - p > 2:
                    fh = mv[p + 1]
                    fu = self.fu
                    if fh & 0x80:
                        if fu is not None:
                            self.damaged = True  # previous FU never ended
                        fu = self.fu = bytearray(((h & 0xE0) | (fh & 0x1F),))
                        fu += mv[p + 2:e]
                    elif fu is None:
                        self.damaged = True  # fragment without its start
                    else:
                        fu += mv[p + 2:e]
                    if fh & 0x40 and fu is not None:
                        self.fu = None
                        self._nal(bytes(fu), fh & 0x1F)
                else:
                    self.bad_packets += 1
                    self.damaged = True
            elif 0 < t < 24:
                self._nal(bytes(mv[p:e]), t)
            elif t == 24:  # STAP-A
                q = p + 1
                while q + 2 <= e:
                    n = (mv[q] << 8) | mv[q + 1]
                    q += 2
                    if n == 0 or q + n > e:
                        self.bad_packets += 1
                        self.damaged = True
                        break
                    self._nal(bytes(mv[q:q + n]), mv[q] & 0x1F)
                    q += n
            else:  # STAP-B, MTAP, FU-B (interleaved mode) or reserved
                self.bad_packets += 1
                self.damaged = True
        if marker and self.vcl:
            self._finish()


class H265Depacketizer(_VideoDepacketizer):
    """RFC 7798 without DONL: single NAL, AP (48), FU (49)."""

    __slots__ = ()

    def set_parameter_sets(self, nals: list[bytes]) -> None:
        for n in nals:
            if n:
                t = (n[0] >> 1) & 0x3F
                if t == 32:
                    self.params["vps"] = n
                elif t == 33:
                    self.params["sps"] = n
                elif t == 34:
                    self.params["pps"] = n

    def _nal(self, nal: bytes, t: int) -> None:
        self.nals.append(nal)
        if t < 32:
            self.vcl = True
            if 16 <= t <= 21:
                self.key = True
        elif t == 32:
            self.params["vps"] = nal
        elif t == 33:
            self.params["sps"] = nal
        elif t == 34:
            self.params["pps"] = nal

    def push(self, mv, p, e, marker, ts):
        if not self.open or ts != self.ts:
            self._begin(ts)
        else:
            self.pending = False
        if e - p >= 2:
            h0 = mv[p]
            t = (h0 >> 1) & 0x3F
            if t == 49:  # FU
                if e - p > 3:
                    fh = mv[p + 2]
                    ft = fh & 0x3F
                    fu = self.fu
                    if fh & 0x80:
                        if fu is not None:
                            self.damaged = True
                        fu = self.fu = bytearray(((h0 & 0x81) | (ft << 1), mv[p + 1]))
                        fu += mv[p + 3:e]
                    elif fu is None:
                        self.damaged = True
                    else:
                        fu += mv[p + 3:e]
                    if fh & 0x40 and fu is not None:
                        self.fu = None
                        self._nal(bytes(fu), ft)
                else:
                    self.bad_packets += 1
                    self.damaged = True
            elif t < 48:
                self._nal(bytes(mv[p:e]), t)
            elif t == 48:  # AP
                q = p + 2
                while q + 2 <= e:
                    n = (mv[q] << 8) | mv[q + 1]
                    q += 2
                    if n < 2 or q + n > e:
                        self.bad_packets += 1
                        self.damaged = True
                        break
                    self._nal(bytes(mv[q:q + n]), (mv[q] >> 1) & 0x3F)
                    q += n
            else:  # PACI or reserved
                self.bad_packets += 1
                self.damaged = True
        elif p < e:
            self.bad_packets += 1
            self.damaged = True
        if marker and self.vcl:
            self._finish()


def aac_config_info(config: bytes | None) -> tuple[int, int, int, int]:
    """(audio object type, sample rate, channels, samples per frame) from an
    AudioSpecificConfig; zeros when unknown."""
    rates = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000,
             11025, 8000, 7350)
    if not config or len(config) < 2:
        return 0, 0, 0, 0
    bits = int.from_bytes(config[:8], "big")
    nbits = 8 * min(len(config), 8)
    pos = 0

    def take(n: int) -> int:
        nonlocal pos
        if pos + n > nbits:
            raise ValueError
        v = (bits >> (nbits - pos - n)) & ((1 << n) - 1)
        pos += n
        return v

    try:
        aot = take(5)
        if aot == 31:
            aot = 32 + take(6)
        fi = take(4)
        rate = take(24) if fi == 15 else (rates[fi] if fi < len(rates) else 0)
        ch = take(4)
        frame = 1024
        if aot in (1, 2, 3, 4, 6, 7, 17, 19, 20, 21, 22):
            frame = 960 if take(1) else 1024
        elif aot in (23, 39):  # AAC-LD / ELD
            frame = 480 if take(1) else 512
    except ValueError:
        return 0, 0, 0, 0
    return aot, rate, ch, frame


class AacDepacketizer(Depacketizer):
    """RFC 3640 mpeg4-generic (AAC-hbr, AAC-lbr): several AUs per packet and
    fragmented AUs; AU-Index(-Delta) interleaving is not supported."""

    __slots__ = ("sizelength", "indexlength", "indexdeltalength", "frame_len", "frag",
                 "frag_size", "frag_ts", "drop_ts")

    def __init__(self, index, emit, wall_clock=None, *, sizelength=13, indexlength=3,
                 indexdeltalength=3, frame_len=1024):
        super().__init__(index, emit, wall_clock)
        self.sizelength = sizelength or 13
        self.indexlength = indexlength
        self.indexdeltalength = indexdeltalength
        self.frame_len = frame_len
        self.frag: bytearray | None = None
        self.frag_size = 0
        self.frag_ts = 0
        self.drop_ts = -1  # timestamp of a fragmented AU already dropped

    def loss(self) -> None:
        self.discont = True
        if self.frag is not None:
            self.frag = None
            self.drop_ts = self.frag_ts
            self.damaged_units += 1

    def _out(self, ts, data):
        self.units += 1
        d = self.discont
        self.discont = False
        self.emit(AccessUnit(self.index, ts, data, True, self.wall_clock(), _monotonic(), d))

    def push(self, mv, p, e, marker, ts):
        if e - p < 2:
            self.bad_packets += 1
            return
        hbits = (mv[p] << 8) | mv[p + 1]
        q = p + 2
        d = q + ((hbits + 7) >> 3)
        if d > e:
            self.bad_packets += 1
            return
        frag = self.frag
        if frag is not None:
            if ts == self.frag_ts:
                frag += mv[d:e]
                if len(frag) >= self.frag_size or marker:
                    self.frag = None
                    if len(frag) == self.frag_size:
                        self._out(ts, bytes(frag))
                    else:
                        self.damaged_units += 1
                        self.discont = True
                return
            self.frag = None
            self.damaged_units += 1
            self.discont = True
        sl = self.sizelength
        if sl == 13 and self.indexlength == 3 and hbits % 16 == 0:
            sizes = [((mv[i] << 8) | mv[i + 1]) >> 3 for i in range(q, q + (hbits >> 3), 2)]
        else:
            sizes = []
            val = int.from_bytes(mv[q:d], "big")
            left = (d - q) * 8
            used = 0
            first = True
            while True:
                il = self.indexlength if first else self.indexdeltalength
                if used + sl + il > hbits:
                    break
                size = (val >> (left - used - sl)) & ((1 << sl) - 1)
                used += sl + il
                sizes.append(size)
                first = False
        ts_step = self.frame_len
        for i, size in enumerate(sizes):
            if d + size > e:
                if ts == self.drop_ts and len(sizes) == 1:
                    return  # rest of an AU already dropped for loss
                if i == 0 and len(sizes) == 1 and not marker:
                    self.frag = bytearray(mv[d:e])
                    self.frag_size = size
                    self.frag_ts = ts
                else:
                    self.bad_packets += 1
                    self.damaged_units += 1
                    self.discont = True
                return
            self._out(ts + i * ts_step, bytes(mv[d:d + size]))
            d += size


class LatmDepacketizer(Depacketizer):
    """RFC 6416 MP4A-LATM with cpresent=0 and one subframe per packet group."""

    __slots__ = ("buf", "ts", "max_size")

    def __init__(self, index, emit, wall_clock=None, max_size=1 << 16):
        super().__init__(index, emit, wall_clock)
        self.buf: bytearray | None = None
        self.ts = 0
        self.max_size = max_size

    def loss(self) -> None:
        self.discont = True
        if self.buf is not None:
            self.buf = None
            self.damaged_units += 1

    def push(self, mv, p, e, marker, ts):
        b = self.buf
        if b is not None and ts != self.ts:
            self.damaged_units += 1
            self.discont = True
            b = None
        if b is None:
            b = self.buf = bytearray()
            self.ts = ts
        b += mv[p:e]
        if len(b) > self.max_size:
            self.buf = None
            self.bad_packets += 1
            return
        if not marker:
            return
        self.buf = None
        i, n, lb = 0, 0, len(b)
        while i < lb and b[i] == 255:
            n += 255
            i += 1
        if i >= lb:
            self.bad_packets += 1
            return
        n += b[i]
        i += 1
        if i + n > lb:
            self.bad_packets += 1
            self.damaged_units += 1
            self.discont = True
            return
        self.units += 1
        d = self.discont
        self.discont = False
        self.emit(AccessUnit(self.index, ts, bytes(b[i:i + n]), True, self.wall_clock(),
                             _monotonic(), d))


class G711Depacketizer(Depacketizer):
    """One audio frame per packet (G.711 A-law / u-law, and other raw audio)."""

    __slots__ = ()

    def push(self, mv, p, e, marker, ts):
        if p >= e:
            return
        self.units += 1
        d = self.discont
        self.discont = False
        self.emit(AccessUnit(self.index, ts, bytes(mv[p:e]), True, self.wall_clock(),
                             _monotonic(), d))


RawDepacketizer = G711Depacketizer  # one unit per packet payload, for unknown codecs


def make_depacketizer(media: MediaDescription, index: int,
                      emit: Callable[[AccessUnit], None],
                      wall_clock: Callable[[], int] | None = None,
                      wait_keyframe: bool = True) -> Depacketizer:
    c = media.codec
    if c == "h264":
        d = H264Depacketizer(index, emit, wall_clock, wait_keyframe)
        d.set_parameter_sets(media.sprop_parameter_sets)
        return d
    if c == "h265":
        d = H265Depacketizer(index, emit, wall_clock, wait_keyframe)
        d.set_parameter_sets([*media.sprop_vps, *media.sprop_sps, *media.sprop_pps])
        return d
    if c == "aac":
        _aot, rate, _ch, frame = aac_config_info(media.aac_config)
        if media.constant_duration:
            frame_len = media.constant_duration
        else:
            frame = frame or 1024
            frame_len = frame if not rate or rate == media.clock_rate else \
                frame * media.clock_rate // rate
        return AacDepacketizer(index, emit, wall_clock, sizelength=media.sizelength,
                               indexlength=media.indexlength,
                               indexdeltalength=media.indexdeltalength, frame_len=frame_len)
    if c == "aac_latm":
        return LatmDepacketizer(index, emit, wall_clock)
    return G711Depacketizer(index, emit, wall_clock)


# --------------------------------------------------------------------------
# per-stream receiver


class RtpStream:
    """Receives RTP/RTCP of one media stream: checks headers, counts, tracks
    sequence numbers and unwraps timestamps, feeds the depacketizer, parses
    sender reports and builds receiver reports."""

    __slots__ = ("index", "media", "clock_rate", "pt", "dep", "wall_clock", "ssrc",
                 "next_seq", "base_seq", "cycles", "last_ts", "ext_ts", "packets", "bytes",
                 "lost", "duplicates", "bad", "other_pt", "resyncs", "ssrc_changes",
                 "rtcp_packets", "sender_reports", "last_sr", "bye", "our_ssrc",
                 "exp_prior", "rcv_prior", "cname", "channel")

    def __init__(self, index: int, media: MediaDescription,
                 on_unit: Callable[[AccessUnit], None], *,
                 wall_clock: Callable[[], int] | None = None, wait_keyframe: bool = True,
                 depacketizer: Depacketizer | None = None):
        self.index = index
        self.media = media
        self.clock_rate = media.clock_rate or 90000
        self.pt = media.payload_type
        self.wall_clock = wall_clock or _wall_ms
        self.dep = depacketizer or make_depacketizer(media, index, on_unit, self.wall_clock,
                                                     wait_keyframe)
        self.ssrc: int | None = None
        self.next_seq = -1
        self.base_seq = 0
        self.cycles = 0
        self.last_ts = 0
        self.ext_ts = 0
        self.packets = 0
        self.bytes = 0
        self.lost = 0
        self.duplicates = 0
        self.bad = 0
        self.other_pt = 0
        self.resyncs = 0
        self.ssrc_changes = 0
        self.rtcp_packets = 0
        self.sender_reports = 0
        self.last_sr: SenderReport | None = None
        self.bye = False
        self.our_ssrc = int.from_bytes(os.urandom(4), "big")
        self.exp_prior = 0
        self.rcv_prior = 0
        self.cname = f"viis-{self.our_ssrc:08x}".encode()
        self.channel = -1

    # -- hot path -----------------------------------------------------------
    def on_rtp(self, mv, s: int, e: int) -> None:
        if e - s < 12:
            self.bad += 1
            return
        b0, b1, seq, ts, ssrc = _RTP.unpack_from(mv, s)
        if b0 & 0xC0 != 0x80:
            self.bad += 1
            return
        p = s + 12 + ((b0 & 0x0F) << 2)
        if b0 & 0x10:
            if p + 4 > e:
                self.bad += 1
                return
            p += 4 + (((mv[p + 2] << 8) | mv[p + 3]) << 2)
        if b0 & 0x20:
            e -= mv[e - 1]
        if p > e:
            self.bad += 1
            return
        if (b1 & 0x7F) != self.pt:
            self.other_pt += 1
            return
        self.packets += 1
        self.bytes += e - s
        ns = self.next_seq
        if seq != ns or ssrc != self.ssrc:
            if ns < 0:
                self.ssrc = ssrc
                self.base_seq = seq
                self.last_ts = ts
                self.ext_ts = ts
            elif ssrc != self.ssrc:
                # source restarted: new sequence space
                self.ssrc = ssrc
                self.ssrc_changes += 1
                self.base_seq = self.cycles + seq - self.packets + 1
                self.dep.loss()
            else:
                d = (seq - ns) & 0xFFFF
                if d < 0x8000:
                    if d > MAX_DROPOUT:
                        self.resyncs += 1
                        self.base_seq = self.cycles + seq - self.packets + 1
                    else:
                        self.lost += d
                    if seq < ns:
                        self.cycles += 0x10000
                    self.dep.loss()
                elif 0x10000 - d <= MAX_MISORDER:
                    self.duplicates += 1
                    self.packets -= 1
                    self.bytes -= e - s
                    return
                else:
                    self.resyncs += 1
                    self.base_seq = self.cycles + seq - self.packets + 1
                    self.dep.loss()
        ns = seq + 1
        if ns == 0x10000:
            ns = 0
            self.cycles += 0x10000
        self.next_seq = ns
        d = (ts - self.last_ts) & 0xFFFFFFFF
        if d:
            if d & 0x80000000:
                d -= 0x100000000
            self.ext_ts += d
            self.last_ts = ts
        self.dep.push(mv, p, e, b1 & 0x80, self.ext_ts)

    def feed(self, packet: bytes | bytearray) -> None:
        """Convenience for tests: one whole RTP packet."""
        self.on_rtp(memoryview(packet), 0, len(packet))

    # -- RTCP ---------------------------------------------------------------
    def unwrap_ts(self, ts: int) -> int:
        """Extend a 32-bit RTP timestamp relative to the last seen one."""
        if self.ssrc is None:
            return ts
        d = (ts - self.last_ts) & 0xFFFFFFFF
        if d & 0x80000000:
            d -= 0x100000000
        return self.ext_ts + d

    def on_rtcp(self, mv, s: int, e: int) -> None:
        self.rtcp_packets += 1
        q = s
        while q + 4 <= e:
            b0, pt, ln = _RTCP_HDR.unpack_from(mv, q)
            end = q + 4 + 4 * ln
            if b0 >> 6 != 2 or end > e:
                self.bad += 1
                return
            if pt == 200 and end - q >= 28:
                ssrc, ns, nf, rtp_ts, pc, oc = _SR.unpack_from(mv, q + 4)
                self.sender_reports += 1
                self.last_sr = SenderReport(ssrc, (ns << 32) | nf, ntp_to_utc_ms(ns, nf), rtp_ts,
                                            self.unwrap_ts(rtp_ts), pc, oc, self.wall_clock(),
                                            _monotonic())
            elif pt == 203:
                self.bye = True
            q = end

    def feed_rtcp(self, packet: bytes | bytearray) -> None:
        self.on_rtcp(memoryview(packet), 0, len(packet))

    def rtp_to_utc_ms(self, ext_ts: int) -> int | None:
        """Camera wall time of an extended RTP timestamp via the last SR."""
        sr = self.last_sr
        if sr is None:
            return None
        return sr.utc_ms + (ext_ts - sr.ext_ts) * 1000 // self.clock_rate

    def build_receiver_report(self, now_mono: float | None = None) -> bytes:
        """Compound RTCP RR (+ SDES CNAME) for this stream (RFC 3550 6.4.2)."""
        if now_mono is None:
            now_mono = _monotonic()
        blocks = b""
        rc = 0
        if self.ssrc is not None:
            ext_max = self.cycles + self.next_seq - 1
            expected = ext_max - self.base_seq + 1
            received = self.packets
            lost = max(0, min(expected - received, 0x7FFFFF))
            exp_i = expected - self.exp_prior
            rcv_i = received - self.rcv_prior
            self.exp_prior, self.rcv_prior = expected, received
            lost_i = exp_i - rcv_i
            frac = 0 if exp_i <= 0 or lost_i <= 0 else min(255, (lost_i << 8) // exp_i)
            sr = self.last_sr
            if sr is not None:
                lsr = (sr.ntp >> 16) & 0xFFFFFFFF
                dlsr = min(0xFFFFFFFF, int((now_mono - sr.mono) * 65536))
            else:
                lsr = dlsr = 0
            blocks = struct.pack("!IIIIII", self.ssrc, (frac << 24) | lost,
                                 ext_max & 0xFFFFFFFF, 0, lsr, dlsr)
            rc = 1
        rr = struct.pack("!BBHI", 0x80 | rc, 201, 1 + 6 * rc, self.our_ssrc) + blocks
        cname = self.cname[:255]
        item = bytes((1, len(cname))) + cname + b"\x00"
        item += b"\x00" * ((-len(item)) % 4)
        sdes = struct.pack("!BBHI", 0x81, 202, (4 + len(item)) // 4, self.our_ssrc) + item
        return rr + sdes

    def flush(self) -> None:
        self.dep.flush()

    @property
    def parameter_sets(self) -> dict[str, bytes]:
        """Latest H.264 sps/pps or H.265 vps/sps/pps (SDP, then in-band)."""
        return dict(getattr(self.dep, "params", {}))

    def stats(self) -> dict:
        d = {
            "index": self.index, "codec": self.media.codec, "kind": self.media.kind,
            "clock_rate": self.clock_rate, "ssrc": self.ssrc, "packets": self.packets,
            "bytes": self.bytes, "lost": self.lost, "duplicates": self.duplicates,
            "bad": self.bad, "other_pt": self.other_pt, "resyncs": self.resyncs,
            "ssrc_changes": self.ssrc_changes, "rtcp_packets": self.rtcp_packets,
            "sender_reports": self.sender_reports,
            "last_sr": self.last_sr.as_dict() if self.last_sr else None,
            "bye": self.bye, "ext_ts": self.ext_ts if self.ssrc is not None else None,
        }
        d.update(self.dep.stats())
        return d
