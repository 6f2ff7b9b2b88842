"""Upper platforms of the GB/T 28181 lower-platform role and their share lists, under
``/api/gb28181/uppers`` (Q13.1: which city platform sees which cameras, graded by security
level; Q12.1, N12.1).

Actions (viis.access.policy): ``gb.cascade.read`` (the configuration and the registration
state, for the unit's administrators and auditors), ``gb.cascade.write`` (add, change,
remove upper platforms and set what they see: administrators) and ``gb.trace`` (the SIP
message trace of one upper platform, switched on and read by the system's maintainers, as
for devices below). The upper's password is
write-only: no answer carries it, and the audit entry says only that it was set. A change
reaches the running cascade (``app.state.cascade``) at once.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field

from viis.access.policy import Principal
from viis.core.errors import ValidationFailed
from viis.integrity.audit import AuditLog
from viis.interconnect.gb28181 import cascade_store as store
from viis.interconnect.gb28181.cause_codes import upper_codes
from viis.web.auth import allow

router = APIRouter(prefix="/api/gb28181/uppers", tags=["gb28181 cascade"])

Id20 = Annotated[str, Field(min_length=20, max_length=20)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UpperIn(_In):
    name: Annotated[str, Field(max_length=100)]
    server_id: Id20
    domain: Annotated[str, Field(max_length=20)] | None = None
    host: Annotated[str, Field(max_length=255)]
    port: int = 5060
    transport: Annotated[str, Field(max_length=3)] = "UDP"
    password: Annotated[str, Field(max_length=200)]
    charset: Annotated[str, Field(max_length=16)] = "GB2312"
    keepalive_s: int = 60
    keepalive_misses: int = 3
    register_expires: int = 3600
    local_id: Id20
    max_security_level: int = 1
    enabled: bool = True


class UpperPatch(_In):
    name: Annotated[str, Field(max_length=100)] | None = None
    server_id: Id20 | None = None
    domain: Annotated[str, Field(max_length=20)] | None = None
    host: Annotated[str, Field(max_length=255)] | None = None
    port: int | None = None
    transport: Annotated[str, Field(max_length=3)] | None = None
    password: Annotated[str, Field(max_length=200)] | None = None
    charset: Annotated[str, Field(max_length=16)] | None = None
    keepalive_s: int | None = None
    keepalive_misses: int | None = None
    register_expires: int | None = None
    local_id: Id20 | None = None
    max_security_level: int | None = None
    enabled: bool | None = None


class ShareIn(_In):
    camera_id: int
    channel_id: Id20
    ptz_allowed: bool = False


class TraceIn(_In):
    enabled: bool
    duration_s: Annotated[float, Field(gt=0, le=86_400)] = 3600.0


class SharesIn(_In):
    shares: Annotated[list[ShareIn], Field(max_length=store.MAX_SHARES)]


def _reload(request: Request) -> None:
    cascade = getattr(request.app.state, "cascade", None)
    if cascade is not None:
        cascade.request_reload()


def _view(request: Request, u: store.UpperPlatform) -> dict[str, Any]:
    out = store.public_view(u)
    cascade = getattr(request.app.state, "cascade", None)
    client = cascade.client(u.id) if cascade is not None else None
    out["status"] = client.diagnose() if client is not None else (
        {"state": "disabled" if not u.enabled else "not running",
         "cause": "" if not u.enabled else "the cascade is not running in this process "
                  "(enable [gb28181] in the settings of viis run)"})
    out["status"].update(upper_codes(out["status"]))  # the console translates by code
    return out


def _share_view(sh: store.Share, visible: bool) -> dict[str, Any]:
    return {"camera_id": sh.camera_id, "camera": sh.name, "channel_id": sh.channel_id,
            "ptz_allowed": sh.ptz_allowed, "security_level": sh.security_level,
            "visible": visible}


@router.get("")
def list_uppers(request: Request, p: Principal = Depends(allow("gb.cascade.read"))) -> list[dict]:
    with request.app.state.viis.db.session() as s:
        uppers = store.list_uppers(s)
    return [_view(request, u) for u in uppers]


@router.post("", status_code=201)
def create_upper(body: UpperIn, request: Request,
                 p: Principal = Depends(allow("gb.cascade.write"))) -> dict:
    app = request.app.state.viis
    with app.db.session() as s:
        u = store.create_upper(s, body.model_dump(), actor=p.name, now_ms=app.clock.wall_ms())
    _reload(request)
    return _view(request, u)


@router.get("/{upper_id}")
def get_upper(upper_id: int, request: Request,
              p: Principal = Depends(allow("gb.cascade.read"))) -> dict:
    with request.app.state.viis.db.session() as s:
        u = store.get_upper(s, upper_id)
    return _view(request, u)


@router.patch("/{upper_id}")
def update_upper(upper_id: int, body: UpperPatch, request: Request,
                 p: Principal = Depends(allow("gb.cascade.write"))) -> dict:
    app = request.app.state.viis
    with app.db.session() as s:
        u = store.update_upper(s, upper_id, body.model_dump(exclude_unset=True), actor=p.name,
                               now_ms=app.clock.wall_ms())
    _reload(request)
    return _view(request, u)


@router.delete("/{upper_id}", status_code=204)
def delete_upper(upper_id: int, request: Request,
                 p: Principal = Depends(allow("gb.cascade.write"))) -> None:
    app = request.app.state.viis
    with app.db.session() as s:
        store.delete_upper(s, upper_id, actor=p.name, now_ms=app.clock.wall_ms())
    _reload(request)


@router.get("/{upper_id}/shares")
def get_shares(upper_id: int, request: Request,
               p: Principal = Depends(allow("gb.cascade.read"))) -> list[dict]:
    """Every share, with ``visible`` false where the upper cannot see the camera now (it was
    disabled, or its level raised above the platform's grade: Q13.1)."""
    with request.app.state.viis.db.session() as s:
        seen = {x.camera_id for x in store.shares(s, upper_id, effective=True)}
        return [_share_view(x, x.camera_id in seen)
                for x in store.shares(s, upper_id, effective=False)]


@router.put("/{upper_id}/shares")
def put_shares(upper_id: int, body: SharesIn, request: Request,
               p: Principal = Depends(allow("gb.cascade.write"))) -> list[dict]:
    """Replace the share list; a camera above the platform's grade is refused (422, Q13.1)."""
    app = request.app.state.viis
    with app.db.session() as s:
        got = store.set_shares(s, upper_id, [x.model_dump() for x in body.shares],
                               actor=p.name, now_ms=app.clock.wall_ms())
    _reload(request)  # subscribers hear ADD/DEL
    return [_share_view(x, True) for x in got]


def _running(request: Request):
    cascade = getattr(request.app.state, "cascade", None)
    if cascade is None:
        raise ValidationFailed("the cascade is not running in this process (enable [gb28181] "
                               "cascade_enabled in the settings of viis run)")
    return cascade


@router.get("/{upper_id}/trace", dependencies=[Depends(allow("gb.trace"))])
def get_trace(upper_id: int, request: Request) -> dict:
    with request.app.state.viis.db.session() as s:
        u = store.get_upper(s, upper_id)
    cascade = _running(request)
    return cascade.call(lambda: cascade.trace_read(u.server_id))


@router.put("/{upper_id}/trace")
def set_trace(upper_id: int, body: TraceIn, request: Request,
              p: Principal = Depends(allow("gb.trace"))) -> dict:
    app = request.app.state.viis
    with app.db.session() as s:
        u = store.get_upper(s, upper_id)
    cascade = _running(request)
    cascade.call(lambda: cascade.trace_switch(u.server_id, body.enabled, body.duration_s))
    with app.db.session() as s:
        AuditLog(s, app.clock).append("gb.upper.trace", actor=p.name,
                                      subject=f"gb upper {u.server_id}",
                                      details={"enabled": body.enabled})
    return {"enabled": body.enabled}


def install(api: FastAPI) -> None:
    api.state.cascade = getattr(api.state, "cascade", None)
    api.include_router(router)
