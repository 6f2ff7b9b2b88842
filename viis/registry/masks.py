"""Privacy masks per camera and their time-limited, two-person lifting (Q9.2, N13.1).

Q9.2: where a camera that must be installed may intrude on privacy (a window of a flat, a
neighbour's door), measures must prevent it. The measure here is a set of polygons per
camera, stored once and applied everywhere the picture leaves VIIS: the web console draws
them over live view and playback, and every evidence export burns them into the pixels
opaque (:mod:`viis.media.burn`). N13.1 asks for coverage limited to what public security
needs; a mask is how a unit documents that limit.

Geometry: each polygon has 3..64 points ``(x, y)`` normalised to 0..1 of the FULL picture
with the origin top left, so one mask fits the main and the sub stream and any resolution.
A camera has at most 32 polygons; a label is at most 64 characters. A change replaces the
whole set (there is no partial edit that could leave half a mask) and is an audit entry.

Lifting (Q9.2 read with Q23/Q24.1): burning masks in is the default and cannot be turned
off per export. A lift lets one approved retrieval request export one camera without its
masks — e.g. when the masked window is itself the scene of the crime. It needs:

1. the installation's permission ``[privacy] mask_lifting = true`` (off by default);
2. a staff member working on the request to ask, with a reason;
3. a SECOND authorised user (bureau approver or unit administrator, never the one who
   asked) to approve it;
4. a time limit: it ends at the approval's own expiry or after ``max_lift_minutes``,
   whichever is first;

and every step is logged and written to the audit log.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from viis.access import policy
from viis.access.policy import Forbidden, Principal
from viis.core.clock import Clock, iso_utc
from viis.core.db import Base
from viis.core.errors import NotFound, ValidationFailed
from viis.core.logging import get_logger

log = get_logger(__name__)

MAX_MASKS = 32
MIN_POINTS = 3
MAX_POINTS = 64
MAX_LABEL = 64
ARTICLES = ("Q9.2", "N13.1")


# --- tables --------------------------------------------------------------------------------
class PrivacyMaskSet(Base):
    """The current masks of one camera (JSON list of ``{"label", "points"}``)."""

    __tablename__ = "privacy_masks"

    camera_id: Mapped[int] = mapped_column(ForeignKey("cameras.id", ondelete="RESTRICT"),
                                           primary_key=True)
    masks: Mapped[str] = mapped_column(Text)
    updated_ms: Mapped[int] = mapped_column()
    updated_by: Mapped[str] = mapped_column(String(200))


class MaskLift(Base):
    """One request to export one camera of one retrieval request without its masks."""

    __tablename__ = "mask_lifts"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("retrieval_requests.id",
                                                       ondelete="RESTRICT"))
    camera_id: Mapped[int] = mapped_column(ForeignKey("cameras.id", ondelete="RESTRICT"))
    status: Mapped[str] = mapped_column(String(16))  # pending | active | refused | revoked
    reason: Mapped[str] = mapped_column(Text)
    asked_by_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    asked_ms: Mapped[int] = mapped_column()
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    decided_ms: Mapped[int | None] = mapped_column()
    expires_ms: Mapped[int | None] = mapped_column()
    note: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (Index("ix_mask_lifts_request", "request_id", "camera_id"),)


# --- geometry ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Polygon:
    """One privacy mask: normalised points (0..1, origin top left of the full picture)."""

    label: str
    points: tuple[tuple[float, float], ...]

    def as_dict(self) -> dict[str, Any]:
        return {"label": self.label, "points": [[x, y] for x, y in self.points]}

    def to_pixels(self, width: int, height: int) -> list[tuple[int, int]]:
        """Vertices in pixels of a ``width`` × ``height`` picture (rounded outward is the
        rasteriser's job; see :mod:`viis.media.burn`)."""
        return [(round(x * width), round(y * height)) for x, y in self.points]


def _area(points: tuple[tuple[float, float], ...]) -> float:
    a = 0.0
    for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1], strict=True):
        a += x1 * y2 - x2 * y1
    return abs(a) / 2


def validate(masks: Any) -> list[Polygon]:
    """The polygons of a ``masks`` list, or :class:`ValidationFailed` naming the first
    problem (``field`` like ``masks.2.points.5``). Nothing is stored by this function."""
    if not isinstance(masks, list):
        raise ValidationFailed("masks must be a list of {label, points}", field="masks")
    if len(masks) > MAX_MASKS:
        raise ValidationFailed(f"a camera has at most {MAX_MASKS} privacy masks, got {len(masks)}",
                               field="masks", articles=ARTICLES)
    out = []
    for i, m in enumerate(masks):
        f = f"masks.{i}"
        if not isinstance(m, dict) or set(m) - {"label", "points"} or "points" not in m:
            raise ValidationFailed("each mask is an object with label and points only", field=f)
        label = m.get("label", "")
        if not isinstance(label, str):
            raise ValidationFailed("label must be text", field=f"{f}.label")
        label = label.strip()
        if len(label) > MAX_LABEL:
            raise ValidationFailed(f"label is longer than {MAX_LABEL} characters",
                                   field=f"{f}.label")
        pts = m["points"]
        if not isinstance(pts, list) or not MIN_POINTS <= len(pts) <= MAX_POINTS:
            raise ValidationFailed(f"a mask has {MIN_POINTS} to {MAX_POINTS} points",
                                   field=f"{f}.points")
        clean: list[tuple[float, float]] = []
        for j, pt in enumerate(pts):
            pf = f"{f}.points.{j}"
            if not isinstance(pt, list | tuple) or len(pt) != 2 or not all(
                    isinstance(v, int | float) and not isinstance(v, bool) for v in pt):
                raise ValidationFailed("a point is [x, y] with two numbers", field=pf)
            x, y = float(pt[0]), float(pt[1])
            if not (math.isfinite(x) and math.isfinite(y) and 0 <= x <= 1 and 0 <= y <= 1):
                raise ValidationFailed("x and y are fractions of the picture, from 0 to 1 "
                                       "(origin top left)", field=pf)
            clean.append((x, y))
        poly = tuple(clean)
        if _area(poly) <= 0:
            raise ValidationFailed("the points of this mask cover no area (all on one line)",
                                   field=f"{f}.points")
        out.append(Polygon(label, poly))
    return out


def _decode(text: str) -> list[Polygon]:
    return [Polygon(m.get("label", ""), tuple((float(x), float(y)) for x, y in m["points"]))
            for m in json.loads(text)]


# --- audit ---------------------------------------------------------------------------------
def _audit(s: Session, kind: str, *, actor: str, subject: str, details: dict,
           clock: Clock | None = None) -> None:
    """THE call site of the audit log for masks and lifts (issue 4 item 6): in the caller's
    transaction, so the change and its entry commit together or not at all."""
    from viis.integrity.audit import AuditLog

    AuditLog(s, clock).append(kind, actor=actor, subject=subject, details=details)


# --- the store -----------------------------------------------------------------------------
def _session_of(session_or_app):
    return session_or_app if isinstance(session_or_app, Session) else None


def masks_for(session_or_app, camera_id: int) -> list[Polygon]:
    """The camera's privacy masks (empty when it has none). Accepts a SQLAlchemy session or
    anything with ``.db`` (the :class:`viis.app.App`)."""
    s = _session_of(session_or_app)
    if s is None:
        with session_or_app.db.session() as s2:
            return masks_for(s2, camera_id)
    row = s.get(PrivacyMaskSet, camera_id)
    return _decode(row.masks) if row is not None else []


def view(s: Session, camera_id: int) -> dict:
    """The API shape: ``{"camera_id", "masks", "updated_at", "updated_by"}``; a camera that
    never had masks has ``updated_at`` null and ``updated_by`` empty."""
    row = s.get(PrivacyMaskSet, camera_id)
    if row is None:
        return {"camera_id": camera_id, "masks": [], "updated_at": None, "updated_by": ""}
    return {"camera_id": camera_id, "masks": [p.as_dict() for p in _decode(row.masks)],
            "updated_at": iso_utc(row.updated_ms), "updated_by": row.updated_by}


def replace(s: Session, camera_id: int, masks: Any, *, by: str, now_ms: int,
            clock: Clock | None = None) -> dict:
    """Replace the camera's masks with ``masks`` (validated first; on refusal nothing
    changes). Written to the audit log with the before and after counts."""
    from viis.registry.models import Camera

    if s.get(Camera, camera_id) is None:
        raise NotFound(f"no camera {camera_id}")
    polys = validate(masks)
    row = s.get(PrivacyMaskSet, camera_id)
    before = len(_decode(row.masks)) if row is not None else 0
    text = json.dumps([p.as_dict() for p in polys], separators=(",", ":"))
    if row is None:
        row = PrivacyMaskSet(camera_id=camera_id, masks=text, updated_ms=now_ms, updated_by=by[:200])
        s.add(row)
    else:
        row.masks, row.updated_ms, row.updated_by = text, now_ms, by[:200]
    s.flush()
    _audit(s, "mask.replace", actor=by, subject=f"camera {camera_id}",
           details={"before": before, "after": len(polys),
                    "labels": [p.label for p in polys]}, clock=clock)
    log.info("privacy_masks_replaced", camera_id=camera_id, by=by, count=len(polys))
    return view(s, camera_id)


# --- lifting (Q9.2) ------------------------------------------------------------------------
#: Who may ask: staff working on retrieval requests. Who may approve: see policy
#: ``mask.lift.approve``; the service adds "not the one who asked" and the organisation.
def lift_view(x: MaskLift) -> dict:
    return {"id": x.id, "request_id": x.request_id, "camera_id": x.camera_id,
            "status": x.status, "reason": x.reason, "asked_by_id": x.asked_by_id,
            "asked_at": iso_utc(x.asked_ms), "decided_by_id": x.decided_by_id,
            "decided_at": iso_utc(x.decided_ms) if x.decided_ms is not None else None,
            "expires_at": iso_utc(x.expires_ms) if x.expires_ms is not None else None,
            "note": x.note}


class MaskLifting:
    """Asks, approvals and the question the exporter asks: is a lift in force?"""

    def __init__(self, clock: Clock, *, enabled: bool, max_minutes: int) -> None:
        self.clock = clock
        self.enabled = enabled
        self.max_ms = max_minutes * 60_000

    def _request(self, s: Session, request_id: int):
        from viis.access.retrieval_models import RetrievalRequest

        req = s.get(RetrievalRequest, request_id)
        if req is None:
            raise NotFound(f"retrieval request {request_id} does not exist")
        return req

    def ask(self, s: Session, p: Principal, request_id: int, camera_id: int,
            reason: str) -> MaskLift:
        if not self.enabled:
            raise Forbidden("lifting privacy masks is not permitted on this installation "
                            "(settings: [privacy] mask_lifting); masks are always burned in",
                            ("Q9.2",))
        from viis.access.retrieval_models import RetrievalRange

        req = self._request(s, request_id)
        if p.user_id is None or p.organisation_id != req.requesting_org_id:
            raise Forbidden("a lift is asked by staff of the requesting organisation", ("Q9.2",))
        if req.status != "active" or "export" not in req.actions.split():
            raise Forbidden(f"request R-{req.id} is not an active request that allows export",
                            ("Q9.2", "N21.1"))
        covered = s.scalars(select(RetrievalRange).where(
            RetrievalRange.request_id == req.id, RetrievalRange.camera_id == camera_id)).first()
        if covered is None:
            raise ValidationFailed(f"camera {camera_id} is not in request R-{req.id}",
                                   field="camera_id")
        reason = (reason or "").strip()
        if not reason or len(reason) > 2000:
            raise ValidationFailed("give the reason for lifting the masks (at most 2000 "
                                   "characters)", field="reason", articles=("Q9.2",))
        lift = MaskLift(request_id=req.id, camera_id=camera_id, status="pending", reason=reason,
                        asked_by_id=p.user_id, asked_ms=self.clock.wall_ms(), note="")
        s.add(lift)
        s.flush()
        _audit(s, "mask.lift", actor=f"{p.name} (user {p.user_id})", subject=f"R-{req.id}",
               details={"lift_id": lift.id, "camera_id": camera_id, "reason": reason[:500]},
               clock=self.clock)
        log.info("mask_lift_asked", lift_id=lift.id, request_id=req.id, camera_id=camera_id,
                 by=p.user_id)
        return lift

    def decide(self, s: Session, p: Principal, request_id: int, lift_id: int, *, approve: bool,
               note: str = "", minutes: int | None = None) -> MaskLift:
        lift = s.get(MaskLift, lift_id)
        if lift is None or lift.request_id != request_id:
            raise NotFound(f"mask lift {lift_id} of request {request_id} does not exist")
        if not self.enabled:
            raise Forbidden("lifting privacy masks is not permitted on this installation",
                            ("Q9.2",))
        if p.user_id is None or p.user_id == lift.asked_by_id:
            raise Forbidden("a lift is approved by a second authorised user, not the one who "
                            "asked", ("Q9.2", "Q24.1"))
        req = self._request(s, request_id)
        if p.user_id == req.requester_id:
            raise Forbidden("the requester cannot approve lifting masks on their own request",
                            ("Q9.2",))
        deciding = {req.approving_org_id}
        if policy.UNIT_ADMIN in p.roles and policy.APPROVER not in p.roles:
            # a unit administrator speaks for the unit that owns the camera: any using unit
            deciding = {p.organisation_id} if p.org_kind == policy.USING_UNIT else set()
        if p.organisation_id not in deciding:
            raise Forbidden("a lift is approved by the approving bureau of the request or by "
                            "the using unit's administrator", ("Q9.2",))
        if lift.status != "pending":
            raise Forbidden(f"mask lift {lift.id} is {lift.status}, not pending", ("Q9.2",))
        now = self.clock.wall_ms()
        lift.decided_by_id, lift.decided_ms, lift.note = p.user_id, now, (note or "")[:2000]
        if approve:
            span = self.max_ms if minutes is None else min(self.max_ms, max(1, minutes) * 60_000)
            lift.status = "active"
            lift.expires_ms = min(now + span, req.expires_ms or now)
            if lift.expires_ms <= now:
                raise Forbidden(f"the approval of R-{req.id} has expired", ("Q9.2",))
        else:
            lift.status = "refused"
        s.flush()
        _audit(s, f"mask.lift.{'approve' if approve else 'refuse'}",
               actor=f"{p.name} (user {p.user_id})", subject=f"R-{req.id}",
               details={"lift_id": lift.id, "camera_id": lift.camera_id,
                        "expires_ms": lift.expires_ms}, clock=self.clock)
        log.info("mask_lift_decided", lift_id=lift.id, status=lift.status, by=p.user_id)
        return lift

    def list(self, s: Session, request_id: int) -> list[MaskLift]:
        return list(s.scalars(select(MaskLift).where(MaskLift.request_id == request_id)
                              .order_by(MaskLift.id)))

    def in_force(self, s: Session, request_id: int, camera_id: int,
                 now_ms: int | None = None) -> MaskLift | None:
        """The approved, unexpired lift for this request × camera, if any. Checked again by
        the exporter at the moment it reads the masks; permission off means none."""
        if not self.enabled:
            return None
        now = self.clock.wall_ms() if now_ms is None else now_ms
        return s.scalars(select(MaskLift).where(
            MaskLift.request_id == request_id, MaskLift.camera_id == camera_id,
            MaskLift.status == "active", MaskLift.expires_ms > now)
            .order_by(MaskLift.id.desc())).first()
