"""Duty and room: shifts and the on-duty roster with handover notes, the duty log (Q19.1),
the monitoring-room access register (Q19.4) and suspicious-information reports to the
police linked to footage (Q19.5).

Rules kept here:
- only an operator on duty (the role that watches) with valid skills and confidentiality
  training may go on duty (Q19.2, N16.1) — checked against the training records at the
  moment the shift starts, not at sign-in; one open shift per person;
- a shift ends with a handover note, optionally addressed to the next person, who sees it
  when their own shift starts;
- duty log entries belong to the writer's open shift: no shift, no entry;
- room visitors are recorded by name, ID number and organisation, why, and who let them in;
  text is bounded and free of control characters, so a refusal stores nothing;
- a report to the police places a hold (``viis.media.retention.place_hold``) on every
  camera × time range it points at, so the footage outlives its retention; only the police
  acknowledge it;
- every action is one audit entry in the same transaction (no entry, no action).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from viis.access import policy
from viis.access.duty_models import (
    DutyLogEntry,
    DutyShift,
    PoliceReport,
    PoliceReportRange,
    RoomVisit,
)
from viis.access.identity import IdentityService
from viis.access.models import Organisation, User
from viis.access.policy import Forbidden, Principal
from viis.core.clock import Clock, iso_utc
from viis.core.errors import NotFound, ValidationFailed
from viis.integrity.audit import AuditLog
from viis.media.retention import place_hold
from viis.registry.models import Camera

TEXT_MAX = 2000
NAME_MAX = 100
ORG_MAX = 200
MAX_RANGES = 20
MAX_RANGE_MS = 31 * 86_400_000
MAX_LIST = 500
REPORTED, ACKNOWLEDGED = "reported", "acknowledged"
#: Resident ID (18 characters), passport, work or officer card numbers: letters, digits, hyphen.
#: Line separators and bidirectional overrides: they make a register read differently from
#: what was typed (a name that displays reversed), so no field takes them.
_INVISIBLE = frozenset("\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_ID_NUMBER = re.compile(r"^[0-9A-Za-z-]{4,32}$")


def clean_text(value: str | None, field: str, limit: int, *, required: bool = True,
               multiline: bool = True) -> str:
    """Stripped text without control characters (newline and tab allowed in multi-line
    fields), at most ``limit`` characters; a refusal says which field."""
    text = (value or "").strip()
    if required and not text:
        raise ValidationFailed(f"{field} is empty", field=field)
    if len(text) > limit:
        raise ValidationFailed(f"{field} has {len(text)} characters; at most {limit}", field=field)
    allowed = "\n\t" if multiline else ""
    if any((ord(c) < 32 and c not in allowed) or 0x7F <= ord(c) < 0xA0 or c in _INVISIBLE
           for c in text):
        raise ValidationFailed(f"{field} contains control characters", field=field)
    return text


@dataclass(frozen=True)
class ReportRange:
    camera_id: int
    from_ms: int
    to_ms: int


def _user_id(p: Principal) -> int:
    if p.user_id is None:
        raise Forbidden("duty and room records name a person: sign in with a user account, "
                        "not the bootstrap token", ("Q19.1",))
    return p.user_id


class DutyService:
    def __init__(self, clock: Clock, identity: IdentityService) -> None:
        self.clock = clock
        self.identity = identity

    # --- shifts (Q19.1, Q19.2, N16.1) ---------------------------------------------------
    def open_shift(self, s: Session, user_id: int) -> DutyShift | None:
        return s.scalar(select(DutyShift).where(DutyShift.user_id == user_id,
                                                DutyShift.ended_ms.is_(None)))

    def start_shift(self, s: Session, p: Principal) -> DutyShift:
        """Go on duty: an operator on duty with valid training (Q19.2, N16.1)."""
        uid = _user_id(p)
        if policy.OPERATOR not in p.roles:
            raise Forbidden("only an operator on duty may go on duty in the monitoring room",
                            ("Q19.1",))
        if not self.identity.is_trained(s, uid):
            raise Forbidden("no valid skills and confidentiality training on record: an "
                            "untrained person cannot go on duty; have the training recorded "
                            "first", ("Q19.2", "N16.1"))
        if self.open_shift(s, uid) is not None:
            raise ValidationFailed("you are on duty already; end that shift first", field="shift")
        user = self.identity.user(s, uid)
        sh = DutyShift(user_id=uid, organisation_id=user.organisation_id,
                       started_ms=self.clock.wall_ms(), handover_note="")
        s.add(sh)
        s.flush()
        AuditLog(s, self.clock).append("duty.shift_start", actor=p, subject=f"shift {sh.id}",
                                       details={"user_id": uid})
        return sh

    def end_shift(self, s: Session, p: Principal, shift_id: int, *, note: str,
                  handover_to: str | None = None) -> DutyShift:
        """End one's own shift with a handover note (Q19.1), optionally to a named
        next person (login) of the same organisation."""
        uid = _user_id(p)
        sh = s.get(DutyShift, shift_id)
        if sh is None or sh.user_id != uid:
            raise NotFound(f"you have no shift {shift_id}")
        if sh.ended_ms is not None:
            raise ValidationFailed(f"shift {shift_id} ended at {iso_utc(sh.ended_ms)}", field="shift")
        text = clean_text(note, "note", TEXT_MAX)
        nxt = None
        if handover_to:
            login = clean_text(handover_to, "handover_to", 64, multiline=False)
            nxt = s.scalar(select(User).where(User.login == login))
            if nxt is None or not nxt.active or nxt.organisation_id != sh.organisation_id:
                raise ValidationFailed(f"no active colleague {login!r} to hand over to",
                                       field="handover_to")
            if nxt.id == uid:
                raise ValidationFailed("hand over to someone else", field="handover_to")
        sh.ended_ms, sh.handover_note = self.clock.wall_ms(), text
        sh.handover_to_id = nxt.id if nxt else None
        s.flush()
        AuditLog(s, self.clock).append("duty.shift_end", actor=p, subject=f"shift {sh.id}",
                                       details={"handover_to": nxt.login if nxt else None,
                                                "note_chars": len(text)})
        return sh

    def handover_for(self, s: Session, sh: DutyShift) -> DutyShift | None:
        """The handover the person starting ``sh`` takes over: the latest ended shift of the
        same organisation addressed to them, else the latest ended one at all."""
        q = select(DutyShift).where(DutyShift.organisation_id == sh.organisation_id,
                                    DutyShift.ended_ms.is_not(None), DutyShift.id != sh.id,
                                    DutyShift.ended_ms <= sh.started_ms)
        to_me = s.scalar(q.where(DutyShift.handover_to_id == sh.user_id)
                         .order_by(DutyShift.ended_ms.desc(), DutyShift.id.desc()).limit(1))
        return to_me or s.scalar(q.order_by(DutyShift.ended_ms.desc(), DutyShift.id.desc()).limit(1))

    def shifts(self, s: Session, *, open_only: bool = False, since_ms: int | None = None,
               limit: int = 100) -> list[DutyShift]:
        q = select(DutyShift)
        if open_only:
            q = q.where(DutyShift.ended_ms.is_(None))
        if since_ms is not None:
            q = q.where((DutyShift.ended_ms.is_(None)) | (DutyShift.ended_ms >= since_ms))
        return list(s.scalars(q.order_by(DutyShift.started_ms.desc(), DutyShift.id.desc())
                              .limit(max(1, min(limit, MAX_LIST)))))

    # --- duty log (Q19.1) -------------------------------------------------------------------
    def log(self, s: Session, p: Principal, text: str, *, camera_id: int | None = None,
            footage_ms: int | None = None) -> DutyLogEntry:
        uid = _user_id(p)
        sh = self.open_shift(s, uid)
        if sh is None:
            raise ValidationFailed("go on duty first: duty log entries belong to a shift",
                                   field="shift", articles=("Q19.1",))
        body = clean_text(text, "text", TEXT_MAX)
        if footage_ms is not None and camera_id is None:
            raise ValidationFailed("a time of footage needs its camera", field="camera_id")
        if camera_id is not None and s.get(Camera, camera_id) is None:
            raise NotFound(f"camera {camera_id} does not exist")
        e = DutyLogEntry(shift_id=sh.id, at_ms=self.clock.wall_ms(), text=body,
                         camera_id=camera_id, footage_ms=footage_ms)
        s.add(e)
        s.flush()
        AuditLog(s, self.clock).append("duty.log", actor=p, subject=f"shift {sh.id}",
                                       details={"entry_id": e.id, "camera_id": camera_id,
                                                "footage_ms": footage_ms})
        return e

    def log_entries(self, s: Session, *, shift_id: int | None = None,
                    limit: int = 200) -> list[DutyLogEntry]:
        q = select(DutyLogEntry)
        if shift_id is not None:
            q = q.where(DutyLogEntry.shift_id == shift_id)
        return list(s.scalars(q.order_by(DutyLogEntry.id.desc()).limit(max(1, min(limit, MAX_LIST)))))

    # --- the monitoring room (Q19.4) -------------------------------------------------------
    def enter_room(self, s: Session, p: Principal, *, reason: str, login: str | None = None,
                   person_name: str = "", id_number: str = "", organisation: str = "") -> RoomVisit:
        """Record someone entering the monitoring room, admitted by ``p``: a staff member by
        login, or a visitor by name, ID number and organisation (Q19.4)."""
        admitted_by = _user_id(p)
        why = clean_text(reason, "reason", TEXT_MAX)
        user = None
        if login:
            lg = clean_text(login, "login", 64, multiline=False)
            user = s.scalar(select(User).where(User.login == lg))
            if user is None:
                raise ValidationFailed(f"no user {lg!r}", field="login")
            org = s.get(Organisation, user.organisation_id)
            name, idn, org_name = user.display_name, user.work_id, org.name if org else ""
        else:
            name = clean_text(person_name, "person_name", NAME_MAX, multiline=False)
            idn = clean_text(id_number, "id_number", 32, multiline=False)
            if not _ID_NUMBER.match(idn):
                raise ValidationFailed("id_number must be 4-32 letters, digits or hyphens",
                                       field="id_number")
            org_name = clean_text(organisation, "organisation", ORG_MAX, multiline=False)
        v = RoomVisit(entered_ms=self.clock.wall_ms(), user_id=user.id if user else None,
                      person_name=name[:NAME_MAX], id_number=idn[:32], organisation=org_name[:ORG_MAX],
                      reason=why, admitted_by_id=admitted_by)
        s.add(v)
        s.flush()
        AuditLog(s, self.clock).append("room.enter", actor=p, subject=f"room visit {v.id}",
                                       details={"person_name": v.person_name,
                                                "organisation": v.organisation,
                                                "user_id": v.user_id})
        return v

    def leave_room(self, s: Session, p: Principal, visit_id: int) -> RoomVisit:
        uid = _user_id(p)
        v = s.get(RoomVisit, visit_id)
        if v is None:
            raise NotFound(f"no room visit {visit_id}")
        if v.left_ms is not None:
            raise ValidationFailed(f"room visit {visit_id} left at {iso_utc(v.left_ms)}", field="visit")
        v.left_ms, v.left_recorded_by_id = self.clock.wall_ms(), uid
        s.flush()
        AuditLog(s, self.clock).append("room.leave", actor=p, subject=f"room visit {v.id}")
        return v

    def room_visits(self, s: Session, *, present_only: bool = False,
                    limit: int = 200) -> list[RoomVisit]:
        q = select(RoomVisit)
        if present_only:
            q = q.where(RoomVisit.left_ms.is_(None))
        return list(s.scalars(q.order_by(RoomVisit.id.desc()).limit(max(1, min(limit, MAX_LIST)))))

    # --- reports to the police (Q19.5) -----------------------------------------------------
    def report(self, s: Session, p: Principal, *, text: str, ranges: list[ReportRange],
               police_unit: str = "") -> PoliceReport:
        """Report suspicious information to the police, linked to footage; each range is
        held so it is kept until the police release it (Q19.5, invariant 1)."""
        uid = _user_id(p)
        body = clean_text(text, "text", TEXT_MAX)
        unit = clean_text(police_unit, "police_unit", ORG_MAX, required=False, multiline=False)
        if len(ranges) > MAX_RANGES:
            raise ValidationFailed(f"at most {MAX_RANGES} camera ranges per report", field="ranges")
        for r in ranges:
            if r.to_ms <= r.from_ms:
                raise ValidationFailed("a range must end after it starts", field="ranges")
            if r.to_ms - r.from_ms > MAX_RANGE_MS:
                raise ValidationFailed("a range may span at most 31 days", field="ranges")
            if s.get(Camera, r.camera_id) is None:
                raise NotFound(f"camera {r.camera_id} does not exist")
        sh = self.open_shift(s, uid)
        rep = PoliceReport(at_ms=self.clock.wall_ms(), reporter_id=uid,
                           shift_id=sh.id if sh else None, text=body, police_unit=unit,
                           status=REPORTED)
        s.add(rep)
        s.flush()
        org = s.get(Organisation, p.organisation_id) if p.organisation_id else None
        for r in ranges:
            h = place_hold(s, camera_id=r.camera_id, start_ms=r.from_ms, end_ms=r.to_ms,
                           reason=f"suspicious-information report P-{rep.id} to the police (Q19.5)",
                           owner=(org.name if org else p.name)[:200], legal_basis="Q19.5",
                           now_ms=rep.at_ms)
            s.add(PoliceReportRange(report_id=rep.id, camera_id=r.camera_id, from_ms=r.from_ms,
                                    to_ms=r.to_ms, hold_id=h.id))
        s.flush()
        AuditLog(s, self.clock).append("duty.report", actor=p, subject=f"police report {rep.id}",
                                       details={"ranges": len(ranges), "police_unit": unit})
        return rep

    def acknowledge(self, s: Session, p: Principal, report_id: int) -> PoliceReport:
        uid = _user_id(p)
        rep = s.get(PoliceReport, report_id)
        if rep is None:
            raise NotFound(f"no police report {report_id}")
        if rep.status == ACKNOWLEDGED:
            raise ValidationFailed(f"report {report_id} was acknowledged at "
                                   f"{iso_utc(rep.acknowledged_ms or 0)}", field="report")
        rep.status, rep.acknowledged_ms, rep.acknowledged_by_id = ACKNOWLEDGED, self.clock.wall_ms(), uid
        s.flush()
        AuditLog(s, self.clock).append("duty.report_ack", actor=p, subject=f"police report {rep.id}")
        return rep

    def reports(self, s: Session, *, status: str | None = None, limit: int = 200) -> list[PoliceReport]:
        q = select(PoliceReport)
        if status:
            q = q.where(PoliceReport.status == status)
        return list(s.scalars(q.order_by(PoliceReport.id.desc()).limit(max(1, min(limit, MAX_LIST)))))

    def report_ranges(self, s: Session, report_id: int) -> list[PoliceReportRange]:
        return list(s.scalars(select(PoliceReportRange).where(PoliceReportRange.report_id == report_id)
                              .order_by(PoliceReportRange.id)))


# --- views ---------------------------------------------------------------------------------
def _login(s: Session, uid: int | None) -> str | None:
    if uid is None:
        return None
    u = s.get(User, uid)
    return u.login if u else None


def _t(ms: int | None) -> str | None:
    return iso_utc(ms) if ms is not None else None


def shift_view(s: Session, sh: DutyShift) -> dict:
    u = s.get(User, sh.user_id)
    return {"id": sh.id, "user_id": sh.user_id, "login": u.login if u else None,
            "name": u.display_name if u else None, "organisation_id": sh.organisation_id,
            "started": _t(sh.started_ms), "started_ms": sh.started_ms, "ended": _t(sh.ended_ms),
            "ended_ms": sh.ended_ms, "on_duty": sh.ended_ms is None,
            "handover_note": sh.handover_note, "handover_to": _login(s, sh.handover_to_id)}


def log_view(e: DutyLogEntry) -> dict:
    return {"id": e.id, "shift_id": e.shift_id, "at": _t(e.at_ms), "at_ms": e.at_ms, "text": e.text,
            "camera_id": e.camera_id, "footage_at": _t(e.footage_ms), "footage_ms": e.footage_ms}


def visit_view(s: Session, v: RoomVisit) -> dict:
    return {"id": v.id, "entered": _t(v.entered_ms), "entered_ms": v.entered_ms,
            "left": _t(v.left_ms), "left_ms": v.left_ms, "present": v.left_ms is None,
            "user_id": v.user_id, "person_name": v.person_name, "id_number": v.id_number,
            "organisation": v.organisation, "reason": v.reason,
            "admitted_by": _login(s, v.admitted_by_id), "left_recorded_by": _login(s, v.left_recorded_by_id)}


def report_view(s: Session, svc: DutyService, r: PoliceReport) -> dict:
    return {"id": r.id, "at": _t(r.at_ms), "at_ms": r.at_ms, "reporter": _login(s, r.reporter_id),
            "shift_id": r.shift_id, "text": r.text, "police_unit": r.police_unit, "status": r.status,
            "acknowledged": _t(r.acknowledged_ms), "acknowledged_by": _login(s, r.acknowledged_by_id),
            "ranges": [{"camera_id": x.camera_id, "from": _t(x.from_ms), "to": _t(x.to_ms),
                        "from_ms": x.from_ms, "to_ms": x.to_ms, "hold_id": x.hold_id}
                       for x in svc.report_ranges(s, r.id)]}
