"""Filings API (Q16, N14.1): the unit side (generate, download as signed JSON or PDF, submit by
a channel, record the police receipt) and the bureau's intake (register a unit's key, receive a
signed package, list what arrived).

Routes are added to the ``/api/compliance`` router. Actions: ``compliance.read``,
``filing.write``, ``intake.keys``, ``intake.read``; the intake itself is open
(``filing.intake`` in ``PUBLIC_ACTIONS``): the signature against the unit's registered key is
what authenticates it, and the body is bounded (``MAX_PACKAGE_BYTES``) before it is parsed.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from viis.compliance import filings, intake
from viis.compliance.pdf import filing_pdf
from viis.compliance.registry_models import ComplianceFiling, ComplianceSystem, IntakeFiling
from viis.core.signing import Signer
from viis.web.auth import allow
from viis.web.routes_compliance import router
from viis.web.routes_register import _ctx, today

Code = Annotated[str, Field(min_length=1, max_length=64)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FilingIn(_In):
    system: Code
    kind: Annotated[str, Field(max_length=32)]


class SubmitIn(_In):
    channel: Annotated[str, Field(max_length=32)]


class ReceiptIn(_In):
    receipt: dict[str, Any] | None = None
    refused: Annotated[str, Field(max_length=2000)] | None = None


class KeyIn(_In):
    unit_code: Code
    unit_name: Annotated[str, Field(max_length=200)]
    district: Annotated[str, Field(max_length=100)] = ""
    public_pem: Annotated[str, Field(max_length=4000)]


def unit_signer(app) -> Signer:
    """The installation's key for filings; its public half is registered with the bureau."""
    return Signer.for_data_dir(app.settings.data_dir, "filing")


def bureau_signer(app) -> Signer:
    return Signer.for_data_dir(app.settings.data_dir, "intake")


def _code(s, f: ComplianceFiling) -> str:
    return s.get(ComplianceSystem, f.system_id).code


@router.get("/signing-key", dependencies=[Depends(allow("compliance.read"))])
def signing_key(request: Request) -> dict:
    """The public key to register at the bureau's intake (never the private one)."""
    sg = unit_signer(request.app.state.viis)
    return {"algorithm": sg.algorithm, "key_id": sg.key_id, "public_pem": sg.public_pem().decode()}


@router.get("/filings", dependencies=[Depends(allow("compliance.read"))])
def list_filings(request: Request) -> list[dict]:
    app = request.app.state.viis
    with app.db.session() as s:
        rows = s.execute(select(ComplianceFiling, ComplianceSystem.code)
                         .join(ComplianceSystem, ComplianceSystem.id == ComplianceFiling.system_id)
                         .order_by(ComplianceFiling.id))
        return [filings.filing_view(f, code) for f, code in rows]


@router.post("/filings", status_code=201, dependencies=[Depends(allow("filing.write"))])
def create_filing(body: FilingIn, request: Request) -> dict:
    """A draft filing generated from the live configuration and signed (N14.1 contents)."""
    app, who, now = _ctx(request)
    with app.db.session() as s:
        f = filings.create_filing(s, app.rules, unit_signer(app), system_code=body.system, kind=body.kind,
                                  today=today(request), actor=who, now_ms=now)
        return filings.filing_view(f, body.system)


@router.get("/filings/{filing_id}", dependencies=[Depends(allow("compliance.read"))])
def get_filing(filing_id: int, request: Request) -> dict:
    app = request.app.state.viis
    with app.db.session() as s:
        f = filings.get(s, filing_id)
        return filings.filing_view(f, _code(s, f)) | {"contents": f.contents}


@router.get("/filings/{filing_id}/package.json", dependencies=[Depends(allow("compliance.read"))])
def package(filing_id: int, request: Request) -> JSONResponse:
    """The signed JSON package, as the police intake receives it."""
    app = request.app.state.viis
    with app.db.session() as s:
        f = filings.get(s, filing_id)
        return JSONResponse(f.package, headers={
            "Content-Disposition": f'attachment; filename="filing-{f.id}.json"'})


@router.get("/filings/{filing_id}/filing.pdf", dependencies=[Depends(allow("compliance.read"))])
def pdf(filing_id: int, request: Request) -> Response:
    app = request.app.state.viis
    with app.db.session() as s:
        f = filings.get(s, filing_id)
        data = filing_pdf(f.package, state=f.state, filed_on=f.filed_on.isoformat() if f.filed_on else None,
                          channel=f.channel, sha256=f.contents_sha256)
    return Response(data, media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="filing-{filing_id}.pdf"'})


@router.post("/filings/{filing_id}/submit", dependencies=[Depends(allow("filing.write"))])
def submit(filing_id: int, body: SubmitIn, request: Request) -> dict:
    app, _, now = _ctx(request)
    with app.db.session() as s:
        f = filings.submit(s, app.rules, filing_id, channel=body.channel, today=today(request), now_ms=now)
        return filings.filing_view(f, _code(s, f))


@router.post("/filings/{filing_id}/receipt", dependencies=[Depends(allow("filing.write"))])
def receipt(filing_id: int, body: ReceiptIn, request: Request) -> dict:
    app, _, now = _ctx(request)
    with app.db.session() as s:
        f = filings.record_receipt(s, filing_id, receipt=body.receipt, refused=body.refused, now_ms=now)
        return filings.filing_view(f, _code(s, f))


@router.get("/units/{code}/changes", dependencies=[Depends(allow("compliance.read"))])
def changes(code: str, request: Request) -> list[dict]:
    """Filed facts that changed since the last filing (N14.1), detected now."""
    from viis.compliance.register import unit
    from viis.compliance.registry_models import ComplianceSite, FiledChange

    app, _, now = _ctx(request)
    with app.db.session() as s:
        filings.detect_unit_changes(s, code, today=today(request), now_ms=now)
        u = unit(s, code)
        q = (select(FiledChange).join(ComplianceSystem, ComplianceSystem.id == FiledChange.system_id)
             .join(ComplianceSite, ComplianceSite.id == ComplianceSystem.site_id)
             .where(ComplianceSite.unit_id == u.id).order_by(FiledChange.id))
        return [filings.change_view(c) for c in s.scalars(q)]


# --- the bureau's intake ----------------------------------------------------------------------

@router.post("/intake/keys", status_code=201, dependencies=[Depends(allow("intake.keys"))])
def register_key(body: KeyIn, request: Request) -> dict:
    app, who, now = _ctx(request)
    with app.db.session() as s:
        k = intake.register_key(s, unit_code=body.unit_code, unit_name=body.unit_name, district=body.district,
                                public_pem=body.public_pem, actor=who, now_ms=now)
        return {"unit_code": k.unit_code, "key_id": k.key_id, "district": k.district}


@router.post("/intake")
async def receive(request: Request) -> JSONResponse:
    """Open: a unit's installation posts its signed filing package (Q16.3 EDI, N14.1). 201 with
    a signed receipt; the same package again: 200 with the same receipt; refused: 422/413."""
    app = request.app.state.viis
    cl = request.headers.get("content-length")
    if cl is not None and cl.isdigit() and int(cl) > intake.MAX_PACKAGE_BYTES:
        raise HTTPException(413, f"package of {cl} bytes; at most {intake.MAX_PACKAGE_BYTES}")
    body = await request.body()
    if len(body) > intake.MAX_PACKAGE_BYTES:
        raise HTTPException(413, f"package of {len(body)} bytes; at most {intake.MAX_PACKAGE_BYTES}")
    with app.db.session() as s:
        rec, created = intake.receive(s, body, bureau=bureau_signer(app), today=today(request),
                                      now_ms=app.clock.wall_ms())
    return JSONResponse(rec, status_code=201 if created else 200)


@router.post("/intake/snapshots")
async def receive_snapshot(request: Request) -> JSONResponse:
    """Open, like the filing intake: a unit's signed snapshot (docs/compliance-snapshot.md) for the
    bureau's dashboard. 201 stored; 200 the same content again; 422/413 refused, nothing stored."""
    app = request.app.state.viis
    cl = request.headers.get("content-length")
    if cl is not None and cl.isdigit() and int(cl) > intake.MAX_SNAPSHOT_BYTES:
        raise HTTPException(413, f"package of {cl} bytes; at most {intake.MAX_SNAPSHOT_BYTES}")
    body = await request.body()
    if len(body) > intake.MAX_SNAPSHOT_BYTES:
        raise HTTPException(413, f"package of {len(body)} bytes; at most {intake.MAX_SNAPSHOT_BYTES}")
    with app.db.session() as s:
        rec, created = intake.receive_snapshot(s, body, now_ms=app.clock.wall_ms())
    return JSONResponse(rec, status_code=201 if created else 200)


@router.get("/units/{code}/snapshot.signed", dependencies=[Depends(allow("compliance.read"))])
def signed_snapshot(code: str, request: Request) -> dict:
    """The unit's live snapshot signed with the installation's key, to send to the bureau."""
    from viis.compliance.live import snapshot_from_db

    app = request.app.state.viis
    with app.db.session() as s:
        filings.detect_unit_changes(s, code, today=today(request), now_ms=app.clock.wall_ms())
        snap = snapshot_from_db(s, code, app.clock.wall_ms())
    return intake.sign_snapshot(snap, unit_signer(app))


@router.get("/intake/filings", dependencies=[Depends(allow("intake.read"))])
def intake_filings(request: Request) -> list[dict]:
    app = request.app.state.viis
    with app.db.session() as s:
        return [intake.intake_view(r) for r in s.scalars(select(IntakeFiling).order_by(IntakeFiling.id))]
