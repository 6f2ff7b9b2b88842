"""Faults as work (Q19.3: on a fault notify maintenance for repair; if it cannot be repaired
promptly, take a temporary emergency measure that keeps the collection going).

A **ticket** opens automatically when a fault is raised (:func:`viis.health.faults.raise_fault`
calls :meth:`TicketDesk.fault_raised`): camera, kind, message, the evidence snapshot (a JPEG
of the deciding keyframe for video faults, in ``<data_dir>/evidence``), first seen, and a
repair deadline from the rule pack (``fault_repair``; a VIIS default, the text gives no
number). The maintainer is notified (:mod:`viis.health.notify`), acknowledges it (who, when),
records the repair (who, when, note). When the fault clears the ticket is *cleared*; it is
*closed* only after the condition has stayed cleared for ``hold_s`` (a repair verified by the
diagnosis itself); if the fault comes back meanwhile the same ticket is reopened. Past the
repair deadline without a repair the ticket is flagged **overdue** and cannot be closed until
an emergency measure is on record.

Events (``opened``, ``recurred``, ``acknowledged``, ``repaired``, ``emergency``, ``overdue``,
``cleared``, ``closed``) are handed to the desk's notifier after the session commits, never
for a rolled-back change.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, event, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from viis.core.clock import SHANGHAI, iso_utc, ms_to_datetime
from viis.core.db import Base
from viis.core.logging import get_logger

log = get_logger(__name__)

EVENTS = ("opened", "recurred", "acknowledged", "repaired", "emergency", "overdue", "cleared",
          "closed")
_UNIT_MS = {"seconds": 1000, "minutes": 60_000, "hours": 3_600_000, "days": 86_400_000}


class TicketError(ValueError):
    """A ticket action the rules refuse (e.g. closing before the hold time)."""


class FaultTicket(Base):
    __tablename__ = "fault_tickets"
    __table_args__ = (Index("ix_fault_tickets_camera_kind", "camera_id", "kind"),
                      Index("ix_fault_tickets_closed_ms", "closed_ms"))

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    fault_id: Mapped[int | None] = mapped_column(ForeignKey("faults.id", ondelete="RESTRICT"))
    camera_id: Mapped[int | None] = mapped_column(ForeignKey("cameras.id", ondelete="RESTRICT"))
    kind: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    evidence_path: Mapped[str | None] = mapped_column(String(1024))
    evidence_sha256: Mapped[str | None] = mapped_column(String(64))
    first_seen_ms: Mapped[int] = mapped_column()
    notified_ms: Mapped[int | None] = mapped_column()
    repair_due_ms: Mapped[int] = mapped_column()
    repair_limit: Mapped[str] = mapped_column(String(200))  # "72 hours (default, Q19.3)"
    acked_ms: Mapped[int | None] = mapped_column()
    acked_by: Mapped[str | None] = mapped_column(String(200))
    repaired_ms: Mapped[int | None] = mapped_column()
    repaired_by: Mapped[str | None] = mapped_column(String(200))
    repair_note: Mapped[str | None] = mapped_column(Text)
    emergency_ms: Mapped[int | None] = mapped_column()
    emergency_by: Mapped[str | None] = mapped_column(String(200))
    emergency_measure: Mapped[str | None] = mapped_column(Text)
    overdue: Mapped[bool] = mapped_column(Boolean, default=False)
    overdue_ms: Mapped[int | None] = mapped_column()
    cleared_ms: Mapped[int | None] = mapped_column()  # condition gone (None while present)
    recurrences: Mapped[int] = mapped_column(Integer, default=0)
    closed_ms: Mapped[int | None] = mapped_column()
    resolution: Mapped[str | None] = mapped_column(Text)

    @property
    def status(self) -> str:
        if self.closed_ms is not None:
            return "closed"
        if self.cleared_ms is not None:
            return "cleared"
        if self.repaired_ms is not None:
            return "repaired"
        if self.acked_ms is not None:
            return "acknowledged"
        return "open"

    def as_dict(self) -> dict:
        return {"id": self.id, "camera_id": self.camera_id, "kind": self.kind,
                "severity": self.severity, "message": self.message, "status": self.status,
                "first_seen": iso_utc(self.first_seen_ms),
                "repair_due": iso_utc(self.repair_due_ms), "repair_limit": self.repair_limit,
                "overdue": bool(self.overdue), "evidence": bool(self.evidence_path),
                "acked_by": self.acked_by, "repaired_by": self.repaired_by,
                "repair_note": self.repair_note, "emergency_measure": self.emergency_measure,
                "recurrences": self.recurrences, "resolution": self.resolution}


@dataclass
class TicketEvent:
    event: str
    ticket: dict
    camera_uid: str | None
    at_ms: int

    def as_dict(self) -> dict:
        return {"event": self.event, "at": iso_utc(self.at_ms), "at_ms": self.at_ms,
                "camera": self.camera_uid, "ticket": self.ticket}


# -- the desk: policy, evidence store, notifier; one per database ------------------------
_DESKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def desk_for(s: Session) -> TicketDesk | None:
    bind = s.get_bind()
    return _DESKS.get(getattr(bind, "engine", bind))


class TicketDesk:
    """Ticket policy of one application. Creating it attaches it to the app's database, so
    every fault raised through :mod:`viis.health.faults` on that database opens a ticket."""

    def __init__(self, app, notifier=None, *, hold_s: float = 600.0,
                 evidence_dir: Path | None = None) -> None:
        self.app = app
        self.notifier = notifier
        self.hold_ms = int(hold_s * 1000)
        self.evidence_dir = Path(evidence_dir or app.settings.data_dir / "evidence").resolve()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        _DESKS[app.db.engine] = self

    def detach(self) -> None:
        if _DESKS.get(self.app.db.engine) is self:
            del _DESKS[self.app.db.engine]

    # -- policy ----------------------------------------------------------------------------
    def repair_limit(self, now_ms: int) -> tuple[int, str]:
        """Repair deadline (ms after first seen) and its description, from the rule packs."""
        day = ms_to_datetime(now_ms).astimezone(SHANGHAI).date()
        lim = self.app.rules.limit("fault_repair", day)
        if lim is None:
            return 72 * 3_600_000, "72 hours (VIIS default; no rule pack sets fault_repair)"
        ms = int(lim.value * _UNIT_MS[lim.unit])
        return ms, f"{lim.value:g} {lim.unit} ({lim.source}, {', '.join(lim.articles)}, {lim.pack})"

    def store_evidence(self, data: bytes, camera_id: int | None, kind: str,
                       now_ms: int) -> tuple[str, str]:
        digest = hashlib.sha256(data).hexdigest()
        folder = self.evidence_dir / (str(camera_id) if camera_id is not None else "system")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{now_ms}-{kind}-{digest[:12]}.jpg"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        return str(path), digest

    # -- hooks from faults.py (inside the caller's session) --------------------------------
    def fault_raised(self, s: Session, fault, evidence: bytes | None, now_ms: int) -> FaultTicket:
        t = s.scalar(_live_q(fault.kind, fault.camera_id))
        if t is not None:  # came back before the ticket closed: same work item
            t.cleared_ms = None
            t.recurrences += 1
            t.fault_id, t.message, t.severity = fault.id, fault.message, fault.severity
            if evidence:
                t.evidence_path, t.evidence_sha256 = self.store_evidence(
                    evidence, fault.camera_id, fault.kind, now_ms)
            s.flush()
            emit(s, t, "recurred", now_ms)
            return t
        due, desc = self.repair_limit(now_ms)
        path = digest = None
        if evidence:
            path, digest = self.store_evidence(evidence, fault.camera_id, fault.kind, now_ms)
        t = FaultTicket(fault_id=fault.id, camera_id=fault.camera_id, kind=fault.kind,
                        severity=fault.severity, message=fault.message, evidence_path=path,
                        evidence_sha256=digest, first_seen_ms=fault.opened_ms,
                        repair_due_ms=fault.opened_ms + due, repair_limit=desc,
                        overdue=False, recurrences=0)
        s.add(t)
        s.flush()
        log.warning("ticket_opened", ticket=t.id, kind=t.kind, camera_id=t.camera_id)
        emit(s, t, "opened", now_ms)
        return t

    def fault_cleared(self, s: Session, kind: str, camera_id: int | None, now_ms: int) -> None:
        t = s.scalar(_live_q(kind, camera_id))
        if t is not None and t.cleared_ms is None:
            t.cleared_ms = now_ms
            s.flush()
            emit(s, t, "cleared", now_ms)

    # -- deadlines and closing ----------------------------------------------------------------
    def sweep(self, now_ms: int | None = None) -> dict[str, int]:
        """Flag overdue tickets; close those cleared for the hold time. Idempotent."""
        now_ms = self.app.clock.wall_ms() if now_ms is None else now_ms
        out = {"overdue": 0, "closed": 0}
        with self.app.db.session() as s:
            for t in s.scalars(select(FaultTicket).where(FaultTicket.closed_ms.is_(None))):
                if not t.overdue and t.repaired_ms is None and now_ms >= t.repair_due_ms:
                    t.overdue, t.overdue_ms = True, now_ms
                    out["overdue"] += 1
                    log.warning("ticket_overdue", ticket=t.id, kind=t.kind, camera_id=t.camera_id)
                    emit(s, t, "overdue", now_ms)
                if (t.cleared_ms is not None and now_ms - t.cleared_ms >= self.hold_ms
                        and (not t.overdue or t.emergency_measure)):
                    _close(s, t, now_ms)
                    out["closed"] += 1
        return out

    def start(self, interval_s: float = 60.0) -> None:
        """Sweep every ``interval_s`` in a daemon thread (``viis run``)."""
        def loop():
            while not self._stop.wait(interval_s):
                try:
                    self.sweep()
                except Exception:
                    log.exception("ticket_sweep_failed")
        self._thread = threading.Thread(target=loop, name="viis-tickets", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    # -- after commit: hand the events to the notifier ------------------------------------------
    def dispatch(self, events: list[TicketEvent]) -> None:
        if self.notifier is None:
            return
        for ev in events:
            self.notifier.send(ev)
        if any(ev.event == "opened" for ev in events):
            ids = [ev.ticket["id"] for ev in events if ev.event == "opened"]
            now = self.app.clock.wall_ms()
            with self.app.db.session() as s:
                for t in s.scalars(select(FaultTicket).where(FaultTicket.id.in_(ids))):
                    t.notified_ms = t.notified_ms or now


def _live_q(kind: str, camera_id: int | None):
    q = select(FaultTicket).where(FaultTicket.kind == kind, FaultTicket.closed_ms.is_(None))
    return q.where(FaultTicket.camera_id.is_(None) if camera_id is None
                   else FaultTicket.camera_id == camera_id)


def _close(s: Session, t: FaultTicket, now_ms: int, by: str | None = None) -> None:
    how = "repaired, verified" if t.repaired_ms is not None else "cleared without a recorded repair"
    t.closed_ms = now_ms
    t.resolution = (f"{how}: condition absent for {(now_ms - t.cleared_ms) / 1000:.0f} s"
                    + (f"; closed by {by}" if by else ""))
    s.flush()
    log.info("ticket_closed", ticket=t.id, kind=t.kind, camera_id=t.camera_id)
    emit(s, t, "closed", now_ms)


# -- events: queued on the session, dispatched after a successful commit -----------------------
_KEY = "viis_ticket_events"


def emit(s: Session, t: FaultTicket, name: str, now_ms: int) -> None:
    assert name in EVENTS
    uid = None
    if t.camera_id is not None:
        from viis.registry.models import Camera
        cam = s.get(Camera, t.camera_id)
        uid = getattr(cam, "uid", None)
    pending = s.info.setdefault(_KEY, [])
    pending.append(TicketEvent(name, t.as_dict(), uid, now_ms))
    if not s.info.get(_KEY + "_hooked"):
        s.info[_KEY + "_hooked"] = True
        event.listen(s, "after_commit", _after_commit)
        event.listen(s, "after_rollback", _after_rollback)


def _after_commit(s: Session) -> None:
    events = s.info.pop(_KEY, [])
    if not events:
        return
    desk = desk_for(s)
    if desk is not None:
        try:
            desk.dispatch(events)
        except Exception:
            log.exception("ticket_dispatch_failed")


def _after_rollback(s: Session) -> None:
    s.info.pop(_KEY, None)


# -- maintainer actions --------------------------------------------------------------------------
def _get(s: Session, ticket_id: int) -> FaultTicket:
    t = s.get(FaultTicket, ticket_id)
    if t is None:
        raise TicketError(f"no ticket {ticket_id}")
    if t.closed_ms is not None:
        raise TicketError(f"ticket {ticket_id} is closed")
    return t


def acknowledge(s: Session, ticket_id: int, by: str, now_ms: int) -> FaultTicket:
    t = _get(s, ticket_id)
    if not by.strip():
        raise TicketError("who acknowledges must be named")
    if t.acked_ms is None:
        t.acked_ms, t.acked_by = now_ms, by
        s.flush()
        emit(s, t, "acknowledged", now_ms)
    return t


def record_repair(s: Session, ticket_id: int, by: str, note: str, now_ms: int) -> FaultTicket:
    t = _get(s, ticket_id)
    if not by.strip() or not note.strip():
        raise TicketError("a repair needs who and a note")
    if t.acked_ms is None:
        t.acked_ms, t.acked_by = now_ms, by
    t.repaired_ms, t.repaired_by, t.repair_note = now_ms, by, note
    s.flush()
    emit(s, t, "repaired", now_ms)
    return t


def record_emergency_measure(s: Session, ticket_id: int, by: str, measure: str,
                             now_ms: int) -> FaultTicket:
    """The temporary measure that keeps the collection going while the repair waits (Q19.3),
    e.g. "spare camera mounted on the same pole, streams as cam-12b"."""
    t = _get(s, ticket_id)
    if not by.strip() or not measure.strip():
        raise TicketError("an emergency measure needs who and what")
    t.emergency_ms, t.emergency_by, t.emergency_measure = now_ms, by, measure
    s.flush()
    emit(s, t, "emergency", now_ms)
    return t


def close(s: Session, ticket_id: int, by: str, now_ms: int) -> FaultTicket:
    """Close by hand: only when the condition has been cleared for the hold time, and for an
    overdue ticket only with an emergency measure on record (Q19.3)."""
    t = _get(s, ticket_id)
    desk = desk_for(s)
    hold = desk.hold_ms if desk else 0
    if t.cleared_ms is None:
        raise TicketError(f"ticket {t.id}: the fault is still present")
    if now_ms - t.cleared_ms < hold:
        raise TicketError(f"ticket {t.id}: cleared {(now_ms - t.cleared_ms) / 1000:.0f} s ago; "
                          f"closes after {hold / 1000:.0f} s without the fault")
    if t.overdue and not t.emergency_measure:
        raise TicketError(f"ticket {t.id} is overdue: record the emergency measure taken (Q19.3)")
    _close(s, t, now_ms, by)
    return t


def tickets(s: Session, *, camera_id: int | None = None, open_only: bool = False) -> list[FaultTicket]:
    q = select(FaultTicket).order_by(FaultTicket.id)
    if camera_id is not None:
        q = q.where(FaultTicket.camera_id == camera_id)
    if open_only:
        q = q.where(FaultTicket.closed_ms.is_(None))
    return list(s.scalars(q))


def repair_window(t: FaultTicket) -> timedelta:
    return timedelta(milliseconds=t.repair_due_ms - t.first_seen_ms)
