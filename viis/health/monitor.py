"""Camera health from the recorder's own keyframes (invariant 6: the recorder is the only
client of a camera). ``HealthMonitor`` registers a keyframe tap, keeps at most one keyframe
per camera and interval, diagnoses it in a worker thread (:mod:`viis.health.vqd`), applies
the persistence rule per fault kind and opens/clears faults (Q19.3, Q18.1/Q18.2, N23.1).

Time for persistence is the keyframe's wall time from the recorder (never a sleep), so a
test or a replay drives it; the injectable ``clock`` only stamps samples that come without
a wall time, and is the time of :meth:`HealthMonitor.check_signal` (signal loss: no
keyframe for ``loss_s``), which ``viis run`` calls periodically.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import select

from viis.core.logging import get_logger
from viis.health import snapshot, vqd
from viis.health.faults import clear_fault, raise_fault
from viis.health.models import Fault

log = get_logger(__name__)

Roi = tuple[int, int, int, int]
RoiFn = Callable[[int, int, int], Roi | None]  # (camera_id, width, height) -> box or None
# (camera_id, keyframe wall ms, full luma plane) -> None; called in the worker thread
Observer = Callable[[int, int, "np.ndarray"], None]


@dataclass(frozen=True)
class PersistenceRule:
    """N bad of the last M samples, the first at least ``min_s`` old; clear after
    ``clear_n`` good samples in a row. Default: at one sample per 10 s, 4 of 6 lasting
    30 s, cleared after 30 s of good pictures."""

    n: int = 4
    m: int = 6
    min_s: float = 30.0
    clear_n: int = 3

    def new(self) -> vqd.Persistence:
        return vqd.Persistence(n=self.n, m=self.m, min_ms=int(self.min_s * 1000),
                               clear_n=self.clear_n)


@dataclass
class _Cam:
    judge: vqd.CameraJudge
    loss: vqd.SignalLoss
    seen_ms: int = 0  # wall time of the last keyframe (any, not only the sampled ones)
    size: tuple[int, int] | None = None
    anchor_ms: int | None = None
    slot: int | None = None
    busy: bool = False
    synced: bool = False  # open faults of an earlier run loaded into the rules
    retake: bool = False  # learn the reference again at the next sample
    last: dict[str, float] = field(default_factory=dict)
    last_ms: int | None = None


class HealthMonitor:
    def __init__(self, app, recorder, interval_s: float = 10.0, clock=None, *,
                 config: vqd.VqdConfig | None = None, rule: PersistenceRule | None = None,
                 roi: RoiFn | None = None, workers: int = 1,
                 observers: list[Observer] | None = None, loss_s: float | None = None) -> None:
        self.app = app
        self.recorder = recorder
        self.clock = clock or app.clock
        self.interval_ms = int(interval_s * 1000)
        # no keyframe for this long is a signal loss (default: three intervals, at least 30 s)
        self.loss_ms = int((loss_s if loss_s is not None else max(30.0, 3 * interval_s)) * 1000)
        self._started_ms = self.clock.wall_ms()
        self.config = config or vqd.VqdConfig()
        self.rule = rule or PersistenceRule()
        self.roi = roi
        self.observers: list[Observer] = list(observers or [])
        self._cams: dict[int, _Cam] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="viis-vqd")
        self._closed = False
        self._idle = threading.Condition(self._lock)
        self._inflight = 0
        # cost accounting (worker-thread CPU time)
        self.samples = 0
        self.skipped = 0
        self.errors = 0
        self.cpu_s = 0.0
        recorder.add_keyframe_tap(self._tap)

    # -- event loop side: must return quickly ------------------------------------------
    def _tap(self, camera_id: int, wall_ms: int | None, codec: str, nals) -> None:
        if self._closed:
            return
        if wall_ms is None:
            wall_ms = self.clock.wall_ms()
        with self._lock:
            cam = self._cams.get(camera_id)
            if cam is None:
                cam = self._cams[camera_id] = self._new_cam()
            cam.seen_ms = max(cam.seen_ms, wall_ms)
            if cam.loss.active:  # pictures again: clear the signal loss (off the loop)
                cam.loss.active = False
                self._pool.submit(self._clear_loss, camera_id, wall_ms)
            if cam.anchor_ms is None:
                cam.anchor_ms = wall_ms - self.interval_ms // 2
            # one sample per interval slot; the slot is anchored half an interval before the
            # first keyframe seen, so keyframe jitter does not straddle a slot boundary
            slot = (wall_ms - cam.anchor_ms) // self.interval_ms
            if cam.slot is not None and slot <= cam.slot:
                return
            if cam.busy:
                self.skipped += 1
                return
            cam.slot, cam.busy = slot, True
            self._inflight += 1
        self._pool.submit(self._work, camera_id, cam, wall_ms, codec, list(nals))

    def _new_cam(self) -> _Cam:
        return _Cam(vqd.CameraJudge(self.config, self.rule.new), vqd.SignalLoss(self.loss_ms))

    # -- worker thread ------------------------------------------------------------------
    def _work(self, camera_id: int, cam: _Cam, wall_ms: int, codec: str, nals) -> None:
        t0 = time.thread_time()
        try:
            self._diagnose(camera_id, cam, wall_ms, codec, nals)
        except Exception:
            self.errors += 1
            log.exception("vqd_failed", camera_id=camera_id)
        finally:
            dt = time.thread_time() - t0
            with self._lock:
                self.cpu_s += dt
                self.samples += 1
                cam.busy = False
                self._inflight -= 1
                self._idle.notify_all()

    def _diagnose(self, camera_id: int, cam: _Cam, wall_ms: int, codec: str, nals) -> None:
        luma, u, v = vqd.decode_keyframe_yuv(codec, nals)
        for obs in self.observers:  # e.g. the clock watch reading the burnt-in time code
            try:
                obs(camera_id, wall_ms, luma)
            except Exception:
                log.exception("health_observer_failed", camera_id=camera_id)
        h, w = luma.shape
        diag = cam.judge.diag
        if cam.size != (w, h):
            cam.size = (w, h)
            diag.roi = self.roi(camera_id, w, h) if self.roi else None
            diag.retake_reference()
            diag.prev = None
        if cam.retake:
            cam.retake = False
            diag.retake_reference()
        if not cam.synced:
            self._load_open(camera_id, cam)
        sample, events = cam.judge.step(luma, wall_ms, u, v)
        cam.last = {k: x.score for k, x in sample.verdicts.items() if x is not None}
        cam.last_ms = wall_ms
        if events:
            evidence = None
            if any(ev == "raise" for ev, _k, _v in events):
                try:  # the keyframe that decided, kept with the ticket (Q19.3)
                    evidence = snapshot.jpeg(luma)
                except Exception:
                    log.exception("snapshot_failed", camera_id=camera_id)
            with self.app.db.session() as s:
                for ev, kind, verdict in events:
                    if ev == "raise":
                        raise_fault(s, kind, vqd.SEVERITY[kind], verdict.message(), wall_ms,
                                    camera_id=camera_id, evidence=evidence)
                    else:
                        clear_fault(s, kind, wall_ms, camera_id=camera_id)

    def _load_open(self, camera_id: int, cam: _Cam) -> None:
        """Faults left open by an earlier run clear once the picture is good again."""
        with self.app.db.session() as s:
            kinds = set(s.scalars(select(Fault.kind).where(
                Fault.camera_id == camera_id, Fault.cleared_ms.is_(None),
                Fault.kind.in_(vqd.ALL_KINDS))))
        if vqd.SIGNAL_LOSS in kinds:  # a keyframe has just arrived: the signal is back
            kinds.discard(vqd.SIGNAL_LOSS)
            self._clear_loss(camera_id, cam.seen_ms)
        for k in kinds:
            cam.judge.rules[k].active = True
        cam.synced = True

    # -- signal loss (no packets) -----------------------------------------------------------
    def check_signal(self, now_ms: int | None = None) -> list[int]:
        """Raise ``video_signal_loss`` for every camera of the recorder that sent no keyframe
        for ``loss_s`` (a camera never seen counts from the monitor's start); it clears at
        the next keyframe. Returns the cameras newly lost. Called periodically by ``viis
        run``; tests call it with a driven time."""
        now_ms = self.clock.wall_ms() if now_ms is None else now_ms
        lost: list[tuple[int, int]] = []
        with self._lock:
            ids = set(self._cams)
            for cid, cr in getattr(self.recorder, "cameras", {}).items():
                if not getattr(cr, "paused", None):
                    ids.add(cid)
            for cid in ids:
                cam = self._cams.get(cid)
                if cam is None:
                    cam = self._cams[cid] = self._new_cam()
                    cam.seen_ms = self._started_ms
                if cam.loss.update(now_ms, cam.seen_ms) == "raise":
                    lost.append((cid, cam.seen_ms))
        if lost:
            with self.app.db.session() as s:
                for cid, seen in lost:
                    raise_fault(s, vqd.SIGNAL_LOSS, vqd.SEVERITY[vqd.SIGNAL_LOSS],
                                f"{vqd.SIGNAL_LOSS}: score {(now_ms - seen) / 1000:.1f} (threshold "
                                f"{self.loss_ms / 1000:g}); seconds without a keyframe from the "
                                "camera", now_ms, camera_id=cid)
        return [cid for cid, _ in lost]

    def _clear_loss(self, camera_id: int, wall_ms: int) -> None:
        try:
            with self.app.db.session() as s:
                clear_fault(s, vqd.SIGNAL_LOSS, wall_ms, camera_id=camera_id)
        except Exception:
            log.exception("signal_loss_clear_failed", camera_id=camera_id)

    # -- control ------------------------------------------------------------------------
    def add_observer(self, fn: Observer) -> None:
        """``fn(camera_id, wall_ms, luma)`` sees every decoded sample (worker thread)."""
        self.observers.append(fn)

    def retake_reference(self, camera_id: int) -> None:
        """Learn the camera's reference again from its next healthy samples (after a
        deliberate re-aim or a new lens); done by the worker, between two diagnoses."""
        with self._lock:
            cam = self._cams.get(camera_id)
            if cam is not None:
                cam.retake = True

    def status(self, camera_id: int) -> dict:
        cam = self._cams.get(camera_id)
        if cam is None:
            return {"samples": 0}
        active = sorted(k for k, r in cam.judge.rules.items() if r.active)
        if cam.loss.active:
            active.append(vqd.SIGNAL_LOSS)
        return {"last_ms": cam.last_ms, "scores": dict(cam.last),
                "reference": cam.judge.diag.reference is not None, "active": active}

    def cost(self) -> dict:
        """CPU seconds per diagnosis and the resulting core share per camera at the interval."""
        per = self.cpu_s / self.samples if self.samples else 0.0
        return {"samples": self.samples, "cpu_s": self.cpu_s, "cpu_per_sample_s": per,
                "core_per_camera": per / (self.interval_ms / 1000)}

    def drain(self, timeout: float = 10.0) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._inflight == 0, timeout)

    def close(self) -> None:
        self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)
