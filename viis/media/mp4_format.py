"""ISO BMFF building blocks: boxes, track descriptions, init segments and
moof+mdat fragments (ISO/IEC 14496-12, 14496-14, 14496-15).

Hot-path rule: everything is assembled with ``struct.pack`` and list joins; a
fragment is returned as a list of ``bytes`` chunks (moof, mdat header, then
the sample payloads as given) so the caller can ``b"".join`` or ``os.writev``.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from . import h26x

_pack = struct.pack
_U32 = 1 << 32

# sample_flags (ISO/IEC 14496-12 8.8.3.1)
SYNC_FLAGS = 0x02000000  # sample_depends_on=2 (I picture), is_non_sync_sample=0
NON_SYNC_FLAGS = 0x01010000  # sample_depends_on=1, is_non_sync_sample=1

MATRIX = _pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
LANG_UND = 0x55C4  # packed ISO-639-2 "und"
MAX_BOX_READ = 64 << 20  # refuse to load metadata boxes (moov, moof) larger than this

AAC_SAMPLE_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000,
                    11025, 8000, 7350)  # fmt: skip


class Mp4Error(ValueError):
    """Input is not a (supported, well-formed) MP4 file or the request is invalid."""


class Mp4TruncatedError(Mp4Error):
    """The file ends before its metadata (ftyp/moov) is complete."""


class ExportError(Mp4Error):
    """An export request cannot be satisfied (no footage, incompatible segments...)."""


# --------------------------------------------------------------------------- boxes


def box(typ: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return _pack(">I4s", 8 + len(body), typ) + body


def full_box(typ: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return _pack(">I4sI", 12 + len(body), typ, (version << 24) | flags) + body


# --------------------------------------------------------------------------- AAC


def parse_asc(asc: bytes) -> tuple[int, int, int]:
    """AudioSpecificConfig -> (audio_object_type, output sample_rate, channels).

    For explicitly signalled SBR/PS (object type 5/29) the rate is the extension
    (output) rate and the object type stays 5/29 (``mp4a.40.5``)."""
    r = h26x.BitReader(bytes(asc))

    def rate_of(idx: int) -> int:
        return r.u(24) if idx == 15 else (AAC_SAMPLE_RATES[idx] if idx < 13 else 0)

    try:
        aot = r.u(5)
        if aot == 31:
            aot = 32 + r.u(6)
        rate = rate_of(r.u(4))
        channels = r.u(4)
        if aot in (5, 29):
            rate = rate_of(r.u(4)) or rate
    except h26x.BitstreamError as e:
        raise Mp4Error("AudioSpecificConfig truncated") from e
    if not rate:
        raise Mp4Error("AudioSpecificConfig has an invalid sampling frequency index")
    return aot, rate, (channels if channels != 7 else 8)


def make_asc(sample_rate: int, channels: int, object_type: int = 2) -> bytes:
    """Minimal AudioSpecificConfig (AAC-LC by default)."""
    if sample_rate in AAC_SAMPLE_RATES:
        v = (object_type << 11) | (AAC_SAMPLE_RATES.index(sample_rate) << 7) | (channels << 3)
        return _pack(">H", v)
    v = (object_type << 35) | (15 << 31) | (sample_rate << 7) | (channels << 3)
    return v.to_bytes(5, "big")


def split_adts(data: bytes) -> tuple[bytes, list[bytes]]:
    """Split an ADTS stream into (AudioSpecificConfig, raw AAC frames)."""
    data = bytes(data)
    frames, pos, asc = [], 0, b""
    while pos + 7 <= len(data):
        if data[pos] != 0xFF or data[pos + 1] & 0xF6 != 0xF0:
            raise Mp4Error(f"no ADTS sync word at offset {pos}")
        hdr = int.from_bytes(data[pos : pos + 7], "big")
        length = (hdr >> 13) & 0x1FFF
        header_len = 7 if data[pos + 1] & 1 else 9  # protection_absent
        if length < header_len or pos + length > len(data):
            break
        if not asc:
            idx = (hdr >> 34) & 0xF
            asc = make_asc(AAC_SAMPLE_RATES[idx], (hdr >> 30) & 7, ((hdr >> 38) & 3) + 1)
        frames.append(data[pos + header_len : pos + length])
        pos += length
    return asc, frames


# --------------------------------------------------------------------------- tracks

_FOURCC = {"h264": "avc1", "h265": "hvc1", "aac": "mp4a", "pcm_alaw": "alaw", "pcm_mulaw": "ulaw"}


@dataclass(frozen=True)
class Track:
    """One track of a segment.  Build with :meth:`h264`, :meth:`h265`, :meth:`aac`
    or :meth:`g711`.  ``config`` is the avcC/hvcC record or the AAC
    AudioSpecificConfig.  ``raw_entry`` (set by the reader) is the original
    sample entry box, used verbatim when present."""

    kind: str  # 'video' | 'audio'
    codec: str  # 'h264' 'h265' 'aac' 'pcm_alaw' 'pcm_mulaw' (or a fourcc when read)
    timescale: int
    track_id: int = 1
    width: int = 0
    height: int = 0
    sample_rate: int = 0
    channels: int = 0
    config: bytes = b""
    fourcc: str = ""
    sar: tuple[int, int] | None = None
    fps: float | None = None
    raw_entry: bytes = field(default=b"", repr=False, compare=False)

    @classmethod
    def h264(cls, sps: Sequence[bytes] | bytes, pps: Sequence[bytes] | bytes, *,
             track_id: int = 1, timescale: int = 90000) -> Track:  # fmt: skip
        sps, pps = _as_list(sps), _as_list(pps)
        info = h26x.parse_h264_sps(sps[0])
        return cls("video", "h264", timescale, track_id, info.width, info.height,
                   config=h26x.avcc(sps, pps), fourcc="avc1", sar=info.sar, fps=info.fps)  # fmt: skip

    @classmethod
    def h265(cls, vps: Sequence[bytes] | bytes, sps: Sequence[bytes] | bytes,
             pps: Sequence[bytes] | bytes, *, track_id: int = 1, timescale: int = 90000,
             fourcc: str = "hvc1") -> Track:  # fmt: skip
        vps, sps, pps = _as_list(vps), _as_list(sps), _as_list(pps)
        info = h26x.parse_h265_sps(sps[0])
        return cls("video", "h265", timescale, track_id, info.width, info.height,
                   config=h26x.hvcc(vps, sps, pps), fourcc=fourcc, sar=info.sar, fps=info.fps)  # fmt: skip

    @classmethod
    def video(cls, codec: str, nals: Sequence[bytes], **kw) -> Track:
        """Track from the parameter sets found among ``nals`` (e.g. an IDR access unit)."""
        ps = h26x.parameter_sets(codec, nals)
        if not ps["sps"] or not ps["pps"] or (codec == "h265" and not ps["vps"]):
            raise ValueError(f"{codec}: parameter sets missing")
        if codec == "h264":
            return cls.h264(ps["sps"], ps["pps"], **kw)
        return cls.h265(ps["vps"], ps["sps"], ps["pps"], **kw)

    @classmethod
    def aac(cls, asc: bytes, *, track_id: int = 2, timescale: int | None = None) -> Track:
        """AAC from its AudioSpecificConfig.  ``timescale`` defaults to the sample
        rate; pass the RTP clock rate when it differs (timestamps are in it)."""
        _, rate, channels = parse_asc(asc)
        return cls("audio", "aac", timescale or rate, track_id, sample_rate=rate,
                   channels=channels, config=bytes(asc), fourcc="mp4a")  # fmt: skip

    @classmethod
    def g711(cls, law: str = "alaw", *, sample_rate: int = 8000, channels: int = 1,
             track_id: int = 2) -> Track:  # fmt: skip
        """G.711 A-law ('alaw') or µ-law ('mulaw'/'ulaw'), QuickTime-style sample entry."""
        codec = {"alaw": "pcm_alaw", "mulaw": "pcm_mulaw", "ulaw": "pcm_mulaw"}.get(law)
        if codec is None:
            raise ValueError(f"unknown G.711 law {law!r}")
        return cls("audio", codec, sample_rate, track_id, sample_rate=sample_rate,
                   channels=channels, fourcc=_FOURCC[codec])  # fmt: skip

    @property
    def is_video(self) -> bool:
        return self.kind == "video"

    @property
    def codec_string(self) -> str:
        """RFC 6381 string for MSE ``addSourceBuffer`` (``avc1.64001f``, ``mp4a.40.2``...)."""
        if self.codec == "h264" and len(self.config) >= 4:
            c = self.config
            return f"{self.fourcc or 'avc1'}.{c[1]:02x}{c[2]:02x}{c[3]:02x}"
        if self.codec == "h265":
            sps = h26x.parse_hvcc(self.config)["sps"]
            return h26x.codec_string("h265", sps[0], self.fourcc or "hvc1")
        if self.codec == "aac":
            return f"mp4a.40.{parse_asc(self.config)[0]}"
        return self.fourcc or self.codec

    def default_duration(self, payload_size: int = 0) -> int:
        """Duration of a sample when no timestamp difference is available."""
        if self.kind == "video":
            return max(1, round(self.timescale / (self.fps or 25)))
        scale = self.timescale / (self.sample_rate or self.timescale)
        if self.codec == "aac":
            return round((2048 if parse_asc(self.config)[0] in (5, 29) else 1024) * scale)
        if self.codec.startswith("pcm_") and payload_size:
            return max(1, round(payload_size // max(1, self.channels) * scale))
        return max(1, self.timescale // 50)

    def sample_entry(self) -> bytes:
        if self.raw_entry:
            return self.raw_entry
        fourcc = (self.fourcc or _FOURCC.get(self.codec, "")).encode()
        if len(fourcc) != 4:
            raise Mp4Error(f"no sample entry for codec {self.codec!r}")
        if self.kind == "video":
            cfg = box(b"avcC" if self.codec == "h264" else b"hvcC", self.config)
            if self.sar and self.sar[0] != self.sar[1]:
                cfg += box(b"pasp", _pack(">II", *self.sar))
            return box(fourcc, bytes(6), _pack(">HHH3IHHIIIH", 1, 0, 0, 0, 0, 0,
                       self.width, self.height, 0x480000, 0x480000, 0, 1),
                       bytes(32), _pack(">Hh", 0x18, -1), cfg)  # fmt: skip
        rate = self.sample_rate if self.sample_rate < 65536 else 0
        head = (
            bytes(6) + _pack(">HII", 1, 0, 0) + _pack(">HHHHI", self.channels, 16, 0, 0, rate << 16)
        )
        if self.codec == "aac":
            return box(fourcc, head, _esds(self.config, self.channels))
        return box(fourcc, head)


def _as_list(x: Sequence[bytes] | bytes) -> list[bytes]:
    return [bytes(x)] if isinstance(x, (bytes, bytearray, memoryview)) else [bytes(i) for i in x]


def _descriptor(tag: int, body: bytes) -> bytes:
    n, size = len(body), bytearray()
    size.append(n & 0x7F)
    n >>= 7
    while n:
        size.insert(0, 0x80 | (n & 0x7F))
        n >>= 7
    return bytes((tag,)) + bytes(size) + body


def _esds(asc: bytes, channels: int) -> bytes:
    dsi = _descriptor(5, bytes(asc))
    dcd = _descriptor(4, _pack(">BBBHII", 0x40, 0x15, 0, 0, 0, 0) + dsi)
    es = _descriptor(3, _pack(">HB", 0, 0) + dcd + _descriptor(6, b"\x02"))
    return full_box(b"esds", 0, 0, es)


def mime_type(tracks: Sequence[Track]) -> str:
    """``video/mp4; codecs="avc1.64001f,mp4a.40.2"`` for MediaSource.isTypeSupported."""
    kind = "video" if any(t.is_video for t in tracks) else "audio"
    return f'{kind}/mp4; codecs="{",".join(t.codec_string for t in tracks)}"'


# --------------------------------------------------------------------------- moov


def _v(value: int) -> int:
    return 1 if value >= _U32 else 0


def mvhd(timescale: int, duration: int, next_track_id: int, ctime: int = 0) -> bytes:
    if _v(duration) or _v(ctime):
        times = _pack(">QQIQ", ctime, ctime, timescale, duration)
        ver = 1
    else:
        times, ver = _pack(">IIII", ctime, ctime, timescale, duration), 0
    tail = _pack(">IH10x", 0x10000, 0x100) + MATRIX + bytes(24) + _pack(">I", next_track_id)
    return full_box(b"mvhd", ver, 0, times, tail)


def trak(track: Track, stbl_tables: bytes, *, movie_duration: int = 0, media_duration: int = 0,
         ctime: int = 0, entries: Sequence[bytes] | None = None, edits: bytes = b"") -> bytes:  # fmt: skip
    """A complete trak.  ``stbl_tables`` follow the stsd (stts, stsc, stsz, stco...)."""
    video = track.is_video
    ver = _v(movie_duration) | _v(ctime)
    if ver:
        times = _pack(">QQIIQ", ctime, ctime, track.track_id, 0, movie_duration)
    else:
        times = _pack(">IIIII", ctime, ctime, track.track_id, 0, movie_duration)
    w, h = track.width, track.height
    if video and track.sar and track.sar[1]:
        w = w * track.sar[0] // track.sar[1]
    tkhd = full_box(b"tkhd", ver, 3, times, _pack(">8xhhHH", 0, 0, 0 if video else 0x100, 0),
                    MATRIX, _pack(">II", w << 16, h << 16))  # fmt: skip
    mver = _v(media_duration) | _v(ctime)
    if mver:
        mtimes = _pack(">QQIQ", ctime, ctime, track.timescale, media_duration)
    else:
        mtimes = _pack(">IIII", ctime, ctime, track.timescale, media_duration)
    mdhd = full_box(b"mdhd", mver, 0, mtimes, _pack(">HH", LANG_UND, 0))
    handler, name = (b"vide", b"VideoHandler\0") if video else (b"soun", b"SoundHandler\0")
    hdlr = full_box(b"hdlr", 0, 0, _pack(">I4s12x", 0, handler), name)
    xmhd = full_box(b"vmhd", 0, 1, bytes(8)) if video else full_box(b"smhd", 0, 0, bytes(4))
    dinf = box(b"dinf", full_box(b"dref", 0, 0, _pack(">I", 1), full_box(b"url ", 0, 1)))
    entries = list(entries) if entries else [track.sample_entry()]
    stsd = full_box(b"stsd", 0, 0, _pack(">I", len(entries)), *entries)
    stbl = box(b"stbl", stsd, stbl_tables)
    return box(b"trak", tkhd, edits, box(b"mdia", mdhd, hdlr, box(b"minf", xmhd, dinf, stbl)))


EMPTY_TABLES = (full_box(b"stts", 0, 0, bytes(4)) + full_box(b"stsc", 0, 0, bytes(4))
                + full_box(b"stsz", 0, 0, bytes(8)) + full_box(b"stco", 0, 0, bytes(4)))  # fmt: skip


def iso_time(unix_seconds: int) -> int:
    """Unix seconds -> seconds since 1904-01-01 (ISO BMFF time fields); 0 stays 0 (unknown)."""
    return int(unix_seconds) + 2082844800 if unix_seconds else 0


def init_segment(tracks: Sequence[Track], *, creation_time: int = 0) -> bytes:
    """ftyp + moov(mvhd, trak..., mvex(trex...)) for a fragmented file.

    ``creation_time`` is in unix seconds; 0 = unknown."""
    if not tracks:
        raise ValueError("at least one track is needed")
    ids = [t.track_id for t in tracks]
    if len(set(ids)) != len(ids) or min(ids) < 1:
        raise ValueError("track ids must be unique and >= 1")
    ftyp = box(b"ftyp", b"iso5", _pack(">I", 512), b"iso5iso6mp41")
    ctime = iso_time(creation_time)
    traks = [trak(t, EMPTY_TABLES, ctime=ctime) for t in tracks]
    trex = [full_box(b"trex", 0, 0, _pack(">5I", t.track_id, 1, 0, 0, 0)) for t in tracks]
    moov = box(b"moov", mvhd(1000, 0, max(ids) + 1, ctime), *traks, box(b"mvex", *trex))
    return ftyp + moov


# --------------------------------------------------------------------------- fragments


def nal_payload(nals: Sequence[bytes]) -> tuple[list[bytes], int]:
    """NAL units -> (chunks with 4-byte big-endian length prefixes, total size)."""
    chunks: list[bytes] = []
    size = 0
    for n in nals:
        ln = len(n)
        chunks.append(_pack(">I", ln))
        chunks.append(n)
        size += ln + 4
    return chunks, size


@dataclass(slots=True)
class TrackRun:
    """Samples of one track for one fragment (parallel lists, payload in order)."""

    track_id: int
    base_decode_time: int
    durations: list[int] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    sync: list[bool] = field(default_factory=list)
    cts: list[int] = field(default_factory=list)  # composition offsets; all 0 if no B-frames
    chunks: list[bytes] = field(default_factory=list)

    def add(self, data: bytes | Sequence[bytes], duration: int, sync: bool = True,
            cts: int = 0) -> None:  # fmt: skip
        """Append a sample: ``bytes`` are written as is, a list of NAL units with
        4-byte length prefixes."""
        if isinstance(data, (bytes, bytearray, memoryview)):
            self.chunks.append(data)
            self.sizes.append(len(data))
        else:
            chunks, size = nal_payload(data)
            self.chunks.extend(chunks)
            self.sizes.append(size)
        self.durations.append(duration)
        self.sync.append(sync)
        self.cts.append(cts)

    @property
    def duration(self) -> int:
        return sum(self.durations)


def build_fragment(sequence: int, runs: Sequence[TrackRun]) -> list[bytes]:
    """moof(mfhd, traf(tfhd default-base-is-moof, tfdt v1, trun)...) + mdat, as chunks.

    The first chunk is the whole moof, the second the mdat header, the rest the
    sample payloads.  Runs without samples are skipped."""
    runs = [r for r in runs if r.sizes]
    if not runs:
        raise ValueError("a fragment needs at least one sample")
    heads = []
    for r in runs:
        n = len(r.sizes)
        all_sync = all(r.sync)
        has_cts = any(r.cts)
        per = 3 - all_sync + has_cts
        heads.append(
            (r, n, all_sync, has_cts, 8 + 16 + (4 if all_sync else 0) + 20 + 20 + 4 * per * n)
        )
    moof_size = 8 + 16 + sum(h[4] for h in heads)
    data_size = sum(sum(r.sizes) for r in runs)
    if data_size + 8 >= _U32:
        raise ValueError("fragment larger than 4 GiB")
    parts = [_pack(">I4sI4sII", moof_size, b"moof", 16, b"mfhd", 0, sequence & 0xFFFFFFFF)]
    offset = moof_size + 8
    for r, n, all_sync, has_cts, traf_size in heads:
        if all_sync:
            tfhd = _pack(">I4sIII", 20, b"tfhd", 0x020020, r.track_id, SYNC_FLAGS)
        else:
            tfhd = _pack(">I4sII", 16, b"tfhd", 0x020000, r.track_id)
        tfdt = _pack(">I4sIQ", 20, b"tfdt", 0x01000000, r.base_decode_time)
        per = 3 - all_sync + has_cts
        flags = 0x301 | (0 if all_sync else 0x400) | (0x800 if has_cts else 0)
        version = 1 if has_cts and min(r.cts) < 0 else 0
        if all_sync and not has_cts:
            flat = [v for pair in zip(r.durations, r.sizes, strict=True) for v in pair]
        else:
            cols = [r.durations, r.sizes]
            if not all_sync:
                cols.append([SYNC_FLAGS if s else NON_SYNC_FLAGS for s in r.sync])
            if has_cts:
                cols.append([c & 0xFFFFFFFF for c in r.cts])
            flat = [v for row in zip(*cols, strict=True) for v in row]
        trun = _pack(f">I4sIIi{per * n}I", 20 + 4 * per * n, b"trun", (version << 24) | flags,
                     n, offset, *flat)  # fmt: skip
        parts.append(_pack(">I4s", traf_size, b"traf") + tfhd + tfdt + trun)
        offset += sum(r.sizes)
    out = [b"".join(parts), _pack(">I4s", data_size + 8, b"mdat")]
    for r in runs:
        out.extend(r.chunks)
    return out
