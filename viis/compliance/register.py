"""The compliance register of this installation: using units, sites, systems, the link of
each registry camera to its system, zones near military and classified units with the consent
documents (Q7.1, Q7.3, Q8, Q14.1, Q15.1, Q20.1, N7.1, N9.1, N10.1).

Every value is checked against the rule packs before anything is stored (categories and
privacy areas must be the packs' ids; contractor roles, uses and parties are closed lists), and
each error names the field. The cameras themselves stay in ``viis/registry``; this module only
links them (``compliance_camera_links``) and reads them.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from viis.compliance.registry_models import (
    CameraLink,
    ComplianceConsent,
    ComplianceSite,
    ComplianceSystem,
    ComplianceUnit,
    ComplianceZone,
)
from viis.compliance.rulepack import RuleBook
from viis.compliance.snapshot import CONTRACTOR_ROLES, PARTIES, USES, ZONE_KINDS
from viis.core.errors import NotFound, ValidationFailed
from viis.registry.models import Camera

CODE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def _code(v: str, field: str) -> str:
    if not v or len(v) > 64 or not set(v) <= CODE_CHARS:
        raise ValidationFailed(f"{field} must be 1-64 letters, digits, '-', '_' or '.'", field=field)
    return v


def _choice(v: str, choices: tuple[str, ...], field: str) -> str:
    if v not in choices:
        raise ValidationFailed(f"{field} {v!r} is not one of {', '.join(choices)}", field=field)
    return v


def _coords(lat: float | None, lon: float | None, field: str = "lat") -> None:
    if (lat is None) != (lon is None):
        raise ValidationFailed("give both lat and lon, or neither", field=field)
    if lat is not None and not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ValidationFailed(f"coordinates {lat}, {lon} are outside -90..90, -180..180", field=field)


def _unique(s: Session, model, code: str, what: str) -> None:
    if s.scalar(select(model.id).where(model.code == code)) is not None:
        raise ValidationFailed(f"{what} {code!r} exists already", field="code")


# --- units ---------------------------------------------------------------------------------

def add_unit(s: Session, *, code: str, name: str, use: str, party: str = "unit", district: str = "",
             address: str = "", contact: str = "", organisation_id: int | None = None,
             now_ms: int) -> ComplianceUnit:
    _code(code, "code")
    _choice(use, USES, "use")
    _choice(party, PARTIES, "party")
    _unique(s, ComplianceUnit, code, "unit")
    u = ComplianceUnit(code=code, name=name, use=use, party=party, district=district, address=address,
                       contact=contact, organisation_id=organisation_id, created_ms=now_ms,
                       updated_ms=now_ms)
    s.add(u)
    s.flush()
    return u


def unit(s: Session, code: str) -> ComplianceUnit:
    u = s.scalar(select(ComplianceUnit).where(ComplianceUnit.code == code))
    if u is None:
        raise NotFound(f"no unit {code!r}")
    return u


def units(s: Session) -> list[ComplianceUnit]:
    return list(s.scalars(select(ComplianceUnit).order_by(ComplianceUnit.code)))


def unit_view(u: ComplianceUnit) -> dict[str, Any]:
    return {"code": u.code, "name": u.name, "use": u.use, "party": u.party, "district": u.district,
            "address": u.address, "contact": u.contact, "organisation_id": u.organisation_id}


# --- sites ---------------------------------------------------------------------------------

def _categories(book: RuleBook, cats: list[str], on: date) -> list[str]:
    known = {f"{p.id}:{c.id}" for p in book.packs for c in p.site_categories}
    for i, c in enumerate(cats):
        if c not in known:
            raise ValidationFailed(f"unknown site category {c!r}; the packs define "
                                   f"{', '.join(sorted(known))}", field=f"categories[{i}]")
    if len(set(cats)) != len(cats):
        raise ValidationFailed("a category is listed twice", field="categories")
    return list(cats)


def _privacy_areas(book: RuleBook, areas: list[str]) -> list[str]:
    forbidden = {lt.id for p in book.packs for lt in p.location_types if lt.forbidden}
    for i, a in enumerate(areas):
        if a not in forbidden:
            raise ValidationFailed(f"{a!r} is not a place type where cameras are forbidden (N8.2); "
                                   f"the packs name {', '.join(sorted(forbidden))}",
                                   field=f"privacy_areas[{i}]", articles=("N8.2",))
    return list(dict.fromkeys(areas))


def add_site(s: Session, book: RuleBook, *, unit_code: str, code: str, name: str,
             categories: list[str], public_place: bool = True, address: str = "",
             lat: float | None = None, lon: float | None = None, privacy_areas: list[str] = (),
             privacy_checked_on: date | None = None, today: date, now_ms: int) -> ComplianceSite:
    u = unit(s, unit_code)
    _code(code, "code")
    _coords(lat, lon)
    _unique(s, ComplianceSite, code, "site")
    if privacy_checked_on is not None and privacy_checked_on > today:
        raise ValidationFailed("privacy_checked_on is in the future", field="privacy_checked_on")
    site = ComplianceSite(unit_id=u.id, code=code, name=name, address=address, lat=lat, lon=lon,
                          categories=_categories(book, categories, today), public_place=public_place,
                          privacy_areas=_privacy_areas(book, list(privacy_areas)),
                          privacy_checked_on=privacy_checked_on, created_ms=now_ms, updated_ms=now_ms)
    s.add(site)
    s.flush()
    return site


def site(s: Session, code: str) -> ComplianceSite:
    x = s.scalar(select(ComplianceSite).where(ComplianceSite.code == code))
    if x is None:
        raise NotFound(f"no site {code!r}")
    return x


SITE_FIELDS = ("name", "address", "lat", "lon", "categories", "public_place", "privacy_areas",
               "privacy_checked_on")


def update_site(s: Session, book: RuleBook, code: str, changes: dict[str, Any], *, today: date,
                now_ms: int) -> ComplianceSite:
    x = site(s, code)
    for k in changes:
        if k not in SITE_FIELDS:
            raise ValidationFailed(f"{k} cannot be changed; fields: {', '.join(SITE_FIELDS)}", field=k)
    if "categories" in changes:
        changes["categories"] = _categories(book, changes["categories"], today)
    if "privacy_areas" in changes:
        changes["privacy_areas"] = _privacy_areas(book, changes["privacy_areas"])
    if changes.get("privacy_checked_on") and changes["privacy_checked_on"] > today:
        raise ValidationFailed("privacy_checked_on is in the future", field="privacy_checked_on")
    _coords(changes.get("lat", x.lat), changes.get("lon", x.lon))
    for k, v in changes.items():
        setattr(x, k, v)
    x.updated_ms = now_ms
    s.flush()
    return x


def builders(book: RuleBook, categories: list[str], on: date) -> list[dict[str, Any]]:
    """Who must build at a place of these categories (Q8.1 government departments, Q8.2 the
    managing unit; N7.1 / N9.1) and whether the place must have a system (Q7.1)."""
    cats = {f"{p.id}:{c.id}": c for p in book.in_force(on) for c in p.site_categories}
    return [{"category": k, "builder": cats[k].builder, "must_install": cats[k].must_install,
             "articles": list(cats[k].articles), "title": cats[k].title}
            for k in categories if k in cats]


def site_view(x: ComplianceSite, book: RuleBook, on: date, unit_code: str = "") -> dict[str, Any]:
    return {"code": x.code, "unit": unit_code, "name": x.name, "address": x.address, "lat": x.lat,
            "lon": x.lon, "categories": list(x.categories), "public_place": x.public_place,
            "privacy_areas": list(x.privacy_areas),
            "privacy_checked_on": x.privacy_checked_on.isoformat() if x.privacy_checked_on else None,
            "builders": builders(book, list(x.categories), on)}


# --- systems -------------------------------------------------------------------------------

def _contractors(cs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i, c in enumerate(cs):
        p = f"contractors[{i}]"
        role = _choice(str(c.get("role", "")), CONTRACTOR_ROLES, f"{p}.role")
        name = c.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            raise ValidationFailed("name must be 1-200 characters", field=f"{p}.name")
        exp = c.get("qualification_expires")
        if isinstance(exp, date):
            exp = exp.isoformat()
        if exp is not None:
            try:
                date.fromisoformat(exp)
            except (TypeError, ValueError):
                raise ValidationFailed(f"{exp!r} is not a date YYYY-MM-DD",
                                       field=f"{p}.qualification_expires") from None
        out.append({"role": role, "name": name, "qualification": str(c.get("qualification") or ""),
                    "qualification_expires": exp})
    return out


def _system_dates(accepted_on, in_use_on, removed_on) -> None:
    start = in_use_on or accepted_on
    if removed_on and start and removed_on < start:
        raise ValidationFailed("removed_on is before the system was accepted or went into use",
                               field="removed_on")


def add_system(s: Session, *, site_code: str, code: str, name: str, purpose: str, storage_days: int,
               contractors: list[dict[str, Any]] = (), inspection_report: str = "",
               accepted_on: date | None = None, in_use_on: date | None = None,
               removed_on: date | None = None, authorised: bool = True, now_ms: int) -> ComplianceSystem:
    x = site(s, site_code)
    _code(code, "code")
    _unique(s, ComplianceSystem, code, "system")
    if not 0 <= storage_days <= 36500:
        raise ValidationFailed("storage_days must be 0..36500", field="storage_days")
    _system_dates(accepted_on, in_use_on, removed_on)
    sy = ComplianceSystem(site_id=x.id, code=code, name=name, purpose=purpose, storage_days=storage_days,
                          contractors=_contractors(list(contractors)), inspection_report=inspection_report,
                          accepted_on=accepted_on, in_use_on=in_use_on, removed_on=removed_on,
                          authorised=authorised, created_ms=now_ms, updated_ms=now_ms)
    s.add(sy)
    s.flush()
    return sy


def system(s: Session, code: str) -> ComplianceSystem:
    x = s.scalar(select(ComplianceSystem).where(ComplianceSystem.code == code))
    if x is None:
        raise NotFound(f"no system {code!r}")
    return x


SYSTEM_FIELDS = ("name", "purpose", "storage_days", "contractors", "inspection_report", "accepted_on",
                 "in_use_on", "removed_on", "authorised")


def update_system(s: Session, code: str, changes: dict[str, Any], *, now_ms: int) -> ComplianceSystem:
    x = system(s, code)
    for k in changes:
        if k not in SYSTEM_FIELDS:
            raise ValidationFailed(f"{k} cannot be changed; fields: {', '.join(SYSTEM_FIELDS)}", field=k)
    if "contractors" in changes:
        changes["contractors"] = _contractors(changes["contractors"])
    if "storage_days" in changes and not 0 <= changes["storage_days"] <= 36500:
        raise ValidationFailed("storage_days must be 0..36500", field="storage_days")
    _system_dates(changes.get("accepted_on", x.accepted_on), changes.get("in_use_on", x.in_use_on),
                  changes.get("removed_on", x.removed_on))
    for k, v in changes.items():
        setattr(x, k, v)
    x.updated_ms = now_ms
    s.flush()
    return x


def system_cameras(s: Session, system_id: int) -> list[tuple[Camera, CameraLink]]:
    q = (select(Camera, CameraLink).join(CameraLink, CameraLink.camera_id == Camera.id)
         .where(CameraLink.system_id == system_id).order_by(Camera.uid))
    return [(c, ln) for c, ln in s.execute(q)]


def system_view(x: ComplianceSystem, site_code: str = "", cameras: list[str] | None = None) -> dict[str, Any]:
    d = {"code": x.code, "site": site_code, "name": x.name, "purpose": x.purpose,
         "storage_days": x.storage_days, "contractors": list(x.contractors),
         "inspection_report": x.inspection_report, "authorised": x.authorised}
    for k in ("accepted_on", "in_use_on", "removed_on"):
        v = getattr(x, k)
        d[k] = v.isoformat() if v else None
    if cameras is not None:
        d["cameras"] = cameras
    return d


# --- cameras -------------------------------------------------------------------------------

def link_camera(s: Session, *, camera_id: int, system_code: str, lat: float | None = None,
                lon: float | None = None, installed_on: date | None = None,
                public_place: bool | None = None, audio: bool = False, now_ms: int) -> CameraLink:
    """Put a registry camera into a system (or move it to another); its position is checked
    against the zones by the engine (Q7.3, N10.1)."""
    if s.get(Camera, camera_id) is None:
        raise NotFound(f"no camera {camera_id}")
    sy = system(s, system_code)
    _coords(lat, lon)
    ln = s.get(CameraLink, camera_id)
    if ln is None:
        ln = CameraLink(camera_id=camera_id, system_id=sy.id, updated_ms=now_ms)
        s.add(ln)
    ln.system_id, ln.lat, ln.lon, ln.installed_on = sy.id, lat, lon, installed_on
    ln.public_place, ln.audio, ln.updated_ms = public_place, audio, now_ms
    s.flush()
    return ln


# --- zones and consents (Q7.3, N10.1) ------------------------------------------------------

def add_zone(s: Session, *, code: str, name: str, kind: str, lat: float, lon: float, radius_m: float,
             now_ms: int) -> ComplianceZone:
    _code(code, "code")
    _choice(kind, ZONE_KINDS, "kind")
    _coords(lat, lon)
    if not 0 < radius_m <= 1_000_000:
        raise ValidationFailed("radius_m must be more than 0 and at most 1,000,000", field="radius_m")
    _unique(s, ComplianceZone, code, "zone")
    z = ComplianceZone(code=code, name=name, kind=kind, lat=lat, lon=lon, radius_m=radius_m,
                       created_ms=now_ms)
    s.add(z)
    s.flush()
    return z


MAX_DOCUMENT_BYTES = 8 * 1024 * 1024


def sniff_document(data: bytes) -> str:
    """A consent document's type by its first bytes: PDF, JPEG or PNG, bounded in size."""
    if len(data) > MAX_DOCUMENT_BYTES:
        raise ValidationFailed(f"document of {len(data)} bytes is over the limit of {MAX_DOCUMENT_BYTES}",
                               field="document_file")
    for magic, kind in ((b"%PDF-", "application/pdf"), (b"\xff\xd8\xff", "image/jpeg"),
                        (b"\x89PNG\r\n\x1a\n", "image/png")):
        if data.startswith(magic) and len(data) >= 64:
            return kind
    raise ValidationFailed("document_file must be a PDF, JPEG or PNG of at least 64 bytes (checked by its "
                           "first bytes)", field="document_file")


def add_consent(s: Session, *, zone_code: str, system_code: str, document: str, on: date,
                today: date, actor: str, now_ms: int, document_file: bytes | None = None) -> ComplianceConsent:
    z = s.scalar(select(ComplianceZone).where(ComplianceZone.code == zone_code))
    if z is None:
        raise NotFound(f"no zone {zone_code!r}")
    sy = system(s, system_code)
    if not document.strip():
        raise ValidationFailed("document must name the consent document", field="document",
                               articles=("N10.1",))
    if on > today:
        raise ValidationFailed("a consent dated in the future", field="on")
    sha = None
    if document_file is not None:
        import hashlib

        from viis.compliance.models import CompliancePhoto

        kind = sniff_document(document_file)
        sha = hashlib.sha256(document_file).hexdigest()
        if s.get(CompliancePhoto, sha) is None:
            s.add(CompliancePhoto(sha256=sha, media_type=kind, size=len(document_file),
                                  data=bytes(document_file), stored_ms=now_ms, stored_by=actor))
            s.flush()
    c = ComplianceConsent(zone_id=z.id, system_id=sy.id, document=document, document_sha256=sha, on_day=on,
                          recorded_by=actor, created_ms=now_ms)
    s.add(c)
    s.flush()
    return c


def zone_view(z: ComplianceZone) -> dict[str, Any]:
    return {"code": z.code, "name": z.name, "kind": z.kind, "lat": z.lat, "lon": z.lon,
            "radius_m": z.radius_m}
