"""Open and clear faults. One open fault per (kind, camera): raising it again is a no-op,
so a condition that persists does not flood the list. When a
:class:`viis.health.tickets.TicketDesk` is attached to the database, raising a fault opens
(or reopens) its ticket and clearing it marks the ticket cleared, in the same transaction
(Q19.3: faults are notified, repaired, and tracked to closure)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from viis.core.logging import get_logger
from viis.core.metrics import faults_open
from viis.health import tickets
from viis.health.models import Fault

log = get_logger(__name__)
SEVERITIES = ("info", "warning", "critical")


def _open_q(kind: str, camera_id: int | None):
    q = select(Fault).where(Fault.kind == kind, Fault.cleared_ms.is_(None))
    return q.where(Fault.camera_id.is_(None) if camera_id is None else Fault.camera_id == camera_id)


def raise_fault(s: Session, kind: str, severity: str, message: str, now_ms: int,
                camera_id: int | None = None, evidence: bytes | None = None) -> Fault:
    """``evidence``: a JPEG of what showed the fault (kept with the ticket)."""
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}")
    existing = s.scalar(_open_q(kind, camera_id))
    if existing is not None:
        if existing.severity != severity or existing.message != message:
            existing.severity, existing.message = severity, message
        return existing
    f = Fault(camera_id=camera_id, kind=kind, severity=severity, message=message, opened_ms=now_ms)
    s.add(f)
    s.flush()
    log.warning("fault_raised", kind=kind, severity=severity, camera_id=camera_id, message=message)
    _update_gauge(s)
    desk = tickets.desk_for(s)
    if desk is not None:
        desk.fault_raised(s, f, evidence, now_ms)
    return f


def clear_fault(s: Session, kind: str, now_ms: int, camera_id: int | None = None) -> bool:
    f = s.scalar(_open_q(kind, camera_id))
    if f is None:
        return False
    f.cleared_ms = now_ms
    s.flush()
    log.info("fault_cleared", kind=kind, camera_id=camera_id)
    _update_gauge(s)
    desk = tickets.desk_for(s)
    if desk is not None:
        desk.fault_cleared(s, kind, camera_id, now_ms)
    return True


def open_faults(s: Session) -> list[Fault]:
    return list(s.scalars(select(Fault).where(Fault.cleared_ms.is_(None)).order_by(Fault.id)))


def _update_gauge(s: Session) -> None:
    counts = dict(s.execute(select(Fault.severity, func.count()).where(
        Fault.cleared_ms.is_(None)).group_by(Fault.severity)).all())
    for sev in SEVERITIES:
        faults_open.labels(sev).set(counts.get(sev, 0))
