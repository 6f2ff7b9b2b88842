"""Footage API: timeline, export, snapshot and fragmented MP4 for playback. Every route
passes the one door (viis.access.door.authorize_footage) before reading footage."""

from __future__ import annotations

from contextlib import contextmanager

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, StreamingResponse

from viis.access.door import authorize_footage
from viis.core.clock import parse_time
from viis.media import playback
from viis.media.timeline import timeline
from viis.web.auth import footage_scope, principal

router = APIRouter(prefix="/api/cameras/{camera_id}", tags=["footage"])


def _range(start: str, end: str) -> tuple[int, int]:
    if len(start) > 64 or len(end) > 64:
        raise ValueError("start and end must be ISO 8601 times or UTC milliseconds")
    return parse_time(start), parse_time(end)


@contextmanager
def _door(request: Request, camera_id: int, action: str, frm: int, to: int):
    """A session in which the camera exists and the one door has let this use through."""
    app = request.app.state.viis
    with app.db.session() as s:
        cam = app.cameras.get(s, camera_id)
        p = principal(request)
        authorize_footage(p, action, camera_id, frm, to, security_level=cam.security_level,
                          scope=footage_scope(request, p), now_ms=app.clock.wall_ms())
        yield s, app


@router.get("/timeline")
def get_timeline(camera_id: int, start: str, end: str, request: Request) -> dict:
    frm, to = _range(start, end)
    with _door(request, camera_id, "timeline", frm, to) as (s, _app):
        return timeline(s, camera_id, frm, to)


@router.get("/export.mp4")
def get_export(camera_id: int, start: str, end: str, request: Request) -> FileResponse:
    """The range as one MP4 by stream copy; supports HTTP range requests. Gaps inside the
    range are listed in the X-VIIS-Gaps header (start-end:cause, UTC ms)."""
    frm, to = _range(start, end)
    with _door(request, camera_id, "export", frm, to) as (s, app):
        ex = playback.export(s, app.settings.segments_path, app.settings.data_dir / "exports",
                             camera_id, frm, to)
    headers = {"X-VIIS-Gaps": ",".join(f"{a}-{b}:{c}" for a, b, c in ex.gaps)[:4000]}
    return FileResponse(ex.path, media_type="video/mp4", headers=headers,
                        filename=f"camera{camera_id}-{frm}-{to}.mp4")


@router.get("/snapshot.jpg")
def get_snapshot(camera_id: int, at: str, request: Request) -> Response:
    t, _ = _range(at, at)
    with _door(request, camera_id, "snapshot", t, t) as (s, app):
        jpeg = playback.snapshot(s, app.settings.segments_path, camera_id, t)
    return Response(jpeg, media_type="image/jpeg")


@router.get("/fmp4")
def get_fmp4(camera_id: int, start: str, end: str, request: Request) -> StreamingResponse:
    """Fragmented MP4 for MediaSource playback of a range."""
    frm, to = _range(start, end)
    with _door(request, camera_id, "playback", frm, to) as (s, app):
        chunks = list(playback.mse(s, app.settings.segments_path, camera_id, frm, to))
    return StreamingResponse(iter(chunks), media_type="video/mp4")
