"""Retrieval requests (Q23, N21.1), two-person retrieval sessions (Q24.1) and the retrieval
register (Q19.1, N16.1).

The approval document travels as base64 inside the JSON body: python-multipart is not a
dependency yet. It is checked by content (PDF, PNG or JPEG magic bytes), size and emptiness
before anything is stored, and kept under ``<data_dir>/retrieval-documents`` by SHA-256.

:func:`install` wires the retrieval step into the app: it puts the register in force for
every request (the door writes one entry per decision) and plugs the caller's open
retrieval session into ``app.state.footage_scope``. A footage call may pick one of the
caller's sessions with ``?retrieval=<request id>`` or the ``X-VIIS-Retrieval`` header;
otherwise the newest open one applies.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from viis.access import register as reg
from viis.access.door import register_to
from viis.access.policy import Principal
from viis.access.retrieval import Document, RangeIn, RetrievalService, session_view
from viis.core.clock import parse_time
from viis.core.errors import ValidationFailed, ViisError
from viis.web.auth import allow

router = APIRouter(prefix="/api", tags=["retrieval"])

Str64 = Annotated[str, Field(max_length=64)]
Str200 = Annotated[str, Field(max_length=200)]
Text = Annotated[str, Field(max_length=2000)]


class RangeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    camera_id: int
    start: Str64
    end: Str64


class DocumentBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Str200 = ""
    content_base64: Annotated[str, Field(max_length=8 * 1024 * 1024)]


class RetrievalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Annotated[str, Field(max_length=16)]
    legal_basis: Text
    purpose: Text
    case_number: Annotated[str, Field(max_length=100)] = ""
    ranges: Annotated[list[RangeBody], Field(max_length=50)]
    staff_work_ids: Annotated[list[Str64], Field(max_length=10)]
    valid_until: Str64
    actions: Annotated[list[Annotated[str, Field(max_length=16)]], Field(max_length=5)] | None = None
    document: DocumentBody | None = None
    coordinating_bureau_id: int | None = None
    person_name: Str200 = ""
    person_relation: Annotated[str, Field(max_length=32)] = ""
    deliver_to: Annotated[str, Field(max_length=20)] = ""  # GB/T 28181 upper platform ID


class ApproveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    valid_until: Str64 | None = None
    note: Text = ""
    document: DocumentBody | None = None


class RefuseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: Text


class SessionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    second_login: Str64
    second_password: Annotated[str, Field(max_length=256)]
    second_code: Annotated[str | None, Field(max_length=16)] = None


def _doc(body: DocumentBody | None) -> Document | None:
    if body is None:
        return None
    try:
        data = base64.b64decode(body.content_base64, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ValidationFailed("document.content_base64 is not valid base64",
                               field="document") from e
    return Document(body.name, data)


def _time(text: str, field: str) -> int:
    try:
        return parse_time(text)
    except ValueError as e:
        raise ValidationFailed(f"{field}: {e}", field=field) from e


def _ctx(request: Request) -> tuple:
    return request.app.state.viis, request.app.state.retrievals


@router.post("/retrievals", status_code=201)
def create(body: RetrievalIn, request: Request,
           p: Principal = Depends(allow("retrieval.create"))) -> dict:
    app, svc = _ctx(request)
    ranges = [RangeIn(r.camera_id, _time(r.start, "ranges.start"), _time(r.end, "ranges.end"))
              for r in body.ranges]
    doc = _doc(body.document)
    with app.db.session() as s:
        req = svc.create(s, p, kind=body.kind, legal_basis=body.legal_basis, purpose=body.purpose,
                         case_number=body.case_number, ranges=ranges,
                         staff_work_ids=body.staff_work_ids,
                         valid_until_ms=_time(body.valid_until, "valid_until"),
                         actions=body.actions, document=doc,
                         coordinating_bureau_id=body.coordinating_bureau_id,
                         person_name=body.person_name, person_relation=body.person_relation,
                         deliver_to=body.deliver_to)
        return svc.view(s, req)


@router.get("/retrievals")
def list_requests(request: Request, status: Annotated[str | None, Query(max_length=16)] = None,
                  p: Principal = Depends(allow("retrieval.read"))) -> list[dict]:
    app, svc = _ctx(request)
    with app.db.session() as s:
        return [svc.view(s, r) for r in svc.list_for(s, p, status)]


@router.get("/retrievals/{request_id}")
def get_request(request_id: int, request: Request,
                p: Principal = Depends(allow("retrieval.read"))) -> dict:
    app, svc = _ctx(request)
    with app.db.session() as s:
        return svc.view(s, svc.get_for(s, p, request_id))


@router.post("/retrievals/{request_id}/approve")
def approve(request_id: int, body: ApproveIn, request: Request,
            p: Principal = Depends(allow("retrieval.approve"))) -> dict:
    app, svc = _ctx(request)
    until = _time(body.valid_until, "valid_until") if body.valid_until else None
    doc = _doc(body.document)
    with app.db.session() as s:
        req = svc.approve(s, p, request_id, valid_until_ms=until, note=body.note, document=doc)
        return svc.view(s, req)


@router.post("/retrievals/{request_id}/refuse")
def refuse(request_id: int, body: RefuseIn, request: Request,
           p: Principal = Depends(allow("retrieval.approve"))) -> dict:
    app, svc = _ctx(request)
    with app.db.session() as s:
        return svc.view(s, svc.refuse(s, p, request_id, note=body.note))


@router.post("/retrievals/{request_id}/close")
def close_case(request_id: int, request: Request,
               p: Principal = Depends(allow("retrieval.close"))) -> dict:
    """The case is closed: its sessions end and the holds on its footage are released."""
    app, svc = _ctx(request)
    with app.db.session() as s:
        return svc.view(s, svc.close(s, p, request_id))


@router.post("/retrievals/{request_id}/sessions", status_code=201)
def open_session(request_id: int, body: SessionIn, request: Request,
                 p: Principal = Depends(allow("retrieval.session"))) -> dict:
    """Two staff present (Q24.1): the caller, and a second who signs in here with their own
    login, password and (when enabled) one-time code."""
    app, svc = _ctx(request)
    with app.db.session() as s:
        try:
            sess = svc.open_session(s, p, request_id, second_login=body.second_login,
                                    second_password=body.second_password,
                                    second_code=body.second_code)
        except ViisError:
            s.commit()  # keep the second staff member's failure count / lock
            raise
        return session_view(sess)


@router.post("/retrievals/{request_id}/sessions/{session_id}/close")
def close_session(request_id: int, session_id: int, request: Request,
                  p: Principal = Depends(allow("retrieval.session"))) -> dict:
    app, svc = _ctx(request)
    with app.db.session() as s:
        return session_view(svc.close_session(s, p, request_id, session_id))


def _query(camera: int | None, user: str | None, request_id: int | None, outcome: str | None,
           since: str | None, until: str | None, start: str | None, end: str | None,
           limit: int, offset: int) -> reg.RegisterQuery:
    def t(v: str | None, f: str) -> int | None:
        return _time(v, f) if v else None
    return reg.RegisterQuery(camera_id=camera, user=user, request_id=request_id, outcome=outcome,
                             since_ms=t(since, "since"), until_ms=t(until, "until"),
                             start_ms=t(start, "start"), end_ms=t(end, "end"),
                             limit=limit, offset=offset)


Q64 = Annotated[str | None, Query(max_length=64)]


@router.get("/register")
def register(request: Request, camera: int | None = None, user: Q64 = None,
             request_id: Annotated[int | None, Query(alias="request")] = None,
             outcome: Q64 = None, since: Q64 = None, until: Q64 = None, start: Q64 = None,
             end: Q64 = None, limit: int = 200, offset: int = 0,
             p: Principal = Depends(allow("register.read"))) -> list[dict]:
    """The retrieval register (Q19.1, N16.1). ``since``/``until`` filter the time of use,
    ``start``/``end`` the footage time; ``user`` is a user id or login (either staff member)."""
    app = request.app.state.viis
    q = _query(camera, user, request_id, outcome, since, until, start, end, limit, offset)
    with app.db.session() as s:
        return [reg.entry_view(e) for e in reg.search(s, q)]


@router.get("/register.csv")
def register_csv(request: Request, camera: int | None = None, user: Q64 = None,
                 request_id: Annotated[int | None, Query(alias="request")] = None,
                 outcome: Q64 = None, since: Q64 = None, until: Q64 = None, start: Q64 = None,
                 end: Q64 = None, limit: int = reg.MAX_PAGE, offset: int = 0,
                 p: Principal = Depends(allow("register.read"))) -> Response:
    app = request.app.state.viis
    q = _query(camera, user, request_id, outcome, since, until, start, end, limit, offset)
    with app.db.session() as s:
        body = reg.to_csv(reg.search(s, q))
    return Response(body, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="register.csv"'})


@router.get("/register.pdf")
def register_pdf(request: Request, camera: int | None = None, user: Q64 = None,
                 request_id: Annotated[int | None, Query(alias="request")] = None,
                 outcome: Q64 = None, since: Q64 = None, until: Q64 = None, start: Q64 = None,
                 end: Q64 = None, limit: int = reg.MAX_PAGE, offset: int = 0,
                 p: Principal = Depends(allow("register.read"))) -> Response:
    """The register as PDF with the same filters as the CSV (Q19.1, Q24.1(3), N16.1)."""
    app = request.app.state.viis
    q = _query(camera, user, request_id, outcome, since, until, start, end, limit, offset)
    filters = {"camera": camera, "user": user, "request": request_id, "outcome": outcome,
               "since": since, "until": until, "start": start, "end": end}
    with app.db.session() as s:
        entries = reg.search(s, q)
    body = reg.to_pdf(entries, {k: str(v) for k, v in filters.items() if v is not None})
    return Response(body, media_type="application/pdf",
                    headers={"Content-Disposition": 'attachment; filename="register.pdf"'})


# --- wiring --------------------------------------------------------------------------------
class RegisterContext:
    """Pure ASGI middleware: the register is the door's sink for the whole request."""

    def __init__(self, app, sink: reg.Register) -> None:
        self.app = app
        self.sink = sink

    async def __call__(self, scope, receive, send):
        with register_to(self.sink):
            await self.app(scope, receive, send)


def install(api: FastAPI) -> None:
    app = api.state.viis
    svc = RetrievalService(app.clock, api.state.identity,
                           app.settings.data_dir / "retrieval-documents")
    api.state.retrievals = svc
    api.state.register = reg.Register(app.db)

    def footage_scope(request: Request, p: Principal | None):
        if p is None or p.user_id is None:
            return None
        chosen = request.query_params.get("retrieval") or request.headers.get("x-viis-retrieval")
        rid = int(chosen) if chosen and chosen.isdigit() and len(chosen) < 19 else None
        with app.db.session() as s:
            return svc.scope_for(s, p.user_id, rid)

    api.state.footage_scope = footage_scope
    api.add_middleware(RegisterContext, sink=api.state.register)
    api.include_router(router)
