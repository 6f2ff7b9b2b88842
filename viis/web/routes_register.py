"""Compliance register API, unit side: units, sites, systems, camera links, zones and consents
(Q7.1, Q7.3, Q8, Q14.1, Q15.1, Q20.1, N7.1, N9.1, N10.1), and the live snapshot and findings.

Its routes are added to the ``/api/compliance`` router of ``routes_compliance`` (one router
for ``viis.web.app`` to include; a nested router would hide them from the route walk). Actions: ``compliance.read``,
``compliance.write``, ``zone.write`` (viis.access.policy). Every body is a closed model
(unknown fields refused) with bounded strings and lists.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from viis.compliance import register
from viis.compliance.engine import Evaluator
from viis.compliance.filings import detect_unit_changes
from viis.compliance.live import snapshot_from_db
from viis.compliance.snapshot import parse
from viis.web.auth import allow, principal
from viis.web.routes_compliance import router

Code = Annotated[str, Field(min_length=1, max_length=64)]
Short = Annotated[str, Field(max_length=200)]
Text = Annotated[str, Field(max_length=4000)]
Ids = Annotated[list[Annotated[str, Field(max_length=120)]], Field(max_length=32)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _ctx(request: Request):
    app = request.app.state.viis
    return app, principal(request).name, app.clock.wall_ms()


def today(request: Request) -> date:
    from viis.compliance.live import _day

    return _day(request.app.state.viis.clock.wall_ms())


class UnitIn(_In):
    code: Code
    name: Short
    use: Annotated[str, Field(max_length=16)]
    party: Annotated[str, Field(max_length=16)] = "unit"
    district: Short = ""
    address: Text = ""
    contact: Short = ""
    organisation_id: int | None = None


class SiteIn(_In):
    unit: Code
    code: Code
    name: Short
    categories: Ids
    public_place: bool = True
    address: Text = ""
    lat: float | None = None
    lon: float | None = None
    privacy_areas: Ids = []
    privacy_checked_on: date | None = None


class SitePatch(_In):
    name: Short | None = None
    address: Text | None = None
    lat: float | None = None
    lon: float | None = None
    categories: Ids | None = None
    public_place: bool | None = None
    privacy_areas: Ids | None = None
    privacy_checked_on: date | None = None


class ContractorIn(_In):
    role: Annotated[str, Field(max_length=16)]
    name: Short
    qualification: Short = ""
    qualification_expires: date | None = None


class SystemIn(_In):
    site: Code
    code: Code
    name: Short
    purpose: Text
    storage_days: int
    contractors: Annotated[list[ContractorIn], Field(max_length=32)] = []
    inspection_report: Short = ""
    accepted_on: date | None = None
    in_use_on: date | None = None
    removed_on: date | None = None
    authorised: bool = True


class SystemPatch(_In):
    name: Short | None = None
    purpose: Text | None = None
    storage_days: int | None = None
    contractors: Annotated[list[ContractorIn], Field(max_length=32)] | None = None
    inspection_report: Short | None = None
    accepted_on: date | None = None
    in_use_on: date | None = None
    removed_on: date | None = None
    authorised: bool | None = None


class LinkIn(_In):
    system: Code
    lat: float | None = None
    lon: float | None = None
    installed_on: date | None = None
    public_place: bool | None = None
    audio: bool = False


class ZoneIn(_In):
    code: Code
    name: Short
    kind: Annotated[str, Field(max_length=16)]
    lat: float
    lon: float
    radius_m: float


class ConsentIn(_In):
    zone: Code
    system: Code
    document: Short
    on: date
    # the document itself, base64 (PDF, JPEG or PNG; at most 8 MiB)
    document_base64: Annotated[str, Field(max_length=(8 * 1024 * 1024 * 4) // 3 + 4)] | None = None


def _contractors(cs: list[ContractorIn]) -> list[dict[str, Any]]:
    return [c.model_dump() for c in cs]


@router.get("/units", dependencies=[Depends(allow("compliance.read"))])
def list_units(request: Request) -> list[dict]:
    app = request.app.state.viis
    with app.db.session() as s:
        return [register.unit_view(u) for u in register.units(s)]


@router.post("/units", status_code=201, dependencies=[Depends(allow("compliance.write"))])
def add_unit(body: UnitIn, request: Request) -> dict:
    app, _, now = _ctx(request)
    with app.db.session() as s:
        return register.unit_view(register.add_unit(s, **body.model_dump(), now_ms=now))


@router.get("/sites", dependencies=[Depends(allow("compliance.read"))])
def list_sites(request: Request) -> list[dict]:
    from sqlalchemy import select

    from viis.compliance.registry_models import ComplianceSite, ComplianceUnit

    app = request.app.state.viis
    with app.db.session() as s:
        rows = s.execute(select(ComplianceSite, ComplianceUnit.code)
                         .join(ComplianceUnit, ComplianceUnit.id == ComplianceSite.unit_id)
                         .order_by(ComplianceSite.code))
        return [register.site_view(x, app.rules, today(request), u) for x, u in rows]


@router.post("/sites", status_code=201, dependencies=[Depends(allow("compliance.write"))])
def add_site(body: SiteIn, request: Request) -> dict:
    app, _, now = _ctx(request)
    d = body.model_dump()
    unit = d.pop("unit")
    with app.db.session() as s:
        x = register.add_site(s, app.rules, unit_code=unit, **d, today=today(request), now_ms=now)
        return register.site_view(x, app.rules, today(request), unit)


@router.patch("/sites/{code}", dependencies=[Depends(allow("compliance.write"))])
def patch_site(code: str, body: SitePatch, request: Request) -> dict:
    app, _, now = _ctx(request)
    with app.db.session() as s:
        x = register.update_site(s, app.rules, code, body.model_dump(exclude_unset=True),
                                 today=today(request), now_ms=now)
        return register.site_view(x, app.rules, today(request))


@router.get("/systems", dependencies=[Depends(allow("compliance.read"))])
def list_systems(request: Request) -> list[dict]:
    from sqlalchemy import select

    from viis.compliance.registry_models import ComplianceSite, ComplianceSystem

    app = request.app.state.viis
    with app.db.session() as s:
        rows = list(s.execute(select(ComplianceSystem, ComplianceSite.code)
                              .join(ComplianceSite, ComplianceSite.id == ComplianceSystem.site_id)
                              .order_by(ComplianceSystem.code)))
        return [register.system_view(x, site, [c.uid for c, _ in register.system_cameras(s, x.id)])
                for x, site in rows]


@router.post("/systems", status_code=201, dependencies=[Depends(allow("compliance.write"))])
def add_system(body: SystemIn, request: Request) -> dict:
    app, _, now = _ctx(request)
    d = body.model_dump()
    d["contractors"] = _contractors(body.contractors)
    site = d.pop("site")
    with app.db.session() as s:
        return register.system_view(register.add_system(s, site_code=site, **d, now_ms=now), site)


@router.patch("/systems/{code}", dependencies=[Depends(allow("compliance.write"))])
def patch_system(code: str, body: SystemPatch, request: Request) -> dict:
    app, _, now = _ctx(request)
    d = body.model_dump(exclude_unset=True)
    if body.contractors is not None:
        d["contractors"] = _contractors(body.contractors)
    with app.db.session() as s:
        return register.system_view(register.update_system(s, code, d, now_ms=now))


@router.put("/cameras/{camera_id}/link", dependencies=[Depends(allow("compliance.write"))])
def link_camera(camera_id: int, body: LinkIn, request: Request) -> dict:
    app, _, now = _ctx(request)
    d = body.model_dump()
    with app.db.session() as s:
        ln = register.link_camera(s, camera_id=camera_id, system_code=d.pop("system"), **d, now_ms=now)
        return {"camera_id": ln.camera_id, "system": body.system, "lat": ln.lat, "lon": ln.lon,
                "installed_on": ln.installed_on.isoformat() if ln.installed_on else None,
                "public_place": ln.public_place, "audio": ln.audio}


@router.get("/zones", dependencies=[Depends(allow("compliance.read"))])
def list_zones(request: Request) -> list[dict]:
    from sqlalchemy import select

    from viis.compliance.registry_models import ComplianceZone

    app = request.app.state.viis
    with app.db.session() as s:
        return [register.zone_view(z) for z in s.scalars(select(ComplianceZone).order_by(ComplianceZone.code))]


@router.post("/zones", status_code=201, dependencies=[Depends(allow("zone.write"))])
def add_zone(body: ZoneIn, request: Request) -> dict:
    app, _, now = _ctx(request)
    with app.db.session() as s:
        return register.zone_view(register.add_zone(s, **body.model_dump(), now_ms=now))


@router.post("/consents", status_code=201, dependencies=[Depends(allow("compliance.write"))])
def add_consent(body: ConsentIn, request: Request) -> dict:
    app, who, now = _ctx(request)
    with app.db.session() as s:
        c = register.add_consent(s, zone_code=body.zone, system_code=body.system, document=body.document,
                                 on=body.on, today=today(request), actor=who, now_ms=now,
                                 document_file=_b64(body.document_base64))
        return {"id": c.id, "zone": body.zone, "system": body.system, "document": c.document,
                "document_sha256": c.document_sha256, "on": c.on_day.isoformat()}


def _b64(v: str | None) -> bytes | None:
    import base64
    import binascii

    from viis.core.errors import ValidationFailed

    if v is None:
        return None
    try:
        return base64.b64decode(v, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationFailed("document_base64 is not valid base64", field="document_base64") from None


@router.get("/consents/{consent_id}/document", dependencies=[Depends(allow("compliance.read"))])
def consent_document(consent_id: int, request: Request):
    from fastapi import Response

    from viis.compliance.models import CompliancePhoto
    from viis.compliance.registry_models import ComplianceConsent
    from viis.core.errors import NotFound

    app = request.app.state.viis
    with app.db.session() as s:
        c = s.get(ComplianceConsent, consent_id)
        if c is None or c.document_sha256 is None:
            raise NotFound(f"no consent document {consent_id}")
        doc = s.get(CompliancePhoto, c.document_sha256)
        return Response(doc.data, media_type=doc.media_type)


@router.get("/units/{code}/snapshot", dependencies=[Depends(allow("compliance.read"))])
def live_snapshot(code: str, request: Request) -> dict:
    """The unit's state in the snapshot format (docs/compliance-snapshot.md), as of now."""
    app = request.app.state.viis
    with app.db.session() as s:
        return snapshot_from_db(s, code, app.clock.wall_ms())


@router.get("/units/{code}/findings", dependencies=[Depends(allow("compliance.read"))])
def live_findings(code: str, request: Request, on: Annotated[date | None, Query()] = None) -> dict:
    """The engine's findings for the unit's live state as of ``on`` (default today)."""
    app = request.app.state.viis
    day = on or today(request)
    with app.db.session() as s:
        # changes of filed facts are dated the day they are first seen (N14.1)
        detect_unit_changes(s, code, today=today(request), now_ms=app.clock.wall_ms())
        snap = parse(snapshot_from_db(s, code, app.clock.wall_ms()))
    return {"unit": code, "on": day.isoformat(),
            "findings": [f.as_dict() for f in Evaluator(app.rules, day).evaluate(snap)]}
