"""Compliance API, police side: cases, inspections, photos and public tips.

Every route names its policy action (viis.access.policy: ``case.read``, ``case.write``,
``case.decide``, ``inspection.read``, ``inspection.write``, ``tip.triage``). The one open
route is tip intake (``tip.create``, N24.1: anyone may report an unlawful installation); it is
bounded by the body limit, by field limits and by a per-address rate limit.
"""

from __future__ import annotations

import base64
import binascii
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from viis.compliance import cases, inspections
from viis.compliance.engine import Evaluator
from viis.compliance.inspections import MAX_PHOTO_BYTES, InspectionError, TipLimiter
from viis.compliance.snapshot import parse
from viis.core.clock import SHANGHAI
from viis.core.errors import NotFound, ValidationFailed
from viis.web.auth import allow, principal

router = APIRouter(prefix="/api/compliance", tags=["compliance"])

Short = Annotated[str, Field(max_length=200)]
Text = Annotated[str, Field(max_length=4000)]
Photo = Annotated[str, Field(max_length=(MAX_PHOTO_BYTES * 4) // 3 + 4)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _today(request: Request) -> date:
    return datetime.fromtimestamp(request.app.state.viis.clock.wall_ms() / 1000, SHANGHAI).date()


def _ctx(request: Request):
    app = request.app.state.viis
    return app, principal(request).name, app.clock.wall_ms()


def _photo(b64: str | None) -> bytes | None:
    if b64 is None:
        return None
    try:
        return base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise InspectionError("photo_base64 is not valid base64", field="photo_base64") from None


# --- cases ---------------------------------------------------------------------------------

class CaseIn(_In):
    finding_id: Annotated[str, Field(max_length=32)]
    # either a unit's snapshot and the evaluation day ...
    snapshot: dict[str, Any] | None = None
    on: date | None = None
    # ... or an inspection whose failed item raised the finding
    inspection_id: int | None = None


class OrderIn(_In):
    rectify_by: date
    order_ref: Short = ""


class ReinspectIn(_In):
    rectified: bool
    on: date | None = None
    note: Text = ""
    inspection_id: int | None = None


class DecideIn(_In):
    penalty: Annotated[str, Field(max_length=16)]
    party: Annotated[str, Field(max_length=32)]
    amount: int | None = None
    served_on: date | None = None
    decision_ref: Short = ""
    note: Text = ""


class AppealIn(_In):
    kind: Annotated[str, Field(max_length=32)]
    filed_on: date
    reconsideration_decided_on: date | None = None
    ref: Short = ""


class CloseIn(_In):
    outcome: Text


@router.post("/cases", status_code=201, dependencies=[Depends(allow("case.write"))])
def open_case(body: CaseIn, request: Request) -> dict:
    app, who, now = _ctx(request)
    with app.db.session() as s:
        if body.inspection_id is not None:
            insp = inspections.get_inspection(s, body.inspection_id)
            found = inspections.inspection_findings(s, app.rules, insp.id)
            org = (insp.organisation, insp.organisation_name, insp.use, insp.party)
            source = "inspection"
        elif body.snapshot is not None and body.on is not None:
            snap = parse(body.snapshot)
            found = Evaluator(app.rules, body.on).evaluate(snap)
            o = snap.organisation
            org = (o.id, o.name, o.use, o.party)
            source = "engine"
        else:
            raise ValidationFailed("give inspection_id, or snapshot and on", field="finding_id")
        f = next((x for x in found if x.id == body.finding_id), None)
        if f is None:
            raise NotFound(f"no finding {body.finding_id} "
                           + (f"in inspection {body.inspection_id}" if source == "inspection"
                              else f"for {org[0]} on {body.on}"))
        c = cases.open_case(s, f, organisation=org[0], organisation_name=org[1], use=org[2],
                            party=org[3], actor=who, now_ms=now, source=source,
                            inspection_id=body.inspection_id)
        return cases.case_view(c, cases.events(s, c.id))


@router.get("/cases", dependencies=[Depends(allow("case.read"))])
def list_cases(request: Request, state: Annotated[str | None, Query(max_length=16)] = None) -> list[dict]:
    app = request.app.state.viis
    with app.db.session() as s:
        return [cases.case_view(c) for c in cases.list_cases(s, state)]


@router.get("/cases/{case_id}", dependencies=[Depends(allow("case.read"))])
def get_case(case_id: int, request: Request) -> dict:
    app = request.app.state.viis
    with app.db.session() as s:
        return cases.case_view(cases.get_case(s, case_id), cases.events(s, case_id))


@router.post("/cases/{case_id}/order", dependencies=[Depends(allow("case.write"))])
def order(case_id: int, body: OrderIn, request: Request) -> dict:
    app, who, now = _ctx(request)
    with app.db.session() as s:
        c = cases.order(s, case_id, rectify_by=body.rectify_by, today=_today(request), actor=who,
                        now_ms=now, order_ref=body.order_ref)
        return cases.case_view(c, cases.events(s, case_id))


@router.post("/cases/{case_id}/reinspect", dependencies=[Depends(allow("case.write"))])
def reinspect(case_id: int, body: ReinspectIn, request: Request) -> dict:
    app, who, now = _ctx(request)
    with app.db.session() as s:
        c = cases.reinspect(s, case_id, rectified=body.rectified, on=body.on or _today(request),
                            actor=who, now_ms=now, note=body.note, inspection_id=body.inspection_id)
        return cases.case_view(c, cases.events(s, case_id))


@router.post("/cases/{case_id}/decide", dependencies=[Depends(allow("case.decide"))])
def decide(case_id: int, body: DecideIn, request: Request) -> dict:
    app, who, now = _ctx(request)
    with app.db.session() as s:
        c = cases.decide(s, case_id, penalty=body.penalty, party=body.party, amount=body.amount,
                         served_on=body.served_on or _today(request), book=app.rules, actor=who,
                         now_ms=now, decision_ref=body.decision_ref, note=body.note)
        return cases.case_view(c, cases.events(s, case_id))


@router.post("/cases/{case_id}/appeal", dependencies=[Depends(allow("case.write"))])
def appeal(case_id: int, body: AppealIn, request: Request) -> dict:
    app, who, now = _ctx(request)
    with app.db.session() as s:
        c = cases.record_appeal(s, case_id, kind=body.kind, filed_on=body.filed_on, actor=who,
                                now_ms=now, reconsideration_decided_on=body.reconsideration_decided_on,
                                ref=body.ref)
        return cases.case_view(c, cases.events(s, case_id))


@router.post("/cases/{case_id}/close", dependencies=[Depends(allow("case.write"))])
def close(case_id: int, body: CloseIn, request: Request) -> dict:
    app, who, now = _ctx(request)
    with app.db.session() as s:
        c = cases.close(s, case_id, outcome=body.outcome, actor=who, now_ms=now)
        return cases.case_view(c, cases.events(s, case_id))


# --- inspections ---------------------------------------------------------------------------

class InspectionIn(_In):
    organisation: Short
    organisation_name: Short
    use: Annotated[str, Field(max_length=16)]
    party: Annotated[str, Field(max_length=16)] = "unit"
    site: Short
    site_categories: Annotated[list[Short], Field(max_length=20)]
    on: date | None = None


class ResultIn(_In):
    result: Annotated[str, Field(max_length=16)]
    note: Text = ""
    photo_base64: Photo | None = None


@router.get("/checklist", dependencies=[Depends(allow("inspection.read"))])
def get_checklist(request: Request,
                  category: Annotated[list[str] | None, Query(max_length=20)] = None,
                  on: date | None = None) -> list[dict]:
    app = request.app.state.viis
    items = inspections.checklist(app.rules, on or _today(request), category or [])
    return [i.__dict__ for i in items]


@router.post("/inspections", status_code=201, dependencies=[Depends(allow("inspection.write"))])
def start(body: InspectionIn, request: Request) -> dict:
    app, who, now = _ctx(request)
    with app.db.session() as s:
        insp = inspections.start_inspection(
            s, app.rules, organisation=body.organisation, organisation_name=body.organisation_name,
            use=body.use, party=body.party, site=body.site, categories=body.site_categories,
            on=body.on or _today(request), inspector=who, now_ms=now)
        return inspections.inspection_view(insp, inspections.items_of(s, insp.id))


@router.get("/inspections/{inspection_id}", dependencies=[Depends(allow("inspection.read"))])
def get_inspection(inspection_id: int, request: Request) -> dict:
    app = request.app.state.viis
    with app.db.session() as s:
        insp = inspections.get_inspection(s, inspection_id)
        return inspections.inspection_view(insp, inspections.items_of(s, inspection_id))


@router.post("/inspections/{inspection_id}/items/{seq}",
             dependencies=[Depends(allow("inspection.write"))])
def record(inspection_id: int, seq: int, body: ResultIn, request: Request) -> dict:
    app, who, now = _ctx(request)
    with app.db.session() as s:
        inspections.record_result(s, inspection_id, seq, result=body.result, note=body.note,
                                  photo=_photo(body.photo_base64), actor=who, now_ms=now)
        insp = inspections.get_inspection(s, inspection_id)
        return inspections.inspection_view(insp, inspections.items_of(s, inspection_id))


@router.post("/inspections/{inspection_id}/complete", dependencies=[Depends(allow("inspection.write"))])
def complete(inspection_id: int, request: Request) -> dict:
    app, who, now = _ctx(request)
    with app.db.session() as s:
        insp = inspections.complete_inspection(s, inspection_id, actor=who, now_ms=now)
        return inspections.inspection_view(insp, inspections.items_of(s, inspection_id))


@router.get("/inspections/{inspection_id}/findings", dependencies=[Depends(allow("inspection.read"))])
def findings(inspection_id: int, request: Request) -> list[dict]:
    app = request.app.state.viis
    with app.db.session() as s:
        return [f.as_dict() for f in inspections.inspection_findings(s, app.rules, inspection_id)]


@router.get("/photos/{sha256}", dependencies=[Depends(allow("inspection.read"))])
def photo(sha256: str, request: Request) -> Response:
    app = request.app.state.viis
    with app.db.session() as s:
        p = inspections.get_photo(s, sha256)
        return Response(p.data, media_type=p.media_type,
                        headers={"X-Content-SHA256": p.sha256, "X-Content-Type-Options": "nosniff"})


# --- tips (N24.1) ---------------------------------------------------------------------------

class TipIn(_In):
    location: Annotated[str, Field(max_length=inspections.MAX_LOCATION)]
    description: Annotated[str, Field(max_length=inspections.MAX_DESCRIPTION)]
    latitude: float | None = None
    longitude: float | None = None
    contact: Annotated[str, Field(max_length=inspections.MAX_CONTACT)] = ""
    photo_base64: Photo | None = None


class DismissIn(_In):
    reason: Text


class TipInspectIn(_In):
    organisation: Short
    organisation_name: Short
    use: Annotated[str, Field(max_length=16)]
    party: Annotated[str, Field(max_length=16)] = "unit"
    site: Short
    site_categories: Annotated[list[Short], Field(max_length=20)]
    on: date | None = None


def tip_rate_limit(request: Request) -> None:
    """Public intake: per client address, before the body is looked at."""
    lim = getattr(request.app.state, "tip_limiter", None)
    if lim is None:
        lim = request.app.state.tip_limiter = TipLimiter()
    host = request.client.host if request.client else "unknown"
    if not lim.allow(host):
        raise HTTPException(429, "too many tips from this address; try again later",
                            headers={"Retry-After": str(int(lim.window_s))})


@router.post("/tips", status_code=201, dependencies=[Depends(tip_rate_limit)])
def submit_tip(body: TipIn, request: Request) -> dict:
    """Anyone may report an unlawful installation (N24.1). Returns only the receipt."""
    app = request.app.state.viis
    with app.db.session() as s:
        t = inspections.submit_tip(s, location=body.location, description=body.description,
                                   latitude=body.latitude, longitude=body.longitude,
                                   contact=body.contact, photo=_photo(body.photo_base64),
                                   now_ms=app.clock.wall_ms())
        return {"id": t.id, "received_ms": t.received_ms, "state": t.state}


@router.get("/tips", dependencies=[Depends(allow("tip.triage"))])
def list_tips(request: Request, state: Annotated[str | None, Query(max_length=16)] = None) -> list[dict]:
    from sqlalchemy import select

    from viis.compliance.models import Tip

    app = request.app.state.viis
    with app.db.session() as s:
        q = select(Tip).order_by(Tip.id.desc()).limit(500)
        if state:
            q = q.where(Tip.state == state)
        return [inspections.tip_view(t) for t in s.scalars(q)]


@router.post("/tips/{tip_id}/dismiss", dependencies=[Depends(allow("tip.triage"))])
def dismiss(tip_id: int, body: DismissIn, request: Request) -> dict:
    app, who, now = _ctx(request)
    with app.db.session() as s:
        return inspections.tip_view(inspections.dismiss_tip(s, tip_id, reason=body.reason, actor=who,
                                                            now_ms=now))


@router.post("/tips/{tip_id}/inspect", status_code=201, dependencies=[Depends(allow("tip.triage"))])
def tip_inspect(tip_id: int, body: TipInspectIn, request: Request) -> dict:
    app, who, now = _ctx(request)
    with app.db.session() as s:
        t, insp = inspections.tip_to_inspection(
            s, app.rules, tip_id, actor=who, now_ms=now, organisation=body.organisation,
            organisation_name=body.organisation_name, use=body.use, party=body.party, site=body.site,
            categories=body.site_categories, on=body.on or _today(request))
        return {"tip": inspections.tip_view(t),
                "inspection": inspections.inspection_view(insp, inspections.items_of(s, insp.id))}


# --- the register, filings, intake and reports (unit and bureau sides) --------------------------
# Their modules add routes to this router, so /api/compliance stays one router to include.
from viis.web import routes_register  # noqa: E402, F401, I001
from viis.web import routes_filings  # noqa: E402, F401
from viis.web import routes_reports  # noqa: E402, F401
