"""MPEG-2 program stream (ISO/IEC 13818-1 §2.5), the media container of GB/T 28181.

GB/T 28181 carries video as a program stream inside RTP (PT 96). This module owns the
container level only; RTP and transports are in :mod:`.rtpps`. Requirement ids: Q12.1,
N12.1 (national standards: GB/T 28181 media format), Q13.1 (the cascade to the city
platforms sends video in this form).

``PsMuxer`` turns one access unit (a list of NAL units without start codes) into PS bytes
without transcoding: a pack header (0xBA) every frame; on keyframes a system header (0xBB)
and a program stream map (0xBC, stream_type 0x1B H.264 / 0x24 H.265, CRC32); then PES
packets 0xE0 with PTS and DTS, the access unit in Annex-B form, split into several PES
packets when it exceeds ``max_pes_payload`` (PES_packet_length is 16 bits).

``PsDemuxer`` is a streaming parser for PS from real peers (our own output, ffmpeg's
``-f vob``/``-f mpeg``, devices). It does not assume one PES per frame: the elementary
stream is cut into NAL units and grouped into access units by the H.264/H.265 rules, and
each access unit takes the PTS of the PES packet it starts in (2.4.3.7). Audio, private
and padding streams are skipped. Hostile input (garbage, truncation, length fields that
lie, endless zeros) is counted in ``errors``/``error_counts`` and never raises; memory is
bounded by one PES packet plus ``max_frame_bytes``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from viis.core.logging import get_logger
from viis.media.h26x import H264, H265

log = get_logger(__name__)

STREAM_TYPES = {H264: 0x1B, H265: 0x24}
VIDEO_STREAM_TYPES = {0x1B: H264, 0x24: H265}
# Types seen in GB streams that we recognise and skip: MPEG-4 video, SVAC, AAC, G.711 A/U,
# G.722.1, G.723.1, G.729.
OTHER_STREAM_TYPES = {0x10: "mpeg4", 0x80: "svac", 0x0F: "aac", 0x90: "pcma", 0x91: "pcmu",
                      0x92: "g722", 0x93: "g723", 0x99: "g729"}

PTS_MASK = (1 << 33) - 1
START = b"\x00\x00\x01"
MAX_PES_PAYLOAD = 65_000
DEFAULT_MUX_RATE = 50_000  # units of 50 bytes/s: 20 Mbit/s, a nominal bound for decoders


@dataclass(slots=True)
class PsFrame:
    """One video access unit out of a program stream.

    ``pts90k`` is unwrapped (monotonic across the 33-bit wrap, like ``AccessUnit.ts``);
    ``dts90k`` is set when the PES carried a DTS; ``discont`` is True on the first frame
    after data was lost or dropped."""

    codec: str
    pts90k: int
    nals: list[bytes]
    key: bool
    dts90k: int | None = None
    discont: bool = False


# --------------------------------------------------------------------------- CRC and headers

def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        c = i << 24
        for _ in range(8):
            c = ((c << 1) ^ 0x04C11DB7) if c & 0x80000000 else c << 1
        table.append(c & 0xFFFFFFFF)
    return table


_CRC_TABLE = _crc_table()


def crc32_mpeg2(data: bytes) -> int:
    """CRC-32/MPEG-2 (poly 0x04C11DB7, init 0xFFFFFFFF, no reflection, no final xor)."""
    crc = 0xFFFFFFFF
    t = _CRC_TABLE
    for b in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ t[((crc >> 24) ^ b) & 0xFF]
    return crc


def _ts_bytes(prefix: int, v: int) -> bytes:
    """A 33-bit PTS/DTS in the 5-byte PES form with marker bits."""
    return bytes((
        (prefix << 4) | ((v >> 29) & 0x0E) | 1,
        (v >> 22) & 0xFF,
        ((v >> 14) & 0xFE) | 1,
        (v >> 7) & 0xFF,
        ((v << 1) & 0xFE) | 1,
    ))


def _read_ts(b, p: int) -> int:
    return (((b[p] >> 1) & 7) << 30) | (b[p + 1] << 22) | ((b[p + 2] >> 1) << 15) \
        | (b[p + 3] << 7) | (b[p + 4] >> 1)


def pack_header(scr90k: int, mux_rate: int = DEFAULT_MUX_RATE) -> bytes:
    """MPEG-2 pack header (14 bytes, no stuffing); SCR base at 90 kHz, extension 0."""
    s = scr90k & PTS_MASK
    return b"\x00\x00\x01\xba" + bytes((
        0x44 | ((s >> 27) & 0x38) | ((s >> 28) & 0x03),
        (s >> 20) & 0xFF,
        ((s >> 12) & 0xF8) | 0x04 | ((s >> 13) & 0x03),
        (s >> 5) & 0xFF,
        ((s << 3) & 0xF8) | 0x04,  # SCR extension (9 bits) = 0: its top 2 bits here
        0x01,                      # rest of the extension, marker
        (mux_rate >> 14) & 0xFF,
        (mux_rate >> 6) & 0xFF,
        ((mux_rate << 2) & 0xFC) | 0x03,
        0xF8,                      # reserved, pack_stuffing_length 0
    ))


def system_header(mux_rate: int = DEFAULT_MUX_RATE) -> bytes:
    """System header announcing one video stream (0xE0, P-STD bound 2 MB)."""
    body = bytes((
        0x80 | ((mux_rate >> 15) & 0x7F),
        (mux_rate >> 7) & 0xFF,
        ((mux_rate << 1) & 0xFE) | 1,
        0x00,  # audio_bound 0, fixed 0, CSPS 0
        0xE1,  # audio lock, video lock, marker, video_bound 1
        0x7F,  # no packet rate restriction, reserved
        0xE0, 0xE0 | 0x08, 0x00,  # stream E0: '11', scale 1 (1024 B), size 0x800
    ))
    return b"\x00\x00\x01\xbb" + len(body).to_bytes(2, "big") + body


def program_stream_map(codec: str) -> bytes:
    """PSM with one elementary stream (0xE0) of the codec's stream_type, CRC32 at the end."""
    es_map = bytes((STREAM_TYPES[codec], 0xE0, 0, 0))
    body = bytes((0xE0, 0xFF, 0, 0)) + len(es_map).to_bytes(2, "big") + es_map
    head = b"\x00\x00\x01\xbc" + (len(body) + 4).to_bytes(2, "big")
    return head + body + crc32_mpeg2(head + body).to_bytes(4, "big")


# --------------------------------------------------------------------------- muxer

_PARAM_TYPES = {H264: (7, 8), H265: (32, 33, 34)}
_SC4 = b"\x00\x00\x00\x01"


class PsMuxer:
    """One access unit in, PS bytes out (see the module docstring). Stateless between
    frames apart from its fixed headers, so one muxer may serve one stream."""

    __slots__ = ("codec", "mux_rate", "max_pes_payload", "_sys", "_psm", "_ptypes")

    def __init__(self, video_codec: str = H264, *, mux_rate: int = DEFAULT_MUX_RATE,
                 max_pes_payload: int = MAX_PES_PAYLOAD) -> None:
        if video_codec not in STREAM_TYPES:
            raise ValueError(f"PS muxing supports h264 and h265, not {video_codec!r}")
        if not 16 <= max_pes_payload <= 65_535 - 13:
            raise ValueError("max_pes_payload must be between 16 and 65,522 bytes")
        self.codec = video_codec
        self.mux_rate = mux_rate
        self.max_pes_payload = max_pes_payload
        self._sys = system_header(mux_rate)
        self._psm = program_stream_map(video_codec)
        self._ptypes = _PARAM_TYPES[video_codec]

    def _with_params(self, nals: list[bytes], params) -> list[bytes]:
        """Put the parameter sets in front of a keyframe that lacks them (after an AUD)."""
        shift = 1 if self.codec == H264 else 0
        mask = 0x1F if self.codec == H264 else 0x3F
        have = {(n[0] >> shift) & mask for n in nals if n}
        missing = [p for p in params if p and ((p[0] >> shift) & mask) not in have]
        if not missing:
            return nals
        aud = 9 if self.codec == H264 else 35
        at = 1 if nals and nals[0] and ((nals[0][0] >> shift) & mask) == aud else 0
        return [*nals[:at], *missing, *nals[at:]]

    def mux(self, nals: list[bytes], pts90k: int, key: bool, params=(), *,
            dts90k: int | None = None) -> bytes:
        """PS bytes for one frame. ``params`` (SPS/PPS, or VPS/SPS/PPS) are inserted before
        a keyframe that does not carry them; ``dts90k`` defaults to ``pts90k``."""
        if key and params:
            nals = self._with_params(nals, params)
        pts = pts90k & PTS_MASK
        dts = pts if dts90k is None else dts90k & PTS_MASK
        parts: list = [pack_header(dts, self.mux_rate)]
        if key:
            parts.append(self._sys)
            parts.append(self._psm)
        es_len = 4 * len(nals) + sum(map(len, nals))
        ts = _ts_bytes(3, pts) + _ts_bytes(1, dts)
        if es_len <= self.max_pes_payload:
            parts.append(b"\x00\x00\x01\xe0" + (es_len + 13).to_bytes(2, "big")
                         + b"\x84\xc0\x0a" + ts)
            for n in nals:
                parts.append(_SC4)
                parts.append(n)
            return b"".join(parts)
        es = memoryview(b"".join(x for n in nals for x in (_SC4, n)))
        step = self.max_pes_payload
        for off in range(0, es_len, step):
            chunk = es[off:off + step]
            if off == 0:
                parts.append(b"\x00\x00\x01\xe0" + (len(chunk) + 13).to_bytes(2, "big")
                             + b"\x84\xc0\x0a" + ts)
            else:
                parts.append(b"\x00\x00\x01\xe0" + (len(chunk) + 3).to_bytes(2, "big")
                             + b"\x80\x00\x00")
            parts.append(chunk)
        return b"".join(parts)


# --------------------------------------------------------------------------- demuxer

_H265_SNIFF = {0x40, 0x42, 0x44, 0x46, 0x4E, 0x50}  # VPS SPS PPS AUD SEI(prefix, suffix)
_H264_PROFILES = {66, 77, 88, 100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


def _sniff(h: bytes) -> str | None:
    """The codec of a stream without a PSM, from a NAL header that only one codec makes:
    an H.265 VPS/SPS/PPS/AUD/SEI, an H.264 SPS (known profile_idc) or AUD."""
    if len(h) < 2:
        return None
    if h[1] == 0x01 and h[0] in _H265_SNIFF:
        return H265
    if (h[0] & 0x9F == 0x07 and h[1] in _H264_PROFILES) or (h[0] == 0x09 and h[1] & 0x1F == 0x10):
        return H264
    return None


class PsDemuxer:
    """Streaming program-stream demuxer for video (see the module docstring).

    ``feed(data)`` returns the access units completed so far (a frame is complete when the
    next one begins); ``flush()`` completes the pending one (end of an RTP frame or of a
    file). ``codec`` is taken from the PSM, else from ``codec`` given here, else sniffed
    from the first NAL header only one codec makes; NAL units before that are held
    (at most 64) and replayed."""

    MAX_NALS = 4096
    MAX_MARKERS = 64

    def __init__(self, codec: str | None = None, *, max_frame_bytes: int = 8 << 20) -> None:
        if codec is not None and codec not in STREAM_TYPES:
            raise ValueError(f"unknown video codec {codec!r}")
        self.codec = codec
        self._vsid: int | None = None  # the video stream demuxed: the PSM's, else the first
        self.max_frame_bytes = max_frame_bytes
        self.errors = 0
        self.error_counts: dict[str, int] = {}
        self.last_error = ""
        self.stats = {"bytes": 0, "packs": 0, "pes": 0, "frames": 0, "skipped_bytes": 0,
                      "skipped_pes": 0, "psm": 0, "frames_dropped": 0}
        self.stream_types: dict[int, int] = {}  # stream id -> stream_type from the PSM
        self._buf = bytearray()
        self._scanned = 0      # bytes of the waiting video PES already checked for a pack start
        self._resyncing = False
        self._reset_es()
        self._last_pts: int | None = None
        self._last_delta = 3600
        self._discont = False

    # ---- public

    def feed(self, data: bytes) -> list[PsFrame]:
        self._out: list[PsFrame] = []
        if data:
            self.stats["bytes"] += len(data)
            self._buf += data
            try:
                self._parse()
            except Exception:  # a bug must not take the media path down; it is counted
                log.exception("PS demuxer internal error; state reset")
                self._error("internal")
                self._buf.clear()
                self._scanned = 0
                self._drop_es()
        return self._out

    def flush(self) -> list[PsFrame]:
        """Complete the pending access unit (its last NAL runs to the end of the data)."""
        self._out = []
        try:
            self._parse(final=True)
            self._split_nals(final=True)
            self._emit_au()
        except Exception:
            log.exception("PS demuxer internal error on flush; state reset")
            self._error("internal")
            self._drop_es()
        return self._out

    def reset(self) -> None:
        """Forget partial data (after loss upstream); the next frame is marked ``discont``."""
        self._buf.clear()
        self._scanned = 0
        self._drop_es()

    # ---- errors and state

    def _error(self, reason: str) -> None:
        self.errors += 1
        self.error_counts[reason] = self.error_counts.get(reason, 0) + 1
        self.last_error = reason

    def _reset_es(self) -> None:
        self._es = bytearray()      # the NAL in progress, starting at its start code
        self._es_base = 0           # absolute ES offset of self._es[0]
        self._es_total = 0          # absolute ES offset of the end of self._es
        self._es_scan = 3           # where to look for the next start code in self._es
        self._head_seen = False     # the in-progress NAL's header was classified
        self._markers: deque[tuple[int, int, int | None]] = deque()
        self._au: list[bytes] = []
        self._au_open = False       # an access unit has begun (its first NAL may be pending)
        self._au_bytes = 0
        self._au_vcl = False
        self._au_pts: int | None = None
        self._au_dts: int | None = None
        self._pending: deque[tuple[int, bytes]] = deque()  # NAL units before the codec is known
        self._pending_bytes = 0

    def _break(self, keep_pending: bool) -> None:
        """The stream is broken here. The pending access unit came from whole PES packets:
        with ``keep_pending`` it is completed (the break is between frames), else dropped."""
        if keep_pending:
            self._split_nals(final=True)
            self._emit_au()
        self._drop_es()

    def _drop_es(self) -> None:
        if self._au or self._es:
            self.stats["frames_dropped"] += 1
        base = self._es_total
        self._reset_es()
        self._es_base = self._es_total = base
        self._discont = True

    # ---- PS layer

    def _parse(self, final: bool = False) -> None:
        buf = self._buf
        n = len(buf)
        pos = 0
        stats = self.stats
        while n - pos >= 4:
            if buf[pos] or buf[pos + 1] or buf[pos + 2] != 1 or buf[pos + 3] < 0xB9:
                found = self._find_system_code(buf, pos + 1, n, partial=True)
                stop = found if found >= 0 else n - 2  # the last 2 bytes may open a code
                stats["skipped_bytes"] += stop - pos
                if not self._resyncing:  # one error per run of garbage
                    self._resyncing = True
                    self._error("garbage")
                    self._break(keep_pending=True)
                pos = stop
                continue
            self._resyncing = False
            sid = buf[pos + 3]
            if sid == 0xBA:
                if n - pos < 5:
                    break
                b4 = buf[pos + 4]
                if b4 & 0xC0 == 0x40:      # MPEG-2
                    if n - pos < 14:
                        break
                    size = 14 + (buf[pos + 13] & 7)
                elif b4 & 0xF0 == 0x20:    # MPEG-1
                    size = 12
                else:
                    self._error("bad pack header")
                    pos += 4
                    continue
                if n - pos < size:
                    break
                stats["packs"] += 1
                pos += size
                continue
            if sid == 0xB9:  # program end
                pos += 4
                self._split_nals(final=True)
                self._emit_au()
                continue
            if n - pos < 6:
                break
            length = (buf[pos + 4] << 8) | buf[pos + 5]
            end = pos + 6 + length
            if 0xE0 <= sid <= 0xEF:
                avail = n if length == 0 else min(end, n)
                hdr = self._pes_header(buf, pos + 6, avail)
                if hdr is None and (avail < end or length == 0) and not (final and not length):
                    break  # wait for the rest of the header
                if not isinstance(hdr, tuple):
                    self._error(hdr or "truncated PES header")
                    self._drop_es()
                    pos += 4  # resynchronise on the next system start code
                    continue
                pay, pts, dts = hdr
                # A video elementary stream never holds 00 00 01 followed by a byte >= 0xB9
                # (that would be a NAL header with forbidden_zero_bit set), so the first
                # such code inside the claimed payload is where the PES really ends.
                code = self._find_system_code(buf, max(pay, pos + 6 + self._scanned), avail)
                if code >= 0:
                    if length:
                        self._error("PES length runs past the next pack")
                        self._break(keep_pending=pts is not None)
                    else:  # unbounded (transport-stream style): ends at the next code
                        stats["pes_unbounded"] = stats.get("pes_unbounded", 0) + 1
                        self._pes(sid, pay, code, pts, dts)
                    end = code
                elif length == 0 or end > n:
                    if length == 0 and (final or n - pos > 6 + 65_535):
                        if not final:
                            self._error("PES without length or end")
                        self._pes(sid, pay, n, pts, dts)
                        end = n
                    else:
                        self._scanned = max(0, n - pos - 6 - 3)
                        break
                else:
                    self._pes(sid, pay, end, pts, dts)
                self._scanned = 0
                stats["pes"] += 1
                pos = end
                continue
            if end > n:
                break
            if sid == 0xBC:
                self._psm(pos + 6, end)
            elif sid != 0xBB:
                stats["skipped_pes"] += 1
            pos = end
        if pos:
            del buf[:pos]

    @staticmethod
    def _find_system_code(buf: bytearray, start: int, stop: int, partial: bool = False) -> int:
        """First 00 00 01 xx (xx >= 0xB9) in buf[start:stop]; with ``partial`` also a
        00 00 01 whose fourth byte has not arrived yet."""
        i = buf.find(START, start, stop)
        while i >= 0:
            if i + 3 < stop:
                if buf[i + 3] >= 0xB9:
                    return i
            elif partial:
                return i
            else:
                break
            i = buf.find(START, i + 1, stop)
        return -1

    def _psm(self, p: int, end: int) -> None:
        buf = self._buf
        self.stats["psm"] += 1
        if end - p < 10:
            self._error("short PSM")
            return
        info_len = (buf[p + 2] << 8) | buf[p + 3]
        q = p + 4 + info_len
        if q + 2 > end:
            self._error("bad PSM")
            return
        map_len = (buf[q] << 8) | buf[q + 1]
        q += 2
        stop = min(q + map_len, end - 4)
        video = False
        while q + 4 <= stop:
            st, esid = buf[q], buf[q + 1]
            self.stream_types[esid] = st
            if 0xE0 <= esid <= 0xEF and st in VIDEO_STREAM_TYPES and not video:
                video = True
                codec = VIDEO_STREAM_TYPES[st]
                if codec != self.codec and (self._au or self._es):
                    self._drop_es()  # a codec change mid-frame: the frame cannot be whole
                self.codec = codec
                self._vsid = esid
                if self._pending:
                    self._replay_pending()
            elif 0xE0 <= esid <= 0xEF and st not in VIDEO_STREAM_TYPES:
                self._error(f"unsupported video stream_type 0x{st:02x}")
            q += 4 + ((buf[q + 2] << 8) | buf[q + 3])

    @staticmethod
    def _pes_header(buf: bytearray, p: int, avail: int):
        """(payload start, PTS, DTS) of the PES header at ``p``; None when bytes up to
        ``avail`` do not hold the whole header yet; a reason string when it is malformed."""
        pts = dts = None
        if p >= avail:
            return None
        b = buf[p]
        if b & 0xC0 == 0x80:  # MPEG-2 PES header
            if avail - p < 3:
                return None
            flags, hl = buf[p + 1], buf[p + 2]
            pay = p + 3 + hl
            if pay > avail:
                return None
            if flags & 0x80:
                if hl < 5 or (flags & 0x40 and hl < 10):
                    return "PES header too short for its timestamps"
                pts = _read_ts(buf, p + 3)
                if flags & 0x40:
                    dts = _read_ts(buf, p + 8)
            return pay, pts, dts
        q = p  # MPEG-1 packet: stuffing, STD buffer, then timestamps
        while q < avail and buf[q] == 0xFF:
            q += 1
            if q - p > 16:
                return "MPEG-1 packet stuffing too long"
        if q < avail and buf[q] & 0xC0 == 0x40:
            q += 2
        if q >= avail:
            return None
        b = buf[q]
        if b & 0xF0 == 0x20:
            if q + 5 > avail:
                return None
            return q + 5, _read_ts(buf, q), None
        if b & 0xF0 == 0x30:
            if q + 10 > avail:
                return None
            return q + 10, _read_ts(buf, q), _read_ts(buf, q + 5)
        if b == 0x0F:
            return q + 1, None, None
        return "bad PES header"

    def _pes(self, sid: int, pay: int, end: int, pts: int | None, dts: int | None) -> None:
        if self._vsid is None:
            self._vsid = sid  # no PSM: the first video stream is the one demuxed
        if sid != self._vsid:
            self.stats["skipped_pes"] += 1
            return
        if pts is not None:
            self._markers.append((self._es_total, pts, dts))
            if len(self._markers) > self.MAX_MARKERS:
                self._markers.popleft()
        if pay < end:
            self._es_in(self._buf[pay:end])

    # ---- elementary stream: NAL units and access units

    def _es_in(self, data) -> None:
        es = self._es
        if not es:
            i = data.find(START)
            if i < 0:
                self._es_total += len(data)
                self._es_base = self._es_total
                return
            self._es_base = self._es_total + i
            self._es_total += i
            data = data[i:]
            self._es_scan = 3
            self._head_seen = False
        self._es_total += len(data)
        es += data
        if len(es) + self._au_bytes > self.max_frame_bytes:
            self._error("frame too large")
            self._drop_es()
            return
        self._split_nals(final=False)

    def _split_nals(self, final: bool) -> None:
        es = self._es
        if not es:
            return
        k = 0  # start of the NAL in progress (at its 00 00 01)
        scan = self._es_scan
        while True:
            if not self._head_seen:
                if len(es) - k < 6 and not final:
                    break
                self._nal_head(es, k)
            j = es.find(START, max(scan, k + 3))
            if j < 0:
                if final:
                    self._nal_done(es, k, len(es))
                    k = len(es)
                else:
                    scan = max(k + 3, len(es) - 2)
                break
            self._nal_done(es, k, j)
            k, scan = j, j + 3
            if not self._es:  # dropped while adding (too many NALs)
                return
        if k:
            del es[:k]
            self._es_base += k
        self._es_scan = max(3, scan - k)

    def _nal_head(self, es: bytearray, k: int) -> None:
        """Classify the NAL starting at ``es[k]`` as soon as its header is there: a new
        access unit can be emitted without waiting for the NAL's end."""
        self._head_seen = True
        h = bytes(es[k + 3:k + 6])
        if self.codec is None:
            codec = _sniff(h)
            if codec is None:
                return  # kept in _pending when complete, replayed once the codec is known
            self.codec = codec
            self._replay_pending()
        self._classify(h, self._es_base + k)

    def _classify(self, h: bytes, at: int) -> None:
        if len(h) < (2 if self.codec == H264 else 3):
            return
        if self.codec == H264:
            t = h[0] & 0x1F
            vcl, first = 1 <= t <= 5, bool(h[1] & 0x80)
            opens = t in (6, 7, 8, 9) or 14 <= t <= 18
        else:
            t = (h[0] >> 1) & 0x3F
            vcl, first = t < 32, bool(h[2] & 0x80)
            opens = 32 <= t <= 35 or t == 39 or 41 <= t <= 44 or 48 <= t <= 55
        if self._au_vcl and (opens or (vcl and first)):
            self._emit_au()
        if not self._au_open:
            self._start_au(at)
        self._au_vcl = self._au_vcl or vcl

    def _replay_pending(self) -> None:
        pending, self._pending, self._pending_bytes = self._pending, deque(), 0
        for at, nal in pending:
            self._classify(nal[:3], at)
            self._add_nal(nal, at)

    def _start_au(self, at: int) -> None:
        self._au_open = True
        m = None
        markers = self._markers
        while markers and markers[0][0] <= at:
            m = markers.popleft()
        if m is None:
            self._au_pts = self._au_dts = None
        else:
            self._au_pts, self._au_dts = m[1], m[2]

    def _nal_done(self, es: bytearray, k: int, j: int) -> None:
        self._head_seen = False
        e = j
        while e > k + 3 and es[e - 1] == 0:
            e -= 1
        if e <= k + 3:
            return
        nal = bytes(es[k + 3:e])
        if self.codec is None:
            self._pending.append((self._es_base + k, nal))
            self._pending_bytes += len(nal)
            while len(self._pending) > 64 or self._pending_bytes > self.max_frame_bytes:
                self._pending_bytes -= len(self._pending.popleft()[1])
                self.stats["nals_before_codec"] = self.stats.get("nals_before_codec", 0) + 1
            return
        self._add_nal(nal, self._es_base + k)

    def _add_nal(self, nal: bytes, at: int) -> None:
        if not self._au_open:  # header was too short to classify at the time
            self._start_au(at)
        self._au.append(nal)
        self._au_bytes += len(nal)
        if len(self._au) > self.MAX_NALS:
            self._error("too many NAL units in a frame")
            self._drop_es()

    def _emit_au(self) -> None:
        au = self._au
        if not au:
            return
        self._au_open = False
        codec = self.codec
        pts = self._au_pts
        if pts is None:
            pts = (self._last_pts + self._last_delta) if self._last_pts is not None else 0
            dts = None
        else:
            dts = self._au_dts
            if self._last_pts is not None:
                # unwrap 33 bits relative to the previous frame
                d = ((pts - self._last_pts + (1 << 32)) & PTS_MASK) - (1 << 32)
                pts = self._last_pts + d
                if dts is not None:
                    dts = pts + (((dts - pts + (1 << 32)) & PTS_MASK) - (1 << 32))
                if 0 < d < 90_000 * 10:
                    self._last_delta = d
        self._last_pts = pts
        if codec == H264:
            key = any(n[0] & 0x1F == 5 for n in au)
        else:
            key = any(16 <= (n[0] >> 1) & 0x3F <= 23 for n in au)
        self._out.append(PsFrame(codec, pts, au, key, dts, self._discont))
        self._discont = False
        self.stats["frames"] += 1
        self._au = []
        self._au_bytes = 0
        self._au_vcl = False
        self._au_pts = self._au_dts = None
