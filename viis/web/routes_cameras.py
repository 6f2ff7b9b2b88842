"""Camera registry API. Answers never carry credentials (public_view)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from viis.access.policy import may_see_camera
from viis.core.errors import NotFound
from viis.registry.service import CameraInput, public_view
from viis.web.auth import allow, principal

router = APIRouter(prefix="/api/cameras", tags=["cameras"])


class CameraIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(max_length=200)]
    main_url: Annotated[str, Field(max_length=2000)]
    sub_url: Annotated[str | None, Field(max_length=2000)] = None
    username: Annotated[str | None, Field(max_length=200)] = None
    password: Annotated[str | None, Field(max_length=200)] = None
    site: Annotated[str, Field(max_length=200)] = ""
    location_type: Annotated[str, Field(max_length=64)] = "public_area"
    security_level: int = 1
    retention_days: int | None = None
    priority: int = 50
    enabled: bool = True


class CameraPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str | None, Field(max_length=200)] = None
    main_url: Annotated[str | None, Field(max_length=2000)] = None
    sub_url: Annotated[str | None, Field(max_length=2000)] = None
    username: Annotated[str | None, Field(max_length=200)] = None
    password: Annotated[str | None, Field(max_length=200)] = None
    site: Annotated[str | None, Field(max_length=200)] = None
    location_type: Annotated[str | None, Field(max_length=64)] = None
    security_level: int | None = None
    retention_days: int | None = None
    priority: int | None = None
    enabled: bool | None = None


def _app(request: Request):
    return request.app.state.viis


def _visible(request: Request, cam) -> bool:
    """Cameras above the user's clearance are not shown (Q13.1, Q5.1)."""
    return may_see_camera(principal(request), cam.security_level)


@router.get("", dependencies=[Depends(allow("camera.read"))])
def list_cameras(request: Request) -> list[dict]:
    app = _app(request)
    rec = request.app.state.recorder
    with app.db.session() as s:
        out = [public_view(c) for c in app.cameras.list(s) if _visible(request, c)]
    for c in out:
        c["status"] = rec.status(c["id"]) if rec else None
    return out


@router.post("", status_code=201, dependencies=[Depends(allow("camera.write"))])
def add_camera(body: CameraIn, request: Request) -> dict:
    app = _app(request)
    with app.db.session() as s:
        cam = app.cameras.add(s, CameraInput(**body.model_dump()))
        view = public_view(cam)
    rec = request.app.state.recorder
    if rec:
        rec.reload()
    return view


@router.get("/{camera_id}", dependencies=[Depends(allow("camera.read"))])
def get_camera(camera_id: int, request: Request) -> dict:
    app = _app(request)
    with app.db.session() as s:
        cam = app.cameras.get(s, camera_id)
        if not _visible(request, cam):
            raise NotFound(f"no camera {camera_id}")
        view = public_view(cam)
    rec = request.app.state.recorder
    view["status"] = rec.status(camera_id) if rec else None
    return view


@router.patch("/{camera_id}", dependencies=[Depends(allow("camera.write"))])
def patch_camera(camera_id: int, body: CameraPatch, request: Request) -> dict:
    app = _app(request)
    changes = body.model_dump(exclude_unset=True)
    with app.db.session() as s:
        view = public_view(app.cameras.update(s, camera_id, changes))
    rec = request.app.state.recorder
    if rec:
        rec.reload()
    return view
