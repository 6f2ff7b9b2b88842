"""Camera registry service: the only way cameras are added, changed or read.

Credentials are kept in their own columns, never inside a stored URL, and never leave this
module except through :func:`connect_url` for the recorder (secrets stay out of logs and
API answers). Retention below the rule packs' minimum is refused (Q19.7, N17.1).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from viis.compliance.rulepack import RuleBook
from viis.core.clock import SHANGHAI, Clock, ms_to_datetime
from viis.core.errors import NotFound, ValidationFailed
from viis.core.ids import new_uid
from viis.integrity.audit import AuditLog
from viis.registry.models import Camera, SignagePhoto

URL_SCHEMES = ("rtsp", "rtsps", "file", "gb28181")  # gb28181://<device>/<channel>: Q13.2
MAX_NAME = 200
MAX_URL = 2000
SECURITY_LEVELS = range(1, 6)


@dataclass
class CameraInput:
    name: str
    main_url: str
    sub_url: str | None = None
    username: str | None = None
    password: str | None = None
    site: str = ""
    location_type: str = "public_area"
    security_level: int = 1
    retention_days: int | None = None
    priority: int = 50
    enabled: bool = True
    # Legal basis for keeping footage past the national default (N17.1), e.g. a bank rule.
    retention_basis: str = ""


def _split_url(url: str, field: str) -> tuple[str, str | None, str | None]:
    """Validate a stream URL; return it without userinfo, plus the userinfo parts."""
    if not isinstance(url, str) or not url.strip():
        raise ValidationFailed(f"{field} is empty: give the camera's rtsp:// URL", field=field)
    url = url.strip()
    if len(url) > MAX_URL:
        raise ValidationFailed(f"{field} is {len(url)} characters; the limit is {MAX_URL}", field=field)
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise ValidationFailed(f"{field} contains control characters", field=field)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise ValidationFailed(f"{field} is not a valid URL ({e})", field=field) from e
    if parts.scheme.lower() not in URL_SCHEMES:
        raise ValidationFailed(
            f"{field} must start with rtsp:// or rtsps:// (or gb28181://<device id>/<channel id> "
            f"for a GB/T 28181 channel; got {parts.scheme or 'no scheme'}://)",
            field=field,
        )
    if parts.scheme.lower() != "file" and not parts.hostname:
        raise ValidationFailed(f"{field} has no host", field=field)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{port}" if port else "")
    clean = urlunsplit((parts.scheme.lower(), netloc, parts.path, parts.query, ""))
    return clean, parts.username, parts.password


class CameraService:
    def __init__(self, rules: RuleBook, clock: Clock) -> None:
        self.rules = rules
        self.clock = clock

    def _today(self) -> date:
        return ms_to_datetime(self.clock.wall_ms()).astimezone(SHANGHAI).date()

    def check_retention(self, days: Any) -> int:
        """Refuse a retention below the minimum of every rule pack in force (Q19.7, N17.1)."""
        minimum, articles = self.rules.retention_minimum(self._today())
        if isinstance(days, bool) or not isinstance(days, int):
            raise ValidationFailed("retention_days must be a whole number of days", field="retention_days")
        if days < minimum:
            raise ValidationFailed(
                f"retention_days {days} is below the legal minimum of {minimum} days "
                f"({', '.join(articles)}); set at least {minimum}",
                field="retention_days",
                articles=articles,
            )
        if days > 3650:
            raise ValidationFailed("retention_days above 3650 (ten years) is refused", field="retention_days")
        return days

    def check_location(self, location_type: str) -> str:
        """Refuse a camera in a place the packs in force forbid (Q9.1, N8.1), citing every
        article, and a location type that is not in the packs' vocabulary."""
        today = self._today()
        forbidden = self.rules.forbidden_locations(today).get(location_type)
        if forbidden is not None:
            raise ValidationFailed(
                f"location_type {location_type!r} ({forbidden.titles[0]}) is a place where cameras "
                f"are forbidden ({', '.join(forbidden.articles)}); do not install a camera there",
                field="location_type",
                articles=forbidden.articles,
            )
        allowed = self.rules.allowed_locations(today)
        if location_type not in allowed:
            raise ValidationFailed(
                f"location_type {location_type!r} is unknown; use one of: {', '.join(allowed)}",
                field="location_type",
            )
        return location_type

    def _validate(self, data: CameraInput) -> dict[str, Any]:
        if not isinstance(data.name, str) or not data.name.strip():
            raise ValidationFailed("name is empty", field="name")
        name = data.name.strip()
        if len(name) > MAX_NAME or any(ord(c) < 0x20 for c in name):
            raise ValidationFailed(f"name must be 1-{MAX_NAME} printable characters", field="name")
        main, mu, mp = _split_url(data.main_url, "main_url")
        sub = None
        if data.sub_url:
            sub, _, _ = _split_url(data.sub_url, "sub_url")
        if isinstance(data.security_level, bool) or data.security_level not in SECURITY_LEVELS:
            raise ValidationFailed("security_level must be 1 to 5", field="security_level")
        if isinstance(data.priority, bool) or not isinstance(data.priority, int) or not 0 <= data.priority <= 100:
            raise ValidationFailed("priority must be 0 to 100", field="priority")
        for f in ("username", "password", "site", "location_type"):
            v = getattr(data, f)
            if v is not None and (not isinstance(v, str) or len(v) > 200):
                raise ValidationFailed(f"{f} must be text of at most 200 characters", field=f)
        location_type = self.check_location(data.location_type or "public_area")
        minimum, _ = self.rules.retention_minimum(self._today())
        days = self.check_retention(data.retention_days if data.retention_days is not None else minimum)
        return dict(
            name=name, main_url=main, sub_url=sub,
            username=data.username if data.username is not None else mu,
            password=data.password if data.password is not None else mp,
            site=data.site or "", location_type=location_type,
            security_level=data.security_level, retention_days=days,
            priority=data.priority, enabled=bool(data.enabled),
            retention_basis=self._basis(data.retention_basis),
        )

    @staticmethod
    def _basis(text) -> str:
        if text is None:
            return ""
        if not isinstance(text, str) or len(text) > 500:
            raise ValidationFailed("retention_basis must be text of at most 500 characters",
                                   field="retention_basis")
        return text.strip()

    def add(self, s: Session, data: CameraInput, *, actor: Any = None) -> Camera:
        """``actor`` (a Principal or login) is recorded in the audit log with the change."""
        values = self._validate(data)
        if s.scalar(select(Camera.id).where(Camera.name == values["name"])) is not None:
            raise ValidationFailed(f"a camera named {values['name']!r} exists already", field="name")
        now = self.clock.wall_ms()
        cam = Camera(uid=new_uid(), created_ms=now, updated_ms=now, **values)
        s.add(cam)
        s.flush()
        AuditLog(s, self.clock).append("camera.create", actor=actor, subject=f"camera {cam.id}",
                                       details={"uid": cam.uid, **_audit_fields(values)})
        return cam

    def update(self, s: Session, camera_id: int, changes: dict[str, Any], *,
               actor: Any = None) -> Camera:
        cam = self.get(s, camera_id)
        unknown = set(changes) - set(CameraInput.__dataclass_fields__)
        if unknown:
            raise ValidationFailed(f"unknown fields: {', '.join(sorted(unknown))}", field=sorted(unknown)[0])
        current = CameraInput(
            name=cam.name, main_url=cam.main_url, sub_url=cam.sub_url, username=cam.username,
            password=cam.password, site=cam.site, location_type=cam.location_type,
            security_level=cam.security_level, retention_days=cam.retention_days,
            priority=cam.priority, enabled=cam.enabled, retention_basis=cam.retention_basis,
        )
        for k, v in changes.items():
            setattr(current, k, v)
        values = self._validate(current)
        if values["name"] != cam.name and s.scalar(select(Camera.id).where(Camera.name == values["name"])):
            raise ValidationFailed(f"a camera named {values['name']!r} exists already", field="name")
        old = {k: getattr(cam, k) for k in values}
        before = _audit_fields(old)
        for k, v in values.items():
            setattr(cam, k, v)
        cam.updated_ms = self.clock.wall_ms()
        s.flush()
        after = _audit_fields(values)
        diff = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
        diff.update({k: "changed" for k in ("username", "password") if old[k] != values[k]})
        audit = AuditLog(s, self.clock)
        audit.append("camera.update", actor=actor, subject=f"camera {cam.id}",
                     details={"changed": diff})
        if {"retention_days", "retention_basis"} & set(diff):  # N17.1: searchable on its own
            audit.append("retention.change", actor=actor, subject=f"camera {cam.id}",
                         details={k: diff[k] for k in ("retention_days", "retention_basis")
                                  if k in diff})
        return cam

    def get(self, s: Session, camera_id: int) -> Camera:
        cam = s.get(Camera, camera_id)
        if cam is None:
            raise NotFound(f"camera {camera_id} does not exist")
        return cam

    def list(self, s: Session, *, enabled_only: bool = False) -> list[Camera]:
        q = select(Camera).order_by(Camera.id)
        if enabled_only:
            q = q.where(Camera.enabled.is_(True))
        return list(s.scalars(q))


def _audit_fields(values: dict[str, Any]) -> dict[str, Any]:
    """Camera fields as the audit log records them: credentials only as 'set' or not."""
    out = {k: v for k, v in values.items() if k not in ("username", "password")}
    out["credentials"] = "set" if values.get("username") or values.get("password") else "none"
    return out


def public_view(cam: Camera) -> dict[str, Any]:
    """What the API and logs may show of a camera: no password, no username in URLs."""
    return {
        "id": cam.id, "uid": cam.uid, "name": cam.name,
        "main_url": cam.main_url, "sub_url": cam.sub_url,
        "has_credentials": bool(cam.username or cam.password),
        "site": cam.site, "location_type": cam.location_type,
        "security_level": cam.security_level, "retention_days": cam.retention_days,
        "priority": cam.priority, "enabled": cam.enabled,
        "retention_basis": cam.retention_basis,
        "created_ms": cam.created_ms, "updated_ms": cam.updated_ms,
    }


def connect_url(url: str, username: str | None, password: str | None) -> str:
    """The URL with credentials, for the stream client only. Never log the result."""
    if not username:
        return url
    parts = urlsplit(url)
    cred = quote(username, safe="") + (":" + quote(password or "", safe=""))
    return urlunsplit((parts.scheme, f"{cred}@{parts.netloc}", parts.path, parts.query, ""))


# --- signage (Q17.1, N13.1) --------------------------------------------------------------------

MAX_SIGNAGE_BYTES = 4 * 1024 * 1024
MIN_SIGNAGE_BYTES = 64
_IMAGE_MAGIC = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"))


def sniff_signage(data: object) -> str:
    """The media type of an uploaded signage photo by its magic bytes (never by its name or
    the Content-Type the client claims); anything but a JPEG or PNG of bounded size is refused."""
    if not isinstance(data, (bytes, bytearray)):
        raise ValidationFailed("the signage photo must be sent as the request body", field="photo")
    if len(data) > MAX_SIGNAGE_BYTES:
        raise ValidationFailed(f"the signage photo of {len(data)} bytes is over the limit of "
                               f"{MAX_SIGNAGE_BYTES} bytes; send a smaller picture", field="photo")
    if len(data) < MIN_SIGNAGE_BYTES:
        raise ValidationFailed(f"the signage photo of {len(data)} bytes is too small to be a picture",
                               field="photo")
    for magic, kind in _IMAGE_MAGIC:
        if bytes(data[: len(magic)]) == magic:
            return kind
    raise ValidationFailed("the signage photo must be a JPEG or PNG image (checked by its first "
                           "bytes)", field="photo")


def store_signage(s: Session, camera_id: int, data: bytes, *, by: str, now_ms: int) -> SignagePhoto:
    """Keep a signage photo for a camera under its SHA-256 (Q17.1, N13.1). The same picture
    sent again becomes the current one again; nothing is ever overwritten."""
    kind = sniff_signage(data)
    if s.get(Camera, camera_id) is None:
        raise NotFound(f"camera {camera_id} does not exist")
    sha = hashlib.sha256(data).hexdigest()
    row = s.scalar(select(SignagePhoto).where(SignagePhoto.camera_id == camera_id,
                                              SignagePhoto.sha256 == sha))
    if row is None:
        row = SignagePhoto(camera_id=camera_id, sha256=sha, media_type=kind, size=len(data),
                           data=bytes(data), uploaded_ms=now_ms, uploaded_by=by[:200])
        s.add(row)
    else:
        row.uploaded_ms, row.uploaded_by = now_ms, by[:200]
    s.flush()
    return row


def current_signage(s: Session, camera_id: int) -> SignagePhoto | None:
    return s.scalar(select(SignagePhoto).where(SignagePhoto.camera_id == camera_id)
                    .order_by(SignagePhoto.uploaded_ms.desc(), SignagePhoto.id.desc()).limit(1))


def signage_view(row: SignagePhoto | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {"sha256": row.sha256, "media_type": row.media_type, "size": row.size,
            "uploaded_ms": row.uploaded_ms, "uploaded_by": row.uploaded_by}
