"""Live view: ``/api/cameras/{id}/live``, a WebSocket carrying fragmented MP4 for the
browser's MediaSource (Q2.1, Q19.1 duty monitoring).

Live view is footage access (invariant 3): the one door
(:func:`viis.access.door.authorize_footage`, action ``live``) decides when the socket opens,
which writes ONE register entry per view session (not per frame; Q19.1, N16.1). The session
behind the socket is checked again every ``RECHECK_S`` seconds, so signing out or an
administrator's revocation ends a view that is open.

A camera with a sub stream (``sub_url``) is shown from it (lighter for a 16-tile wall),
opened by the hub once per camera while watched (:class:`viis.media.live.SubStream`).

Protocol. Server → client, text (JSON): ``{"type": "hello", "camera_id", "stream": "main"
or "sub", "server_ms"}``;
``{"type": "init", "codec", "mime", "width", "height"}`` followed by one binary message
(the init segment); then binary messages, one fragment (one frame) each, the first starting
at a keyframe; ``{"type": "lost"}`` when the camera's stream ended (a new ``init`` follows
when it returns); ``{"type": "time", "t0", "server_ms"}`` answering a clock probe.
Client → server, text: ``{"op": "time", "t0": <page ms>}`` (clock alignment, at most 200
characters); ``{"op": "keys", "on": true|false}``: keyframes only, or every frame again from
the next keyframe (the page could not decode every frame in time; docs/design/console.md). Refusals close the socket with 4401 (not signed in), 4403 (the door, or a
password to change first), 4404 (no such camera), 4429 (too many viewers), 4503 (no
recorder in this process).
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from fastapi import APIRouter, FastAPI, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from viis.access.door import Forbidden, authorize_footage
from viis.core.errors import NotFound
from viis.core.logging import get_logger
from viis.web.auth import footage_scope, principal

log = get_logger(__name__)

router = APIRouter(prefix="/api/cameras/{camera_id}", tags=["live"])
RECHECK_S = 30.0
MAX_MESSAGE = 200


def install(api: FastAPI, recorder) -> None:
    """Attach the live fan-out to the recorder (when this process has one) and add the route."""
    from viis.media.live import LiveHub

    api.state.live = LiveHub.attach(recorder) if recorder is not None else None
    api.include_router(router)


def _reason(text: str) -> str:
    """A WebSocket close reason is at most 123 bytes of UTF-8."""
    out = text.encode()[:120]
    return out.decode(errors="ignore")


async def _still_signed_in(websocket: WebSocket) -> bool:
    if hasattr(websocket.state, "principal"):
        del websocket.state.principal
    p = await run_in_threadpool(principal, websocket)  # type: ignore[arg-type]
    return p is not None


@router.websocket("/live")
async def live(websocket: WebSocket, camera_id: int) -> None:
    app = websocket.app.state.viis
    hub = getattr(websocket.app.state, "live", None)
    await websocket.accept()  # first, so that a refusal's close code reaches the page
    p = await run_in_threadpool(principal, websocket)  # type: ignore[arg-type]
    if p is None:
        await websocket.close(code=4401, reason="sign in first")
        return
    if p.must_change_password:
        await websocket.close(code=4403, reason="change your password first")
        return

    def open_session():
        """The door; then the camera's sub stream (url, user, password), if it has one."""
        with app.db.session() as s:
            cam = app.cameras.get(s, camera_id)
            authorize_footage(p, "live", camera_id, security_level=cam.security_level,
                              scope=footage_scope(websocket, p),  # type: ignore[arg-type]
                              now_ms=app.clock.wall_ms())
            return (cam.sub_url, cam.username, cam.password) if cam.sub_url else None

    try:
        sub = await run_in_threadpool(open_session)
    except Forbidden as e:
        await websocket.close(code=4403, reason=_reason(str(e)))
        return
    except NotFound as e:
        await websocket.close(code=4404, reason=_reason(str(e)))
        return
    if hub is None:
        await websocket.close(code=4503, reason="live view needs the recorder (viis run)")
        return
    try:
        viewer = hub.join(camera_id, sub)
    except OverflowError as e:
        await websocket.close(code=4429, reason=_reason(str(e)))
        return
    log.info("live_view_open", camera_id=camera_id, who=p.name)
    await websocket.send_text(json.dumps({"type": "hello", "camera_id": camera_id,
                                          "stream": "sub" if sub else "main",
                                          "server_ms": app.clock.wall_ms()}))
    receiver = asyncio.create_task(_receive(websocket, app, viewer))
    checker = asyncio.create_task(_recheck(websocket))
    try:
        while True:
            item = await _next(viewer, receiver, checker)
            if item is None:
                break
            if isinstance(item, bytes):
                await websocket.send_bytes(item)
            else:
                await websocket.send_text(json.dumps(item))
    except (WebSocketDisconnect, RuntimeError, ConnectionError):
        pass
    finally:
        hub.leave(viewer)
        for t in (receiver, checker):
            t.cancel()
        log.info("live_view_closed", camera_id=camera_id, who=p.name, drops=viewer.drops,
                 fragments=viewer.sent_fragments)
        with contextlib.suppress(Exception):
            await websocket.close()


async def _next(viewer, *watch: asyncio.Task):
    """The viewer's next message, or None when the client left or the session ended."""
    if viewer.queue and not any(t.done() for t in watch):
        return viewer.pop()  # the common case under load: no task per message
    nxt = asyncio.ensure_future(viewer.next())
    done, _ = await asyncio.wait({nxt, *watch}, return_when=asyncio.FIRST_COMPLETED)
    if nxt in done:
        return nxt.result()
    nxt.cancel()
    return None


async def _receive(websocket: WebSocket, app, viewer) -> None:
    """Clock probes (answered through the viewer's queue: one sender per socket) and
    keyframes-only requests from the page; returns when the client goes away."""
    try:
        while True:
            msg = await websocket.receive()
            if msg["type"] == "websocket.disconnect":
                return
            raw = msg.get("text")
            if raw is None or len(raw) > MAX_MESSAGE:
                continue  # binary or oversized: ignored
            try:
                msg = json.loads(raw)
            except json.JSONDecodeError:
                continue
            if isinstance(msg, dict) and msg.get("op") == "keys" and isinstance(msg.get("on"), bool):
                viewer.want_keys_only(msg["on"])
                continue
            t0 = msg.get("t0") if isinstance(msg, dict) and msg.get("op") == "time" else None
            if isinstance(t0, int | float) and not isinstance(t0, bool) and abs(t0) < 1e15:
                viewer.push_urgent({"type": "time", "t0": t0, "server_ms": app.clock.wall_ms()})
    except (WebSocketDisconnect, RuntimeError, ConnectionError):
        return


async def _recheck(websocket: WebSocket) -> None:
    """Returns (ending the view) when the session behind the socket is no longer valid."""
    while True:
        await asyncio.sleep(RECHECK_S)
        if not await _still_signed_in(websocket):
            with contextlib.suppress(Exception):
                await websocket.close(code=4401, reason="the session has ended")
            return
