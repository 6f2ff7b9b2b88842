"""Per-camera health for the console's health wall and its history charts (Q19.3 keep the
system running, faults repaired; the availability the inspectors ask about).

* **Availability** of a camera over a span = recorded time (live segments, clipped to the
  span) / span, from the segment index, so it is what was actually stored, not what a
  probe saw. Per day for the charts (Asia/Shanghai calendar days, invariant 5).
* **Status** = the worst severity of its open faults (``ok`` when none).
* **Fault history** = its faults (opened, cleared, message) and tickets.
* **Clock** = the latest stored readings (:class:`viis.health.models.ClockReading`) and the
  RTCP offset of its latest segment.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from viis.core.clock import SHANGHAI, iso_utc, ms_to_datetime
from viis.health.models import ClockReading, Fault
from viis.health.tickets import FaultTicket
from viis.media.models import Segment

DAY_MS = 86_400_000
_RANK = {"info": 1, "warning": 2, "critical": 3}


def recorded_ms(s: Session, camera_id: int, since_ms: int, until_ms: int) -> int:
    """Milliseconds of [since, until) covered by the camera's live segments."""
    rows = s.execute(select(Segment.start_ms, Segment.end_ms).where(
        Segment.camera_id == camera_id, Segment.removed_ms.is_(None),
        Segment.end_ms > since_ms, Segment.start_ms < until_ms).order_by(Segment.start_ms)).all()
    total, cursor = 0, since_ms
    for start, end in rows:  # segments do not overlap; clip and guard anyway
        a, b = max(start, cursor), min(end, until_ms)
        if b > a:
            total += b - a
            cursor = b
    return total


def availability(s: Session, camera_id: int, since_ms: int, until_ms: int) -> float | None:
    span = until_ms - since_ms
    return None if span <= 0 else round(recorded_ms(s, camera_id, since_ms, until_ms) / span, 4)


def daily_availability(s: Session, camera_id: int, now_ms: int, days: int) -> list[dict]:
    """One entry per Asia/Shanghai day, oldest first, the current day up to ``now``."""
    today = ms_to_datetime(now_ms).astimezone(SHANGHAI).date()
    out = []
    for i in range(days - 1, -1, -1):
        d = today - timedelta(days=i)
        start = int(datetime(d.year, d.month, d.day, tzinfo=SHANGHAI).timestamp() * 1000)
        end = min(start + DAY_MS, now_ms)
        out.append({"day": d.isoformat(), "availability": availability(s, camera_id, start, end)})
    return out


def _fault_view(f: Fault) -> dict:
    return {"id": f.id, "kind": f.kind, "severity": f.severity, "message": f.message,
            "opened": iso_utc(f.opened_ms), "opened_ms": f.opened_ms,
            "cleared": iso_utc(f.cleared_ms) if f.cleared_ms is not None else None,
            "cleared_ms": f.cleared_ms}


def latest_clock(s: Session, camera_id: int) -> dict:
    out: dict = {}
    last = s.execute(select(ClockReading.source, func.max(ClockReading.at_ms)).where(
        ClockReading.camera_id == camera_id).group_by(ClockReading.source)).all()
    for src, at in last:
        r = s.scalar(select(ClockReading).where(ClockReading.camera_id == camera_id,
                                                ClockReading.source == src,
                                                ClockReading.at_ms == at).limit(1))
        out[src] = {"offset_ms": r.offset_ms, "at": iso_utc(r.at_ms), "epoch_reset": r.epoch_reset}
    seg = s.scalar(select(Segment).where(Segment.camera_id == camera_id,
                                         Segment.clock_offset_ms.is_not(None))
                   .order_by(Segment.start_ms.desc()).limit(1))
    if seg is not None:
        out["segment_rtcp_sr"] = {"offset_ms": seg.clock_offset_ms, "at": iso_utc(seg.start_ms)}
    return out


def camera_summary(s: Session, cam, now_ms: int, live: dict | None = None) -> dict:
    """One tile of the health wall."""
    open_faults = list(s.scalars(select(Fault).where(Fault.camera_id == cam.id,
                                                     Fault.cleared_ms.is_(None)).order_by(Fault.id)))
    worst = max((f.severity for f in open_faults), key=lambda x: _RANK.get(x, 0), default=None)
    tickets_open = s.scalar(select(func.count()).select_from(FaultTicket).where(
        FaultTicket.camera_id == cam.id, FaultTicket.closed_ms.is_(None))) or 0
    overdue = s.scalar(select(func.count()).select_from(FaultTicket).where(
        FaultTicket.camera_id == cam.id, FaultTicket.closed_ms.is_(None),
        FaultTicket.overdue.is_(True))) or 0
    last_end = s.scalar(select(func.max(Segment.end_ms)).where(Segment.camera_id == cam.id,
                                                              Segment.removed_ms.is_(None)))
    return {"id": cam.id, "uid": cam.uid, "name": cam.name, "site": cam.site,
            "enabled": cam.enabled, "status": worst or "ok",
            "open_faults": [_fault_view(f) for f in open_faults],
            "open_tickets": tickets_open, "overdue_tickets": overdue,
            "availability_24h": availability(s, cam.id, now_ms - DAY_MS, now_ms),
            "last_recorded": iso_utc(last_end) if last_end else None,
            "clock": latest_clock(s, cam.id), "diagnosis": live or None}


def camera_history(s: Session, cam, now_ms: int, days: int = 30) -> dict:
    since = now_ms - days * DAY_MS
    faults = list(s.scalars(select(Fault).where(
        Fault.camera_id == cam.id,
        (Fault.cleared_ms.is_(None)) | (Fault.cleared_ms >= since)).order_by(Fault.opened_ms)))
    tickets = list(s.scalars(select(FaultTicket).where(
        FaultTicket.camera_id == cam.id,
        (FaultTicket.closed_ms.is_(None)) | (FaultTicket.closed_ms >= since))
        .order_by(FaultTicket.id)))
    clock = list(s.scalars(select(ClockReading).where(
        ClockReading.camera_id == cam.id, ClockReading.at_ms >= since)
        .order_by(ClockReading.at_ms.desc()).limit(2000)))
    return {"id": cam.id, "uid": cam.uid, "name": cam.name, "days": days,
            "availability": availability(s, cam.id, since, now_ms),
            "daily": daily_availability(s, cam.id, now_ms, days),
            "faults": [_fault_view(f) for f in faults],
            "tickets": [t.as_dict() for t in tickets],
            "clock": [{"at": iso_utc(r.at_ms), "source": r.source, "offset_ms": r.offset_ms,
                       "epoch_reset": r.epoch_reset} for r in reversed(clock)]}
