"""Reading fragmented MP4 segments: track descriptions, per-fragment sample
tables, the length of the complete part (crash recovery).

Only box headers and metadata boxes (moov, moof) are read; mdat payloads are
skipped, so parsing a 30 MB segment reads a few kilobytes.  Every size field
is checked against the file size and :data:`MAX_BOX_READ`, so hostile input
raises :class:`Mp4Error` (or returns a truncated result) instead of hanging or
allocating huge buffers.
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass, field
from itertools import accumulate

from .h26x import BitstreamError, parse_avcc, parse_hvcc, parse_sps
from .mp4_format import MAX_BOX_READ, Mp4Error, Mp4TruncatedError, Track, parse_asc
from .mp4_writer import SegmentInfo, TrackStats, finalize_file

_unpack = struct.unpack_from
MAX_TRUN_SAMPLES = 1 << 20  # bounds memory for truns relying on default sizes/durations
_FRAGMENT_SIDE_BOXES = {b"styp", b"sidx", b"ssix", b"prft", b"emsg", b"free", b"skip", b"uuid",
                        b"mfra", b"meta"}  # fmt: skip


@dataclass(slots=True)
class TrackFragment:
    """Samples of one track in one fragment (parallel lists).  ``offsets`` are
    absolute file offsets, ``decode_times`` in the track timescale."""

    track_id: int
    base_decode_time: int
    sample_description_index: int
    offsets: list[int]
    sizes: list[int]
    durations: list[int]
    decode_times: list[int]
    sync: list[bool]
    cts: list[int]
    tfdt_pos: int = -1  # offset of the tfdt box inside the moof (-1: none)
    tfdt_version: int = 0

    @property
    def end_decode_time(self) -> int:
        return (
            self.decode_times[-1] + self.durations[-1] if self.durations else self.base_decode_time
        )


@dataclass(slots=True)
class Fragment:
    sequence: int
    moof_offset: int
    moof_size: int
    end: int  # file offset just past the fragment's data (its mdat)
    trafs: dict[int, TrackFragment]
    moof_relative: bool = True  # all data offsets relative to the moof (tfdt can be patched)
    mfhd_pos: int = -1  # offset of the mfhd box inside the moof


@dataclass
class ParsedSegment:
    path: str
    size: int  # file size
    init_end: int  # offset just past the moov
    tracks: dict[int, Track]
    fragments: list[Fragment] = field(default_factory=list)
    complete_length: int = 0  # file length up to the end of the last complete fragment
    truncated: bool = False  # something after complete_length was cut off or malformed
    tail_error: str | None = None
    entries: dict[int, list[Track]] = field(default_factory=dict)  # all stsd entries per track
    fragmented: bool = True  # the moov has an mvex box

    def track_of_kind(self, kind: str) -> Track | None:
        return next((t for t in self.tracks.values() if t.kind == kind), None)

    @property
    def clock_track_id(self) -> int:
        t = self.track_of_kind("video") or next(iter(self.tracks.values()))
        return t.track_id

    def stats(self) -> dict[int, TrackStats]:
        out = {}
        for tid, t in self.tracks.items():
            tfs = [f.trafs[tid] for f in self.fragments if tid in f.trafs and f.trafs[tid].sizes]
            if not tfs:
                out[tid] = TrackStats(tid, t.timescale)
                continue
            out[tid] = TrackStats(
                tid, t.timescale, sum(len(x.sizes) for x in tfs), sum(sum(x.sync) for x in tfs),
                sum(sum(x.sizes) for x in tfs), tfs[0].decode_times[0], tfs[-1].decode_times[-1],
                tfs[-1].end_decode_time,
            )  # fmt: skip
        return out


# --------------------------------------------------------------------------- boxes


def _box_header(head: bytes, pos: int, limit: int) -> tuple[int, bytes, int]:
    """(box size, type, header length) of the box at ``pos``; size 0 = to ``limit``."""
    if pos + 8 > limit:
        raise Mp4TruncatedError("box header truncated")
    size, typ = _unpack(">I4s", head, 0)
    hlen = 8
    if size == 1:
        if len(head) < 16 or pos + 16 > limit:
            raise Mp4TruncatedError("box header truncated")
        (size,) = _unpack(">Q", head, 8)
        hlen = 16
    elif size == 0:
        size = limit - pos
    if size < hlen:
        raise Mp4Error(f"invalid box size {size} at offset {pos}")
    if not all(0x20 <= c < 0x7F for c in typ):
        raise Mp4Error(f"invalid box type {typ!r} at offset {pos}")
    return size, typ, hlen


def _children(buf: bytes, start: int, end: int):
    """Yield (type, payload start, box end) of the boxes in buf[start:end]."""
    pos = start
    while pos < end:
        size, typ, hlen = _box_header(buf[pos : pos + 16], pos, end)
        if pos + size > end:
            raise Mp4Error(f"box {typ!r} at offset {pos} overruns its parent")
        yield typ, pos + hlen, pos + size
        pos += size


def _child(buf: bytes, start: int, end: int, typ: bytes) -> tuple[int, int] | None:
    for t, s, e in _children(buf, start, end):
        if t == typ:
            return s, e
    return None


def _need(buf: bytes, start: int, end: int, typ: bytes) -> tuple[int, int]:
    found = _child(buf, start, end, typ)
    if found is None:
        raise Mp4Error(f"missing {typ.decode()} box")
    return found


# --------------------------------------------------------------------------- moov


def _parse_esds(buf: bytes, s: int, e: int) -> bytes:
    """DecoderSpecificInfo (AudioSpecificConfig) from an esds payload."""
    pos = s + 4  # version/flags

    def desc(pos: int) -> tuple[int, int, int]:
        if pos >= e:
            raise Mp4Error("esds truncated")
        tag, n, pos = buf[pos], 0, pos + 1
        for _ in range(4):
            if pos >= e:
                raise Mp4Error("esds truncated")
            b = buf[pos]
            pos += 1
            n = (n << 7) | (b & 0x7F)
            if not b & 0x80:
                break
        if pos + n > e:
            raise Mp4Error("esds descriptor overruns the box")
        return tag, pos, pos + n

    tag, p, end = desc(pos)
    if tag != 3 or p + 3 > end:
        raise Mp4Error("esds without ES_Descriptor")
    flags = buf[p + 2]
    p += 3 + (2 if flags & 0x80 else 0) + (2 if flags & 0x20 else 0)
    if flags & 0x40:
        p += 1 + buf[p]
    tag, p, end = desc(p)
    if tag != 4:
        raise Mp4Error("esds without DecoderConfigDescriptor")
    tag, p, end = desc(p + 13)
    if tag != 5:
        raise Mp4Error("esds without DecoderSpecificInfo")
    return bytes(buf[p:end])


def _parse_entry(buf: bytes, typ: bytes, s: int, e: int, kind: str, tid: int, ts: int) -> Track:
    fourcc = typ.decode("latin-1")
    raw = bytes(buf[s - 8 : e])
    if kind == "video":
        if e - s < 78:
            raise Mp4Error("visual sample entry truncated")
        width, height = _unpack(">HH", buf, s + 24)
        cfg_box = {"avc1": b"avcC", "avc3": b"avcC", "hvc1": b"hvcC", "hev1": b"hvcC"}.get(fourcc)
        codec, cfg, fps = fourcc, b"", None
        if cfg_box:
            found = _child(buf, s + 78, e, cfg_box)
            if found is None:
                raise Mp4Error(f"{fourcc} sample entry without {cfg_box.decode()}")
            cfg = bytes(buf[found[0] : found[1]])
            codec = "h264" if cfg_box == b"avcC" else "h265"
            try:
                sets = (parse_avcc if codec == "h264" else parse_hvcc)(cfg)
                info = parse_sps(codec, sets["sps"][0]) if sets["sps"] else None
                width, height, fps = (
                    (info.width, info.height, info.fps) if info else (width, height, None)
                )
            except BitstreamError as exc:
                raise Mp4Error(f"bad {cfg_box.decode()}: {exc}") from exc
        return Track("video", codec, ts, tid, width, height, config=cfg, fourcc=fourcc,
                     fps=fps, raw_entry=raw)  # fmt: skip
    if e - s < 28:
        raise Mp4Error("audio sample entry truncated")
    (version,) = _unpack(">H", buf, s + 8)
    channels, _, _, _, rate = _unpack(">HHHHI", buf, s + 16)
    rate >>= 16
    children = s + 28 + {1: 16, 2: 36}.get(version, 0)
    codec = {"mp4a": "aac", "alaw": "pcm_alaw", "ulaw": "pcm_mulaw"}.get(fourcc, fourcc)
    cfg = b""
    if codec == "aac":
        found = _child(buf, children, e, b"esds")
        if found is None:
            raise Mp4Error("mp4a sample entry without esds")
        cfg = _parse_esds(buf, *found)
        _, rate, channels = parse_asc(cfg)
    return Track("audio", codec, ts, tid, sample_rate=rate or ts, channels=channels, config=cfg,
                 fourcc=fourcc, raw_entry=raw)  # fmt: skip


def _parse_moov(buf: bytes) -> tuple[dict[int, Track], dict[int, tuple], dict[int, list[Track]]]:
    tracks: dict[int, Track] = {}
    entries: dict[int, list[Track]] = {}
    trex: dict[int, tuple] = {}
    for typ, s, e in _children(buf, 0, len(buf)):
        if typ == b"mvex":
            for t2, s2, e2 in _children(buf, s, e):
                if t2 == b"trex" and e2 - s2 >= 24:
                    tid, sdi, dur, size, flags = _unpack(">5I", buf, s2 + 4)
                    trex[tid] = (sdi, dur, size, flags)
        if typ != b"trak":
            continue
        ts_, te = _need(buf, s, e, b"tkhd")
        ver = buf[ts_] if te > ts_ else 0
        need = 4 + (20 if ver == 1 else 12) + 4
        if te - ts_ < need:
            raise Mp4Error("tkhd truncated")
        (tid,) = _unpack(">I", buf, ts_ + (20 if ver == 1 else 12))
        ms, me = _need(buf, s, e, b"mdia")
        hs, he = _need(buf, ms, me, b"mdhd")
        if he - hs < 24:
            raise Mp4Error("mdhd truncated")
        (timescale,) = _unpack(">I", buf, hs + (20 if buf[hs] == 1 else 12))
        if not timescale:
            raise Mp4Error("mdhd timescale is 0")
        ds, de = _need(buf, ms, me, b"hdlr")
        handler = bytes(buf[ds + 8 : ds + 12])
        kind = {b"vide": "video", b"soun": "audio"}.get(handler)
        if kind is None:
            trex.setdefault(tid, (1, 0, 0, 0))  # hint/text/metadata track: fragments skip it
            continue
        ns, ne = _need(buf, ms, me, b"minf")
        bs, be = _need(buf, ns, ne, b"stbl")
        ss, se = _need(buf, bs, be, b"stsd")
        lst = [_parse_entry(buf, t3, s3, e3, kind, tid, timescale)
               for t3, s3, e3 in _children(buf, ss + 8, se)]  # fmt: skip
        if not lst:
            raise Mp4Error(f"track {tid} has no sample description")
        tracks[tid] = lst[0]
        entries[tid] = lst
    if not tracks:
        raise Mp4Error("no audio or video track")
    return tracks, trex, entries


# --------------------------------------------------------------------------- moof


def _parse_moof(buf: bytes, moof_pos: int, trex: dict, tracks: dict) -> Fragment:
    seq, trafs, relative, mfhd_pos = 0, {}, True, -1
    prev_end = moof_pos
    for typ, s, e in _children(buf, 8 if buf[:4] != b"\0\0\0\1" else 16, len(buf)):
        if typ == b"mfhd" and e - s >= 8:
            (seq,) = _unpack(">I", buf, s + 4)
            mfhd_pos = s - 8
        if typ != b"traf":
            continue
        hs, he = _need(buf, s, e, b"tfhd")
        if he - hs < 8:
            raise Mp4Error("tfhd truncated")
        flags, tid = _unpack(">II", buf, hs)
        flags &= 0xFFFFFF
        if tid not in tracks and tid not in trex:
            raise Mp4Error(f"fragment refers to unknown track {tid}")
        sdi, ddur, dsize, dflags = trex.get(tid, (1, 0, 0, 0))
        p = hs + 8
        opt = [(0x1, ">Q"), (0x2, ">I"), (0x8, ">I"), (0x10, ">I"), (0x20, ">I")]
        vals = {}
        for bit, fmt in opt:
            if flags & bit:
                n = struct.calcsize(fmt)
                if p + n > he:
                    raise Mp4Error("tfhd truncated")
                (vals[bit],) = _unpack(fmt, buf, p)
                p += n
        sdi, ddur = vals.get(0x2, sdi), vals.get(0x8, ddur)
        dsize, dflags = vals.get(0x10, dsize), vals.get(0x20, dflags)
        if 0x1 in vals:
            base, relative = vals[0x1], False
        elif flags & 0x020000:
            base = moof_pos
        else:
            base, relative = prev_end, relative and not trafs
        tfdt = _child(buf, s, e, b"tfdt")
        bdt, tpos, tver = 0, -1, 0
        if tfdt:
            tver = buf[tfdt[0]]
            if tfdt[1] - tfdt[0] < (12 if tver else 8):
                raise Mp4Error("tfdt truncated")
            (bdt,) = _unpack(">Q" if tver else ">I", buf, tfdt[0] + 4)
            tpos = tfdt[0] - 8
        offsets, sizes, durs, sync, cts = [], [], [], [], []
        pos = base
        for t2, s2, e2 in _children(buf, s, e):
            if t2 != b"trun":
                continue
            if e2 - s2 < 8:
                raise Mp4Error("trun truncated")
            vf, count = _unpack(">II", buf, s2)
            ver, tf = vf >> 24, vf & 0xFFFFFF
            p = s2 + 8
            if p + 4 * bool(tf & 0x1) + 4 * bool(tf & 0x4) > e2:
                raise Mp4Error("trun truncated")
            if count > MAX_TRUN_SAMPLES:
                raise Mp4Error(f"trun claims {count} samples")
            if tf & 0x1:
                (doff,) = _unpack(">i", buf, p)
                pos, p = base + doff, p + 4
            if pos < 0:
                raise Mp4Error("trun data offset points before the file start")
            first_flags = None
            if tf & 0x4:
                (first_flags,) = _unpack(">I", buf, p)
                p += 4
            cols = [b for b in (0x100, 0x200, 0x400, 0x800) if tf & b]
            if p + 4 * len(cols) * count > e2:
                raise Mp4Error(f"trun claims {count} samples, more than its box holds")
            flat = _unpack(f">{len(cols) * count}I", buf, p) if cols else ()
            col = {b: flat[i :: len(cols)] for i, b in enumerate(cols)}
            d = list(col.get(0x100, [ddur] * count))
            z = list(col.get(0x200, [dsize] * count))
            f = list(col.get(0x400, [dflags] * count))
            if first_flags is not None and count:
                f[0] = first_flags
            if 0x800 in col:
                c = [x - (1 << 32) if ver and x >= 1 << 31 else x for x in col[0x800]]
            else:
                c = [0] * count
            offsets.extend(accumulate(z[:-1], initial=pos) if count else ())
            pos += sum(z)
            sizes += z
            durs += d
            sync += [not (x & 0x10000) for x in f]
            cts += c
        prev_end = pos
        if len(offsets) != len(sizes):
            offsets = offsets[: len(sizes)]
        dts = list(accumulate(durs[:-1], initial=bdt)) if durs else []
        if tid in tracks:
            trafs[tid] = TrackFragment(
                tid, bdt, sdi, offsets, sizes, durs, dts, sync, cts, tpos, tver
            )
        else:
            relative = False  # the fragment carries a track we drop: never patch it
    return Fragment(seq, moof_pos, len(buf), 0, trafs, relative, mfhd_pos)


# --------------------------------------------------------------------------- files


def _read_at(fd: int, pos: int, n: int) -> bytes:
    out = os.pread(fd, n, pos)
    while len(out) < n:
        more = os.pread(fd, n - len(out), pos + len(out))
        if not more:
            break
        out += more
    return out


def parse_segment(path: str | os.PathLike, *, strict: bool = False) -> ParsedSegment:
    """Parse a fragmented MP4 file.

    Raises :class:`Mp4TruncatedError` if ftyp/moov are incomplete and
    :class:`Mp4Error` if the file is not a usable MP4.  After the moov a
    truncated or malformed tail is tolerated: parsing stops, ``truncated`` is
    set and ``complete_length`` is the end of the last complete fragment
    (``strict=True`` raises instead)."""
    path = os.fspath(path)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return _parse_fd(fd, path, strict)
    finally:
        os.close(fd)


def _parse_fd(fd: int, path: str, strict: bool) -> ParsedSegment:
    size = os.fstat(fd).st_size
    pos, seg, pending = 0, None, None
    trex: dict = {}
    first = True
    while pos < size:
        try:
            head = _read_at(fd, pos, 16)
            bsize, typ, hlen = _box_header(head, pos, size)
            if first and typ not in (b"ftyp", b"styp", b"moov", b"free", b"skip"):
                raise Mp4Error(f"not an MP4 file (first box {typ!r})")
            first = False
            end = pos + bsize
            if typ in (b"moov", b"moof"):
                if end > size:
                    raise Mp4TruncatedError(f"{typ.decode()} box truncated")
                if bsize > MAX_BOX_READ:
                    raise Mp4Error(f"{typ.decode()} box of {bsize} bytes is too large")
                buf = _read_at(fd, pos, bsize)
                if typ == b"moov":
                    if seg is not None:
                        raise Mp4Error("second moov box")
                    payload = buf[hlen:]
                    tracks, trex, entries = _parse_moov(payload)
                    seg = ParsedSegment(path, size, end, tracks, complete_length=end,
                                        entries=entries,
                                        fragmented=_child(payload, 0, len(payload), b"mvex") is not None)  # fmt: skip
                else:
                    if seg is None:
                        raise Mp4Error("moof before moov")
                    pending = _parse_moof(buf, pos, trex, seg.tracks)
                    data_end = max((o[-1] + tf.sizes[-1] for tf in pending.trafs.values()
                                    for o in [tf.offsets] if o), default=end)  # fmt: skip
                    pending.end = max(data_end, end)
                    if pending.end <= end:  # no sample data: complete as it is
                        seg.fragments.append(pending)
                        seg.complete_length, pending = end, None
            elif end > size:
                raise Mp4TruncatedError(f"{typ.decode()} box truncated")
            elif typ == b"mdat":
                if pending is not None and pending.end <= end:
                    pending.end = end
                    seg.fragments.append(pending)
                    seg.complete_length, pending = end, None
            elif typ not in _FRAGMENT_SIDE_BOXES and typ != b"ftyp":
                raise Mp4Error(f"unexpected top-level box {typ!r} at offset {pos}")
            if seg is not None and pending is None and typ in _FRAGMENT_SIDE_BOXES:
                seg.complete_length = max(seg.complete_length, end)
            pos = end
        except (Mp4Error, struct.error, IndexError, BitstreamError) as e:
            if not isinstance(e, Mp4Error):
                e = Mp4Error(f"malformed box: {e}")
            if seg is None or strict:
                raise e from None
            seg.truncated, seg.tail_error = True, f"at offset {pos}: {e}"
            return seg
    if seg is None:
        raise Mp4TruncatedError("file ends before the moov box")
    if pending is not None:
        seg.truncated, seg.tail_error = True, "last fragment's data is incomplete"
        if strict:
            raise Mp4TruncatedError(seg.tail_error)
    return seg


def complete_length(path: str | os.PathLike) -> int:
    """Length of the file up to the end of its last complete moof+mdat (or of
    the moov when there is no complete fragment)."""
    return parse_segment(path).complete_length


def _file_sha256(fd: int) -> str:
    h = hashlib.sha256()
    pos = 0
    while chunk := os.pread(fd, 1 << 20, pos):
        h.update(chunk)
        pos += len(chunk)
    return h.hexdigest()


def recover_segment(tmp_path: str | os.PathLike, final_path: str | os.PathLike | None = None
                    ) -> SegmentInfo:  # fmt: skip
    """Crash recovery of a partially written segment (usually ``<final>.tmp``).

    Truncates the file after its last complete fragment (a fragmented file with a
    complete moov and complete fragments needs no other repair) and reports what
    was kept.  With ``final_path`` the file is then finalised like
    :meth:`SegmentWriter.close` (fsync, chmod 0o444, rename, directory fsync).
    Raises :class:`Mp4Error`/:class:`Mp4TruncatedError` when the file has no
    complete moov (nothing can be kept; the caller decides whether to delete it)."""
    tmp_path = os.fspath(tmp_path)
    seg = parse_segment(tmp_path)
    if not seg.fragmented:
        raise Mp4Error(f"{tmp_path} is not a fragmented MP4; refusing to truncate it")
    dropped = seg.size - seg.complete_length
    fd = os.open(tmp_path, os.O_RDWR | os.O_CLOEXEC)
    try:
        if dropped:
            os.ftruncate(fd, seg.complete_length)
        sha = _file_sha256(fd)
        if final_path is not None:
            os.fchmod(fd, 0o444)
        os.fsync(fd)
    finally:
        os.close(fd)
    path = tmp_path
    if final_path is not None:
        path = os.fspath(final_path)
        finalize_file(tmp_path, path)
    stats = seg.stats()
    clock = stats[seg.clock_track_id]
    return SegmentInfo(path, seg.complete_length, sha, clock.duration_ms, clock.samples,
                       clock.keyframes, len(seg.fragments), stats, True, dropped)  # fmt: skip
