"""Live fan-out: the recorder's packets, as fragmented MP4 for browsers (Q2.1 display,
Q19.1 duty monitoring; invariant 6).

The recorder is the only client of a camera. Its packet tap
(:meth:`viis.media.recorder.Recorder.add_packet_tap`) hands every video access unit to
:class:`LiveHub` on the event loop; for a camera somebody watches, the hub turns each access
unit into ONE ``moof``+``mdat`` fragment (stream copy, no transcoding; the box builders of
:mod:`viis.media.mp4_format`), built once and shared by every viewer of that camera. For
every camera the hub keeps its current group of pictures as received (references to the
units, within a per-camera and a hub-wide byte budget), so a tile opens at once; a camera
nobody watches costs no fragment building.

A viewer (:class:`Viewer`) receives the init segment and then fragments starting at a
keyframe, so its decoder can start at once. Each viewer has a byte budget: when a slow
viewer's queue passes it, the queue is dropped and the viewer resumes at the next keyframe
(``drops`` counts it) — memory never grows with a slow network, and the other viewers are
not held back. When the camera's session ends every viewer is told (``lost``), and when the
stream returns with other parameters a new init segment starts a new epoch.

A camera with a sub stream (``sub_url``) is watched through it: :class:`SubStream` opens
one RTSP session per camera while somebody watches, fed into the same hub; the main stream
stays the recorder's alone. Design and measurements: ``docs/design/console.md``.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from viis.core.logging import get_logger
from viis.media.mp4_format import Track, TrackRun, build_fragment, init_segment, mime_type
from viis.media.rtp import AccessUnit

log = get_logger(__name__)

TRACK_ID = 1
#: A viewer's queue above this many bytes is dropped to the next keyframe.
MAX_QUEUED_BYTES = 4 * 1024 * 1024
#: ... or above this many queued fragments (frames): ~2 s at 25 fps.
MAX_QUEUED_FRAGMENTS = 50
MAX_VIEWERS_PER_CAMERA = 64
MAX_GOP_FRAMES = 300
SUB_LINGER_S = 15.0  # a sub stream nobody watches is closed after this
MAX_WARM_BYTES = 256 * 1024 * 1024  # raw GOPs kept across all cameras (fast tile open)
MAX_STEP_S = 10  # a timestamp step beyond this (or backwards) is a discontinuity


@dataclass
class Epoch:
    """One continuous stream of a camera: one init segment, monotonically growing decode
    times. A new session or new parameter sets start a new epoch."""

    number: int
    codec: str
    track: Track
    init: bytes
    mime: str
    first_ts: int
    sps: bytes
    seq: int = 0
    last_ts: int | None = None
    last_duration: int = 3600


@dataclass(eq=False)
class Viewer:
    """One live view session: a bounded queue of messages for one socket."""

    camera_id: int
    key: object = None  # the hub key: camera id (main stream) or ("sub", id)
    queue: collections.deque = field(default_factory=collections.deque)
    queued_bytes: int = 0
    epoch: int = -1            # the epoch whose init segment this viewer has
    waiting_key: bool = True   # dropping until the next keyframe
    keys_only: bool = False    # the page asked for keyframes only (it cannot decode more)
    drops: int = 0
    sent_fragments: int = 0
    closed: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def push(self, item: bytes | dict) -> None:
        self.queue.append(item)
        if isinstance(item, bytes):
            self.queued_bytes += len(item)
        self.wake.set()

    def push_urgent(self, item: dict) -> None:
        """A control message ahead of the queued fragments (clock probe answers)."""
        self.queue.appendleft(item)
        self.wake.set()

    def drop(self) -> None:
        """Too far behind: forget what is queued (except clock answers), resume at the next
        keyframe with the init segment again."""
        kept = [m for m in self.queue if isinstance(m, dict) and m.get("type") == "time"]
        self.queue.clear()
        self.queue.extend(kept)
        self.queued_bytes = 0
        self.waiting_key = True
        self.epoch = -1  # the init segment may have been in what was dropped: send it again
        self.drops += 1

    def pop(self) -> bytes | dict:
        item = self.queue.popleft()
        if isinstance(item, bytes):
            self.queued_bytes -= len(item)
        return item

    async def next(self) -> bytes | dict | None:
        """The next message, or None once closed."""
        while not self.queue:
            if self.closed:
                return None
            self.wake.clear()
            await self.wake.wait()
        item = self.queue.popleft()
        if isinstance(item, bytes):
            self.queued_bytes -= len(item)
        return item

    def want_keys_only(self, on: bool) -> None:
        """The page cannot decode every frame (``on``) or can again: with ``on`` only
        keyframes are sent (less to send, to receive and to skip on a thin link or a busy
        page); back to every frame from the NEXT keyframe, since the frames between the
        last keyframe sent and now were not sent and later frames refer to them."""
        if self.keys_only and not on:
            self.waiting_key = True
        self.keys_only = on

    def close(self) -> None:
        self.closed = True
        self.wake.set()


class Budget:
    """Bytes of raw GOPs kept across all cameras, so that a wall of many cameras opens at
    once without the hub's memory growing with the number of cameras."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0


class CameraLive:
    def __init__(self, camera_id: int, budget: Budget | None = None) -> None:
        self.camera_id = camera_id
        self.viewers: set[Viewer] = set()
        self.epoch: Epoch | None = None
        self.epochs = 0
        self.frames = 0
        self.live = False  # a session is delivering frames
        self.codec: str | None = None
        # The current group of pictures as received (decode time, duration, NAL units, key):
        # a new viewer gets it at once; fragments are built only for viewers.
        self.gop: list[tuple[int, int, list, bool, int]] = []
        self.gop_bytes = 0
        self.gop_ok = True
        self.budget = budget or Budget(MAX_QUEUED_BYTES)

    # -- fed by the recorder (event loop) ------------------------------------------------
    def on_unit(self, codec: str, clock_rate: int, unit: AccessUnit | None,
                params: list[bytes]) -> None:
        if unit is None:
            self._lost()
            return
        self.codec = codec
        ep = self._epoch_for(codec, clock_rate, unit, params) if unit.key else self.epoch
        if ep is None:
            return
        if ep.last_ts is not None:
            d = unit.ts - ep.last_ts
            if not 0 < d <= MAX_STEP_S * clock_rate:
                return  # a jump inside a session: the next keyframe starts a new epoch
            ep.last_duration = d
        ep.last_ts = unit.ts
        self.live = True
        dts = unit.ts - ep.first_ts
        self._keep(dts, ep.last_duration, unit.data, unit.key, unit.size, unit.wall_ms)
        if not self.viewers:
            return
        frag = self._fragment(ep, dts, ep.last_duration, unit.data, unit.key)
        sync = self._sync(ep, dts, unit.wall_ms) if unit.key else None
        self.frames += 1
        for v in self.viewers:
            self._offer(v, ep, frag, sync)

    @staticmethod
    def _sync(ep: Epoch, dts: int, wall_ms: int) -> dict:
        """Sent before each keyframe: the media time of that keyframe and when the server
        received it, so the player knows how old what it is about to show is (and skips
        to a fresher keyframe when a backlog built up anywhere on the way)."""
        return {"type": "key", "t": dts / ep.track.timescale, "wall_ms": wall_ms}

    @staticmethod
    def _fragment(ep: Epoch, dts: int, duration: int, data, key: bool) -> bytes:
        ep.seq += 1
        run = TrackRun(TRACK_ID, dts)
        run.add(data, duration, key)
        return b"".join(build_fragment(ep.seq, [run]))

    def _forget(self) -> None:
        self.budget.used -= self.gop_bytes
        self.gop.clear()
        self.gop_bytes = 0

    def _keep(self, dts: int, duration: int, data, key: bool, size: int, wall_ms: int) -> None:
        """The current group of pictures, within this camera's and the hub's budget."""
        if key:
            self._forget()
            self.gop_ok = True
        if not self.gop_ok:
            return
        if self.gop_bytes + size > MAX_QUEUED_BYTES or len(self.gop) >= MAX_GOP_FRAMES \
                or self.budget.used + size > self.budget.limit:
            self._forget()
            self.gop_ok = False  # too long or no room: new viewers wait for a keyframe
            return
        self.gop.append((dts, duration, data, key, wall_ms))
        self.gop_bytes += size
        self.budget.used += size

    def start(self, v: Viewer) -> None:
        """A new viewer: the init segment and the group of pictures so far, when there is
        one; otherwise it waits for the next keyframe."""
        ep = self.epoch
        if ep is None or not self.gop:
            return
        self._init(v, ep)
        for dts, duration, data, key, wall_ms in self.gop:
            if key:
                v.push(self._sync(ep, dts, wall_ms))
            v.push(self._fragment(ep, dts, duration, data, key))
        v.waiting_key = False

    def _init(self, v: Viewer, ep: Epoch) -> None:
        v.push({"type": "init", "codec": ep.codec, "mime": ep.mime, "width": ep.track.width,
                "height": ep.track.height, "timescale": ep.track.timescale})
        v.push(ep.init)
        v.epoch = ep.number

    def _epoch_for(self, codec: str, clock_rate: int, unit: AccessUnit,
                   params: list[bytes]) -> Epoch | None:
        ep = self.epoch
        nals = [*params, *unit.data]
        sps = next((bytes(n) for n in nals if _is_sps(n, codec)), b"")
        jumped = ep is not None and ep.last_ts is not None and \
            not 0 < unit.ts - ep.last_ts <= MAX_STEP_S * clock_rate
        if ep is not None and ep.codec == codec and ep.sps == sps and not jumped:
            return ep
        try:
            track = Track.video(codec, nals, track_id=TRACK_ID, timescale=clock_rate)
        except ValueError as e:  # no parameter sets yet: wait for a keyframe with them
            log.warning("live_no_parameter_sets", camera_id=self.camera_id, error=str(e))
            return self.epoch if ep is not None and not jumped else None
        self.epochs += 1
        self.epoch = Epoch(self.epochs, codec, track, init_segment([track]), mime_type([track]),
                           unit.ts, sps)
        self.epoch.last_duration = track.default_duration()
        return self.epoch

    def _offer(self, v: Viewer, ep: Epoch, frag: bytes, sync: dict | None) -> None:
        key = sync is not None
        if v.waiting_key or v.keys_only:
            if not key:
                return
            v.waiting_key = False
        if v.epoch != ep.number:
            self._init(v, ep)
        if v.queued_bytes + len(frag) > MAX_QUEUED_BYTES or len(v.queue) > MAX_QUEUED_FRAGMENTS:
            v.drop()
            if not key:
                return
            v.waiting_key = False
        if sync is not None:
            v.push(sync)
        v.push(frag)
        v.sent_fragments += 1

    def _lost(self) -> None:
        if self.live or self.epoch is not None:
            for v in self.viewers:
                v.push({"type": "lost"})
                v.waiting_key = True
                v.epoch = -1
        self.live = False
        self.epoch = None
        self._forget()


def _is_sps(nal: bytes, codec: str) -> bool:
    if not nal:
        return False
    return (nal[0] & 0x1F) == 7 if codec == "h264" else ((nal[0] >> 1) & 0x3F) == 33


class SubStream:
    """The sub stream of one camera, opened while somebody watches it live (one RTSP
    session per camera whatever the number of viewers), with the recorder's connection
    settings and backoff. Its access units feed the camera's sub-stream :class:`CameraLive`."""

    def __init__(self, hub: LiveHub, camera_id: int, url: str, username: str | None,
                 password: str | None) -> None:
        self.hub, self.camera_id = hub, camera_id
        self.url, self.username, self.password = url, username, password
        self.cam = hub.cameras.setdefault(("sub", camera_id), CameraLive(camera_id, hub.budget))
        self.session = None
        self.vi: int | None = None
        self.codec = ""
        self.rate = 90000
        self.task: asyncio.Task | None = None
        self.stop_at: float | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self.run(),
                                                           name=f"live-sub-{self.camera_id}")

    async def run(self) -> None:
        from viis.media import rtsp
        from viis.registry.service import connect_url

        st = self.hub.settings
        backoff = st.reconnect_min_s if st else 1.0
        while True:
            sess = rtsp.RtspSession(
                connect_url(self.url, None, None), username=self.username,
                password=self.password, timeout=st.connect_timeout_s if st else 10.0,
                stall_timeout=st.stall_timeout_s if st else 10.0,
                media=lambda m: m.kind == "video" and m.codec in ("h264", "h265"),
                on_unit=self._on_unit, wall_clock=self.hub.wall_ms)
            self.session = sess
            try:
                await sess.start()
                video = next(x for x in sess.streams if x.media.kind == "video")
                self.vi, self.codec, self.rate = video.index, video.media.codec, video.clock_rate
                backoff = st.reconnect_min_s if st else 1.0
                await sess.wait_closed()
            except asyncio.CancelledError:
                await sess.close()
                raise
            except Exception as e:  # noqa: BLE001 - every failure: tell viewers, retry
                log.warning("live_sub_stream_failed", camera_id=self.camera_id, error=str(e)[:200])
            finally:
                self.session = None
            await sess.close()
            self.cam.on_unit(self.codec, self.rate, None, [])
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, st.reconnect_max_s if st else 30.0)

    def _on_unit(self, unit: AccessUnit) -> None:
        if unit.stream != self.vi or self.session is None:
            return
        params = list(self.session.streams[self.vi].parameter_sets.values()) if unit.key else []
        self.cam.on_unit(self.codec, self.rate, unit, params)

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()


class LiveHub:
    """Every camera's live state in this process. Attach to a recorder with
    :meth:`attach`; the web layer calls :meth:`join`/:meth:`leave` per view session.
    Keys of :attr:`cameras`: the camera id (main stream, fed by the recorder) or
    ``("sub", id)`` (its sub stream, fed by a :class:`SubStream`)."""

    def __init__(self, settings=None, wall_ms: Callable[[], int] | None = None) -> None:
        self.cameras: dict = {}
        self.subs: dict[int, SubStream] = {}
        self.budget = Budget(MAX_WARM_BYTES)
        self.settings = settings  # RecorderSettings: timeouts and backoff for sub streams
        self.wall_ms = wall_ms or (lambda: int(time.time() * 1000))
        self.on_watch: Callable[[int, int], None] | None = None  # (camera_id, viewers)

    @classmethod
    def attach(cls, recorder) -> LiveHub:
        hub = cls(recorder.app.settings.recorder, recorder.clock.wall_ms)
        recorder.add_packet_tap(hub.on_unit)
        return hub

    def on_unit(self, camera_id: int, codec: str, clock_rate: int, unit: AccessUnit | None,
                params: list[bytes]) -> None:
        cam = self.cameras.get(camera_id)
        if cam is None:
            if unit is None or not unit.key:
                return
            cam = self.cameras[camera_id] = CameraLive(camera_id, self.budget)
        cam.on_unit(codec, clock_rate, unit, params)

    def join(self, camera_id: int, sub: tuple[str, str | None, str | None] | None = None) -> Viewer:
        """A new viewer of ``camera_id``; ``sub`` = (url, username, password) of its sub
        stream, which is then watched instead of the main stream. Call on the event loop."""
        key = ("sub", camera_id) if sub else camera_id
        cam = self.cameras.setdefault(key, CameraLive(camera_id, self.budget))
        if len(cam.viewers) >= MAX_VIEWERS_PER_CAMERA:
            raise OverflowError(f"camera {camera_id} already has {MAX_VIEWERS_PER_CAMERA} "
                                "live viewers")
        if sub:
            ss = self.subs.get(camera_id)
            if ss is not None and (ss.url, ss.username, ss.password) != sub:
                ss.stop()  # the camera's sub stream settings changed
                ss = None
            if ss is None:
                ss = self.subs[camera_id] = SubStream(self, camera_id, *sub)
                ss.start()
            ss.stop_at = None
        v = Viewer(camera_id, key=key)
        cam.viewers.add(v)
        cam.start(v)
        if self.on_watch:
            self.on_watch(camera_id, len(cam.viewers))
        return v

    def leave(self, v: Viewer) -> None:
        v.close()
        cam = self.cameras.get(v.key)
        if cam is None:
            return
        cam.viewers.discard(v)
        if not cam.viewers:
            ss = self.subs.get(v.camera_id) if v.key != v.camera_id else None
            if ss is not None:  # keep it a little: a wall re-layout re-opens at once
                ss.stop_at = time.monotonic() + SUB_LINGER_S
                asyncio.get_running_loop().call_later(SUB_LINGER_S + 0.1, self._reap, v.camera_id)
        if self.on_watch:
            self.on_watch(v.camera_id, len(cam.viewers))

    def _reap(self, camera_id: int) -> None:
        ss = self.subs.get(camera_id)
        if ss is not None and ss.stop_at is not None and time.monotonic() >= ss.stop_at:
            ss.stop()
            del self.subs[camera_id]

    async def close(self) -> None:
        """Stop the sub-stream sessions and end every view (shutdown)."""
        for ss in list(self.subs.values()):
            ss.stop()
        await asyncio.gather(*(ss.task for ss in self.subs.values() if ss.task),
                             return_exceptions=True)
        self.subs.clear()
        for cam in self.cameras.values():
            for v in list(cam.viewers):
                v.close()

    def viewers(self, camera_id: int, sub: bool = False) -> int:
        cam = self.cameras.get(("sub", camera_id) if sub else camera_id)
        return len(cam.viewers) if cam else 0
