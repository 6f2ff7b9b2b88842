"""The recorder: the only client of every camera stream (invariant 6), writing stream-copied
footage into write-once segments and every interruption into a gap (Q2.1, Q19.7, Q20.3,
N15.1; invariants 1, 2, 7).

One asyncio loop runs every camera: our RTSP client hands access units to
:meth:`CameraRecorder.on_unit` (the hot path: no decoding, no per-byte work), which feeds
a :class:`~viis.media.mp4_writer.SegmentWriter`. Closing a segment (last fragment, fsync,
rename, index row, chain link) runs on one commit thread in cut order; see
``docs/design/storage.md`` for the ordered procedure and the start-up recovery.
"""

from __future__ import annotations

import asyncio
import errno
import os
import random
import socket
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from viis.app import App
from viis.core.clock import ms_to_datetime
from viis.core.logging import get_logger
from viis.core.metrics import (
    bytes_written,
    camera_recording,
    gaps_recorded,
    segments_written,
    store_free_bytes,
)
from viis.health.faults import clear_fault, raise_fault
from viis.media import gb_source, rtsp
from viis.media.capacity import disk_usage
from viis.media.index import SegmentRecord, append_gap, append_segment, last_end_ms
from viis.media.models import RecorderRun
from viis.media.mp4_format import Track
from viis.media.mp4_writer import SegmentInfo, SegmentWriter
from viis.media.recovery import recover_store
from viis.media.rtp import AccessUnit
from viis.registry.models import Camera
from viis.registry.service import connect_url

log = get_logger(__name__)

VIDEO_TRACK, AUDIO_TRACK = 1, 2
DRIFT_REANCHOR_MS = 2000
BROWSER_CODECS = {"h264"}  # Debian's Chromium has no H.265 (measured)
AUDIO_CODECS = {"aac", "pcma", "pcmu"}


@dataclass(frozen=True)
class CameraConf:
    """What the recorder needs to open a camera's stream; a change restarts its session.
    (Retention is read by the index at each append; priority is updated in place.)"""

    id: int
    uid: str
    name: str
    url: str
    username: str | None
    password: str | None

    @classmethod
    def of(cls, c: Camera) -> CameraConf:
        return cls(c.id, c.uid, c.name, c.main_url, c.username, c.password)


def _cause_of(exc: BaseException | None) -> tuple[str, str]:
    if exc is None:
        return "stream_error", "the camera ended the stream"
    if isinstance(exc, rtsp.RtspStall):
        return "stalled", str(exc)
    if isinstance(exc, rtsp.RtspAuthError):
        return "unreachable", f"authentication failed: {exc}"
    if isinstance(exc, rtsp.RtspConnectionLost):
        return "stream_error", str(exc)
    if isinstance(exc, rtsp.RtspConnectError | rtsp.RtspTimeout | ConnectionRefusedError | OSError):
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return "disk_full", "the segment store is full"
        return "unreachable", str(exc) or type(exc).__name__
    return "stream_error", str(exc) or type(exc).__name__


class CameraRecorder:
    def __init__(self, rec: Recorder, conf: CameraConf, phase_ms: int, priority: int = 50) -> None:
        self.rec = rec
        self.conf = conf
        self.priority = priority
        self.phase_ms = phase_ms
        self.state = "starting"
        self.last_error = ""
        self.session: rtsp.RtspSession | None = None
        self.task: asyncio.Task | None = None
        self.paused: str | None = None  # a gap cause while we must not record
        self._resume = asyncio.Event()
        self._resume.set()
        self._stopping = False
        # The next gap to append before footage resumes: (cause, detail), start = chain end.
        self.pending_gap: tuple[str, str] | None = None
        self._reset_session()
        self.key_taps: list = []
        self.packet_taps: list = []
        self.segments = 0

    # -- session state -------------------------------------------------------------
    def _reset_session(self) -> None:
        self.writer: SegmentWriter | None = None
        self.vi: int | None = None
        self.ai: int | None = None
        self.video_codec = ""
        self.audio_codec: str | None = None
        self.audio_track: Track | None = None
        self.clock_rate = 90000
        self.anchor_wall: int | None = None
        self.anchor_ts = 0
        self.refine = True  # until the session's first segment closes
        self.session_gap: tuple[str, str] | None = None
        self.seg_start_ms = 0
        self.seg_first_ts = 0
        self.seg_sps: bytes | None = None
        self.last_vts: int | None = None
        self.last_ats: int | None = None
        self.failed: BaseException | None = None

    def status(self) -> dict[str, Any]:
        return {"state": self.state, "paused": self.paused, "last_error": self.last_error,
                "segments": self.segments, "codec": self.video_codec or None}

    def wall(self, ts: int) -> int:
        return self.anchor_wall + (ts - self.anchor_ts) * 1000 // self.clock_rate

    # -- the loop ---------------------------------------------------------------------
    async def run(self) -> None:
        s = self.rec.app.settings.recorder
        backoff = s.reconnect_min_s
        while not self._stopping:
            await self._resume.wait()
            if self._stopping:
                break
            self.state = "connecting"
            self._reset_session()
            before = self.segments
            # rtsp:// (and file) or gb28181://<device>/<channel> through the platform role
            sess = gb_source.open_session(
                connect_url(self.conf.url, None, None), gb=self.rec.gb,
                username=self.conf.username, password=self.conf.password,
                timeout=s.connect_timeout_s, stall_timeout=s.stall_timeout_s,
                media=self._select, on_unit=self.on_unit, wall_clock=self.rec.clock.wall_ms)
            self.session = sess
            exc: BaseException | None = None
            try:
                await sess.start()
                self._pick_streams(sess)
                await sess.wait_closed()
            except asyncio.CancelledError:
                await sess.close()
                self._end_session(("recorder_restart", "recorder stopped"))
                raise
            except Exception as e:  # every way a stream can end becomes a gap cause
                exc = e
            finally:
                self.session = None
            if self.failed is not None:
                exc = self.failed
            await sess.close()
            cause = (self.paused, "recording paused") if self.paused else _cause_of(exc)
            if self._stopping:
                cause = ("recorder_restart", "recorder stopped")
            self._end_session(cause)
            if self.packet_taps:
                self._feed_packet_taps(None)
            self.last_error = cause[1]
            camera_recording.labels(self.conf.name).set(0)
            if self._stopping:
                break
            if self.paused:
                self.state = "paused"
                continue
            if self.segments > before:
                backoff = s.reconnect_min_s
            self.state = "backoff"
            log.warning("camera_interrupted", camera=self.conf.name, cause=cause[0],
                        detail=cause[1], retry_s=round(backoff, 1))
            await asyncio.sleep(backoff * random.uniform(0.8, 1.2))
            backoff = min(backoff * 2, s.reconnect_max_s)
        self.state = "stopped"

    @staticmethod
    def _select(media) -> bool:
        return media.kind == "video" and media.codec in ("h264", "h265") or \
            media.kind == "audio" and media.codec in AUDIO_CODECS

    def _pick_streams(self, sess: rtsp.RtspSession) -> None:
        for st in sess.streams:
            m = st.media
            if m.kind == "video" and self.vi is None:
                self.vi, self.video_codec, self.clock_rate = st.index, m.codec, st.clock_rate
            elif m.kind == "audio" and self.ai is None:
                try:
                    self.audio_track = _audio_track(m)
                    self.ai, self.audio_codec = st.index, m.codec
                except ValueError as e:
                    log.warning("audio_not_recorded", camera=self.conf.name, reason=str(e))
        if self.vi is None:
            raise rtsp.RtspProtocolError("the camera offers no H.264 or H.265 video stream")

    # -- hot path ---------------------------------------------------------------------
    def on_unit(self, unit: AccessUnit) -> None:
        try:
            if unit.stream == self.vi:
                self._video(unit)
            elif unit.stream == self.ai and self.writer is not None:
                self.last_ats = unit.ts
                self.writer.write_sample(AUDIO_TRACK, unit.ts, unit.data, True)
            if unit.key and self.key_taps and unit.stream == self.vi:
                self._feed_key_taps(unit)
            if self.packet_taps and unit.stream == self.vi:
                self._feed_packet_taps(unit)
        except OSError as e:
            self._fail(e)
        except Exception as e:  # a broken unit must not kill the session silently
            log.exception("unit_failed", camera=self.conf.name)
            self._fail(e)

    def _feed_key_taps(self, unit: AccessUnit) -> None:
        """Video keyframes for diagnosis, decodable alone (parameter sets prepended)."""
        nals = unit.data
        if _sps(nals, self.video_codec) is None and self.session is not None:
            nals = [*self.session.streams[self.vi].parameter_sets.values(), *nals]
        t = self.wall(unit.ts) if self.anchor_wall is not None else unit.wall_ms
        for tap in self.key_taps:
            try:
                tap(self.conf.id, t, self.video_codec, nals)
            except Exception:
                log.exception("tap_failed", camera=self.conf.name)

    def _feed_packet_taps(self, unit: AccessUnit | None) -> None:
        """Every video access unit as received (live fan-out); ``None`` when the session
        ended. Keyframes come with the session's parameter sets."""
        params: list[bytes] = []
        if unit is not None and unit.key and self.session is not None:
            params = list(self.session.streams[self.vi].parameter_sets.values())
        for tap in self.packet_taps:
            try:
                tap(self.conf.id, self.video_codec, self.clock_rate, unit, params)
            except Exception:
                log.exception("tap_failed", camera=self.conf.name)

    def _fail(self, exc: BaseException) -> None:
        if self.failed is None:
            self.failed = exc
            if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
                asyncio.get_running_loop().create_task(self.rec.check_disk())
            if self.writer is not None:
                self._abandon_writer()
            if self.session is not None:
                asyncio.get_running_loop().create_task(self.session.close())

    def _video(self, unit: AccessUnit) -> None:
        if self.writer is None:
            if not unit.key:
                return
            if self.anchor_wall is None:
                self.anchor_wall, self.anchor_ts = unit.wall_ms, unit.ts
                self.state = "recording"
                camera_recording.labels(self.conf.name).set(1)
                self.session_gap, self.pending_gap = self.pending_gap, None
            self._open(unit)
        elif self.refine:
            # A camera (or server) may burst its buffered GOP at connect: the anchor is the
            # earliest wall time consistent with every frame so far (least latency), so no
            # frame is dated after it arrived.
            est = unit.wall_ms - (unit.ts - self.anchor_ts) * 1000 // self.clock_rate
            if est < self.anchor_wall:
                self.anchor_wall = est
        if unit.key and self.writer is not None and unit.ts != self.seg_first_ts:
            t = self.wall(unit.ts)
            seg_ms = self.rec.segment_ms
            due = (t - self.phase_ms) // seg_ms > (self.seg_start_ms - self.phase_ms) // seg_ms \
                and t - self.seg_start_ms >= seg_ms // 4
            new_sps = _sps(unit.data, self.video_codec)
            if due or (new_sps is not None and new_sps != self.seg_sps):
                self._cut(unit)
        self.last_vts = unit.ts
        self.writer.write_sample(VIDEO_TRACK, unit.ts, unit.data, unit.key)

    def _open(self, unit: AccessUnit) -> None:
        params = unit.data
        ps = self.session.streams[self.vi].parameter_sets if self.session else {}
        if _sps(params, self.video_codec) is None and ps:
            params = [*ps.values(), *unit.data]
        track = Track.video(self.video_codec, params, track_id=VIDEO_TRACK)
        self.seg_sps = _sps(params, self.video_codec)
        start = self.wall(unit.ts)
        tracks = [track] + ([self.audio_track] if self.audio_track else [])
        path = self.rec.segment_path(self.conf.uid, start)
        self.writer = SegmentWriter(path, tracks, fragment_duration=self.rec.fragment_s,
                                    creation_time=start // 1000)
        self.seg_start_ms = start
        self.seg_first_ts = unit.ts
        self.seg_track = track
        self.seg_offset = self._clock_offset()
        self.rec.open_writers.add(self.writer)

    def _clock_offset(self) -> int | None:
        try:
            sr = self.session.streams[self.vi].last_sr if self.session else None
        except (IndexError, AttributeError):
            return None
        return None if sr is None else int(sr.utc_ms - sr.wall_ms)

    def _cut(self, unit: AccessUnit) -> None:
        """Close the open segment at this keyframe (its duration ends where the new one starts)."""
        # The held video frame lasts until this keyframe; the held audio frame as long as
        # the one before it.
        self._close_writer({VIDEO_TRACK: unit.ts})
        # Re-anchor when the media clock has drifted from the server's clock.
        drift = unit.wall_ms - self.wall(unit.ts)
        if abs(drift) > DRIFT_REANCHOR_MS:
            new_anchor = max(unit.wall_ms, self.wall(unit.ts))
            if new_anchor > self.wall(unit.ts):
                self.rec.submit(self._commit_gap, new_anchor, "clock_adjust",
                                f"camera media clock drifted {drift} ms from the server clock")
            self.anchor_wall, self.anchor_ts = new_anchor, unit.ts
        self._open(unit)

    def _meta(self) -> tuple:
        """Start time (final now: the anchor stops moving) and what the index row needs.
        A gap that precedes the session's first segment is queued before it."""
        start = self.wall(self.seg_first_ts)
        self.refine = False
        if self.session_gap:
            cause, detail = self.session_gap
            self.session_gap = None
            self.rec.submit(self._commit_gap, start, cause, detail)
        return (start, self.seg_track, self.audio_codec, self.seg_offset)

    def _hand_over_writer(self) -> tuple[SegmentWriter, tuple]:
        meta = self._meta()
        w, self.writer = self.writer, None
        self.rec.open_writers.discard(w)
        return w, meta

    def _close_writer(self, ends: dict[int, int] | None) -> None:
        w, meta = self._hand_over_writer()
        self.rec.submit(self._commit_segment, w, ends, meta)

    def _abandon_writer(self) -> None:
        """After a write error: the .tmp file stays and is recovered on the commit thread."""
        w, meta = self._hand_over_writer()
        self.rec.submit(self._commit_recovered, w, meta)

    def _end_session(self, cause: tuple[str, str]) -> None:
        if self.writer is not None:
            self._close_writer(None)  # the last frame lasts as long as the one before it
        if self.pending_gap is None:
            self.pending_gap = cause

    # -- commit thread ----------------------------------------------------------------
    def _commit_segment(self, w: SegmentWriter, ends, meta) -> None:
        try:
            info = w.close(ends)
        except OSError as e:
            log.error("segment_close_failed", camera=self.conf.name, error=str(e))
            self._commit_recovered(w, meta)
            return
        self._index(info, meta, recovered=False)

    def _commit_recovered(self, w: SegmentWriter, meta) -> None:
        from viis.media.mp4_reader import recover_segment

        try:
            w.detach()
            info = recover_segment(w.tmp_path, w.path)
        except Exception as e:  # nothing complete in it: keep the .tmp for the operator
            log.error("segment_unrecoverable", camera=self.conf.name, path=w.tmp_path, error=str(e))
            return
        self._index(info, meta, recovered=True)

    def _index(self, info: SegmentInfo, meta, recovered: bool) -> None:
        start, track, audio, offset = meta
        rec = SegmentRecord(
            start_ms=start, end_ms=start + info.duration_ms, frames=info.frames, nbytes=info.size,
            sha256=info.sha256, path=os.path.relpath(info.path, self.rec.root),
            video_codec=track.codec, width=track.width, height=track.height,
            fps=round(info.frames * 1000 / info.duration_ms, 3) if info.duration_ms else 0.0,
            audio_codec=audio, clock_offset_ms=offset, recovered=recovered,
            browser_playable=track.codec in BROWSER_CODECS)
        db = self.rec.app.db
        with db.session() as s:
            append_segment(s, s.get(Camera, self.conf.id), rec, self.rec.clock.wall_ms())
        self.segments += 1
        segments_written.labels(self.conf.name).inc()
        bytes_written.labels(self.conf.name).inc(info.size)

    def _commit_gap(self, end_ms: int, cause: str, detail: str) -> None:
        with self.rec.app.db.session() as s:
            cam = s.get(Camera, self.conf.id)
            start = last_end_ms(s, cam.id)
            if start is None:
                return  # nothing recorded yet: the chain starts with the first footage
            append_gap(s, cam, start, max(start, end_ms), cause, detail, self.rec.clock.wall_ms())
        gaps_recorded.labels(self.conf.name, cause).inc()

    # -- control ----------------------------------------------------------------------
    def pause(self, cause: str) -> None:
        if self.paused:
            return
        self.paused = cause
        self._resume.clear()
        if self.session is not None:
            asyncio.get_running_loop().create_task(self.session.close())

    def resume(self) -> None:
        self.paused = None
        self._resume.set()

    async def stop(self) -> None:
        self._stopping = True
        self._resume.set()
        if self.session is not None:
            await self.session.close()
        if self.task is not None:
            try:
                await asyncio.wait_for(self.task, 10)
            except (TimeoutError, asyncio.CancelledError):
                self.task.cancel()


def _sps(nals, codec: str) -> bytes | None:
    want = 7 if codec == "h264" else 33
    for n in nals:
        t = (n[0] & 0x1F) if codec == "h264" else ((n[0] >> 1) & 0x3F)
        if t == want:
            return bytes(n)
    return None


def _audio_track(m) -> Track:
    if m.codec == "aac":
        if not m.aac_config or m.mode is None:
            raise ValueError("AAC without AudioSpecificConfig (or LATM) is not recorded yet")
        return Track.aac(m.aac_config, track_id=AUDIO_TRACK)
    law = "alaw" if m.codec == "pcma" else "mulaw"
    return Track.g711(law, sample_rate=m.clock_rate or 8000, channels=m.channels or 1,
                      track_id=AUDIO_TRACK)


class Recorder:
    """All cameras of this process, the commit thread and the fsync timer."""

    def __init__(self, app: App, gb=None) -> None:
        self.app = app
        self.gb = gb  # the GB/T 28181 platform role, for gb28181:// cameras (Q13.2)
        self.clock = app.clock
        self.root: Path = app.settings.segments_path
        st = app.settings.storage
        self.segment_ms = int(st.segment_seconds * 1000)
        self.fragment_s = st.fragment_ms / 1000
        self.cameras: dict[int, CameraRecorder] = {}
        self.open_writers: set[SegmentWriter] = set()
        self._commit = ThreadPoolExecutor(1, thread_name_prefix="viis-commit")
        self._sync = ThreadPoolExecutor(2, thread_name_prefix="viis-fsync")
        self._dirs: set[Path] = set()
        self._tasks: list[asyncio.Task] = []
        self.run_id: int | None = None
        self.recovery: dict[str, Any] = {}
        self._pending: list[Future] = []
        self._free_at_pause = 0
        self._key_taps: list = []
        self._packet_taps: list = []
        self._causes: dict[int, tuple[str, str]] = {}  # why a stopped camera went silent

    # -- paths and threads ------------------------------------------------------------
    def segment_path(self, uid: str, start_ms: int) -> str:
        d = ms_to_datetime(start_ms)
        folder = self.root / uid / f"{d.year:04d}" / f"{d.month:02d}" / f"{d.day:02d}"
        if folder not in self._dirs:
            folder.mkdir(parents=True, exist_ok=True)
            self._dirs.add(folder)
        return str(folder / f"{start_ms}.mp4")

    def submit(self, fn, *args) -> Future:
        fut = self._commit.submit(self._guarded, fn, *args)
        self._pending = [f for f in self._pending if not f.done()] + [fut]
        return fut

    @staticmethod
    def _guarded(fn, *args) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("commit_failed", job=getattr(fn, "__name__", "?"))

    def drain(self, timeout: float = 30.0) -> None:
        """Wait for every submitted commit job (tests, shutdown)."""
        for f in list(self._pending):
            f.result(timeout)

    # -- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.recovery = await loop.run_in_executor(self._commit, recover_store, self.app)
        with self.app.db.session() as s:
            run = RecorderRun(started_ms=self.clock.wall_ms(), pid=os.getpid(),
                              host=socket.gethostname())
            s.add(run)
            s.flush()
            self.run_id = run.id
        crashed = self.recovery.get("crashed", False)
        self._initial_cause = ("crash_recovery", "the recorder died; the unflushed tail of the "
                               "open segment is lost") if crashed else \
                              ("recorder_restart", "the recorder was restarted")
        self._loop = asyncio.get_running_loop()
        await self.sync_cameras()
        self._tasks.append(asyncio.create_task(self._fsync_loop(), name="viis-fsync"))
        self._tasks.append(asyncio.create_task(self._disk_loop(), name="viis-disk"))

    async def sync_cameras(self) -> None:
        """Start, stop or restart camera recorders to match the registry."""
        with self.app.db.session() as s:
            rows = list(s.scalars(select(Camera).where(Camera.enabled.is_(True)).order_by(Camera.id)))
            confs = [CameraConf.of(c) for c in rows]
            priority = {c.id: c.priority for c in rows}
            ends = {c.id: last_end_ms(s, c.id) for c in rows}
        wanted = {c.id: c for c in confs}
        for cid, cr in list(self.cameras.items()):
            if cid not in wanted or wanted[cid] != cr.conf:
                await cr.stop()
                del self.cameras[cid]
                # The silence that follows is explained when footage resumes.
                self._causes[cid] = ("disabled", "camera disabled by an administrator") \
                    if cid not in wanted else ("recorder_restart", "camera stream settings changed")
        n = max(1, len(confs))
        for i, conf in enumerate(confs):
            if conf.id in self.cameras:
                self.cameras[conf.id].priority = priority[conf.id]
                continue
            cr = CameraRecorder(self, conf, phase_ms=(i * self.segment_ms) // n,
                                priority=priority[conf.id])
            cr.key_taps = self._key_taps
            cr.packet_taps = self._packet_taps
            if ends.get(conf.id) is not None:
                cr.pending_gap = self._causes.pop(conf.id, self._initial_cause)
            self.cameras[conf.id] = cr
            cr.task = asyncio.create_task(cr.run(), name=f"camera-{conf.name}")

    def reload(self) -> None:
        """Called after a registry change (from any thread)."""
        loop = getattr(self, "_loop", None) or asyncio.get_event_loop()
        asyncio.run_coroutine_threadsafe(self.sync_cameras(), loop)

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*(cr.stop() for cr in self.cameras.values()), return_exceptions=True)
        now = self.clock.wall_ms()
        for cr in self.cameras.values():  # a camera that was down: its gap ends at the stop
            if cr.pending_gap and cr.pending_gap[0] != "recorder_restart":
                self.submit(cr._commit_gap, now, *cr.pending_gap)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.drain)
        with self.app.db.session() as s:
            run = s.get(RecorderRun, self.run_id)
            if run is not None:
                run.stopped_ms = self.clock.wall_ms()
        self._commit.shutdown(wait=True)
        self._sync.shutdown(wait=True)

    async def _fsync_loop(self) -> None:
        """Make open segments durable every ``fsync_seconds`` (power-cut bound)."""
        interval = self.app.settings.storage.fsync_seconds
        if interval <= 0:
            return
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            for w in list(self.open_writers):
                fd = w.fileno()
                if fd is not None:
                    loop.run_in_executor(self._sync, _fdatasync_quiet, fd)

    # -- taps: the recorder is the only client of a camera (invariant 6) ---------------
    def add_keyframe_tap(self, fn) -> None:
        """``fn(camera_id, wall_ms, codec, nals)`` is called on the event loop for every video
        keyframe of every camera (now and later started); it must return quickly (hand the
        work to a thread). ``nals`` decode alone: parameter sets are included."""
        self._key_taps.append(fn)
        for cr in self.cameras.values():
            cr.key_taps = self._key_taps

    def add_packet_tap(self, fn) -> None:
        """``fn(camera_id, codec, clock_rate, unit, parameter_sets)`` is called on the event
        loop for every video access unit of every camera as it arrives, and with ``unit=None``
        when a camera's session ends; it must return at once (live fan-out, invariant 6: the
        recorder stays the only client of the camera). Keyframes carry the parameter sets."""
        self._packet_taps.append(fn)
        for cr in self.cameras.values():
            cr.packet_taps = self._packet_taps

    # -- status -----------------------------------------------------------------------
    def status(self, camera_id: int) -> dict | None:
        cr = self.cameras.get(camera_id)
        return cr.status() if cr else {"state": "disabled"}

    # -- disk pressure ----------------------------------------------------------------
    async def _disk_loop(self) -> None:
        every = self.app.settings.storage.check_seconds
        while True:
            await self.check_disk()
            await asyncio.sleep(every)

    async def check_disk(self) -> None:
        """Below the reserve: critical fault and the lowest-priority streams stop; while the
        remaining streams keep eating into the reserve (another 1/16 of it since the last
        stop), the next priority level stops too, so the most important cameras record
        longest. Nothing is ever deleted (invariant 1). Above 1.2 x the reserve: every
        stopped stream resumes and the fault clears."""
        reserve = self.app.settings.storage.min_free_bytes
        free, _total = disk_usage(self.root)
        store_free_bytes.set(free)
        loop = asyncio.get_running_loop()
        paused = any(c.paused == "disk_full" for c in self.cameras.values())
        if free < reserve:
            margin = max(reserve // 16, 64 * 1024)
            stopped: list[str] = []
            if not paused or free < self._free_at_pause - margin:
                stopped = self.pause_lowest("disk_full")
                self._free_at_pause = free
            names = sorted(c.conf.name for c in self.cameras.values() if c.paused)
            msg = (f"segment store has {free // 2**20} MiB free, below the reserve of "
                   f"{reserve // 2**20} MiB; recording stopped for: {', '.join(names) or 'none'}."
                   " No footage inside retention is deleted: add storage.")
            await loop.run_in_executor(None, self.note_fault, "disk_full", "critical", msg)
            if stopped:
                log.critical("disk_full", free=free, reserve=reserve, stopped=stopped)
        elif free > reserve * 1.2 and paused:
            resumed = self.resume_all("disk_full")
            await loop.run_in_executor(None, self.clear, "disk_full")
            log.warning("disk_recovered", free=free, resumed=resumed)

    def pause_lowest(self, cause: str = "disk_full") -> list[str]:
        active = [c for c in self.cameras.values() if not c.paused]
        if not active:
            return []
        low = min(c.priority for c in active)
        hit = [c for c in active if c.priority == low]
        for c in hit:
            c.pause(cause)
        return [c.conf.name for c in hit]

    def resume_all(self, cause: str = "disk_full") -> list[str]:
        hit = [c for c in self.cameras.values() if c.paused == cause]
        for c in hit:
            c.resume()
        return [c.conf.name for c in hit]

    def note_fault(self, kind: str, severity: str, message: str) -> None:
        with self.app.db.session() as s:
            raise_fault(s, kind, severity, message, self.clock.wall_ms())

    def clear(self, kind: str) -> None:
        with self.app.db.session() as s:
            clear_fault(s, kind, self.clock.wall_ms())


def _fdatasync_quiet(fd: int) -> None:
    try:
        os.fdatasync(fd)
    except OSError:
        pass  # closed in between: the close fsynced it

