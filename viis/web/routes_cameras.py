"""Camera registry API. Answers never carry credentials (public_view).

Besides the registry itself: the "test connection" probe of a stream before it is saved
(:mod:`viis.media.probe`) and the signage photo of each camera (Q17.1, N13.1)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from viis.access.policy import may_see_camera
from viis.core.clock import SHANGHAI, ms_to_datetime
from viis.core.errors import NotFound, ValidationFailed
from viis.media import probe as stream_probe
from viis.registry.service import (
    MAX_SIGNAGE_BYTES,
    CameraInput,
    current_signage,
    public_view,
    signage_view,
    store_signage,
)
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
        cam = app.cameras.add(s, CameraInput(**body.model_dump()), actor=principal(request))
        view = public_view(cam)
    rec = request.app.state.recorder
    if rec:
        rec.reload()
    return view


class ProbeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: Annotated[str, Field(max_length=2000)]
    username: Annotated[str | None, Field(max_length=200)] = None
    password: Annotated[str | None, Field(max_length=200)] = None


@router.post("/probe", dependencies=[Depends(allow("camera.write"))])
def probe_camera(body: ProbeIn) -> dict:
    """Test connection: codec, picture size and frame rate of a stream, before saving it. The
    answer never carries the password; a refused URL is a 422 saying why."""
    return stream_probe.probe(body.url, body.username, body.password).as_dict()


@router.get("/location-types", dependencies=[Depends(allow("camera.read"))])
def location_types(request: Request) -> list[dict]:
    """The rule packs' vocabulary of places (the law is data, invariant 4): each with whether
    a pack in force forbids a camera there (Q9.1, N8.1) and the articles that say so."""
    app = _app(request)
    today = ms_to_datetime(app.clock.wall_ms()).astimezone(SHANGHAI).date()
    forbidden = app.rules.forbidden_locations(today)
    titles: dict[str, str] = {}
    for p in app.rules.in_force(today):
        for lt in p.location_types:
            titles.setdefault(lt.id, lt.title)
    return [{"id": k, "title": titles.get(k, k), "forbidden": k in forbidden,
             "articles": list(forbidden[k].articles) if k in forbidden else []}
            for k in app.rules.location_vocabulary(today)]


@router.put("/{camera_id}/signage", dependencies=[Depends(allow("camera.write"))])
async def put_signage(camera_id: int, request: Request) -> dict:
    """Upload the photo of the camera's public sign (Q17.1, N13.1): the raw JPEG or PNG as the
    body, recognised by its magic bytes, size-limited, kept under its SHA-256."""
    data = await _read_limited(request, MAX_SIGNAGE_BYTES)
    app = _app(request)
    p = principal(request)
    with app.db.session() as s:
        cam = app.cameras.get(s, camera_id)
        if not _visible(request, cam):
            raise NotFound(f"no camera {camera_id}")
        row = store_signage(s, camera_id, data, by=p.name if p else "?", now_ms=app.clock.wall_ms())
        return signage_view(row)


@router.get("/{camera_id}/signage", dependencies=[Depends(allow("camera.read"))])
def get_signage(camera_id: int, request: Request) -> Response:
    """The camera's current signage photo."""
    app = _app(request)
    with app.db.session() as s:
        cam = app.cameras.get(s, camera_id)
        row = current_signage(s, camera_id) if _visible(request, cam) else None
        if row is None:
            raise NotFound(f"camera {camera_id} has no signage photo")
        return Response(row.data, media_type=row.media_type,
                        headers={"ETag": f'"{row.sha256}"', "Cache-Control": "private, max-age=60",
                                 "X-Content-Type-Options": "nosniff"})


async def _read_limited(request: Request, limit: int) -> bytes:
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > limit:
            raise ValidationFailed(f"the signage photo is over the limit of {limit} bytes; send a "
                                   "smaller picture", field="photo")
    return bytes(buf)


@router.get("/{camera_id}", dependencies=[Depends(allow("camera.read"))])
def get_camera(camera_id: int, request: Request) -> dict:
    app = _app(request)
    with app.db.session() as s:
        cam = app.cameras.get(s, camera_id)
        if not _visible(request, cam):
            raise NotFound(f"no camera {camera_id}")
        view = public_view(cam)
        view["signage"] = signage_view(current_signage(s, camera_id))
    rec = request.app.state.recorder
    view["status"] = rec.status(camera_id) if rec else None
    return view


@router.patch("/{camera_id}", dependencies=[Depends(allow("camera.write"))])
def patch_camera(camera_id: int, body: CameraPatch, request: Request) -> dict:
    app = _app(request)
    changes = body.model_dump(exclude_unset=True)
    with app.db.session() as s:
        view = public_view(app.cameras.update(s, camera_id, changes,
                                                  actor=principal(request)))
    rec = request.app.state.recorder
    if rec:
        rec.reload()
    return view
