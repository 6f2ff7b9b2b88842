"""Storage API: holds, verification, capacity, faults, retention report."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from viis.core.clock import parse_time
from viis.health.faults import open_faults
from viis.integrity.verify import Verifier
from viis.media.capacity import forecast
from viis.media.retention import active_holds, over_retention, place_hold, release_hold
from viis.web.auth import allow, principal

router = APIRouter(prefix="/api", tags=["storage"])


class HoldIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    camera_id: int | None = None
    start: Annotated[str, Field(max_length=64)]
    end: Annotated[str, Field(max_length=64)]
    reason: Annotated[str, Field(max_length=2000)]
    legal_basis: Annotated[str, Field(max_length=2000)] = ""


def _hold_view(h) -> dict:
    return {"id": h.id, "camera_id": h.camera_id, "start_ms": h.start_ms, "end_ms": h.end_ms,
            "reason": h.reason, "owner": h.owner, "legal_basis": h.legal_basis,
            "created_ms": h.created_ms, "released_ms": h.released_ms}


@router.get("/holds", dependencies=[Depends(allow("hold.read"))])
def list_holds(request: Request) -> list[dict]:
    app = request.app.state.viis
    with app.db.session() as s:
        return [_hold_view(h) for h in active_holds(s)]


@router.post("/holds", status_code=201, dependencies=[Depends(allow("hold.write"))])
def add_hold(body: HoldIn, request: Request) -> dict:
    app = request.app.state.viis
    who = principal(request)
    with app.db.session() as s:
        h = place_hold(s, camera_id=body.camera_id, start_ms=parse_time(body.start),
                       end_ms=parse_time(body.end), reason=body.reason, owner=who.name,
                       legal_basis=body.legal_basis, now_ms=app.clock.wall_ms())
        return _hold_view(h)


@router.post("/holds/{hold_id}/release", dependencies=[Depends(allow("hold.write"))])
def release(hold_id: int, request: Request) -> dict:
    app = request.app.state.viis
    with app.db.session() as s:
        return _hold_view(release_hold(s, hold_id, by=principal(request).name,
                                       now_ms=app.clock.wall_ms()))


@router.get("/verify", dependencies=[Depends(allow("verify"))])
def verify(request: Request, camera_id: Annotated[list[int] | None, Query()] = None,
           deep: bool = False) -> dict:
    app = request.app.state.viis
    with app.db.session() as s:
        return Verifier(s, app.settings.segments_path, deep=deep).run(camera_id).as_dict()


@router.get("/capacity", dependencies=[Depends(allow("capacity"))])
def capacity(request: Request) -> dict:
    app = request.app.state.viis
    with app.db.session() as s:
        return forecast(s, app.settings.segments_path, app.clock.wall_ms(),
                        reserve_bytes=app.settings.storage.min_free_bytes,
                        warn_days=app.settings.storage.forecast_warn_days).as_dict()


@router.get("/faults", dependencies=[Depends(allow("faults"))])
def faults(request: Request) -> list[dict]:
    app = request.app.state.viis
    with app.db.session() as s:
        return [{"id": f.id, "camera_id": f.camera_id, "kind": f.kind, "severity": f.severity,
                 "message": f.message, "opened_ms": f.opened_ms} for f in open_faults(s)]


@router.get("/retention/report", dependencies=[Depends(allow("retention.report"))])
def retention_report(request: Request) -> list[dict]:
    app = request.app.state.viis
    with app.db.session() as s:
        return [r.__dict__ for r in over_retention(s, app.rules, app.clock.wall_ms())]
