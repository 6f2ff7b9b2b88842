"""GB/T 28181 devices and lower platforms below us, under ``/api/gb28181`` (Q13.2; Q12.1,
N12.1): each peer with its diagnosis in plain language, its catalog channels, a per-peer SIP
trace that can be switched on and read, a catalog refresh, and PTZ.

Actions (viis.access.policy): ``gb.read`` (peers, diagnosis, channels), ``gb.write``
(catalog refresh), ``gb.trace`` (SIP traces carry addresses and message contents: the
system's maintainers only), ``gb.ptz`` (moving a camera: those who watch live, and only
cameras within their clearance, Q13.1). Ids are checked before anything is sent to a
device; a refusal sends nothing. The trace switch and every PTZ command are audit entries.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from viis.access.door import authorize_footage
from viis.access.policy import Principal, may_see_camera
from viis.core.clock import parse_time
from viis.core.errors import NotFound, ValidationFailed, ViisError
from viis.integrity.audit import AuditLog
from viis.interconnect.gb28181 import ptz as ptzcodec
from viis.interconnect.gb28181.cause_codes import device_codes
from viis.interconnect.gb28181.devices import DeviceStore, channel_view, device_view
from viis.registry.models import Camera
from viis.web.auth import allow, footage_scope, principal

router = APIRouter(prefix="/api/gb28181", tags=["gb28181"])
_ID = re.compile(r"^[0-9A-Za-z]{1,32}$")


class NotRunning(ViisError):
    """The platform role is off (``[gb28181] enabled = false``) or not started."""


class TraceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool


class PtzIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["left", "right", "up", "down", "up_left", "up_right", "down_left",
                    "down_right", "zoom_in", "zoom_out", "stop", "preset_call", "preset_set",
                    "preset_delete"]
    speed: Annotated[int, Field(ge=1, le=255)] = 128
    preset: Annotated[int, Field(ge=1, le=255)] | None = None


def _check_id(value: str, what: str) -> str:
    if not _ID.match(value or ""):
        raise ValidationFailed(f"{what} must be 1 to 32 letters or digits (a GB/T 28181 id is "
                               f"20 digits); got {value[:40]!r}", field=what)
    return value


def _svc(request: Request):
    svc = getattr(request.app.state, "gb28181", None)
    if svc is None:
        raise NotRunning("the GB/T 28181 platform role is not running: set [gb28181] "
                         "enabled = true and restart")
    return svc


def _app(request: Request):
    return request.app.state.viis


def _rows(app, device_id: str | None = None) -> list[tuple[dict[str, Any], list[dict]]]:
    store = DeviceStore(app.cameras)
    with app.db.session() as s:
        devs = store.list(s) if device_id is None else [d for d in [store.get(s, device_id)] if d]
        return [(device_view(d), [channel_view(c) for c in store.channels(s, d.device_id)]
                 if device_id else []) for d in devs]


async def _views(request: Request, device_id: str | None = None) -> list[dict[str, Any]]:
    """DB rows merged with the live state and diagnosis of the running platform; each with
    stable cause and note codes (the console translates by code)."""
    views = await _merged(request, device_id)
    for v in views:
        v.update(device_codes(v))
    return views


async def _merged(request: Request, device_id: str | None = None) -> list[dict[str, Any]]:
    app = _app(request)
    rows = await run_in_threadpool(_rows, app, device_id)
    svc = getattr(request.app.state, "gb28181", None)
    if svc is None:
        out = []
        for view, chans in rows:
            view.update(known=True, cause="the GB/T 28181 platform role is not running",
                        trace=False, channels=chans)
            out.append(view)
        return out

    async def merge() -> list[dict[str, Any]]:
        by_id = {v["device_id"]: (v, c) for v, c in rows}
        ids = [device_id] if device_id else sorted(set(by_id) | set(svc.listed_peers()))
        out = []
        for i in ids:
            view, chans = by_id.get(i, (None, []))
            v = svc.diagnose(i, view)
            if not v["known"]:
                continue
            v["channels"] = chans
            out.append(v)
        return out

    return await svc.call(merge)


@router.get("/devices", dependencies=[Depends(allow("gb.read"))])
async def devices(request: Request) -> dict:
    """Every device and lower platform, with registration state, last keepalive, last
    error and a plain-language cause."""
    views = await _views(request)
    for v in views:
        v.pop("channels", None)
    return {"enabled": getattr(request.app.state, "gb28181", None) is not None,
            "devices": views}


@router.get("/devices/{device_id}", dependencies=[Depends(allow("gb.read"))])
async def device(request: Request, device_id: str) -> dict:
    _check_id(device_id, "device_id")
    views = await _views(request, device_id)
    if not views:
        raise NotFound(f"no GB/T 28181 device {device_id}: it never registered (check the "
                       "server address, port and ID configured on the device)")
    return views[0]


@router.get("/devices/{device_id}/channels", dependencies=[Depends(allow("gb.read"))])
async def channels(request: Request, device_id: str) -> list[dict]:
    return (await device(request, device_id))["channels"]


@router.get("/devices/{device_id}/channels/{channel_id}/records",
            dependencies=[Depends(allow("gb.read"))])
async def records(request: Request, device_id: str, channel_id: str, start: str,
                  end: str) -> dict:
    """The recordings a device keeps of a channel on its own storage (RecordInfo, split
    answers aggregated). Where footage is, like the timeline: it passes the one door as
    ``timeline`` for the channel's camera (invariant 3, Q13.1) and is a register entry."""
    frm, to = _range(device_id, channel_id, start, end, max_ms=31 * 86_400_000)
    svc = _svc(request)
    await _channel_door(request, device_id, channel_id, "timeline", frm, to)
    r = await svc.call(svc.record_info, device_id, channel_id, frm, to)
    return {"device_id": device_id, "channel_id": channel_id, "complete": r.complete,
            "sum_num": r.sum_num,
            "records": [{"start_ms": x.get("start_ms"), "end_ms": x.get("end_ms"),
                         "type": x.get("Type"), "name": x.get("Name"),
                         "file_path": x.get("FilePath")} for x in r.items]}


@router.get("/devices/{device_id}/channels/{channel_id}/playback",
            dependencies=[Depends(allow("gb.read"))])
async def device_playback(request: Request, device_id: str, channel_id: str, start: str,
                          end: str, transport: Literal["udp", "tcp"] = "udp"):
    """Play back a range the device keeps on its own storage (issue 7 item 3; Q13.2): VIIS
    INVITEs the channel with ``s=Playback`` and streams what the device sends as an MPEG
    program stream (``video/MP2P``: ffplay, VLC, ffmpeg read it) until the device's end of
    file; ``transport=tcp`` has the device connect to us for the media (NAT, loss). Viewing
    footage: it passes the one door as ``playback`` for the channel's camera
    within the user's clearance (invariant 3, Q13.1) and is a register entry (Q19.1)."""
    from fastapi.responses import StreamingResponse

    from viis.interconnect.gb28181.device_playback import DevicePlayback

    frm, to = _range(device_id, channel_id, start, end, max_ms=86_400_000)
    svc = _svc(request)
    await _channel_door(request, device_id, channel_id, "playback", frm, to)
    pb = DevicePlayback(svc, device_id, channel_id, frm, to, transport=transport)
    await svc.call(pb.open)

    async def body():
        try:
            while True:
                chunk = await svc.call(pb.next_chunk)
                if not chunk:
                    return
                yield chunk
        finally:
            await svc.call(pb.close)

    return StreamingResponse(body(), media_type="video/MP2P",
                             headers={"Cache-Control": "no-store"})


async def _channel_door(request: Request, device_id: str, channel_id: str, action: str,
                        frm: int, to: int) -> None:
    """The one door (invariant 3) for footage a device keeps: the channel's camera within
    the user's clearance (Q13.1), else 404 and nothing is asked of the device; each use is
    a register entry (Q19.1)."""
    app = _app(request)
    who = principal(request)

    def door() -> None:
        with app.db.session() as s:
            ch = DeviceStore(app.cameras).channel(s, device_id, channel_id)
            cam = s.get(Camera, ch.camera_id) if ch is not None and ch.camera_id else None
            if cam is None or not may_see_camera(who, cam.security_level):
                raise NotFound(f"no channel {channel_id} of device {device_id}")
            authorize_footage(who, action, cam.id, frm, to,
                              security_level=cam.security_level,
                              scope=footage_scope(request, who), now_ms=app.clock.wall_ms())

    await run_in_threadpool(door)


def _range(device_id: str, channel_id: str, start: str, end: str,
           max_ms: int) -> tuple[int, int]:
    _check_id(device_id, "device_id")
    _check_id(channel_id, "channel_id")
    if len(start) > 64 or len(end) > 64:
        raise ValidationFailed("start and end must be ISO 8601 times or UTC milliseconds",
                               field="start")
    frm, to = parse_time(start), parse_time(end)
    if not 0 < to - frm <= max_ms:
        span = (f"{max_ms // 86_400_000} days" if max_ms % 86_400_000 == 0 and max_ms > 86_400_000
                else f"{max_ms // 3_600_000} hours")
        raise ValidationFailed(f"end must be after start, at most {span} later", field="end")
    return frm, to


@router.post("/devices/{device_id}/catalog", dependencies=[Depends(allow("gb.write"))])
async def refresh_catalog(request: Request, device_id: str) -> dict:
    """Ask the device for its catalog now and sync it into the camera registry."""
    _check_id(device_id, "device_id")
    svc = _svc(request)
    res = await svc.call(svc.sync_catalog, device_id)
    return {"channels": res.channels, "cameras_added": res.added,
            "cameras_updated": res.updated, "cameras_disabled": res.disabled}


@router.get("/devices/{device_id}/trace", dependencies=[Depends(allow("gb.trace"))])
async def get_trace(request: Request, device_id: str) -> dict:
    _check_id(device_id, "device_id")
    svc = _svc(request)

    async def read() -> dict:
        return svc.trace_read(device_id)

    return await svc.call(read)


@router.put("/devices/{device_id}/trace")
async def set_trace(request: Request, device_id: str, body: TraceIn,
                    who: Principal = Depends(allow("gb.trace"))) -> dict:
    _check_id(device_id, "device_id")
    svc = _svc(request)

    async def switch() -> None:
        svc.trace_switch(device_id, body.enabled)

    await svc.call(switch)
    app = _app(request)

    def audit() -> None:
        with app.db.session() as s:
            AuditLog(s, app.clock).append("gb28181.trace", actor=who, subject=f"gb {device_id}",
                                          details={"enabled": body.enabled})

    await run_in_threadpool(audit)
    return {"device_id": device_id, "enabled": body.enabled}


@router.post("/devices/{device_id}/channels/{channel_id}/ptz")
async def send_ptz(request: Request, device_id: str, channel_id: str, body: PtzIn,
                   who: Principal = Depends(allow("gb.ptz"))) -> dict:
    """Pan, tilt, zoom or a preset on one channel (Q13.2), within the user's clearance
    against the channel's camera (Q5.1, Q13.1)."""
    _check_id(device_id, "device_id")
    _check_id(channel_id, "channel_id")
    svc = _svc(request)
    app = _app(request)
    command = ptz_command(body)

    def check_and_audit() -> None:
        store = DeviceStore(app.cameras)
        with app.db.session() as s:
            ch = store.channel(s, device_id, channel_id)
            cam = s.get(Camera, ch.camera_id) if ch is not None and ch.camera_id else None
            if cam is None or not may_see_camera(who, cam.security_level):
                raise NotFound(f"no channel {channel_id} of device {device_id} you may control")
            if ch.ptz_type is not None and ch.ptz_type not in (1, 2, 5):
                raise ValidationFailed(f"channel {channel_id} is not a PTZ camera (PTZType "
                                       f"{ch.ptz_type})", field="channel_id")
            AuditLog(s, app.clock).append("gb28181.ptz", actor=who, subject=f"camera {cam.id}",
                                          details={"device": device_id, "channel": channel_id,
                                                   "action": body.action, "ptz": command})

    await run_in_threadpool(check_and_audit)
    await svc.call(svc.ptz, device_id, channel_id, command)
    return {"sent": command}


def ptz_command(body: PtzIn) -> str:
    """The 16-hex-digit PTZCmd for a request (encoded by :mod:`..gb28181.ptz`). The PTZ
    address is 1, as deployed platforms send it; a GB channel is addressed by its id."""
    if body.action.startswith("preset_"):
        if body.preset is None:
            raise ValidationFailed("a preset action needs preset (1 to 255)", field="preset")
        return ptzcodec.encode_preset(body.action.removeprefix("preset_"), body.preset, address=1)
    if body.action == "stop":
        return ptzcodec.encode_ptz(address=1)
    if body.action in ("zoom_in", "zoom_out"):
        return ptzcodec.encode_ptz(zoom=body.action.removeprefix("zoom_"),
                                   zoom_speed=max(1, body.speed >> 4), address=1)
    tilt = next((t for t in ("up", "down") if t in body.action), None)
    pan = next((p for p in ("left", "right") if p in body.action), None)
    return ptzcodec.encode_ptz(pan=pan, tilt=tilt, pan_speed=body.speed, tilt_speed=body.speed,
                               address=1)


def install(api: FastAPI) -> None:
    api.state.gb28181 = getattr(api.state, "gb28181", None)  # viis run sets the service
    api.include_router(router)

    @api.exception_handler(NotRunning)
    async def _not_running(_r, e: NotRunning):
        from fastapi.responses import JSONResponse

        return JSONResponse({"error": str(e)}, status_code=503)

    from viis.interconnect.gb28181.service import DeviceError

    @api.exception_handler(DeviceError)
    async def _device_error(_r, e: DeviceError):
        from fastapi.responses import JSONResponse

        return JSONResponse({"error": str(e)}, status_code=502)


__all__ = ["install", "ptz_command", "router"]
