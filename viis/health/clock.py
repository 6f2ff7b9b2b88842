"""Clock accuracy (Q19.3 "keep system time accurate"; invariant 5: camera clock offset is
measured, stored per segment and alarmed).

Each camera's clock is compared with the server's from two sources:

* **RTCP sender reports** (``rtcp_sr``): the NTP time the camera stamps on its RTP stream,
  against the server time the report arrived. The recorder stores it per segment
  (``segments.clock_offset_ms``); here the live value is read from the recorder session's
  stream (``last_sr``, read only).
* **The time in the picture** (``timecode``): the simulated cameras burn a machine-readable
  time code into every frame (:mod:`viis.simcam.timecode`); it is read from the keyframes the
  diagnosis already decodes (a :class:`viis.health.monitor.HealthMonitor` observer) and
  compared with the keyframe's wall time from the recorder. Real cameras' OSD clocks need
  OCR (not done yet).
* **ONVIF** (``onvif``): ``GetSystemDateAndTime`` of the camera's device service
  (:mod:`viis.health.onvif`), polled at most every ``onvif_every_s`` per camera (whole
  seconds; the last answer counts for two periods).

A camera clock before 2001 is an **epoch reset** (a camera that lost its RTC comes up in
1970 or 2000) and is a fault whatever the tolerance. Otherwise the fault ``clock_offset``
(warning) is raised when the largest offset of the sources, each the median of its last three
readings (restarted when the clock steps by more than the tolerance), exceeds the rule pack's ``clock_max_offset`` for the persistence rule, and cleared
when it is back within tolerance. The server's own sync state is read with ``adjtimex(2)``
(read only, ``modes = 0``), see :func:`server_clock_state`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import select

from viis.core.clock import SHANGHAI, iso_utc, ms_to_datetime
from viis.core.logging import get_logger
from viis.health import vqd
from viis.health.faults import clear_fault, raise_fault
from viis.health.models import ClockReading, Fault
from viis.simcam import timecode

log = get_logger(__name__)

KIND = "clock_offset"
SEVERITY = "warning"
EPOCH_FLOOR_MS = 978_307_200_000  # 2001-01-01T00:00Z: anything earlier is a reset clock
SR_MAX_AGE_S = 120.0  # an older sender report says nothing about the clock now
_UNIT_MS = {"seconds": 1000, "minutes": 60_000, "milliseconds": 1}

SrSource = Callable[[int], object | None]  # camera_id -> SenderReport or None
CycleFn = Callable[[int], int | None]  # camera_id -> time-code cycle ms (None: no time code)
OnvifFn = Callable[[int], str | None]  # camera_id -> ONVIF device service URL (None: none)


def sr_offset_ms(sr) -> int | None:
    """Camera NTP time minus server arrival time of a sender report (ms)."""
    if sr is None:
        return None
    return int(sr.utc_ms - sr.wall_ms)


def timecode_offset_ms(luma: np.ndarray, wall_ms: int, cycle_ms: int) -> int | None:
    """Capture time painted into the picture minus the keyframe's wall time (ms), or None
    when no valid time code is read. Unambiguous while |offset| < cycle / 2."""
    code = timecode.decode_timecode(luma)
    if code is None:
        return None
    return timecode.resolve_capture_ms(code, wall_ms, cycle_ms) - wall_ms


def is_epoch_reset(camera_ms: int) -> bool:
    return camera_ms < EPOCH_FLOOR_MS


def recorder_sr_source(recorder) -> SrSource:
    """Read the live sender report of a camera's video stream from the recorder (read only)."""
    def get(camera_id: int):
        cr = recorder.cameras.get(camera_id)
        sess = getattr(cr, "session", None)
        if cr is None or sess is None or cr.vi is None:
            return None
        try:
            return sess.streams[cr.vi].last_sr
        except (IndexError, AttributeError, KeyError):
            return None
    return get


@dataclass
class _CamClock:
    rule: vqd.Persistence
    readings: dict[str, deque] = field(default_factory=dict)
    synced: bool = False
    last: dict = field(default_factory=dict)
    stored_ms: int | None = None  # wall time of the last readings written to the database


class ClockWatch:
    """Per-camera clock offset from every source; raises and clears ``clock_offset``.

    ``observe(camera_id, wall_ms, luma)`` is a :class:`HealthMonitor` observer (worker
    thread); ``timecode_cycle(camera_id)`` says whether (and with which cycle) a camera paints
    the simulator's time code; ``sr_source(camera_id)`` gives its last RTCP sender report."""

    def __init__(self, app, *, sr_source: SrSource | None = None,
                 timecode_cycle: CycleFn | None = None, rule=None,
                 tolerance_ms: int | None = None, record_s: float = 60.0,
                 onvif_url: OnvifFn | None = None, onvif_every_s: float = 60.0) -> None:
        from viis.health.monitor import PersistenceRule
        self.app = app
        self.sr_source = sr_source
        self.timecode_cycle = timecode_cycle
        self.rule = rule or PersistenceRule(n=3, m=5, min_s=20.0, clear_n=3)
        self._tolerance_ms = tolerance_ms
        self.record_ms = int(record_s * 1000)
        self.onvif_url = onvif_url
        self.onvif_every_ms = int(onvif_every_s * 1000)
        self._onvif: dict[int, tuple[int, int | None]] = {}  # camera -> (polled ms, offset)
        self._cams: dict[int, _CamClock] = {}
        self._lock = threading.Lock()

    @classmethod
    def attach(cls, app, recorder, monitor, **kw) -> ClockWatch:
        """Watch the cameras of ``recorder`` from the samples of ``monitor``."""
        w = cls(app, sr_source=recorder_sr_source(recorder), **kw)
        monitor.add_observer(w.observe)
        return w

    def tolerance(self, now_ms: int) -> tuple[int, str]:
        if self._tolerance_ms is not None:
            return self._tolerance_ms, "configured"
        day = ms_to_datetime(now_ms).astimezone(SHANGHAI).date()
        lim = self.app.rules.limit("clock_max_offset", day)
        if lim is None:
            return 10_000, "VIIS default; no rule pack sets clock_max_offset"
        return int(lim.value * _UNIT_MS[lim.unit]), f"clock_max_offset, {lim.source}, {', '.join(lim.articles)}"

    # -- measuring --------------------------------------------------------------------------
    def readings(self, camera_id: int, wall_ms: int, luma: np.ndarray | None) -> dict[str, int]:
        """Offsets (camera minus server, ms) available now, by source."""
        out: dict[str, int] = {}
        if self.sr_source is not None:
            sr = self.sr_source(camera_id)
            if sr is not None and time.monotonic() - getattr(sr, "mono", time.monotonic()) <= SR_MAX_AGE_S:
                out["rtcp_sr"] = sr_offset_ms(sr)
        if luma is not None and self.timecode_cycle is not None:
            cycle = self.timecode_cycle(camera_id)
            if cycle:
                off = timecode_offset_ms(luma, wall_ms, cycle)
                if off is not None:
                    out["timecode"] = off
        url = self.onvif_url(camera_id) if self.onvif_url is not None else None
        if url:
            polled, off = self._onvif.get(camera_id, (None, None))
            if polled is None or wall_ms - polled >= self.onvif_every_ms:
                from viis.health.onvif import OnvifError, get_system_date_and_time
                try:
                    off = get_system_date_and_time(url, timeout=2.0,
                                                   clock_ms=self.app.clock.wall_ms).offset_ms
                except OnvifError as e:
                    off = None
                    log.warning("onvif_time_failed", camera_id=camera_id, error=str(e))
                polled = wall_ms
                self._onvif[camera_id] = (polled, off)
            if off is not None and wall_ms - polled < 2 * self.onvif_every_ms:
                out["onvif"] = off
        return out

    def observe(self, camera_id: int, wall_ms: int, luma: np.ndarray | None) -> dict:
        with self._lock:
            cam = self._cams.get(camera_id)
            if cam is None:
                cam = self._cams[camera_id] = _CamClock(self.rule.new())
        raw = self.readings(camera_id, wall_ms, luma)
        if not cam.synced:
            with self.app.db.session() as s:
                cam.rule.active = s.scalar(select(Fault.id).where(
                    Fault.camera_id == camera_id, Fault.kind == KIND,
                    Fault.cleared_ms.is_(None))) is not None
            cam.synced = True
        tol_ms, tol_src = self.tolerance(wall_ms)
        for src, off in raw.items():
            d = cam.readings.setdefault(src, deque(maxlen=3))
            if d and abs(off - statistics.median(d)) > tol_ms:
                d.clear()  # the clock was stepped (set, reset): the median smooths jitter only
            d.append(off)
        offsets = {src: int(statistics.median(d)) for src, d in cam.readings.items()
                   if src in raw}
        epoch = [src for src, off in raw.items() if is_epoch_reset(wall_ms + off)]
        worst = max(offsets.items(), key=lambda kv: abs(kv[1])) if offsets else None
        bad = None if worst is None else bool(epoch) or abs(worst[1]) > tol_ms
        cam.last = {"at_ms": wall_ms, "offsets_ms": offsets, "epoch_reset": epoch,
                    "tolerance_ms": tol_ms, "bad": bad}
        ev = cam.rule.update(bad, wall_ms)
        store = bool(offsets) and (cam.stored_ms is None
                                   or wall_ms - cam.stored_ms >= self.record_ms)
        if store:  # the measured offset per camera and interval (invariant 5)
            cam.stored_ms = wall_ms
            with self.app.db.session() as s:
                for src, off in offsets.items():
                    s.add(ClockReading(camera_id=camera_id, at_ms=wall_ms, source=src,
                                       offset_ms=int(off), epoch_reset=src in epoch))
        if ev:
            with self.app.db.session() as s:
                if ev == "raise":
                    raise_fault(s, KIND, SEVERITY, self._message(worst, offsets, epoch, raw,
                                                                 wall_ms, tol_ms, tol_src),
                                wall_ms, camera_id=camera_id)
                else:
                    clear_fault(s, KIND, wall_ms, camera_id=camera_id)
        return cam.last

    @staticmethod
    def _message(worst, offsets, epoch, raw, wall_ms, tol_ms, tol_src) -> str:
        src, off = worst
        detail = ", ".join(f"{k} {v:+d} ms" for k, v in sorted(offsets.items()))
        if epoch:
            shown = iso_utc(max(0, wall_ms + raw[epoch[0]]))
            return (f"clock_offset: epoch reset, camera clock at {shown} ({epoch[0]}); "
                    f"offset {raw[epoch[0]]:+d} ms; sources: {detail}")
        side = "ahead of" if off > 0 else "behind"
        return (f"clock_offset: offset {off:+d} ms (camera clock {abs(off) / 1000:.1f} s {side} "
                f"the server, from {src}); tolerance {tol_ms} ms ({tol_src}); sources: {detail}")

    def status(self, camera_id: int) -> dict:
        cam = self._cams.get(camera_id)
        return {} if cam is None else {**cam.last, "active": cam.rule.active}


# -- the server's own clock ------------------------------------------------------------------
class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _Timex(ctypes.Structure):
    _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long),
                ("status", ctypes.c_int), ("constant", ctypes.c_long),
                ("precision", ctypes.c_long), ("tolerance", ctypes.c_long),
                ("time", _Timeval), ("tick", ctypes.c_long), ("ppsfreq", ctypes.c_long),
                ("jitter", ctypes.c_long), ("shift", ctypes.c_int), ("stabil", ctypes.c_long),
                ("jitcnt", ctypes.c_long), ("calcnt", ctypes.c_long), ("errcnt", ctypes.c_long),
                ("stbcnt", ctypes.c_long), ("tai", ctypes.c_int), ("_pad", ctypes.c_int * 11)]


STA_UNSYNC = 0x0040
STA_NANO = 0x2000
TIME_ERROR = 5
_STATES = {0: "TIME_OK", 1: "TIME_INS", 2: "TIME_DEL", 3: "TIME_OOP", 4: "TIME_WAIT",
           5: "TIME_ERROR"}


def server_clock_state() -> dict:
    """Whether the kernel considers the system clock synchronised (NTP/chrony/timesyncd all
    discipline it through the kernel), from ``adjtimex(2)`` with ``modes = 0`` (read only,
    needs no privilege). ``synced`` is None when it cannot be read (not Linux)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        tx = _Timex()
        state = libc.adjtimex(ctypes.byref(tx))
    except (OSError, AttributeError) as e:
        return {"source": "adjtimex", "synced": None, "error": str(e)}
    if state < 0:
        return {"source": "adjtimex", "synced": None,
                "error": f"adjtimex failed: errno {ctypes.get_errno()}"}
    unit = 1e-6 if tx.status & STA_NANO else 1e-3
    return {"source": "adjtimex", "state": _STATES.get(state, str(state)),
            "synced": state != TIME_ERROR and not tx.status & STA_UNSYNC,
            "offset_ms": tx.offset * unit, "maxerror_ms": tx.maxerror / 1000,
            "esterror_ms": tx.esterror / 1000, "status": tx.status}
