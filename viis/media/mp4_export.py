"""Reading footage back out of segment files, by stream copy (no decoding):

* :func:`export_range` writes one standalone progressive MP4 ("faststart":
  ftyp, moov with full sample tables, then mdat) covering a wall-clock range
  that may span several segments;
* :func:`iter_mse` yields an init segment and fragments whose decode times are
  rewritten so that MediaSource playback is continuous across segment files.

``segments`` is a list of ``(path, start_ms)``: ``start_ms`` is the wall-clock
time (ms) of decode time 0 of every track in that file.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from itertools import groupby

from .mp4_format import (
    ExportError,
    Mp4Error,
    Track,
    TrackRun,
    _pack,
    box,
    build_fragment,
    full_box,
    iso_time,
    mvhd,
    trak,
)
from .mp4_reader import Fragment, ParsedSegment, _read_at, parse_segment

_U32 = 1 << 32
MSE_SNAP_MS = 100


@dataclass(frozen=True)
class ExportInfo:
    size: int
    start_ms: float  # wall-clock time of the first (key) frame
    end_ms: float  # wall-clock end of the last frame
    duration_ms: int  # movie duration
    frames: int  # samples of the clock track (video)
    samples: dict[str, int] = field(default_factory=dict)  # per kind
    sample_descriptions: dict[str, int] = field(default_factory=dict)  # stsd entries per kind


@dataclass
class _Src:
    path: str
    start_ms: int
    seg: ParsedSegment
    fd: int = -1


def _open_sources(segments: Sequence[tuple[str | os.PathLike, int]]) -> list[_Src]:
    out = []
    for path, start in sorted(segments, key=lambda x: x[1]):
        try:
            seg = parse_segment(path)
        except Mp4Error as e:
            raise ExportError(f"{os.fspath(path)}: {e}") from e
        out.append(_Src(os.fspath(path), int(start), seg))
    return out


def _close_sources(srcs: list[_Src]) -> None:
    for s in srcs:
        if s.fd >= 0:
            os.close(s.fd)
            s.fd = -1


def _fd(src: _Src) -> int:
    if src.fd < 0:
        src.fd = os.open(src.path, os.O_RDONLY | os.O_CLOEXEC)
    return src.fd


# --------------------------------------------------------------------------- timeline


class _Timeline:
    """All samples of one kind of track over the given segments, on an absolute
    tick axis (``round(start_ms * timescale / 1000) + decode_time``).  When a
    segment would start before the previous one ended (clock skew), it is
    shifted to start right at that end instead."""

    def __init__(self, kind: str, srcs: list[_Src]):
        self.kind = kind
        self.track: Track | None = None
        self.entries: list[Track] = []  # distinct sample descriptions (by entry bytes)
        self.src, self.offset, self.size, self.abs = [], [], [], []
        self.own_dur, self.sync, self.cts, self.sdi = [], [], [], []
        for i, s in enumerate(srcs):
            t = s.seg.track_of_kind(kind)
            if t is not None:
                self._add(i, s, t)
        n = len(self.abs)
        # duration of a sample = distance to the next one, so gaps between
        # segments stretch the last sample before them (wall time stays honest)
        self.dur = [self.abs[i + 1] - self.abs[i] for i in range(n - 1)] + self.own_dur[n - 1 :]

    def _add(self, i: int, s: _Src, t: Track) -> None:
        if self.track is None:
            self.track = t
        elif (t.codec, t.timescale) != (self.track.codec, self.track.timescale):
            raise ExportError(f"{s.path}: {self.kind} changes from {self.track.codec}/"
                              f"{self.track.timescale} to {t.codec}/{t.timescale}; "
                              "export the parts separately")  # fmt: skip
        sdi_map = {}
        known = [x.sample_entry() for x in self.entries]
        for k, e in enumerate(s.seg.entries.get(t.track_id, [t]), 1):
            raw = e.sample_entry()
            if raw not in known:
                self.entries.append(e)
                known.append(raw)
            sdi_map[k] = known.index(raw) + 1
        base = round(s.start_ms * t.timescale / 1000)
        shift = None
        for f in s.seg.fragments:
            tf = f.trafs.get(t.track_id)
            if tf is None or not tf.sizes:
                continue
            if shift is None:
                shift = 0
                if self.abs and base + tf.decode_times[0] <= self.abs[-1]:
                    shift = self.abs[-1] + self.own_dur[-1] - base - tf.decode_times[0]
            if tf.sample_description_index not in sdi_map:
                raise ExportError(f"{s.path}: bad sample description index")
            n = len(tf.sizes)
            self.src += [i] * n
            self.offset += tf.offsets
            self.size += tf.sizes
            b = base + shift
            self.abs += [b + d for d in tf.decode_times]
            self.own_dur += tf.durations
            self.sync += tf.sync
            self.cts += tf.cts
            self.sdi += [sdi_map[tf.sample_description_index]] * n


def _run_length(values: list[int]) -> list[tuple[int, int]]:
    return [(len(list(g)), v) for v, g in groupby(values)]


def _stbl_tables(tl: _Timeline, lo: int, hi: int, chunks: list[tuple[int, int, int]],
                 chunk_offsets: list[int], co64: bool) -> bytes:  # fmt: skip
    """stts, ctts, stss, stsc, stsz, stco/co64 for samples lo..hi-1."""
    durs = tl.dur[lo:hi]
    rl = _run_length(durs)
    out = [
        full_box(b"stts", 0, 0, _pack(f">I{2 * len(rl)}I", len(rl), *[x for p in rl for x in p]))
    ]
    cts = tl.cts[lo:hi]
    if any(cts):
        rl = _run_length(cts)
        ver = 1 if min(cts) < 0 else 0
        flat = [x & 0xFFFFFFFF for p in rl for x in p]
        out.append(full_box(b"ctts", ver, 0, _pack(f">I{len(flat)}I", len(rl), *flat)))
    sync = tl.sync[lo:hi]
    if not all(sync):
        idx = [i + 1 for i, s in enumerate(sync) if s]
        out.append(full_box(b"stss", 0, 0, _pack(f">I{len(idx)}I", len(idx), *idx)))
    stsc, prev = [], None
    for n, (_, count, sdi) in enumerate(chunks, 1):
        if (count, sdi) != prev:
            stsc += (n, count, sdi)
            prev = (count, sdi)
    out.append(full_box(b"stsc", 0, 0, _pack(f">I{len(stsc)}I", len(stsc) // 3, *stsc)))
    sizes = tl.size[lo:hi]
    if len(set(sizes)) == 1:
        out.append(full_box(b"stsz", 0, 0, _pack(">II", sizes[0], len(sizes))))
    else:
        out.append(full_box(b"stsz", 0, 0, _pack(f">II{len(sizes)}I", 0, len(sizes), *sizes)))
    fmt = "Q" if co64 else "I"
    out.append(full_box(b"co64" if co64 else b"stco", 0, 0,
                        _pack(f">I{len(chunk_offsets)}{fmt}", len(chunk_offsets), *chunk_offsets)))  # fmt: skip
    return b"".join(out)


def _elst(delay_ms: int, duration_ms: int, media_time: int) -> bytes:
    edits = ([(delay_ms, -1)] if delay_ms > 0 else []) + [(duration_ms, media_time)]
    ver = 1 if any(d >= _U32 for d, _ in edits) else 0
    fmt = ">Qqhh" if ver else ">Iihh"
    body = b"".join(_pack(fmt, d, m, 1, 0) for d, m in edits)
    return box(b"edts", full_box(b"elst", ver, 0, _pack(">I", len(edits)), body))


# --------------------------------------------------------------------------- export


def export_range(segments: Sequence[tuple[str | os.PathLike, int]], from_ms: int, to_ms: int,
                 out, *, creation_time: int = 0) -> ExportInfo:  # fmt: skip
    """Write ``[from_ms, to_ms)`` of the footage in ``segments`` as one
    standalone progressive MP4 to ``out`` (a path or a binary file object).

    * Start: the last keyframe at or before ``from_ms`` (the first keyframe if
      the footage starts later); end: the last sample starting before ``to_ms``.
    * Timeline: every sample lasts until the next one starts on the wall
      clock, so a recording gap between segments shows as the last frame
      frozen (audio: silence) for the length of the gap; presentation time
      always equals wall time minus the start time.  Audio starting later than
      the first video frame gets an empty edit (edit list), so A/V stay in sync.
    * Codec parameters changing between segments (e.g. resolution) become
      several sample description entries (stsd + stsc index); a change of
      codec or timescale raises :class:`ExportError`.
    * ``creation_time``: unix seconds written to mvhd/tkhd/mdhd (0 = unknown).
    """
    if to_ms <= from_ms:
        raise ExportError("empty time range")
    srcs = _open_sources(segments)
    try:
        return _export(srcs, from_ms, to_ms, out, iso_time(creation_time))
    finally:
        _close_sources(srcs)


def _export(srcs: list[_Src], from_ms: int, to_ms: int, out, ctime: int) -> ExportInfo:
    lines = [tl for tl in (_Timeline("video", srcs), _Timeline("audio", srcs)) if tl.abs]
    if not lines:
        raise ExportError("no samples in the given segments")
    clock = lines[0]
    ts = clock.track.timescale
    end = bisect_left([a * 1000 for a in clock.abs], to_ms * ts)
    start = bisect_left([a * 1000 for a in clock.abs], from_ms * ts + 1) - 1
    start = max(0, min(start, end - 1))
    while start > 0 and not clock.sync[start]:
        start -= 1
    if not clock.sync[start]:
        start = next((i for i in range(start, end) if clock.sync[i]), end)
    if start >= end:
        raise ExportError(f"no keyframe between {from_ms} and {to_ms}")
    if (clock.abs[end - 1] + clock.dur[end - 1]) * 1000 <= from_ms * ts:
        raise ExportError(f"no footage between {from_ms} and {to_ms}")
    t0 = clock.abs[start]  # in clock ticks
    ranges = [(clock, start, end)]
    for tl in lines[1:]:
        ats = tl.track.timescale
        lo = bisect_left([a * ts for a in tl.abs], t0 * ats)
        hi = bisect_left([a * 1000 for a in tl.abs], to_ms * ats)
        if hi > lo:
            ranges.append((tl, lo, hi))
    for tl, lo, hi in ranges:
        if max(tl.dur[lo:hi]) >= _U32 or min(tl.dur[lo:hi]) <= 0:
            raise ExportError(f"{tl.kind}: gap between segments too long for one file")
    # chunks: runs of samples contiguous in one source file with one description
    chunks = []  # (start time in seconds, range index, first sample, count, src, offset, bytes)
    for ri, (tl, lo, hi) in enumerate(ranges):
        i = lo
        while i < hi:
            j, nxt = i + 1, tl.offset[i] + tl.size[i]
            while (j < hi and tl.src[j] == tl.src[i] and tl.offset[j] == nxt and tl.sdi[j] == tl.sdi[i]
                   and j - i < 1000):  # fmt: skip
                nxt += tl.size[j]
                j += 1
            chunks.append((tl.abs[i] / tl.track.timescale, ri, i, j - i, tl.src[i], tl.offset[i],
                           nxt - tl.offset[i]))  # fmt: skip
            i = j
    chunks.sort(key=lambda c: (c[0], c[1]))
    mdat_payload = sum(c[6] for c in chunks)
    ftyp = box(b"ftyp", b"isom", _pack(">I", 512), b"isomiso2mp41" + (
        b"avc1" if clock.track.codec == "h264" else b""))  # fmt: skip
    durations = []
    for tl, lo, hi in ranges:
        tts = tl.track.timescale
        media = sum(tl.dur[lo:hi])
        delay = round((tl.abs[lo] * ts - t0 * tts) * 1000 / (ts * tts))
        durations.append((media, delay, round(media * 1000 / tts)))
    movie_ms = max(d + m for _, d, m in durations)
    # sample descriptions actually used by the selected samples, renumbered
    used = [sorted(set(tl.sdi[lo:hi])) for tl, lo, hi in ranges]
    renum = [{old: new for new, old in enumerate(u, 1)} for u in used]

    def build_moov(co64: bool, mdat_start: int) -> bytes:
        pos = mdat_start
        per_track = [([], []) for _ in ranges]
        for c in chunks:
            tl, lo, _ = ranges[c[1]]
            per_track[c[1]][0].append((c[2] - lo, c[3], renum[c[1]][tl.sdi[c[2]]]))
            per_track[c[1]][1].append(pos)
            pos += c[6]
        traks = []
        for k, (tl, lo, hi) in enumerate(ranges):
            media, delay, dur_ms = durations[k]
            entries = [tl.entries[i - 1] for i in used[k]]
            t = replace(entries[0], track_id=k + 1)
            tables = _stbl_tables(tl, lo, hi, per_track[k][0], per_track[k][1], co64)
            traks.append(trak(t, tables, movie_duration=delay + dur_ms, media_duration=media,
                              ctime=ctime, entries=[e.sample_entry() for e in entries],
                              edits=_elst(delay, dur_ms, tl.cts[lo])))  # fmt: skip
        return box(b"moov", mvhd(1000, movie_ms, len(ranges) + 1, ctime), *traks)

    large = mdat_payload + 8 >= _U32
    mdat_head = _pack(">I4sQ", 1, b"mdat", mdat_payload + 16) if large else _pack(
        ">I4s", mdat_payload + 8, b"mdat")  # fmt: skip
    moov = build_moov(False, 0)
    co64 = len(ftyp) + len(moov) + len(mdat_head) + mdat_payload >= _U32
    moov = build_moov(co64, 0)
    moov = build_moov(co64, len(ftyp) + len(moov) + len(mdat_head))
    total = len(ftyp) + len(moov) + len(mdat_head) + mdat_payload

    own = isinstance(out, (str, os.PathLike))
    if own and os.path.exists(out) and any(os.path.samefile(out, s.path) for s in srcs):
        raise ExportError(f"{os.fspath(out)} is one of the source segments")
    f = open(out, "wb") if own else out  # noqa: SIM115
    try:
        f.write(ftyp + moov + mdat_head)
        for c in chunks:
            fd, pos, left = _fd(srcs[c[4]]), c[5], c[6]
            while left:
                data = _read_at(fd, pos, min(left, 8 << 20))
                if not data:
                    raise ExportError(f"{srcs[c[4]].path} shrank while exporting")
                f.write(data)
                pos += len(data)
                left -= len(data)
    finally:
        if own:
            f.close()
    clock_end = clock.abs[end - 1] + clock.dur[end - 1]
    return ExportInfo(total, t0 * 1000 / ts, clock_end * 1000 / ts, movie_ms, end - start,
                      {tl.kind: hi - lo for tl, lo, hi in ranges},
                      {tl.kind: len(u) for (tl, _, _), u in zip(ranges, used, strict=True)})  # fmt: skip


# --------------------------------------------------------------------------- MSE


def _signature(seg: ParsedSegment) -> tuple:
    return tuple((tid, t.kind, t.codec, t.timescale, tuple(e.sample_entry() for e in
                  seg.entries.get(tid, [t]))) for tid, t in sorted(seg.tracks.items()))  # fmt: skip


def iter_mse(segments: Sequence[tuple[str | os.PathLike, int]], from_ms: int,
             to_ms: int | None = None, *, snap_ms: int = MSE_SNAP_MS,
             on_origin: Callable[[float], None] | None = None) -> Iterator[tuple[str, bytes]]:  # fmt: skip
    """Yield ``("init", bytes)`` then ``("media", moof+mdat bytes)`` for MSE.

    Decode times are rewritten to ``wall time - start`` where start is the last
    keyframe at or before ``from_ms``; a segment that starts less than
    ``snap_ms`` after (or before) the previous one ended is glued to it, so
    buffered ranges have no micro-gaps; longer gaps stay gaps (the player must
    skip them).  Fragments are copied with tfdt and sequence number patched in
    place; the first/last fragments are rebuilt to start at the keyframe and
    end before ``to_ms``.  A segment with different track descriptions is
    preceded by its own ``("init", ...)``.  ``on_origin`` is told that start (wall ms of
    media time 0) before the first yield, so a player can map media time to wall time.
    """
    srcs = _open_sources(segments)
    try:
        yield from _mse(srcs, from_ms, to_ms, snap_ms, on_origin)
    finally:
        _close_sources(srcs)


def _mse(srcs: list[_Src], from_ms: int, to_ms: int | None, snap_ms: int, on_origin=None):
    # locate the start keyframe (wall ms) on the clock track
    t0_ms = first_after = None
    footage_end = float("-inf")
    for s in srcs:
        tid = s.seg.clock_track_id
        ts = s.seg.tracks[tid].timescale
        for f in s.seg.fragments:
            tf = f.trafs.get(tid)
            if tf and tf.sizes:
                footage_end = max(footage_end, s.start_ms + tf.end_decode_time * 1000 / ts)
            for d, sync in zip(tf.decode_times, tf.sync, strict=True) if tf else ():
                if sync:
                    w = s.start_ms + d * 1000 / ts
                    if w <= from_ms:
                        t0_ms = w
                    elif first_after is None:
                        first_after = w
    if t0_ms is None:
        t0_ms = first_after
    if t0_ms is None or (to_ms is not None and t0_ms >= to_ms) or footage_end <= from_ms:
        raise ExportError("no keyframe in the requested range")
    if on_origin is not None:
        on_origin(t0_ms)
    seq, sig, prev_end = 0, None, {}  # prev_end: track kind -> output ticks
    for s in srcs:
        if to_ms is not None and s.start_ms >= to_ms:
            break
        seg = s.seg
        shift = {}
        for tid, t in seg.tracks.items():
            tfs = [f.trafs[tid] for f in seg.fragments if tid in f.trafs and f.trafs[tid].sizes]
            if not tfs:
                continue
            origin = round(t0_ms * t.timescale / 1000)
            first = round(s.start_ms * t.timescale / 1000) + tfs[0].decode_times[0] - origin
            pe = prev_end.get(t.kind)
            snap = snap_ms * t.timescale // 1000
            shift[tid] = (round(s.start_ms * t.timescale / 1000) - origin
                          + (pe - first if pe is not None and first < pe + snap else 0))  # fmt: skip
        for f in seg.fragments:
            runs, whole = [], True
            for tid, tf in f.trafs.items():
                if tid not in shift or not tf.sizes:
                    continue
                t = seg.tracks[tid]
                lo = bisect_left(tf.decode_times, -shift[tid])
                hi = len(tf.sizes)
                if to_ms is not None:
                    lim = (to_ms * t.timescale + 999) // 1000 - round(t0_ms * t.timescale / 1000)
                    hi = bisect_left(tf.decode_times, lim - shift[tid])
                if lo < hi:
                    runs.append((tid, tf, lo, hi))
                whole = whole and lo == 0 and hi == len(tf.sizes)
            if not runs:
                continue
            if sig != _signature(seg):
                sig = _signature(seg)
                yield "init", _read_at(_fd(s), 0, seg.init_end)
            seq += 1
            yield "media", _fragment_bytes(s, f, runs, shift, seq, whole)
            for tid, tf, _, hi in runs:
                prev_end[seg.tracks[tid].kind] = (
                    tf.decode_times[hi - 1] + tf.durations[hi - 1] + shift[tid]
                )


def _fragment_bytes(s: _Src, f: Fragment, runs: list, shift: dict, seq: int, whole: bool) -> bytes:
    fd = _fd(s)
    patchable = (whole and f.moof_relative and f.mfhd_pos >= 0 and len(runs) == len(f.trafs)
                 and all(tf.tfdt_pos >= 0 and (tf.tfdt_version or tf.base_decode_time + shift[tid] < _U32)
                         for tid, tf, _, _ in runs))  # fmt: skip
    if patchable:
        data = bytearray(_read_at(fd, f.moof_offset, f.end - f.moof_offset))
        data[f.mfhd_pos + 12 : f.mfhd_pos + 16] = _pack(">I", seq)
        for tid, tf, _, _ in runs:
            p, v = tf.tfdt_pos + 12, tf.base_decode_time + shift[tid]
            data[p : p + (8 if tf.tfdt_version else 4)] = _pack(
                ">Q" if tf.tfdt_version else ">I", v
            )
        return bytes(data)
    out = []
    for tid, tf, lo, hi in runs:
        run = TrackRun(tid, tf.decode_times[lo] + shift[tid])
        first = min(tf.offsets[lo:hi])
        last = max(o + n for o, n in zip(tf.offsets[lo:hi], tf.sizes[lo:hi], strict=True))
        raw = memoryview(_read_at(fd, first, last - first))
        for i in range(lo, hi):
            o = tf.offsets[i] - first
            run.add(bytes(raw[o : o + tf.sizes[i]]), tf.durations[i], tf.sync[i], tf.cts[i])
        out.append(run)
    return b"".join(build_fragment(seq, out))
