"""The live snapshot: one using unit's state read from this installation's database, in the
documented snapshot format (docs/compliance-snapshot.md), so ``viis compliance evaluate
--live`` and the bureau see the same thing a unit would send.

Read from the services that own each fact, never written (architecture: compliance reads other
packages' state): the register (units, sites, systems, camera links, zones, consents, filings,
detected changes), ``viis/registry`` (cameras, signage photos), ``viis/media`` (the oldest
footage kept per camera), ``viis/health`` (fault tickets not closed, Q19.3), ``viis/access``
(staff training Q19.2/N16.1, retrieval requests and their staff Q23/Q24/N16.1).

Duty shifts come from ``viis/access/duty`` (``activity.duty.shifts``; ``log_kept`` is true when
shifts were held in the period, unknown otherwise). Not read yet: integrity verification
results and recording coverage.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from viis.access.models import TrainingRecord, User
from viis.access.retrieval_models import RetrievalRange, RetrievalRequest
from viis.compliance.register import unit
from viis.compliance.registry_models import (
    CameraLink,
    ComplianceConsent,
    ComplianceFiling,
    ComplianceSite,
    ComplianceSystem,
    ComplianceZone,
    FiledChange,
)
from viis.compliance.snapshot import FORMAT, VERSION, Snapshot, parse
from viis.core.clock import SHANGHAI, iso_utc, ms_to_datetime
from viis.core.errors import ValidationFailed
from viis.health.tickets import FaultTicket
from viis.media.models import Segment
from viis.registry.models import Camera, SignagePhoto

DAY_MS = 86_400_000
COUNTED = ("submitted", "accepted")   # filing states that count as filed (refused/draft do not)


def _d(v: date | None) -> str | None:
    return v.isoformat() if v else None


def _day(ms: int) -> date:
    return ms_to_datetime(ms).astimezone(SHANGHAI).date()


def snapshot_from_db(s: Session, unit_code: str, now_ms: int) -> dict[str, Any]:
    """The snapshot of ``unit_code`` as of ``now_ms`` (a dict; ``snapshot.parse`` reads it)."""
    u = unit(s, unit_code)
    sites = list(s.scalars(select(ComplianceSite).where(ComplianceSite.unit_id == u.id)
                           .order_by(ComplianceSite.code)))
    site_code = {x.id: x.code for x in sites}
    systems = list(s.scalars(select(ComplianceSystem).where(ComplianceSystem.site_id.in_(site_code))
                             .order_by(ComplianceSystem.code))) if sites else []
    sys_code = {x.id: x.code for x in systems}
    sys_site = {x.id: x.site_id for x in systems}
    site_pos = {x.id: (x.lat, x.lon) for x in sites}
    changes: dict[int, list[FiledChange]] = {}
    filings: list[ComplianceFiling] = []
    links: list[tuple[Camera, CameraLink]] = []
    if systems:
        for ch in s.scalars(select(FiledChange).where(FiledChange.system_id.in_(sys_code))
                            .order_by(FiledChange.detected_on, FiledChange.id)):
            changes.setdefault(ch.system_id, []).append(ch)
        filings = list(s.scalars(select(ComplianceFiling).where(
            ComplianceFiling.system_id.in_(sys_code), ComplianceFiling.state.in_(COUNTED))
            .order_by(ComplianceFiling.id)))
        links = [(c, ln) for c, ln in s.execute(
            select(Camera, CameraLink).join(CameraLink, CameraLink.camera_id == Camera.id)
            .where(CameraLink.system_id.in_(sys_code)).order_by(Camera.uid))]
    cam_ids = [c.id for c, _ in links]
    uid = {c.id: c.uid for c, _ in links}
    signed = set(s.scalars(select(SignagePhoto.camera_id).where(SignagePhoto.camera_id.in_(cam_ids)))) \
        if cam_ids else set()

    snap: dict[str, Any] = {
        "format": FORMAT, "version": VERSION, "generated_at": iso_utc(now_ms),
        "organisation": {"id": u.code, "name": u.name, "use": u.use, "party": u.party},
        "sites": [{"id": x.code, "name": x.name, "categories": list(x.categories),
                   "public_place": x.public_place, "privacy_areas": list(x.privacy_areas),
                   **({"privacy_checked_on": _d(x.privacy_checked_on)} if x.privacy_checked_on else {})}
                  for x in sites],
        "systems": [_system(x, site_code[x.site_id], changes.get(x.id, [])) for x in systems],
        "cameras": [_camera(c, ln, sys_code[ln.system_id], c.id in signed, site_pos[sys_site[ln.system_id]])
                    for c, ln in links],
        "filings": [{"id": f"filing-{f.id}", "system": sys_code[f.system_id], "kind": f.kind,
                     "filed_on": _d(f.filed_on), "channel": f.channel} for f in filings if f.filed_on],
    }
    zones = list(s.scalars(select(ComplianceZone).order_by(ComplianceZone.code)))
    if zones:
        zc = {z.id: z.code for z in zones}
        snap["zones"] = [{"id": z.code, "name": z.name, "kind": z.kind, "lat": z.lat, "lon": z.lon,
                          "radius_m": z.radius_m} for z in zones]
        if systems:
            snap["consents"] = [{"zone": zc[c.zone_id], "system": sys_code[c.system_id],
                                 "document": c.document, "on": _d(c.on_day)}
                                for c in s.scalars(select(ComplianceConsent).where(
                                    ComplianceConsent.system_id.in_(sys_code)).order_by(ComplianceConsent.id))]
    snap["activity"] = _activity(s, u.organisation_id, cam_ids, uid, links, now_ms)
    return snap


def live_snapshot(app, unit_code: str | None = None) -> Snapshot:
    """The parsed live snapshot of one unit of ``app`` at its clock's now; with no code, the
    installation's only unit (several units: name one)."""
    from viis.compliance.register import units

    with app.db.session() as s:
        if unit_code is None:
            codes = [u.code for u in units(s)]
            if len(codes) != 1:
                raise ValidationFailed("this installation has " + (
                    f"units {', '.join(codes)}; name one with --unit" if codes
                    else "no unit in its compliance register; add one first"), field="unit")
            unit_code = codes[0]
        from viis.compliance.filings import detect_unit_changes

        now = app.clock.wall_ms()
        detect_unit_changes(s, unit_code, today=_day(now), now_ms=now)   # N14.1: dated when first seen
        return parse(snapshot_from_db(s, unit_code, now))


def _system(x: ComplianceSystem, site: str, changes: list[FiledChange]) -> dict[str, Any]:
    d: dict[str, Any] = {"id": x.code, "site": site, "purpose": x.purpose or "-",
                         "storage_days": x.storage_days, "authorised": x.authorised,
                         "contractors": [{k: v for k, v in c.items() if v not in (None, "") or k in ("role", "name")}
                                         for c in x.contractors]}
    for k in ("accepted_on", "in_use_on", "removed_on"):
        if getattr(x, k):
            d[k] = _d(getattr(x, k))
    if changes:
        d["changes"] = [{"on": _d(c.detected_on), "what": c.what} for c in changes]
    return d


def _camera(c: Camera, ln: CameraLink, system: str, signage: bool,
            site_pos: tuple[float | None, float | None]) -> dict[str, Any]:
    d: dict[str, Any] = {"id": c.uid, "system": system, "location_type": c.location_type,
                         "retention_days": c.retention_days, "security_level": c.security_level,
                         "signage": {"present": signage, "photo": signage}, "audio": ln.audio}
    if c.retention_basis:
        d["retention_basis"] = c.retention_basis
    if ln.public_place is not None:
        d["public_place"] = ln.public_place
    if ln.installed_on:
        d["installed_on"] = _d(ln.installed_on)
    # A camera without its own position stands at its site's (Q7.3: a site inside a zone needs
    # the consultation before its system goes live).
    lat, lon = (ln.lat, ln.lon) if ln.lat is not None else site_pos
    if lat is not None:
        d["lat"], d["lon"] = lat, lon
    return d


def _activity(s: Session, org_id: int | None, cam_ids: list[int], uid: dict[int, str],
              links: list[tuple[Camera, CameraLink]], now_ms: int) -> dict[str, Any]:
    today = _day(now_ms)
    a: dict[str, Any] = {"period": {"from": _d(_day(now_ms - 30 * DAY_MS)), "to": _d(today)}}
    if cam_ids:
        oldest = dict(s.execute(select(Segment.camera_id, func.min(Segment.start_ms))
                                .where(Segment.camera_id.in_(cam_ids)).group_by(Segment.camera_id)).all())
        a["retention"] = [{"camera": c.uid,
                           "recording_days": max(0, (now_ms - c.created_ms) // DAY_MS),
                           "kept_days": max(0, (now_ms - oldest[c.id]) // DAY_MS)}
                          for c, _ in links if c.id in oldest]
        a["faults"] = [_fault(t, uid) for t in s.scalars(
            select(FaultTicket).where(FaultTicket.camera_id.in_(cam_ids), FaultTicket.closed_ms.is_(None))
            .order_by(FaultTicket.id))]
        a["retrievals"] = _retrievals(s, cam_ids)
    if org_id is not None:
        staff = []
        for user in s.scalars(select(User).where(User.organisation_id == org_id).order_by(User.id)):
            done = {}
            for t in s.scalars(select(TrainingRecord).where(TrainingRecord.user_id == user.id)):
                done[t.topic] = min(done.get(t.topic, t.completed_ms), t.completed_ms)
            trained = _d(_day(max(done.values()))) if {"skills", "confidentiality"} <= set(done) else None
            staff.append({"id": user.login, "name": user.display_name,
                          **({"trained_on": trained} if trained else {})})
        a["duty"] = {"staff": staff}
        a["duty"].update(_shifts(s, org_id, {x["id"] for x in staff}, now_ms))
    return a


def _shifts(s: Session, org_id: int, staff: set[str], now_ms: int) -> dict[str, Any]:
    """Duty shifts of the unit's staff in the 30-day period (viis.access.duty, Q19.1, Q19.2),
    one per person and Asia/Shanghai day. The log counts as kept when shifts were held (each
    has its duty log and handover note); with no shift in the period it stays unknown."""
    from viis.access.duty_models import DutyShift

    since = now_ms - 30 * DAY_MS
    days: set[tuple[str, str]] = set()
    for sh, login in s.execute(select(DutyShift, User.login).join(User, User.id == DutyShift.user_id)
                               .where(DutyShift.organisation_id == org_id,
                                      DutyShift.started_ms <= now_ms,
                                      (DutyShift.ended_ms.is_(None)) | (DutyShift.ended_ms >= since))):
        if login in staff:
            days.add((login, _d(_day(max(sh.started_ms, since)))))
    if not days:
        return {}
    return {"log_kept": True, "shifts": [{"staff": who, "on": on} for who, on in sorted(days)]}


def _fault(t: FaultTicket, uid: dict[int, str]) -> dict[str, Any]:
    d = {"id": f"T{t.id}", "camera": uid[t.camera_id], "kind": t.kind, "first_seen": iso_utc(t.first_seen_ms)}
    if t.notified_ms:
        d["notified_at"] = iso_utc(t.notified_ms)
    if t.repaired_ms:
        d["repaired_at"] = iso_utc(t.repaired_ms)
    if t.emergency_measure:
        d["emergency_measure"] = t.emergency_measure
    return d


def _retrievals(s: Session, cam_ids: list[int]) -> list[dict[str, Any]]:
    from viis.access.models import Organisation
    ranges: dict[int, int] = {}
    for rid in s.scalars(select(RetrievalRange.request_id).where(RetrievalRange.camera_id.in_(cam_ids))):
        ranges[rid] = ranges.get(rid, 0) + 1
    req_ids = set(ranges)
    out = []
    for r in s.scalars(select(RetrievalRequest).where(RetrievalRequest.id.in_(req_ids),
                                                      RetrievalRequest.status.in_(("active", "closed")))
                       .order_by(RetrievalRequest.id)):
        org = s.get(Organisation, r.requesting_org_id)
        who = s.get(User, r.requester_id)
        staff = r.staff_work_ids.split()
        out.append({"id": f"R{r.id}", "at": iso_utc(r.decided_ms or r.created_ms),
                    "requester_kind": r.kind, "requester_unit": org.name if org else "",
                    "requester_name": who.display_name if who else "", "reason": r.purpose,
                    "content": f"request {r.id}: {ranges[r.id]} camera range(s)",
                    "approved": r.decided_ms is not None,
                    "approval_document": r.document_sha256 or "",
                    "staff_count": len(staff), "ids_shown": bool(staff)})
    return out
