"""Retention and holds: the only code path that removes footage (invariant 1).

A segment is removed only when its retention has passed (``retain_until_ms``, fixed when it
was indexed from the camera's retention, never below the rule packs' minimum: Q19.7,
N17.1) and no active hold covers it. Removal keeps the index row as a tombstone so the
hash chain stays whole and every removal is on record.

Removal procedure (crash-safe, see docs/design/storage.md):
 1. mark the row removed (``removed_ms``, reason) and commit;
 2. unlink the file;
 3. fsync the directory.
At start-up :func:`finish_removals` unlinks files whose rows were marked but not unlinked.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from viis.compliance.rulepack import RuleBook
from viis.core.clock import DAY_MS, SHANGHAI, Clock, iso_utc, ms_to_datetime
from viis.core.db import Database
from viis.core.errors import NotFound, ValidationFailed
from viis.core.logging import get_logger
from viis.core.metrics import segments_removed
from viis.integrity.audit import AuditLog
from viis.media.models import Hold, Segment
from viis.registry.models import Camera

log = get_logger(__name__)
MAX_TEXT = 2000


def place_hold(s: Session, *, camera_id: int | None, start_ms: int, end_ms: int, reason: str,
               owner: str, legal_basis: str = "", now_ms: int) -> Hold:
    """Evidence lock on a camera (or all cameras) and time range."""
    if end_ms <= start_ms:
        raise ValidationFailed("a hold must end after it starts", field="end_ms")
    if not reason or not reason.strip():
        raise ValidationFailed("a hold needs a reason", field="reason")
    if not owner or not owner.strip():
        raise ValidationFailed("a hold needs an owner", field="owner")
    if len(reason) > MAX_TEXT or len(owner) > 200 or len(legal_basis) > MAX_TEXT:
        raise ValidationFailed("reason, owner or legal basis is too long")
    if camera_id is not None and s.get(Camera, camera_id) is None:
        raise NotFound(f"camera {camera_id} does not exist")
    hold = Hold(camera_id=camera_id, start_ms=start_ms, end_ms=end_ms, reason=reason.strip(),
                owner=owner.strip(), legal_basis=legal_basis.strip(), created_ms=now_ms)
    s.add(hold)
    s.flush()
    AuditLog(s).append("hold.create", actor=hold.owner, subject=f"hold {hold.id}", at_ms=now_ms,
                       details={"camera_id": camera_id, "start_ms": start_ms, "end_ms": end_ms,
                                "reason": hold.reason, "legal_basis": hold.legal_basis})
    return hold


def release_hold(s: Session, hold_id: int, *, by: str, now_ms: int) -> Hold:
    hold = s.get(Hold, hold_id)
    if hold is None:
        raise NotFound(f"hold {hold_id} does not exist")
    if hold.released_ms is not None:
        raise ValidationFailed(f"hold {hold_id} was released already at {iso_utc(hold.released_ms)}")
    hold.released_ms, hold.released_by = now_ms, by
    s.flush()
    AuditLog(s).append("hold.release", actor=by, subject=f"hold {hold.id}", at_ms=now_ms,
                       details={"camera_id": hold.camera_id, "start_ms": hold.start_ms,
                                "end_ms": hold.end_ms})
    return hold


def active_holds(s: Session, camera_id: int | None = None) -> list[Hold]:
    q = select(Hold).where(Hold.released_ms.is_(None))
    if camera_id is not None:
        q = q.where((Hold.camera_id == camera_id) | Hold.camera_id.is_(None))
    return list(s.scalars(q.order_by(Hold.id)))


def _held(seg: Segment, holds: list[Hold]) -> bool:
    return any((h.camera_id is None or h.camera_id == seg.camera_id)
               and h.start_ms < seg.end_ms and h.end_ms > seg.start_ms for h in holds)


@dataclass
class SweepResult:
    removed: int = 0
    removed_bytes: int = 0
    kept_for_holds: int = 0
    errors: list[str] = field(default_factory=list)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sweep(db: Database, store_root: Path, clock: Clock, *, batch: int = 500) -> SweepResult:
    """Remove expired, unheld segments (N17.1: what has served its purpose is deleted)."""
    result = SweepResult()
    now = clock.wall_ms()
    last_id = 0
    while True:
        with db.session() as s:
            holds = active_holds(s)
            rows = list(s.scalars(select(Segment).where(
                Segment.removed_ms.is_(None), Segment.retain_until_ms <= now,
                Segment.id > last_id,
            ).order_by(Segment.id).limit(batch)))
            if rows:
                last_id = rows[-1].id
            days = dict(s.execute(select(Camera.id, Camera.retention_days)).all())
            # A retention raised after recording extends what was recorded; a lowered one
            # never shortens the retention a segment was recorded under.
            expired = [r for r in rows if r.end_ms + days[r.camera_id] * DAY_MS <= now]
            candidates = [r for r in expired if not _held(r, holds)]
            result.kept_for_holds += len(expired) - len(candidates)
            # Step 1: the tombstone is committed before the file goes.
            for r in candidates:
                r.removed_ms, r.removed_reason = now, "retention expired"
            paths = [(r.id, r.path, r.bytes) for r in candidates]
            if candidates:  # on record with the tombstones, or neither (invariant 1)
                AuditLog(s, clock).append(
                    "retention.remove", actor="retention sweeper", subject="segments",
                    details={"count": len(candidates), "bytes": sum(r.bytes for r in candidates),
                             "segment_ids": [r.id for r in candidates]})
        dirs: set[Path] = set()
        for _id, rel, nbytes in paths:  # step 2
            p = store_root / rel
            try:
                p.unlink()
            except FileNotFoundError:
                result.errors.append(f"segment {_id}: file {rel} was already gone")
            except OSError as e:
                result.errors.append(f"segment {_id}: cannot remove {rel}: {e.strerror}")
                continue
            dirs.add(p.parent)
            result.removed += 1
            result.removed_bytes += nbytes
            segments_removed.inc()
        for d in dirs:  # step 3
            if d.exists():
                _fsync_dir(d)
        if len(rows) < batch:
            break
    if result.removed:
        log.info("retention_sweep", removed=result.removed, bytes=result.removed_bytes,
                 kept_for_holds=result.kept_for_holds)
    return result


def finish_removals(db: Database, store_root: Path) -> int:
    """Start-up recovery: unlink files whose rows were marked removed before a crash."""
    n = 0
    with db.session() as s:
        paths = list(s.scalars(select(Segment.path).where(Segment.removed_ms.is_not(None))))
    for rel in paths:
        p = store_root / rel
        if p.exists():
            p.unlink()
            n += 1
    return n


@dataclass
class OverRetention:
    camera_id: int
    camera: str
    segments: int
    bytes: int
    oldest_ms: int
    limit_days: int


def over_retention(s: Session, rules: RuleBook, now_ms: int) -> list[OverRetention]:
    """Footage kept past the default maximum without a hold or legal basis (N17.1)."""
    today = ms_to_datetime(now_ms).astimezone(SHANGHAI).date()
    limit = rules.retention_default_max(today)
    if limit is None:
        return []
    holds = active_holds(s)
    out = []
    for cam in s.scalars(select(Camera).order_by(Camera.id)):
        if cam.retention_basis.strip():
            continue
        rows = [r for r in s.scalars(select(Segment).where(
            Segment.camera_id == cam.id, Segment.removed_ms.is_(None),
            Segment.end_ms + limit * DAY_MS < now_ms)) if not _held(r, holds)]
        if rows:
            out.append(OverRetention(cam.id, cam.name, len(rows), sum(r.bytes for r in rows),
                                     min(r.start_ms for r in rows), limit))
    return out
