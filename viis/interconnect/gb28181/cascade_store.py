"""Upper platforms and their share lists: validation, persistence, and the level filter.

A share list says, per upper platform, which cameras it may see, under which 20-digit
channel IDs (type 131 camera or 132 IP camera) and whether it may steer them (PTZ). The
platform's ``max_security_level`` is the grade of the interface (Q13.1: government video
is shared level by level and by permission): a camera above it is refused when the share
is written, and — because a camera's level or the platform's grade can change afterwards —
filtered out again every time a share is read (:func:`shares` with ``effective=True``,
:func:`resolve_channel`). Nothing outside this module decides which cameras an upper sees.

Every change is an audit entry (``gb.upper.*``, ``gb.share.set``); the password never is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from viis.core.errors import NotFound, ValidationFailed
from viis.integrity.audit import AuditLog
from viis.interconnect.gb28181.cascade_models import GbShare, GbUpperPlatform
from viis.registry.models import Camera

ID20 = re.compile(r"^[0-9]{20}$")
CHANNEL_TYPES = ("131", "132")
CHARSETS = ("GB2312", "GBK", "GB18030", "UTF-8")
TRANSPORTS = ("UDP", "TCP")
MAX_SHARES = 10_000
_HOST = re.compile(r"^[A-Za-z0-9.\-:\[\]]{1,255}$")


@dataclass(frozen=True)
class UpperPlatform:
    """One upper platform (SIP server) VIIS registers to as a lower platform."""

    id: int
    name: str
    server_id: str
    domain: str
    host: str
    port: int
    transport: str = "UDP"
    password: str = field(default="", repr=False)
    charset: str = "GB2312"
    keepalive_s: float = 60.0
    keepalive_misses: int = 3
    register_expires: int = 3600
    local_id: str = ""
    max_security_level: int = 1
    enabled: bool = True

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port


@dataclass(frozen=True)
class Share:
    """A camera as one upper platform sees it."""

    camera_id: int
    channel_id: str
    ptz_allowed: bool
    name: str
    uid: str
    site: str
    security_level: int
    enabled: bool


def _upper(row: GbUpperPlatform) -> UpperPlatform:
    return UpperPlatform(row.id, row.name, row.server_id, row.domain, row.host, row.port,
                         row.transport, row.password, row.charset, float(row.keepalive_s),
                         row.keepalive_misses, row.register_expires, row.local_id,
                         row.max_security_level, row.enabled)


def public_view(u: UpperPlatform) -> dict[str, Any]:
    """What the API shows of an upper platform: everything but the password."""
    return {"id": u.id, "name": u.name, "server_id": u.server_id, "domain": u.domain,
            "host": u.host, "port": u.port, "transport": u.transport, "charset": u.charset,
            "keepalive_s": u.keepalive_s, "keepalive_misses": u.keepalive_misses,
            "register_expires": u.register_expires, "local_id": u.local_id,
            "max_security_level": u.max_security_level, "enabled": u.enabled,
            "has_password": bool(u.password)}


FIELDS = ("name", "server_id", "domain", "host", "port", "transport", "password", "charset",
          "keepalive_s", "keepalive_misses", "register_expires", "local_id",
          "max_security_level", "enabled")
DEFAULTS: dict[str, Any] = {"transport": "UDP", "charset": "GB2312", "keepalive_s": 60,
                            "keepalive_misses": 3, "register_expires": 3600,
                            "max_security_level": 1, "enabled": True, "domain": None}


def _check(values: dict[str, Any]) -> dict[str, Any]:
    v = dict(values)
    name = str(v.get("name") or "").strip()
    if not 1 <= len(name) <= 100 or any(ord(c) < 32 for c in name):
        raise ValidationFailed("name: 1 to 100 printable characters", field="name")
    v["name"] = name
    for f in ("server_id", "local_id"):
        if not ID20.match(str(v.get(f) or "")):
            raise ValidationFailed(f"{f}: a 20-digit GB/T 28181 ID", field=f)
    if v["local_id"][10:13] != "200":
        raise ValidationFailed("local_id: our platform ID must be of type 200 (digits 11-13), "
                               "the central signalling server type a lower platform registers "
                               "with", field="local_id")
    if v["local_id"] == v["server_id"]:
        raise ValidationFailed("local_id: must differ from the upper's server_id", field="local_id")
    v["domain"] = str(v.get("domain") or v["server_id"][:10])
    if not re.fullmatch(r"[0-9A-Za-z.\-]{1,20}", v["domain"]):
        raise ValidationFailed("domain: up to 20 digits, letters, dots", field="domain")
    host = str(v.get("host") or "")
    if not _HOST.match(host):
        raise ValidationFailed("host: an IP address or host name", field="host")
    port = v.get("port")
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise ValidationFailed("port: 1 to 65535", field="port")
    v["transport"] = str(v.get("transport") or "UDP").upper()
    if v["transport"] not in TRANSPORTS:
        raise ValidationFailed(f"transport: one of {', '.join(TRANSPORTS)}", field="transport")
    cs = str(v.get("charset") or "GB2312").upper().replace("UTF8", "UTF-8")
    if cs not in CHARSETS:
        raise ValidationFailed(f"charset: one of {', '.join(CHARSETS)}", field="charset")
    v["charset"] = cs
    pw = v.get("password")
    if not isinstance(pw, str) or not 1 <= len(pw) <= 200 or any(ord(c) < 32 for c in pw):
        raise ValidationFailed("password: 1 to 200 printable characters (the SIP password the "
                               "upper platform configured for us)", field="password")
    ka, misses, exp = v.get("keepalive_s"), v.get("keepalive_misses"), v.get("register_expires")
    for f, lo, hi in (("keepalive_s", 1, 3600), ("keepalive_misses", 1, 10),
                      ("register_expires", 30, 86_400), ("max_security_level", 0, 5)):
        x = v.get(f)
        if not isinstance(x, int) or isinstance(x, bool) or not lo <= x <= hi:
            raise ValidationFailed(f"{f}: an integer from {lo} to {hi}", field=f)
    if ka * misses >= exp:
        # the notes' rule: keep 3 x interval below the registration period, or the upper
        # drops us between two keepalives
        raise ValidationFailed("keepalive_s x keepalive_misses must be shorter than "
                               "register_expires", field="register_expires")
    v["enabled"] = bool(v.get("enabled", True))
    return v


def list_uppers(s: Session) -> list[UpperPlatform]:
    return [_upper(r) for r in s.scalars(select(GbUpperPlatform).order_by(GbUpperPlatform.id))]


def _row(s: Session, upper_id: int) -> GbUpperPlatform:
    row = s.get(GbUpperPlatform, upper_id)
    if row is None:
        raise NotFound(f"no upper platform {upper_id}")
    return row


def get_upper(s: Session, upper_id: int | str) -> UpperPlatform:
    """By database id, or by the upper's 20-digit server ID."""
    if isinstance(upper_id, str):
        row = s.scalar(select(GbUpperPlatform).where(GbUpperPlatform.server_id == upper_id))
        if row is None:
            raise NotFound(f"no upper platform with server ID {upper_id}")
        return _upper(row)
    return _upper(_row(s, upper_id))


def _unique_server(s: Session, server_id: str, not_id: int | None = None) -> None:
    other = s.scalar(select(GbUpperPlatform.id).where(GbUpperPlatform.server_id == server_id))
    if other is not None and other != not_id:
        raise ValidationFailed(f"server_id: upper platform {server_id} is already configured",
                               field="server_id")


def _audit_view(v: dict[str, Any]) -> dict[str, Any]:
    return {k: ("set" if k == "password" else v[k]) for k in v if k in FIELDS}


def create_upper(s: Session, data: dict[str, Any], *, actor: str | None, now_ms: int) -> UpperPlatform:
    values = _check({**DEFAULTS, **{k: v for k, v in data.items() if k in FIELDS}})
    _unique_server(s, values["server_id"])
    row = GbUpperPlatform(**values, created_ms=now_ms, updated_ms=now_ms)
    s.add(row)
    s.flush()
    AuditLog(s).append("gb.upper.create", actor=actor, subject=f"gb upper {row.server_id}",
                       details=_audit_view(values), at_ms=now_ms)
    return _upper(row)


def update_upper(s: Session, upper_id: int, changes: dict[str, Any], *, actor: str | None,
                 now_ms: int) -> UpperPlatform:
    row = _row(s, upper_id)
    old = {f: getattr(row, f) for f in FIELDS}
    unknown = set(changes) - set(FIELDS)
    if unknown:
        raise ValidationFailed(f"unknown fields: {', '.join(sorted(unknown))}")
    values = _check({**old, **changes})
    _unique_server(s, values["server_id"], row.id)
    diff = {k: values[k] for k in FIELDS if values[k] != old[k]}
    for k, v in diff.items():
        setattr(row, k, v)
    row.updated_ms = now_ms
    s.flush()
    if diff:
        AuditLog(s).append("gb.upper.update", actor=actor, subject=f"gb upper {row.server_id}",
                           details=_audit_view(diff), at_ms=now_ms)
    if "max_security_level" in diff:
        # lowering the grade must not leave a share that the filter hides but the list shows
        _drop_above(s, row, actor, now_ms)
    return _upper(row)


def delete_upper(s: Session, upper_id: int, *, actor: str | None, now_ms: int) -> None:
    row = _row(s, upper_id)
    n = len(list(s.scalars(select(GbShare.id).where(GbShare.upper_id == row.id))))
    s.execute(delete(GbShare).where(GbShare.upper_id == row.id))
    s.delete(row)
    s.flush()
    AuditLog(s).append("gb.upper.delete", actor=actor, subject=f"gb upper {row.server_id}",
                       details={"shares_removed": n}, at_ms=now_ms)


def _drop_above(s: Session, row: GbUpperPlatform, actor: str | None, now_ms: int) -> None:
    above = list(s.scalars(select(GbShare).join(Camera, Camera.id == GbShare.camera_id).where(
        GbShare.upper_id == row.id, Camera.security_level > row.max_security_level)))
    for sh in above:
        s.delete(sh)
    if above:
        s.flush()
        AuditLog(s).append("gb.share.set", actor=actor, subject=f"gb upper {row.server_id}",
                           details={"removed_above_level": [x.camera_id for x in above],
                                    "max_security_level": row.max_security_level},
                           at_ms=now_ms)


def check_channel_id(channel_id: str) -> str:
    if not ID20.match(channel_id or ""):
        raise ValidationFailed("channel_id: a 20-digit GB/T 28181 ID", field="channel_id")
    if channel_id[10:13] not in CHANNEL_TYPES:
        raise ValidationFailed("channel_id: digits 11-13 must be 131 (camera) or 132 (IP "
                               f"camera), not {channel_id[10:13]}", field="channel_id")
    return channel_id


def set_shares(s: Session, upper_id: int, items: list[dict[str, Any]], *, actor: str | None,
               now_ms: int) -> list[Share]:
    """Replace the upper platform's share list. A camera above the platform's grade is
    refused (Q13.1), as are unknown cameras, duplicate cameras and duplicate channel IDs."""
    row = _row(s, upper_id)
    if len(items) > MAX_SHARES:
        raise ValidationFailed(f"at most {MAX_SHARES} shares per upper platform", field="shares")
    seen_cam: set[int] = set()
    seen_ch: set[str] = set()
    clean: list[tuple[int, str, bool]] = []
    for i, it in enumerate(items):
        cid, ch = it.get("camera_id"), str(it.get("channel_id") or "")
        if not isinstance(cid, int) or isinstance(cid, bool):
            raise ValidationFailed(f"shares[{i}].camera_id: an integer", field="camera_id")
        check_channel_id(ch)
        if ch == row.local_id or ch == row.server_id:
            raise ValidationFailed(f"shares[{i}].channel_id: must differ from the platform IDs",
                                   field="channel_id")
        cam = s.get(Camera, cid)
        if cam is None:
            raise ValidationFailed(f"shares[{i}].camera_id: no camera {cid}", field="camera_id")
        if cam.security_level > row.max_security_level:
            raise ValidationFailed(
                f"camera {cam.name!r} has security level {cam.security_level}, above this "
                f"platform's grade {row.max_security_level}: it cannot be shared with "
                f"{row.name} (Q13.1)", field="camera_id", articles=("Q13.1",))
        if cid in seen_cam or ch in seen_ch:
            raise ValidationFailed(f"shares[{i}]: camera or channel ID listed twice",
                                   field="channel_id")
        seen_cam.add(cid)
        seen_ch.add(ch)
        clean.append((cid, ch, bool(it.get("ptz_allowed", False))))
    s.execute(delete(GbShare).where(GbShare.upper_id == row.id))
    s.flush()
    for cid, ch, ptz in clean:
        s.add(GbShare(upper_id=row.id, camera_id=cid, channel_id=ch, ptz_allowed=ptz,
                      created_ms=now_ms))
    s.flush()
    AuditLog(s).append("gb.share.set", actor=actor, subject=f"gb upper {row.server_id}",
                       details={"shares": [{"camera_id": c, "channel_id": ch, "ptz": p}
                                           for c, ch, p in clean][:200], "count": len(clean)},
                       at_ms=now_ms)
    return shares(s, row.id, effective=False)


def _q(upper_id: int):
    return (select(GbShare, Camera).join(Camera, Camera.id == GbShare.camera_id)
            .where(GbShare.upper_id == upper_id).order_by(GbShare.channel_id))


def _share(sh: GbShare, cam: Camera) -> Share:
    return Share(cam.id, sh.channel_id, sh.ptz_allowed, cam.name, cam.uid, cam.site,
                 cam.security_level, cam.enabled)


def shares(s: Session, upper_id: int, *, effective: bool = True) -> list[Share]:
    """The share list; ``effective``: only what the upper may see now — enabled cameras at or
    below the platform's grade (Q13.1)."""
    row = _row(s, upper_id)
    out = [_share(sh, cam) for sh, cam in s.execute(_q(row.id))]
    if effective:
        out = [x for x in out if x.enabled and x.security_level <= row.max_security_level]
    return out


def resolve_channel(s: Session, upper_id: int, channel_id: str) -> Share | None:
    """The share behind a channel ID, or None when the upper may not see it (unknown channel,
    disabled camera, or a camera above the platform's grade)."""
    row = s.get(GbUpperPlatform, upper_id)
    if row is None:
        return None
    hit = s.execute(_q(upper_id).where(GbShare.channel_id == channel_id)).first()
    if hit is None:
        return None
    x = _share(*hit)
    if not x.enabled or x.security_level > row.max_security_level:
        return None
    return x
