"""Privacy masks API (Q9.2, N13.1) and the two-person lifting of masks for an export.

``GET /api/cameras/{id}/privacy-masks`` → ``{"camera_id", "masks": [{"label", "points":
[[x, y], ...]}], "updated_at", "updated_by"}`` with x, y normalised 0..1 (origin top left
of the full picture). ``PUT`` with ``{"masks": [...]}`` replaces them all; a refused body
(422) stores nothing. The store and its rules: :mod:`viis.registry.masks`.

Lifting: ``POST /api/retrievals/{rid}/mask-lifts`` (ask, with a reason), ``.../{lift}/approve``
and ``.../{lift}/refuse`` (a second authorised user), ``GET`` lists them.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field

from viis.access.policy import Principal, may_see_camera
from viis.core.errors import NotFound
from viis.registry import masks as store
from viis.web.auth import allow

router = APIRouter(prefix="/api", tags=["privacy masks"])

Point = Annotated[list[float], Field(min_length=2, max_length=2)]


class MaskIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    label: Annotated[str, Field(max_length=store.MAX_LABEL)] = ""
    points: Annotated[list[Point], Field(min_length=store.MIN_POINTS, max_length=store.MAX_POINTS)]


class MasksIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    masks: Annotated[list[MaskIn], Field(max_length=store.MAX_MASKS)]


class LiftIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    camera_id: int
    reason: Annotated[str, Field(max_length=2000)]


class LiftDecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: Annotated[str, Field(max_length=2000)] = ""
    minutes: Annotated[int | None, Field(ge=1, le=7 * 24 * 60)] = None


def _camera(request: Request, s, camera_id: int, p: Principal):
    cam = request.app.state.viis.cameras.get(s, camera_id)
    if not may_see_camera(p, cam.security_level):  # Q13.1: not even its existence
        raise NotFound(f"no camera {camera_id}")
    return cam


@router.get("/cameras/{camera_id}/privacy-masks")
def get_masks(camera_id: int, request: Request,
              p: Principal = Depends(allow("mask.read"))) -> dict:
    app = request.app.state.viis
    with app.db.session() as s:
        _camera(request, s, camera_id, p)
        return store.view(s, camera_id)


@router.put("/cameras/{camera_id}/privacy-masks")
def put_masks(camera_id: int, body: MasksIn, request: Request,
              p: Principal = Depends(allow("mask.write"))) -> dict:
    app = request.app.state.viis
    with app.db.session() as s:
        _camera(request, s, camera_id, p)
        return store.replace(s, camera_id, [m.model_dump() for m in body.masks],
                             by=p.name if p.user_id is None else f"{p.name} (user {p.user_id})",
                             now_ms=app.clock.wall_ms(), clock=app.clock)


def _lifting(request: Request) -> store.MaskLifting:
    return request.app.state.mask_lifting


@router.get("/retrievals/{request_id}/mask-lifts")
def list_lifts(request_id: int, request: Request,
               p: Principal = Depends(allow("retrieval.read"))) -> list[dict]:
    app = request.app.state.viis
    with app.db.session() as s:
        request.app.state.retrievals.get_for(s, p, request_id)  # visibility of the request
        return [store.lift_view(x) for x in _lifting(request).list(s, request_id)]


@router.post("/retrievals/{request_id}/mask-lifts", status_code=201)
def ask_lift(request_id: int, body: LiftIn, request: Request,
             p: Principal = Depends(allow("mask.lift"))) -> dict:
    app = request.app.state.viis
    with app.db.session() as s:
        request.app.state.retrievals.get_for(s, p, request_id)
        return store.lift_view(_lifting(request).ask(s, p, request_id, body.camera_id,
                                                     body.reason))


def _decide(request: Request, p: Principal, request_id: int, lift_id: int, approve: bool,
            body: LiftDecisionIn) -> dict:
    app = request.app.state.viis
    with app.db.session() as s:
        request.app.state.retrievals.get_for(s, p, request_id)
        return store.lift_view(_lifting(request).decide(
            s, p, request_id, lift_id, approve=approve, note=body.note, minutes=body.minutes))


@router.post("/retrievals/{request_id}/mask-lifts/{lift_id}/approve")
def approve_lift(request_id: int, lift_id: int, body: LiftDecisionIn, request: Request,
                 p: Principal = Depends(allow("mask.lift.approve"))) -> dict:
    return _decide(request, p, request_id, lift_id, True, body)


@router.post("/retrievals/{request_id}/mask-lifts/{lift_id}/refuse")
def refuse_lift(request_id: int, lift_id: int, body: LiftDecisionIn, request: Request,
                p: Principal = Depends(allow("mask.lift.approve"))) -> dict:
    return _decide(request, p, request_id, lift_id, False, body)


def install(api: FastAPI) -> None:
    """Needs the retrieval service (``routes_retrieval.install`` first)."""
    app = api.state.viis
    cfg = app.settings.privacy
    api.state.mask_lifting = store.MaskLifting(app.clock, enabled=cfg.mask_lifting,
                                               max_minutes=cfg.max_lift_minutes)
    api.include_router(router)
