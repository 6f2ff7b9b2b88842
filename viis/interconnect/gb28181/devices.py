"""Devices and lower platforms below us (platform role, Q13.2): their persisted state, their
catalogs, and the sync of their video channels into the camera registry.

Owns the tables ``gb_devices`` and ``gb_channels`` (migration ``0008_gb_devices``). Every
function here is synchronous database work on a session the caller gives; the service
(:mod:`.service`) runs it in a worker thread so the SIP loop never waits on a disk.

Catalog sync rules (why they are this way):
- a video channel (type 131/132, or an encoder/DVR/NVR id with ``Parental`` 0) becomes a
  camera ``gb28181://<device id>/<channel id>`` named as the catalog names it (Chinese names
  kept as sent); directories, business groups and alarm inputs are stored but are not cameras;
- a channel missing from a *complete* catalog is marked removed and its camera disabled,
  never deleted: footage inside its retention must stay (invariant 1); a partial catalog
  (a split response that never completed) only adds and updates;
- a camera an operator renamed keeps its name; only a name still equal to the previous
  catalog name follows the catalog.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from viis.core.db import Base
from viis.core.logging import get_logger
from viis.registry.models import Camera
from viis.registry.service import CameraInput, CameraService

log = get_logger(__name__)

ACTOR = "gb28181-platform"  # the audit log's actor for registry changes made by catalog sync
ID_RE = re.compile(r"^[0-9A-Za-z]{1,32}$")
VIDEO_TYPES = frozenset({"131", "132"})
ENCODER_TYPES = frozenset({"111", "112", "113", "118"})  # DVR, video server, encoder, NVR
MAX_INFO_BYTES = 4000


class GbDevice(Base):
    """A device or lower platform that registers to us (Q13.2)."""

    __tablename__ = "gb_devices"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    manufacturer: Mapped[str] = mapped_column(String(200), default="")
    model: Mapped[str] = mapped_column(String(200), default="")
    firmware: Mapped[str] = mapped_column(String(200), default="")
    transport: Mapped[str] = mapped_column(String(8), default="UDP")
    host: Mapped[str] = mapped_column(String(64), default="")
    port: Mapped[int] = mapped_column(Integer, default=0)
    contact: Mapped[str] = mapped_column(String(500), default="")
    registered: Mapped[bool] = mapped_column(Boolean, default=False)
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    registered_ms: Mapped[int | None] = mapped_column()
    expires_ms: Mapped[int | None] = mapped_column()  # wall time the registration runs out
    last_keepalive_ms: Mapped[int | None] = mapped_column()
    status_ms: Mapped[int | None] = mapped_column()  # last online/offline change
    last_error: Mapped[str] = mapped_column(String(500), default="")
    cause: Mapped[str] = mapped_column(Text, default="")
    charset: Mapped[str] = mapped_column(String(16), default="")
    catalog_ms: Mapped[int | None] = mapped_column()  # last complete catalog
    channel_count: Mapped[int] = mapped_column(Integer, default=0)
    created_ms: Mapped[int] = mapped_column()
    updated_ms: Mapped[int] = mapped_column()


class GbChannel(Base):
    """One catalog item of a device: a video channel (then ``camera_id`` is set) or a
    directory, business group, alarm input."""

    __tablename__ = "gb_channels"
    __table_args__ = (UniqueConstraint("device_pk", "channel_id"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    device_pk: Mapped[int] = mapped_column(ForeignKey("gb_devices.id", ondelete="RESTRICT"))
    channel_id: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200), default="")
    kind: Mapped[str] = mapped_column(String(16), default="video")  # video | group | other
    parent_id: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(16), default="")  # ON | OFF as the device says
    ptz_type: Mapped[int | None] = mapped_column(Integer)
    info: Mapped[str] = mapped_column(Text, default="{}")  # the catalog item, JSON, bounded
    camera_id: Mapped[int | None] = mapped_column(ForeignKey("cameras.id", ondelete="RESTRICT"))
    removed: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_ms: Mapped[int] = mapped_column()


@dataclass
class DeviceSnapshot:
    """The registration state of one peer as the SIP loop saw it, to be written."""

    device_id: str
    registered: bool
    online: bool
    transport: str = "UDP"
    host: str = ""
    port: int = 0
    contact: str = ""
    registered_ms: int | None = None
    expires_ms: int | None = None
    last_keepalive_ms: int | None = None
    status_changed: bool = False
    last_error: str = ""
    cause: str = ""
    charset: str = ""


@dataclass
class SyncResult:
    added: list[int] = field(default_factory=list)  # camera ids
    updated: list[int] = field(default_factory=list)
    disabled: list[int] = field(default_factory=list)
    channels: int = 0


def gb_url(device_id: str, channel_id: str) -> str:
    return f"gb28181://{device_id}/{channel_id}"


def parse_gb_url(url: str) -> tuple[str, str] | None:
    """``gb28181://<device>/<channel>`` → (device, channel), or None."""
    m = re.fullmatch(r"gb28181://([0-9A-Za-z]{1,32})/([0-9A-Za-z]{1,32})/?", url.strip())
    return (m.group(1), m.group(2)) if m else None


def channel_kind(item: dict[str, Any]) -> str:
    """'video' for something that has a picture, 'group' for directories, else 'other'."""
    cid = str(item.get("DeviceID", ""))
    t = cid[10:13] if len(cid) == 20 and cid.isdigit() else ""
    if t in VIDEO_TYPES:
        return "video"
    if t in ENCODER_TYPES and str(item.get("Parental", "0")).strip() in ("0", ""):
        return "video"
    if t in ("200", "215", "216") or (cid.isdigit() and len(cid) < 20):
        return "group"  # platforms, business groups, virtual organisations, civil codes
    if not t:  # a non-standard id: trust Parental
        return "video" if str(item.get("Parental", "1")).strip() == "0" else "group"
    return "other"


def _text(value: Any, limit: int = 200) -> str:
    s = "" if value is None else str(value)
    s = "".join(c for c in s if c >= " " and c != "\x7f").strip()
    return s[:limit]


def _ptz_type(item: dict[str, Any]) -> int | None:
    info = item.get("Info")
    raw = info.get("PTZType") if isinstance(info, dict) else None
    raw = raw if raw is not None else item.get("PTZType")
    try:
        return int(str(raw).strip()) if raw is not None else None
    except ValueError:
        return None


def _info_json(item: dict[str, Any]) -> str:
    safe = {k: v for k, v in item.items() if k.lower() != "password"}  # never kept
    text = json.dumps(safe, ensure_ascii=False, sort_keys=True, default=str)
    return text if len(text.encode()) <= MAX_INFO_BYTES else json.dumps(
        {k: _text(safe.get(k)) for k in ("DeviceID", "Name", "Manufacturer", "Model",
                                         "ParentID", "Status")}, ensure_ascii=False)


class DeviceStore:
    """Database side of the platform role. ``cameras`` is the registry service."""

    def __init__(self, cameras: CameraService, security_level: int = 1) -> None:
        self.cameras = cameras
        self.security_level = security_level  # of cameras created from catalogs (Q13.1)

    # ---- devices --------------------------------------------------------------------

    def get(self, s: Session, device_id: str) -> GbDevice | None:
        return s.scalar(select(GbDevice).where(GbDevice.device_id == device_id))

    def list(self, s: Session) -> list[GbDevice]:
        return list(s.scalars(select(GbDevice).order_by(GbDevice.device_id)))

    def save(self, s: Session, snaps: list[DeviceSnapshot], now_ms: int) -> None:
        """Write the registration state of peers (one transaction for a batch; looked up
        in chunks, as SQLite bounds the parameters of one statement)."""
        have: dict[str, GbDevice] = {}
        ids = [x.device_id for x in snaps]
        for i in range(0, len(ids), 5000):
            have.update((d.device_id, d) for d in s.scalars(
                select(GbDevice).where(GbDevice.device_id.in_(ids[i:i + 5000]))))
        for snap in snaps:
            d = have.get(snap.device_id)
            if d is None:
                d = GbDevice(device_id=snap.device_id, created_ms=now_ms, updated_ms=now_ms)
                s.add(d)
                have[snap.device_id] = d
            d.registered, d.online = snap.registered, snap.online
            d.transport = snap.transport[:8]
            d.host, d.port = snap.host[:64], snap.port
            d.contact = _text(snap.contact, 500)
            d.registered_ms, d.expires_ms = snap.registered_ms, snap.expires_ms
            if snap.last_keepalive_ms is not None:
                d.last_keepalive_ms = snap.last_keepalive_ms
            if snap.status_changed:
                d.status_ms = now_ms
            d.last_error = _text(snap.last_error, 500)
            d.cause = snap.cause[:2000]
            d.charset = snap.charset[:16]
            d.updated_ms = now_ms
        s.flush()

    def set_info(self, s: Session, device_id: str, fields: dict[str, Any], now_ms: int) -> None:
        """DeviceInfo answer: name, manufacturer, model, firmware."""
        d = self.get(s, device_id)
        if d is None:
            return
        for col, key in (("name", "DeviceName"), ("manufacturer", "Manufacturer"),
                         ("model", "Model"), ("firmware", "Firmware")):
            if fields.get(key):
                setattr(d, col, _text(fields[key]))
        d.updated_ms = now_ms

    # ---- channels -------------------------------------------------------------------

    def channels(self, s: Session, device_id: str) -> list[GbChannel]:
        d = self.get(s, device_id)
        if d is None:
            return []
        return list(s.scalars(select(GbChannel).where(GbChannel.device_pk == d.id)
                              .order_by(GbChannel.channel_id)))

    def channel(self, s: Session, device_id: str, channel_id: str) -> GbChannel | None:
        d = self.get(s, device_id)
        if d is None:
            return None
        return s.scalar(select(GbChannel).where(GbChannel.device_pk == d.id,
                                                GbChannel.channel_id == channel_id))

    def sync_catalog(self, s: Session, device_id: str, items: list[dict[str, Any]],
                     complete: bool, now_ms: int) -> SyncResult:
        """Store a device's catalog and sync its video channels into the camera registry."""
        d = self.get(s, device_id)
        if d is None:
            d = GbDevice(device_id=device_id, created_ms=now_ms, updated_ms=now_ms)
            s.add(d)
            s.flush()
        existing = {c.channel_id: c for c in s.scalars(
            select(GbChannel).where(GbChannel.device_pk == d.id))}
        res = SyncResult()
        seen: set[str] = set()
        for item in items:
            cid = _text(item.get("DeviceID"), 32)
            if not ID_RE.match(cid) or cid in seen:
                continue
            seen.add(cid)
            ch = existing.get(cid)
            if ch is None:
                ch = GbChannel(device_pk=d.id, channel_id=cid, updated_ms=now_ms)
                s.add(ch)
                existing[cid] = ch
            old_name = ch.name
            ch.name = _text(item.get("Name")) or cid
            ch.kind = channel_kind(item)
            ch.parent_id = _text(item.get("ParentID"))
            status = _text(item.get("Status"), 16).upper()
            ch.status = {"ONLINE": "ON", "OFFLINE": "OFF"}.get(status, status)
            ch.ptz_type = _ptz_type(item)
            ch.info = _info_json(item)
            was_removed, ch.removed = ch.removed, False
            ch.updated_ms = now_ms
            if ch.kind == "video":
                self._sync_camera(s, d, ch, old_name, was_removed, res)
        if complete:
            for cid, ch in existing.items():
                if cid not in seen and not ch.removed:
                    ch.removed = True
                    ch.updated_ms = now_ms
                    if ch.camera_id is not None:
                        cam = s.get(Camera, ch.camera_id)
                        if cam is not None and cam.enabled:
                            self.cameras.update(s, cam.id, {"enabled": False}, actor=ACTOR)
                            res.disabled.append(cam.id)
            d.catalog_ms = now_ms
        d.channel_count = sum(1 for c in existing.values() if not c.removed and c.kind == "video")
        d.updated_ms = now_ms
        res.channels = len(seen)
        s.flush()
        log.info("gb_catalog_synced", device=device_id, channels=res.channels, complete=complete,
                 added=len(res.added), disabled=len(res.disabled))
        return res

    def apply_events(self, s: Session, device_id: str, items: list[dict[str, Any]],
                     now_ms: int) -> SyncResult:
        """A Catalog ``<Notify>`` (subscription, or sent unasked): ADD/UPDATE items are
        stored and synced like a partial catalog, DEL disables the channel's camera (never
        deletes it), ON/OFF/VLOST/DEFECT set the channel's status."""
        upserts = [i for i in items if _text(i.get("Event"), 16).upper() in ("ADD", "UPDATE")]
        res = self.sync_catalog(s, device_id, upserts, False, now_ms) if upserts else SyncResult()
        for item in items:
            event = _text(item.get("Event"), 16).upper()
            ch = self.channel(s, device_id, _text(item.get("DeviceID"), 32))
            if ch is None or event in ("ADD", "UPDATE", ""):
                continue
            ch.updated_ms = now_ms
            if event in ("ON", "OFF", "VLOST", "DEFECT"):
                ch.status = event
            elif event == "DEL" and not ch.removed:
                ch.removed = True
                cam = s.get(Camera, ch.camera_id) if ch.camera_id is not None else None
                if cam is not None and cam.enabled:
                    self.cameras.update(s, cam.id, {"enabled": False}, actor=ACTOR)
                    res.disabled.append(cam.id)
        s.flush()
        return res

    def _free_name(self, s: Session, want: str, channel_id: str, camera_id: int | None) -> str:
        for name in (want, f"{want} ({channel_id})"[:200], channel_id):
            other = s.scalar(select(Camera.id).where(Camera.name == name))
            if other is None or other == camera_id:
                return name
        return f"gb-{channel_id}"

    def _sync_camera(self, s: Session, d: GbDevice, ch: GbChannel, old_name: str,
                     was_removed: bool, res: SyncResult) -> None:
        url = gb_url(d.device_id, ch.channel_id)
        cam = s.get(Camera, ch.camera_id) if ch.camera_id is not None else None
        if cam is None:  # a camera of the same URL (e.g. added by hand before) is adopted
            cam = s.scalar(select(Camera).where(Camera.main_url == url))
        if cam is None:
            cam = self.cameras.add(s, CameraInput(
                name=self._free_name(s, ch.name, ch.channel_id, None), main_url=url,
                site=_text(d.name) or d.device_id, security_level=self.security_level),
                actor=ACTOR)
            ch.camera_id = cam.id
            res.added.append(cam.id)
            return
        ch.camera_id = cam.id
        changes: dict[str, Any] = {}
        if old_name and cam.name in (old_name, f"{old_name} ({ch.channel_id})"[:200]) \
                and ch.name != old_name:
            changes["name"] = self._free_name(s, ch.name, ch.channel_id, cam.id)
        if was_removed and not cam.enabled:
            changes["enabled"] = True  # back in the catalog: record it again
        if changes:
            self.cameras.update(s, cam.id, changes, actor=ACTOR)
            res.updated.append(cam.id)


def device_view(d: GbDevice) -> dict[str, Any]:
    return {"device_id": d.device_id, "name": d.name, "manufacturer": d.manufacturer,
            "model": d.model, "firmware": d.firmware, "transport": d.transport,
            "address": f"{d.host}:{d.port}" if d.host else "", "registered": d.registered,
            "online": d.online, "registered_ms": d.registered_ms, "expires_ms": d.expires_ms,
            "last_keepalive_ms": d.last_keepalive_ms, "status_ms": d.status_ms,
            "last_error": d.last_error, "cause": d.cause, "charset": d.charset,
            "catalog_ms": d.catalog_ms, "channel_count": d.channel_count}


def channel_view(c: GbChannel) -> dict[str, Any]:
    return {"channel_id": c.channel_id, "name": c.name, "kind": c.kind,
            "parent_id": c.parent_id, "status": c.status, "ptz_type": c.ptz_type,
            "camera_id": c.camera_id, "removed": c.removed, "updated_ms": c.updated_ms}
