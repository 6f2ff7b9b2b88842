"""The retrieval register (资料调取登记, Q19.1, Q24.1(3), N16.1).

Every decision of the door — view, snapshot, export, timeline, allowed or refused — is one
:class:`RegisterEntry`: who (unit, names and work ID numbers of both staff of a retrieval
session), when, which camera and times, the action, why (the purpose of the approved
request, or the duty under which it was allowed), and under which approval (request id).
Entries are only ever added; nothing here updates or deletes one.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from viis.access.door import FootageUse
from viis.access.models import Organisation, User
from viis.access.retrieval_models import RegisterEntry, RetrievalRequest, RetrievalSession
from viis.core.clock import iso_utc
from viis.core.db import Database
from viis.integrity.audit import AuditLog

MAX_PAGE = 1000


def record(s: Session, use: FootageUse) -> RegisterEntry:
    p = use.principal
    e = RegisterEntry(at_ms=use.at_ms, outcome="allowed" if use.allowed else "refused",
                      action=use.action, camera_id=use.camera_id, from_ms=use.from_ms,
                      to_ms=use.to_ms, reason=use.reason[:2000], articles=" ".join(use.articles),
                      user_login="", user_name="", user_work_id="", unit_name="",
                      second_name="", second_work_id="", request_kind="", purpose="",
                      legal_basis="", case_number="")
    if p is not None:
        e.user_id, e.user_login, e.user_work_id = p.user_id, p.name[:64], p.work_id[:64]
        e.user_name = p.name
        user = s.get(User, p.user_id) if p.user_id is not None else None
        if user is not None:
            e.user_name, e.user_work_id = user.display_name, user.work_id
        if p.organisation_id is not None:
            org = s.get(Organisation, p.organisation_id)
            e.unit_id, e.unit_name = p.organisation_id, org.name if org else ""
        elif p.organisation_name:  # an upper platform: its name and server ID (N16.1 unit)
            e.unit_name = p.organisation_name[:200]
    sc = use.scope
    if sc is not None and sc.request_id is not None:
        req = s.get(RetrievalRequest, sc.request_id)
        if req is not None:
            e.request_id, e.request_kind = req.id, req.kind
            e.purpose, e.legal_basis, e.case_number = req.purpose, req.legal_basis, req.case_number
        if sc.session_id is not None:
            sess = s.get(RetrievalSession, sc.session_id)
            if sess is not None:
                e.session_id = sess.id
                other_id = sess.user_b_id if sess.user_a_id == e.user_id else sess.user_a_id
                other = s.get(User, other_id)
                if other is not None:
                    e.second_user_id, e.second_name, e.second_work_id = \
                        other.id, other.display_name, other.work_id
    elif use.allowed and use.role:
        e.purpose = f"duty of {use.role} within clearance (Q19.1)"
    s.add(e)
    s.flush()
    # the same decision in the tamper-evident log, in the same transaction: no entry, no footage
    AuditLog(s).append("footage." + use.action if use.allowed else "footage.denied",
                       actor=p.name if p else None, organisation=e.unit_name,
                       subject=f"camera {use.camera_id}", at_ms=use.at_ms,
                       details={"action": use.action, "from_ms": use.from_ms, "to_ms": use.to_ms,
                                "register_id": e.id, "request_id": e.request_id,
                                "session_id": e.session_id, "reason": use.reason[:500]})
    return e


class Register:
    """The sink the web app puts in force for the door: one entry, in its own transaction,
    committed before the footage is released."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def __call__(self, use: FootageUse) -> None:
        with self.db.session() as s:
            record(s, use)


@dataclass
class RegisterQuery:
    camera_id: int | None = None
    user: str | None = None  # user id or login; matches either staff member
    request_id: int | None = None
    outcome: str | None = None
    since_ms: int | None = None  # time of use
    until_ms: int | None = None
    start_ms: int | None = None  # footage time overlapping [start, end]
    end_ms: int | None = None
    limit: int = 200
    offset: int = 0


def search(s: Session, q: RegisterQuery) -> list[RegisterEntry]:
    stmt = select(RegisterEntry)
    if q.camera_id is not None:
        stmt = stmt.where(RegisterEntry.camera_id == q.camera_id)
    if q.request_id is not None:
        stmt = stmt.where(RegisterEntry.request_id == q.request_id)
    if q.outcome:
        stmt = stmt.where(RegisterEntry.outcome == q.outcome)
    if q.user:
        u = q.user.strip()
        if u.isdigit():
            stmt = stmt.where(or_(RegisterEntry.user_id == int(u),
                                  RegisterEntry.second_user_id == int(u)))
        else:
            stmt = stmt.where(RegisterEntry.user_login == u)
    if q.since_ms is not None:
        stmt = stmt.where(RegisterEntry.at_ms >= q.since_ms)
    if q.until_ms is not None:
        stmt = stmt.where(RegisterEntry.at_ms < q.until_ms)
    if q.start_ms is not None:
        stmt = stmt.where(RegisterEntry.to_ms >= q.start_ms)
    if q.end_ms is not None:
        stmt = stmt.where(RegisterEntry.from_ms <= q.end_ms)
    limit = max(1, min(q.limit, MAX_PAGE))
    return list(s.scalars(stmt.order_by(RegisterEntry.id).offset(max(0, q.offset)).limit(limit)))


FIELDS = ("id", "at", "outcome", "action", "camera_id", "from", "to", "unit_id", "unit_name",
          "user_id", "user_login", "user_name", "user_work_id", "second_user_id", "second_name",
          "second_work_id", "request_id", "request_kind", "session_id", "case_number",
          "purpose", "legal_basis", "reason", "articles")


def entry_view(e: RegisterEntry) -> dict:
    return {"id": e.id, "at": iso_utc(e.at_ms), "at_ms": e.at_ms, "outcome": e.outcome,
            "action": e.action, "camera_id": e.camera_id,
            "from": iso_utc(e.from_ms) if e.from_ms is not None else None,
            "to": iso_utc(e.to_ms) if e.to_ms is not None else None,
            "from_ms": e.from_ms, "to_ms": e.to_ms,
            "unit_id": e.unit_id, "unit_name": e.unit_name, "user_id": e.user_id,
            "user_login": e.user_login, "user_name": e.user_name, "user_work_id": e.user_work_id,
            "second_user_id": e.second_user_id, "second_name": e.second_name,
            "second_work_id": e.second_work_id, "request_id": e.request_id,
            "request_kind": e.request_kind, "session_id": e.session_id,
            "case_number": e.case_number, "purpose": e.purpose, "legal_basis": e.legal_basis,
            "reason": e.reason, "articles": e.articles.split() if e.articles else []}


def _cell(v) -> str:
    text = "" if v is None else str(v)
    # a spreadsheet must not run what a requester typed (CSV/formula injection)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def to_csv(entries: list[RegisterEntry]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(FIELDS)
    for e in entries:
        v = entry_view(e)
        v["articles"] = " ".join(v["articles"])
        w.writerow([_cell(v[f]) for f in FIELDS])
    return buf.getvalue()


#: Column labels for people (zh-CN and en): the N16.1 fields are reason (purpose, legal
#: basis, reason), content (camera, footage from/to, action), unit and name.
FIELD_LABELS = {
    "id": "编号 entry", "at": "时间 time of use (UTC)", "outcome": "结果 outcome",
    "action": "方式 action", "camera_id": "摄像机 camera", "from": "资料起 footage from (UTC)",
    "to": "资料止 footage to (UTC)", "unit_id": "单位编号 unit id", "unit_name": "单位 unit",
    "user_id": "用户编号 user id", "user_login": "账号 login", "user_name": "姓名 name",
    "user_work_id": "工作证号 work ID", "second_user_id": "第二人编号 second user id",
    "second_name": "第二人姓名 second staff", "second_work_id": "第二人工作证号 second work ID",
    "request_id": "调取申请 request", "request_kind": "申请类型 request kind",
    "session_id": "调取会话 session", "case_number": "案件编号 case number",
    "purpose": "事由 purpose", "legal_basis": "依据 legal basis", "reason": "决定理由 reason",
    "articles": "条款 articles",
}


def to_pdf(entries: list[RegisterEntry], filters: dict[str, str] | None = None) -> bytes:
    """The register on paper (Q19.1, Q24.1(3), N16.1): one table per entry with every field,
    Chinese and English labels, through the project's PDF helpers (``STSong-Light``, nothing
    embedded or downloaded)."""
    from viis.compliance.pdf import report_pdf

    given = [[k, v] for k, v in (filters or {}).items() if v not in (None, "")]
    sections: list[tuple[str, list[list[str]]]] = [
        ("筛选条件 Filters", [["条件 filter", "值 value"]] + (given or [["-", "全部 all"]])),
        ("合计 Entries", [["条数 count"], [str(len(entries))]]),
    ]
    for e in entries:
        v = entry_view(e)
        v["articles"] = " ".join(v["articles"])
        sections.append((f"登记 Entry {e.id}", [["字段 field", "值 value"]]
                         + [[FIELD_LABELS[f], "" if v[f] is None else str(v[f])] for f in FIELDS]))
    return report_pdf("资料调取登记 Retrieval register (Q19.1, Q24.1, N16.1)", sections)
