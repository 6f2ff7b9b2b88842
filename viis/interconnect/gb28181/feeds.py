"""Media producers for GB/T 28181 answering (Q13.1): the frames a cascade INVITE sends up.

Two producers give the same thing, :class:`MediaFrame` (NAL units of one picture, a 90 kHz
timestamp, keyframe flag, parameter sets on keyframes), which :mod:`serve` packs into PS
(no transcoding, invariant 6):

- :class:`LiveFeed`, fed by the recorder's packet tap through one :class:`LiveTap` (the
  recorder stays the only client of the camera). A feed starts at a keyframe; a consumer
  that falls behind (queue over its frame or byte budget) loses its queue and resumes at
  the next keyframe (``drops``), so a slow upper platform never grows our memory nor holds
  back the recorder or the other viewers.
- :class:`PlaybackFeed`, reading recorded segments (:class:`RecordingReader`) from a time,
  paced on an injected clock (:mod:`viis.interconnect.gb28181.clock`) at ``scale`` (0.5-8x),
  with pause, seek and the download speed of ``s=Download``. Gaps in the recording are
  skipped (the timestamps jump with the recording time, so the receiver sees the hole).

Neither producer decides who may see the footage: :mod:`serve` passes the one door first.
"""

from __future__ import annotations

import asyncio
import collections
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from viis.core.logging import get_logger
from viis.media import h26x

log = get_logger(__name__)

PTS_MASK = (1 << 33) - 1  # PES timestamps are 33 bits
#: A live consumer whose queue passes either budget drops it and waits for a keyframe.
LIVE_MAX_FRAMES = 75          # ~3 s at 25 fps
LIVE_MAX_BYTES = 8 * 1024 * 1024
MIN_SCALE, MAX_SCALE = 0.5, 8.0
GOP_CACHE_BYTES = 4 * 1024 * 1024     # a camera's current GOP kept for a fast live start
GOP_CACHE_BUDGET = 64 * 1024 * 1024   # across all cameras


@dataclass(slots=True)
class MediaFrame:
    """One video picture: NAL units without start codes, the 90 kHz timestamp, whether it
    is a keyframe, and (on keyframes) the parameter sets that make it decodable alone.
    ``wall_ms``: the recording time (playback) or receive time (live) of the picture."""

    codec: str
    nals: list[bytes]
    pts90k: int
    key: bool
    params: list[bytes] = field(default_factory=list)
    wall_ms: float = 0.0

    @property
    def size(self) -> int:
        return sum(len(n) for n in self.nals)


# --------------------------------------------------------------------------------- live
class LiveFeed:
    """One upward live stream of one camera: a bounded queue of :class:`MediaFrame`."""

    def __init__(self, tap: LiveTap, camera_id: int, max_frames: int = LIVE_MAX_FRAMES,
                 max_bytes: int = LIVE_MAX_BYTES) -> None:
        self.tap, self.camera_id = tap, camera_id
        self.max_frames, self.max_bytes = max_frames, max_bytes
        self.queue: collections.deque[MediaFrame] = collections.deque()
        self.queued_bytes = 0
        self.waiting_key = True
        self.drops = 0
        self.frames_in = 0
        self.lost = 0  # camera sessions that ended while this feed was open
        self.backlog = 0  # frames it started with from the camera's current GOP
        self.closed = False
        self._wake = asyncio.Event()

    def offer(self, codec: str, clock_rate: int, unit, params: list[bytes]) -> None:
        """From the recorder's packet tap (event loop); ``unit=None``: the camera's session
        ended, the next frame will be a keyframe of the next session."""
        if self.closed:
            return
        if unit is None:
            self.waiting_key = True
            self.lost += 1
            return
        if self.waiting_key:
            if not unit.key:
                return
            self.waiting_key = False
        size = unit.size
        if len(self.queue) >= self.max_frames or self.queued_bytes + size > self.max_bytes:
            self.queue.clear()
            self.queued_bytes = 0
            self.drops += 1
            if not unit.key:
                self.waiting_key = True
                return
        pts = (unit.ts * 90000 // (clock_rate or 90000)) & PTS_MASK
        self.queue.append(MediaFrame(codec, list(unit.data), pts, bool(unit.key),
                                     list(params) if unit.key else [], float(unit.wall_ms)))
        self.queued_bytes += size
        self.frames_in += 1
        self._wake.set()

    async def next(self) -> MediaFrame | None:
        """The next frame, or None once closed."""
        while not self.queue:
            if self.closed:
                return None
            self._wake.clear()
            await self._wake.wait()
        f = self.queue.popleft()
        self.queued_bytes -= f.size
        return f

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._wake.set()
            self.tap.remove(self)

    def stats(self) -> dict:
        return {"frames_in": self.frames_in, "queued": len(self.queue), "drops": self.drops,
                "lost": self.lost}


class LiveTap:
    """The one packet tap GB answering puts on the recorder (:meth:`attach`), fanning a
    camera's access units out to every :class:`LiveFeed` of that camera.

    It also keeps each camera's current group of pictures as received (references to the
    recorder's units, at most ``gop_bytes`` per camera and ``budget_bytes`` in all), so a
    new upward live session starts at once with the last keyframe instead of waiting up to
    a GOP for the next one (a GOP longer than the cap waits, as without the cache)."""

    def __init__(self, gop_bytes: int = GOP_CACHE_BYTES,
                 budget_bytes: int = GOP_CACHE_BUDGET) -> None:
        self.feeds: dict[int, set[LiveFeed]] = {}
        self.gop_bytes, self.budget_bytes = gop_bytes, budget_bytes
        self.gops: dict[int, list] = {}  # camera -> [(codec, clock_rate, unit, params)]
        self._gop_size: dict[int, int] = {}
        self.cached = 0  # bytes held across cameras

    @classmethod
    def attach(cls, recorder, **kw) -> LiveTap:
        tap = cls(**kw)
        recorder.add_packet_tap(tap)
        return tap

    def __call__(self, camera_id: int, codec: str, clock_rate: int, unit, params) -> None:
        self._keep(camera_id, codec, clock_rate, unit, params)
        feeds = self.feeds.get(camera_id)
        if feeds:
            for f in list(feeds):
                f.offer(codec, clock_rate, unit, params)

    def _forget(self, camera_id: int) -> None:
        self.cached -= self._gop_size.pop(camera_id, 0)
        self.gops.pop(camera_id, None)

    def _keep(self, camera_id: int, codec: str, clock_rate: int, unit, params) -> None:
        if unit is None or unit.key:
            self._forget(camera_id)
            if unit is None:
                return
            self.gops[camera_id] = []
        gop = self.gops.get(camera_id)
        if gop is None:
            return  # not since a keyframe, or over the cap: until the next keyframe
        size = unit.size
        have = self._gop_size.get(camera_id, 0)
        if have + size > self.gop_bytes or self.cached + size > self.budget_bytes:
            self._forget(camera_id)
            return
        gop.append((codec, clock_rate, unit, params))
        self._gop_size[camera_id] = have + size
        self.cached += size

    def open(self, camera_id: int, **kw) -> LiveFeed:
        feed = LiveFeed(self, camera_id, **kw)
        for codec, rate, unit, params in self.gops.get(camera_id, ()):
            feed.offer(codec, rate, unit, params)  # the current GOP: start at once
        feed.backlog = len(feed.queue)
        self.feeds.setdefault(camera_id, set()).add(feed)
        return feed

    def remove(self, feed: LiveFeed) -> None:
        s = self.feeds.get(feed.camera_id)
        if s is not None:
            s.discard(feed)
            if not s:
                del self.feeds[feed.camera_id]

    def viewers(self, camera_id: int) -> int:
        return len(self.feeds.get(camera_id, ()))


# ----------------------------------------------------------------------------- playback
def _split_nals(data: bytes) -> list[bytes]:
    """Length-prefixed (4-byte) NAL units of an MP4 sample."""
    out, pos, n = [], 0, len(data)
    while pos + 4 <= n:
        (size,) = struct.unpack_from(">I", data, pos)
        pos += 4
        if size == 0 or pos + size > n:
            break
        out.append(data[pos:pos + size])
        pos += size
    return out


class RecordingReader:
    """Video pictures of one camera from the segment store, in recording time.

    ``segments`` is a callable ``(from_ms, to_ms) -> [(path, start_ms)]`` (the index,
    :func:`viis.media.index.segments_between`), so this class reads files and nothing else.
    """

    def __init__(self, segments: Callable[[int, int], list[tuple[Path, int]]]) -> None:
        self.segments = segments

    @classmethod
    def of_camera(cls, db, root: Path, camera_id: int) -> RecordingReader:
        from viis.media.index import segments_between

        def segs(frm: int, to: int) -> list[tuple[Path, int]]:
            with db.session() as s:
                return [(root / x.path, x.start_ms)
                        for x in segments_between(s, camera_id, frm, to)]
        return cls(segs)

    def frames(self, from_ms: int, to_ms: int) -> Iterator[MediaFrame]:
        """Pictures from the last keyframe at or before ``from_ms`` (the first keyframe
        after it when none is before it in that segment) up to ``to_ms``. ``pts90k`` is the
        recording time in 90 kHz units since ``from_ms`` (continuous across segments; a
        gap in the recording is a jump)."""
        from viis.media.mp4_reader import parse_segment

        for path, start_ms in self.segments(from_ms, to_ms):
            try:
                seg = parse_segment(path)
            except Exception as e:  # noqa: BLE001 - an unreadable segment is skipped, said
                log.warning("gb_playback_segment_unreadable", path=str(path), error=str(e)[:200])
                continue
            track = seg.track_of_kind("video")
            if track is None:
                continue
            yield from self._segment_frames(seg, track, start_ms, from_ms, to_ms)

    @staticmethod
    def _segment_frames(seg, track, start_ms: int, from_ms: int, to_ms: int):
        codec = track.codec if track.codec in ("h264", "h265") else \
            ("h265" if track.fourcc in ("hvc1", "hev1") else "h264")
        try:
            ps = (h26x.parse_hvcc if codec == "h265" else h26x.parse_avcc)(track.config)
            params = [*ps["vps"], *ps["sps"], *ps["pps"]]
        except Exception:  # noqa: BLE001 - parameter sets may be in band
            params = []
        tid, ts = track.track_id, track.timescale or 90000
        samples = []  # (t_ms, offset, size, key)
        first_dt = None
        for frag in seg.fragments:
            tf = frag.trafs.get(tid)
            if tf is None:
                continue
            for off, size, dt, key in zip(tf.offsets, tf.sizes, tf.decode_times, tf.sync):
                if first_dt is None:
                    first_dt = dt
                samples.append((start_ms + (dt - first_dt) * 1000 / ts, off, size, key))
        # begin at the last keyframe at or before from_ms
        begin = 0
        for i, (t, _o, _s, key) in enumerate(samples):
            if t > from_ms:
                break
            if key:
                begin = i
        started = False
        fd = os.open(seg.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            for t, off, size, key in samples[begin:]:
                if t >= to_ms:
                    return
                if not started:
                    if not key:
                        continue
                    started = True
                data = os.pread(fd, size, off)
                nals = _split_nals(data)
                if not nals:
                    continue
                pts = int(round((t - from_ms) * 90)) & PTS_MASK
                yield MediaFrame(codec, nals, pts, bool(key), params if key else [], t)
        finally:
            os.close(fd)


class PlaybackFeed:
    """A paced reading of ``[start_ms, end_ms)`` of recorded footage (``s=Playback`` or
    ``s=Download``) with MANSRTSP-style control: :meth:`pause`, :meth:`play`,
    :meth:`seek` (seconds from ``start_ms``, like ``Range: npt=120-``) and
    :meth:`set_scale`. ``clock`` is a :mod:`gb28181.clock` clock (monotonic ``now()`` and
    ``call_later``), so tests drive the pacing with a ManualClock.

    Frames are due at ``anchor_now + (t - anchor_t) / scale``; the anchor is set again on
    every control, so a pause does not make the stream rush afterwards."""

    def __init__(self, reader: RecordingReader, start_ms: int, end_ms: int, clock,
                 scale: float = 1.0) -> None:
        if end_ms <= start_ms:
            raise ValueError("playback range must end after it starts")
        self.reader, self.start_ms, self.end_ms, self.clock = reader, start_ms, end_ms, clock
        self.scale = self._check_scale(scale)
        self.paused = False
        self.closed = False
        self.ended = False
        self.position_ms: float = float(start_ms)
        self.sent = 0
        self.seeks = 0
        self._frames = reader.frames(start_ms, end_ms)
        self._pending: MediaFrame | None = None
        self._anchor: tuple[float, float] | None = None
        self.origin_ms: float | None = None
        self._wake = asyncio.Event()

    @staticmethod
    def _check_scale(scale: float) -> float:
        scale = float(scale)
        if not MIN_SCALE <= scale <= MAX_SCALE:
            raise ValueError(f"scale {scale} outside {MIN_SCALE}..{MAX_SCALE}")
        return scale

    # -- control ------------------------------------------------------------------
    def pause(self) -> None:
        self.paused = True
        self._anchor = None
        self._wake.set()

    def play(self) -> None:
        self.paused = False
        self._anchor = None
        self._wake.set()

    def seek(self, npt_s: float) -> None:
        """Continue from ``start_ms + npt_s`` (at the keyframe at or before it)."""
        target = int(self.start_ms + max(0.0, float(npt_s)) * 1000)
        if target >= self.end_ms:
            raise ValueError("seek beyond the end of the playback range")
        self._frames = self.reader.frames(target, self.end_ms)
        self._pending = None
        self._anchor = None
        self.ended = False
        self.seeks += 1
        self.position_ms = float(target)
        self._wake.set()

    def set_scale(self, scale: float) -> None:
        self.scale = self._check_scale(scale)
        self._anchor = None
        self._wake.set()

    def close(self) -> None:
        self.closed = True
        self._wake.set()

    # -- frames -------------------------------------------------------------------
    async def next(self) -> MediaFrame | None:
        """The next frame when it is due; None at the end of the range (``ended``) or
        once closed."""
        while True:
            if self.closed:
                return None
            if self._pending is None:
                # Reading a picture is a pread of a few KB on the loop (the file is local).
                self._pending = next(self._frames, None)
                if self._pending is None:
                    self.ended = True
                    return None
            if self.paused:
                await self._wait(None)
                continue
            f = self._pending
            now = self.clock.now()
            if self._anchor is None:
                self._anchor = (now, f.wall_ms)
            due = self._anchor[0] + (f.wall_ms - self._anchor[1]) / 1000 / self.scale
            if due <= now:
                self._pending = None
                if self.origin_ms is None:
                    self.origin_ms = f.wall_ms
                # one timeline for the whole session: recording time since its first picture
                f.pts90k = int(round((f.wall_ms - self.origin_ms) * 90)) & PTS_MASK
                self.position_ms = f.wall_ms
                self.sent += 1
                return f
            await self._wait(due - now)

    async def _wait(self, delay: float | None) -> None:
        self._wake.clear()
        handle = self.clock.call_later(delay, self._wake.set) if delay is not None else None
        try:
            await self._wake.wait()
        finally:
            if handle is not None:
                handle.cancel()
