"""Disk capacity: measured write rates, a forecast of days until full, and whether every
camera's retention can be met (Q19.7, N17.1; invariant 1).

When the store runs short the answer is never to delete in-retention footage: a critical
fault is raised and the recorder stops the lowest-priority streams (see recorder.DiskGuard).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from viis.core.clock import DAY_MS
from viis.media.models import Segment
from viis.registry.models import Camera

RATE_WINDOW_MS = 3_600_000


@dataclass
class Forecast:
    free_bytes: int
    total_bytes: int
    reserve_bytes: int
    footage_bytes: int
    write_bytes_per_s: float
    days_until_full: float | None  # None when nothing is being written
    retention_need_bytes: int      # more bytes needed to hold every camera's full retention
    retention_ok: bool
    level: str                     # ok, warning, critical
    message: str

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def disk_usage(root: Path) -> tuple[int, int]:
    st = os.statvfs(root)
    return st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize


def forecast(s: Session, root: Path, now_ms: int, *, reserve_bytes: int,
             warn_days: float) -> Forecast:
    free, total = disk_usage(root)
    since = now_ms - RATE_WINDOW_MS
    rows = s.execute(select(
        Segment.camera_id, func.sum(Segment.bytes), func.min(Segment.start_ms), func.max(Segment.end_ms),
    ).where(Segment.end_ms > since).group_by(Segment.camera_id)).all()
    stored = dict(s.execute(select(Segment.camera_id, func.sum(Segment.bytes))
                            .where(Segment.removed_ms.is_(None)).group_by(Segment.camera_id)).all())
    days = dict(s.execute(select(Camera.id, Camera.retention_days)).all())
    rate_total = 0.0
    need = 0
    for cam_id, nbytes, t0, t1 in rows:
        span_s = max((t1 - t0) / 1000.0, 1.0)
        rate = float(nbytes or 0) / span_s
        rate_total += rate
        need += max(0, int(rate * days.get(cam_id, 30) * DAY_MS / 1000) - int(stored.get(cam_id, 0) or 0))
    usable = free - reserve_bytes
    days_full = (usable / (rate_total * 86400.0)) if rate_total > 0 else None
    ok = need <= usable
    if free < reserve_bytes:
        level = "critical"
        msg = (f"segment store has {free // 2**20} MiB free, below the reserve of "
               f"{reserve_bytes // 2**20} MiB: lowest-priority streams are stopped; no footage "
               "inside retention is deleted. Add storage or lower the number of streams.")
    elif not ok or (days_full is not None and days_full < warn_days and need > 0):
        level = "warning"
        msg = (f"at {rate_total * 8 / 1e6:.1f} Mbit/s the store fills in "
               f"{days_full if days_full is not None else float('inf'):.1f} days; keeping every "
               f"camera's retention needs {need // 2**30} GiB more than the {max(usable, 0) // 2**30}"
               " GiB free. Add storage before recording stops.")
    else:
        level, msg = "ok", "capacity suffices for every camera's retention"
    return Forecast(free, total, reserve_bytes, int(sum(stored.values() or [0]) or 0), rate_total,
                    days_full, need, ok, level, msg)
