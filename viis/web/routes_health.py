"""Health API for the console's health wall (Q19.3: images clear, time accurate, the system
running, faults repaired, an emergency measure when a repair cannot be quick; Q19.6 storage
quality): per-camera status and availability, 30-day history, the server's clock state, and
the fault tickets with their maintainer actions. Every route names its policy action
(``health.read`` to look, ``ticket.work`` to act). Evidence pictures are footage and are not
served here (they would leave through the one door)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from viis.access.policy import may_see_camera
from viis.core.errors import NotFound
from viis.health import history, tickets
from viis.health.clock import server_clock_state
from viis.registry.models import Camera
from viis.web.auth import allow, principal

router = APIRouter(prefix="/api/health", tags=["health"])


class RepairIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: Annotated[str, Field(min_length=1, max_length=2000)]


class EmergencyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    measure: Annotated[str, Field(min_length=1, max_length=2000)]


def _app(request: Request):
    return request.app.state.viis


def _camera(request: Request, s, camera_id: int) -> Camera:
    cam = s.get(Camera, camera_id)
    if cam is None or not may_see_camera(principal(request), cam.security_level):
        raise NotFound(f"no camera {camera_id}")
    return cam


def _live(request: Request, camera_id: int) -> dict | None:
    mon = getattr(request.app.state, "health_monitor", None)
    return mon.status(camera_id) if mon is not None else None


@router.get("/cameras", dependencies=[Depends(allow("health.read"))])
def cameras(request: Request) -> dict:
    """The health wall: one tile per camera the user may see, worst first."""
    app = _app(request)
    now = app.clock.wall_ms()
    p = principal(request)
    with app.db.session() as s:
        tiles = [history.camera_summary(s, c, now, _live(request, c.id))
                 for c in app.cameras.list(s) if may_see_camera(p, c.security_level)]
    order = {"critical": 0, "warning": 1, "info": 2, "ok": 3}
    tiles.sort(key=lambda t: (order.get(t["status"], 9), t["name"]))
    counts = {k: sum(t["status"] == k for t in tiles) for k in order}
    return {"cameras": tiles, "counts": counts, "server_clock": server_clock_state()}


@router.get("/cameras/{camera_id}/history", dependencies=[Depends(allow("health.read"))])
def camera_history(camera_id: int, request: Request,
                   days: Annotated[int, Query(ge=1, le=90)] = 30) -> dict:
    """Availability per day, faults, tickets and clock readings of the last ``days``."""
    app = _app(request)
    with app.db.session() as s:
        return history.camera_history(s, _camera(request, s, camera_id), app.clock.wall_ms(), days)


@router.get("/tickets", dependencies=[Depends(allow("health.read"))])
def list_tickets(request: Request, camera_id: int | None = None,
                 open_only: Annotated[bool, Query(alias="open")] = False) -> list[dict]:
    app = _app(request)
    p = principal(request)
    with app.db.session() as s:
        visible = {c.id for c in s.scalars(select(Camera)) if may_see_camera(p, c.security_level)}
        return [t.as_dict() for t in tickets.tickets(s, camera_id=camera_id, open_only=open_only)
                if t.camera_id is None or t.camera_id in visible]


def _act(request: Request, ticket_id: int, fn, *args) -> dict:
    app = _app(request)
    with app.db.session() as s:
        t = s.get(tickets.FaultTicket, ticket_id)
        p = principal(request)
        if t is None or (t.camera_id is not None
                         and not may_see_camera(p, s.get(Camera, t.camera_id).security_level)):
            raise NotFound(f"no ticket {ticket_id}")
        return fn(s, ticket_id, p.name, *args, app.clock.wall_ms()).as_dict()


@router.post("/tickets/{ticket_id}/ack", dependencies=[Depends(allow("ticket.work"))])
def acknowledge(ticket_id: int, request: Request) -> dict:
    return _act(request, ticket_id, tickets.acknowledge)


@router.post("/tickets/{ticket_id}/repair", dependencies=[Depends(allow("ticket.work"))])
def repair(ticket_id: int, body: RepairIn, request: Request) -> dict:
    return _act(request, ticket_id, tickets.record_repair, body.note)


@router.post("/tickets/{ticket_id}/emergency", dependencies=[Depends(allow("ticket.work"))])
def emergency(ticket_id: int, body: EmergencyIn, request: Request) -> dict:
    """The temporary measure that keeps collection going while the repair waits (Q19.3)."""
    return _act(request, ticket_id, tickets.record_emergency_measure, body.measure)


@router.post("/tickets/{ticket_id}/close", dependencies=[Depends(allow("ticket.work"))])
def close(ticket_id: int, request: Request) -> dict:
    return _act(request, ticket_id, tickets.close)
