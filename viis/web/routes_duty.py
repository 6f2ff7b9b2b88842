"""Duty and room API under ``/api/duty`` (Q19.1, Q19.2, Q19.4, Q19.5, N16.1).

Actions (viis.access.policy): ``duty.read`` (roster, shifts, log, room register),
``duty.shift`` (go on / off duty, write the duty log: the operator on duty),
``room.write`` (who enters and leaves the monitoring room), ``duty.report`` (report
suspicious information to the police), ``duty.report.read`` and ``duty.report.ack`` (the
police side). Bodies are closed models (unknown fields refused) with bounded strings; the
service refuses control characters, so a refusal stores nothing.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from viis.access import duty
from viis.access.duty import DutyService, ReportRange
from viis.access.policy import Principal
from viis.core.clock import parse_time
from viis.core.errors import ValidationFailed
from viis.web.auth import allow

router = APIRouter(prefix="/api/duty", tags=["duty"])

Str64 = Annotated[str, Field(max_length=64)]
Text = Annotated[str, Field(max_length=duty.TEXT_MAX)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EndShiftIn(_In):
    note: Text
    handover_to: Str64 | None = None


class LogIn(_In):
    text: Text
    camera_id: int | None = None
    footage_at: Str64 | None = None


class RoomIn(_In):
    reason: Text
    login: Str64 | None = None
    person_name: Annotated[str, Field(max_length=duty.NAME_MAX)] = ""
    id_number: Annotated[str, Field(max_length=32)] = ""
    organisation: Annotated[str, Field(max_length=duty.ORG_MAX)] = ""


class RangeIn(_In):
    camera_id: int
    start: Str64
    end: Str64


class ReportIn(_In):
    text: Text
    police_unit: Annotated[str, Field(max_length=duty.ORG_MAX)] = ""
    ranges: Annotated[list[RangeIn], Field(max_length=duty.MAX_RANGES)] = []


def _time(text: str, field: str) -> int:
    try:
        return parse_time(text)
    except ValueError as e:
        raise ValidationFailed(f"{field}: {e}", field=field) from e


def _ctx(request: Request) -> tuple:
    return request.app.state.viis, request.app.state.duty


Limit = Annotated[int, Query(ge=1, le=duty.MAX_LIST)]


@router.get("/roster")
def roster(request: Request, p: Principal = Depends(allow("duty.read"))) -> dict:
    """Who is on duty now, and who is in the monitoring room now."""
    app, svc = _ctx(request)
    with app.db.session() as s:
        return {"on_duty": [duty.shift_view(s, x) for x in svc.shifts(s, open_only=True)],
                "in_room": [duty.visit_view(s, v) for v in svc.room_visits(s, present_only=True)]}


@router.get("/shifts")
def list_shifts(request: Request, open: bool = False, limit: Limit = 100,
                p: Principal = Depends(allow("duty.read"))) -> list[dict]:
    app, svc = _ctx(request)
    with app.db.session() as s:
        return [duty.shift_view(s, x) for x in svc.shifts(s, open_only=open, limit=limit)]


@router.post("/shifts", status_code=201)
def start_shift(request: Request, p: Principal = Depends(allow("duty.shift"))) -> dict:
    """Go on duty (Q19.1): refused without valid training (Q19.2, N16.1). The answer carries
    the handover note left for this person."""
    app, svc = _ctx(request)
    with app.db.session() as s:
        sh = svc.start_shift(s, p)
        prev = svc.handover_for(s, sh)
        return duty.shift_view(s, sh) | {"handover": duty.shift_view(s, prev) if prev else None}


@router.post("/shifts/{shift_id}/end")
def end_shift(shift_id: int, body: EndShiftIn, request: Request,
              p: Principal = Depends(allow("duty.shift"))) -> dict:
    app, svc = _ctx(request)
    with app.db.session() as s:
        return duty.shift_view(s, svc.end_shift(s, p, shift_id, note=body.note,
                                                handover_to=body.handover_to))


@router.post("/log", status_code=201)
def add_log(body: LogIn, request: Request, p: Principal = Depends(allow("duty.shift"))) -> dict:
    app, svc = _ctx(request)
    at = _time(body.footage_at, "footage_at") if body.footage_at else None
    with app.db.session() as s:
        return duty.log_view(svc.log(s, p, body.text, camera_id=body.camera_id, footage_ms=at))


@router.get("/log")
def list_log(request: Request, shift: int | None = None, limit: Limit = 200,
             p: Principal = Depends(allow("duty.read"))) -> list[dict]:
    app, svc = _ctx(request)
    with app.db.session() as s:
        return [duty.log_view(e) for e in svc.log_entries(s, shift_id=shift, limit=limit)]


@router.get("/room")
def list_room(request: Request, present: bool = False, limit: Limit = 200,
              p: Principal = Depends(allow("duty.read"))) -> list[dict]:
    """The monitoring-room access register (Q19.4)."""
    app, svc = _ctx(request)
    with app.db.session() as s:
        return [duty.visit_view(s, v) for v in svc.room_visits(s, present_only=present, limit=limit)]


@router.post("/room", status_code=201)
def enter_room(body: RoomIn, request: Request, p: Principal = Depends(allow("room.write"))) -> dict:
    app, svc = _ctx(request)
    with app.db.session() as s:
        return duty.visit_view(s, svc.enter_room(s, p, reason=body.reason, login=body.login,
                                                 person_name=body.person_name,
                                                 id_number=body.id_number,
                                                 organisation=body.organisation))


@router.post("/room/{visit_id}/leave")
def leave_room(visit_id: int, request: Request, p: Principal = Depends(allow("room.write"))) -> dict:
    app, svc = _ctx(request)
    with app.db.session() as s:
        return duty.visit_view(s, svc.leave_room(s, p, visit_id))


@router.get("/reports")
def list_reports(request: Request, status: Annotated[str | None, Query(max_length=16)] = None,
                 limit: Limit = 200, p: Principal = Depends(allow("duty.report.read"))) -> list[dict]:
    app, svc = _ctx(request)
    with app.db.session() as s:
        return [duty.report_view(s, svc, r) for r in svc.reports(s, status=status, limit=limit)]


@router.post("/reports", status_code=201)
def report(body: ReportIn, request: Request, p: Principal = Depends(allow("duty.report"))) -> dict:
    """Report suspicious information to the police (Q19.5); the footage is held."""
    app, svc = _ctx(request)
    ranges = [ReportRange(r.camera_id, _time(r.start, "ranges.start"), _time(r.end, "ranges.end"))
              for r in body.ranges]
    with app.db.session() as s:
        return duty.report_view(s, svc, svc.report(s, p, text=body.text, ranges=ranges,
                                                   police_unit=body.police_unit))


@router.post("/reports/{report_id}/acknowledge")
def acknowledge(report_id: int, request: Request,
                p: Principal = Depends(allow("duty.report.ack"))) -> dict:
    app, svc = _ctx(request)
    with app.db.session() as s:
        return duty.report_view(s, svc, svc.acknowledge(s, p, report_id))


def install(api: FastAPI) -> None:
    api.state.duty = DutyService(api.state.viis.clock, api.state.identity)
    api.include_router(router)
