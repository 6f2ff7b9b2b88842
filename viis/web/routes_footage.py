"""Footage API: timeline, export, snapshot and fragmented MP4 for playback. Every route
passes the one door (viis.access.door.authorize_footage) before reading footage.

Playback in the console is a WebSocket session (``/api/cameras/{id}/playback``): the door is
passed once when it opens, for the period the session may cover (one register entry per
playback session, Q19.1, N16.1), and the player then asks for short windows of fragmented MP4
as it plays, seeks or skips gaps. Each window says the wall time of its media time 0 (the
keyframe at or before the asked time), so the player seeks to the exact frame it wants."""

from __future__ import annotations

import asyncio
import json
from contextlib import contextmanager

from fastapi import APIRouter, Request, Response, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from viis.access.door import Forbidden, authorize_footage
from viis.core.clock import parse_time
from viis.core.errors import NotFound, ViisError
from viis.media import playback
from viis.media.timeline import timeline
from viis.web.auth import footage_scope, principal

router = APIRouter(prefix="/api/cameras/{camera_id}", tags=["footage"])
#: WebSocket routes: included without the HTTP-only ``require_user`` dependency; the session
#: is checked inside, before the socket is accepted.
ws_router = APIRouter(prefix="/api/cameras/{camera_id}", tags=["footage"])
MAX_SESSION_MS = 32 * 86_400_000
MAX_MESSAGE = 512


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
def get_timeline(camera_id: int, start: str, end: str, request: Request,
                 resolution_ms: int | None = None) -> dict:
    """Recorded ranges and gaps with causes; ``resolution_ms`` (one pixel of the caller's
    view) merges what is too small to see, and the answer stays bounded at any zoom."""
    frm, to = _range(start, end)
    with _door(request, camera_id, "timeline", frm, to) as (s, _app):
        return timeline(s, camera_id, frm, to, resolution_ms=resolution_ms)


@router.get("/export.mp4")
def get_export(camera_id: int, start: str, end: str, request: Request) -> FileResponse:
    """The range as one MP4 by stream copy; supports HTTP range requests. Gaps inside the
    range are listed in the X-VIIS-Gaps header (start-end:cause, UTC ms)."""
    frm, to = _range(start, end)
    with _door(request, camera_id, "export", frm, to) as (s, app):
        _no_unmasked_copy(request, s, camera_id)
        ex = playback.export(s, app.settings.segments_path, app.settings.data_dir / "exports",
                             camera_id, frm, to)
    headers = {"X-VIIS-Gaps": ",".join(f"{a}-{b}:{c}" for a, b, c in ex.gaps)[:4000]}
    return FileResponse(ex.path, media_type="video/mp4", headers=headers,
                        filename=f"camera{camera_id}-{frm}-{to}.mp4")


def _no_unmasked_copy(request: Request, s, camera_id: int) -> None:
    """Q9.2: a copy of a camera with privacy masks leaves only with the masks burned in
    (viis.access.evidence), unless a lift approved by a second user is in force."""
    from viis.access.policy import Forbidden
    from viis.registry.masks import masks_for

    if not masks_for(s, camera_id) or _lift_in_force(request, s, camera_id):
        return
    raise Forbidden(f"camera {camera_id} has privacy masks: export it as an evidence package "
                    "of your retrieval session (POST /api/retrievals/{id}/sessions/{sid}/"
                    "exports), which burns them in", ("Q9.2",))


@router.get("/snapshot.jpg")
def get_snapshot(camera_id: int, at: str, request: Request, unmasked: bool = False) -> Response:
    """A still of the camera at ``at`` with its privacy masks painted in (Q9.2, N13.1): a
    snapshot is a copy, so the masks are in its pixels, not drawn over by the browser.
    ``unmasked=true`` is for the mask editor: only users who may set masks (``mask.write``),
    or a session with an approved lift in force, get the picture under them."""
    from viis.registry.masks import masks_for

    t, _ = _range(at, at)
    with _door(request, camera_id, "snapshot", t, t) as (s, app):
        masks = masks_for(s, camera_id)
        if masks and (_lift_in_force(request, s, camera_id) or
                      (unmasked and _may_set_masks(request))):
            masks = []
        jpeg = playback.snapshot(s, app.settings.segments_path, camera_id, t, masks=masks)
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


def _lift_in_force(request: Request, s, camera_id: int) -> bool:
    scope = footage_scope(request, principal(request))
    lifting = getattr(request.app.state, "mask_lifting", None)
    return bool(scope is not None and scope.request_id is not None and lifting is not None
                and lifting.in_force(s, scope.request_id, camera_id) is not None)


def _may_set_masks(request: Request) -> bool:
    from viis.access.policy import decide_admin

    return decide_admin(principal(request), "mask.write").allowed


@router.get("/fmp4")
def get_fmp4(camera_id: int, start: str, end: str, request: Request) -> StreamingResponse:
    """Fragmented MP4 for MediaSource playback of a range."""
    frm, to = _range(start, end)
    with _door(request, camera_id, "playback", frm, to) as (s, app):
        chunks = list(playback.mse(s, app.settings.segments_path, camera_id, frm, to))
    return StreamingResponse(iter(chunks), media_type="video/mp4")


@ws_router.websocket("/playback")
async def playback_session(websocket: WebSocket, camera_id: int) -> None:
    """A playback session over the period ``start``..``end`` (query).

    Client → server (text, JSON): ``{"op": "fetch", "id": n, "from": ms, "to": ms}``.
    Server → client: ``{"type": "window", "id", "origin_ms", "from_ms", "to_ms", "parts"}``
    followed by ``parts`` binary messages (init segment, then fragments); or ``{"type":
    "empty", "id", "next_ms"}`` when nothing is recorded there (``next_ms``: where footage
    resumes within the period, or null); or ``{"type": "error", "error", "articles"}``.
    Refusals close the socket with 4401 (not signed in), 4403 (door), 4404 (no camera).
    """
    app = websocket.app.state.viis
    await websocket.accept()  # accepted first so that a refusal's close code reaches the page
    try:
        frm, to = _range(websocket.query_params.get("start", ""),
                         websocket.query_params.get("end", ""))
        if not 0 < to - frm <= MAX_SESSION_MS:
            raise ValueError("a playback session covers at most 32 days and must end after it starts")
    except ValueError as e:
        await websocket.close(code=4400, reason=str(e)[:120])
        return
    p = principal(websocket)  # type: ignore[arg-type]  # cookie or ?token= on the upgrade
    if p is None:
        await websocket.close(code=4401, reason="sign in first")
        return

    def open_session() -> None:
        with app.db.session() as s:
            cam = app.cameras.get(s, camera_id)
            authorize_footage(p, "playback", camera_id, frm, to, security_level=cam.security_level,
                              scope=footage_scope(websocket, p),  # type: ignore[arg-type]
                              now_ms=app.clock.wall_ms())

    try:
        await run_in_threadpool(open_session)
    except Forbidden as e:
        await websocket.close(code=4403, reason=str(e)[:120])
        return
    except NotFound as e:
        await websocket.close(code=4404, reason=str(e)[:120])
        return
    root = app.settings.segments_path

    def window(a: int, b: int):
        with app.db.session() as s:
            w = playback.mse_window(s, root, camera_id, a, b)
            nxt = None if w is not None else playback.next_recorded_ms(s, camera_id, a, to)
            return w, nxt

    try:
        while True:
            raw = await websocket.receive_text()
            try:
                msg = _message(raw)
                a, b = msg["from"], msg["to"]
                if a < frm or b > to:
                    raise ValueError("that time is outside this playback session; open a new one")
                w, nxt = await run_in_threadpool(window, a, b)
            except (ValueError, ViisError) as e:
                await websocket.send_text(json.dumps({"type": "error", "error": str(e)[:300],
                                                      "articles": list(getattr(e, "articles", ()))}))
                continue
            if w is None:
                await websocket.send_text(json.dumps({"type": "empty", "id": msg["id"], "next_ms": nxt}))
                continue
            await websocket.send_text(json.dumps({
                "type": "window", "id": msg["id"], "origin_ms": w.origin_ms, "from_ms": w.from_ms,
                "to_ms": w.to_ms, "parts": len(w.parts)}))
            for part in w.parts:
                await websocket.send_bytes(part)
    except (WebSocketDisconnect, asyncio.CancelledError):
        return


def _message(raw: str) -> dict:
    if len(raw) > MAX_MESSAGE:
        raise ValueError(f"message over {MAX_MESSAGE} characters")
    try:
        msg = json.loads(raw)
    except json.JSONDecodeError:
        raise ValueError("messages are JSON objects") from None
    if not isinstance(msg, dict) or msg.get("op") != "fetch":
        raise ValueError('the only operation is {"op": "fetch", "id": n, "from": ms, "to": ms}')
    out = {}
    for k in ("id", "from", "to"):
        v = msg.get(k)
        if isinstance(v, bool) or not isinstance(v, int) or abs(v) >= 1 << 53:
            raise ValueError(f"{k} must be a whole number (UTC milliseconds for from and to)")
        out[k] = v
    return out
