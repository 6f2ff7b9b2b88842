"""Live fan-out: the recorder's packets, as fragmented MP4 for browsers (Q2.1 display,
Q19.1 duty monitoring; invariant 6).

The recorder is the only client of a camera. Its packet tap
(:meth:`viis.media.recorder.Recorder.add_packet_tap`) hands every video access unit to
:class:`LiveHub` on the event loop; for a camera somebody watches, the hub turns each access
unit into ONE ``moof``+``mdat`` fragment (stream copy, no transcoding; the box builders of
:mod:`viis.media.mp4_format`), built once and shared by every viewer of that camera. A
camera nobody watches costs one dictionary lookup per frame.

A viewer (:class:`Viewer`) receives the init segment and then fragments starting at a
keyframe, so its decoder can start at once. Each viewer has a byte budget: when a slow
viewer's queue passes it, the queue is dropped and the viewer resumes at the next keyframe
(``drops`` counts it) — memory never grows with a slow network, and the other viewers are
not held back. When the camera's session ends every viewer is told (``lost``), and when the
stream returns with other parameters a new init segment starts a new epoch.

A camera with a sub stream (``sub_url``) is watched through it: :class:`SubStreams` opens
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
WARM_S = 600.0  # keep the current GOP of a camera watched this recently (fast re-open)
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
    queue: collections.deque = field(default_factory=collections.deque)
    queued_bytes: int = 0
    epoch: int = -1            # the epoch whose init segment this viewer has
    waiting_key: bool = True   # dropping until the next keyframe
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
        """Too far behind: forget what is queued (except control messages), resume at the
        next keyframe."""
        kept = [m for m in self.queue if isinstance(m, dict)]
        self.queue.clear()
        self.queue.extend(kept)
        self.queued_bytes = 0
        self.waiting_key = True
        self.drops += 1

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

    def close(self) -> None:
        self.closed = True
        self.wake.set()


class CameraLive:
    def __init__(self, camera_id: int) -> None:
        self.camera_id = camera_id
        self.viewers: set[Viewer] = set()
        self.epoch: Epoch | None = None
        self.epochs = 0
        self.frames = 0
        self.live = False  # a session is delivering frames
        self.codec: str | None = None
        self.gop: list[bytes] = []
        self.gop_bytes = 0
        self.gop_ok = True
        self.idle_since = time.monotonic()  # when the last viewer left

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
        if not self.viewers and unit.mono - self.idle_since > WARM_S:
            self.gop.clear()  # cold: nobody watched lately; a new viewer waits for a keyframe
            return
        ep.seq += 1
        run = TrackRun(TRACK_ID, unit.ts - ep.first_ts)
        run.add(unit.data, ep.last_duration, unit.key)
        frag = b"".join(build_fragment(ep.seq, [run]))
        self.frames += 1
        self._keep(frag, unit.key)
        for v in self.viewers:
            self._offer(v, ep, frag, unit.key)

    def _keep(self, frag: bytes, key: bool) -> None:
        """The current group of pictures, so that a new viewer starts at once."""
        if key:
            self.gop.clear()
            self.gop_bytes = 0
            self.gop_ok = True
        if not self.gop_ok:
            return
        self.gop.append(frag)
        self.gop_bytes += len(frag)
        if self.gop_bytes > MAX_QUEUED_BYTES or len(self.gop) > MAX_GOP_FRAMES:
            self.gop.clear()
            self.gop_ok = False  # a very long GOP: new viewers wait for the next keyframe

    def start(self, v: Viewer) -> None:
        """A new viewer: the init segment and the group of pictures so far, when there is
        one; otherwise it waits for the next keyframe."""
        ep = self.epoch
        if ep is None or not self.gop:
            return
        self._init(v, ep)
        for frag in self.gop:
            v.push(frag)
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

    def _offer(self, v: Viewer, ep: Epoch, frag: bytes, key: bool) -> None:
        if v.waiting_key:
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
        self.gop.clear()


def _is_sps(nal: bytes, codec: str) -> bool:
    if not nal:
        return False
    return (nal[0] & 0x1F) == 7 if codec == "h264" else ((nal[0] >> 1) & 0x3F) == 33


class LiveHub:
    """Every camera's live state in this process. Attach to a recorder with
    :meth:`attach`; the web layer calls :meth:`join`/:meth:`leave` per view session."""

    def __init__(self) -> None:
        self.cameras: dict[int, CameraLive] = {}
        self.on_watch: Callable[[int, int], None] | None = None  # (camera_id, viewers)

    @classmethod
    def attach(cls, recorder) -> LiveHub:
        hub = cls()
        recorder.add_packet_tap(hub.on_unit)
        return hub

    def on_unit(self, camera_id: int, codec: str, clock_rate: int, unit: AccessUnit | None,
                params: list[bytes]) -> None:
        cam = self.cameras.get(camera_id)
        if cam is not None:  # None: nobody watched it since start, nothing to do
            cam.on_unit(codec, clock_rate, unit, params)

    def join(self, camera_id: int) -> Viewer:
        cam = self.cameras.setdefault(camera_id, CameraLive(camera_id))
        if len(cam.viewers) >= MAX_VIEWERS_PER_CAMERA:
            raise OverflowError(f"camera {camera_id} already has {MAX_VIEWERS_PER_CAMERA} "
                                "live viewers")
        v = Viewer(camera_id)
        cam.viewers.add(v)
        cam.start(v)
        if self.on_watch:
            self.on_watch(camera_id, len(cam.viewers))
        return v

    def leave(self, v: Viewer) -> None:
        v.close()
        cam = self.cameras.get(v.camera_id)
        if cam is not None:
            cam.viewers.discard(v)
            if not cam.viewers:
                cam.idle_since = time.monotonic()
            if self.on_watch:
                self.on_watch(v.camera_id, len(cam.viewers))

    def viewers(self, camera_id: int) -> int:
        cam = self.cameras.get(camera_id)
        return len(cam.viewers) if cam else 0
