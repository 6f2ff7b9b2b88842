"""Retrieval requests (Q23.1–Q23.3, N20.1, N21.1) and two-person retrieval sessions (Q24.1).

Routing by request kind — who may file it and who decides it:

| kind | filed by | decided by | access |
|---|---|---|---|
| police (Q23.1) | police investigator of a city/district bureau | bureau approver of that bureau or of its city bureau | after approval |
| department (Q23.2) | department requester of another department, naming the district bureau that coordinates | bureau approver of that district bureau | after approval |
| emergency (Q23.3) | police investigator or department requester (authorities with investigation power) | as police/department, after the fact | at once, flagged "approval pending review"; validity capped until reviewed |
| individual (N21.1) | operator or unit admin of the using unit, for the person concerned | unit admin of that unit (the unit's consent) | view only, never export |

Nobody decides their own request. Access is granted as a :class:`~viis.access.policy.Scope`
(cameras × time ranges × actions, until expiry) and only inside a retrieval session that two
distinct, authenticated, trained staff of the requesting organisation opened together, both
named in the request's work ID numbers (Q24.1(1)(2)). Granted ranges are put under hold
(evidence lock) until the case is closed.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from viis.access import policy
from viis.access.identity import AccountLocked, IdentityService, SignInFailed
from viis.access.models import Organisation, User
from viis.access.policy import FOOTAGE_ACTIONS, Forbidden, Principal, Scope, ScopeRange
from viis.access.retrieval_models import RetrievalRange, RetrievalRequest, RetrievalSession
from viis.core.clock import Clock, iso_utc
from viis.core.errors import NotFound, ValidationFailed
from viis.core.logging import get_logger
from viis.integrity.audit import AuditLog
from viis.media.models import Hold
from viis.media.retention import place_hold, release_hold
from viis.registry.models import Camera

log = get_logger(__name__)

POLICE, DEPARTMENT, EMERGENCY, INDIVIDUAL = "police", "department", "emergency", "individual"
KINDS = (POLICE, DEPARTMENT, EMERGENCY, INDIVIDUAL)
VIEW_ONLY = frozenset({"live", "playback", "timeline"})  # N21.1: view, never copy
RELATIONS = ("self", "close_relative", "guardian", "carer")  # N21.1
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
EMERGENCY_UNREVIEWED_MS = 24 * HOUR_MS  # an unreviewed emergency grant lasts at most this
MAX_VALIDITY_MS = 90 * DAY_MS
MAX_RANGES = 50
MAX_DOCUMENT_BYTES = 4 * 1024 * 1024
TEXT_MAX = 2000

#: magic bytes → stored type. Approval documents are scans or PDFs, nothing else.
DOCUMENT_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "pdf"), (b"\x89PNG\r\n\x1a\n", "png"), (b"\xff\xd8\xff", "jpeg"))

#: Roles whose holders may file a request of a kind and work in its sessions.
STAFF_ROLES: dict[str, frozenset[str]] = {
    POLICE: frozenset({policy.INVESTIGATOR}),
    DEPARTMENT: frozenset({policy.REQUESTER}),
    EMERGENCY: frozenset({policy.INVESTIGATOR, policy.REQUESTER}),
    INDIVIDUAL: frozenset({policy.OPERATOR, policy.UNIT_ADMIN}),
}
STAFF_ORG_KINDS: dict[str, frozenset[str]] = {
    POLICE: frozenset({policy.CITY_BUREAU, policy.DISTRICT_BUREAU}),
    DEPARTMENT: frozenset({policy.DEPARTMENT}),
    EMERGENCY: frozenset({policy.CITY_BUREAU, policy.DISTRICT_BUREAU, policy.DEPARTMENT}),
    INDIVIDUAL: frozenset({policy.USING_UNIT}),
}
ARTICLES = {POLICE: ("Q23.1",), DEPARTMENT: ("Q23.2",), EMERGENCY: ("Q23.3",),
            INDIVIDUAL: ("N21.1",)}


@dataclass(frozen=True)
class Document:
    name: str
    data: bytes


@dataclass(frozen=True)
class RangeIn:
    camera_id: int
    from_ms: int
    to_ms: int


def _text(value: str | None, field: str, *, required: bool = True, limit: int = TEXT_MAX) -> str:
    v = (value or "").strip()
    if required and not v:
        raise ValidationFailed(f"{field.replace('_', ' ')} is required", field=field)
    if len(v) > limit:
        raise ValidationFailed(f"{field.replace('_', ' ')} is longer than {limit} characters",
                               field=field)
    return v


class RetrievalService:
    def __init__(self, clock: Clock, identity: IdentityService, documents_dir: Path, *,
                 max_document_bytes: int = MAX_DOCUMENT_BYTES) -> None:
        self.clock = clock
        self.identity = identity
        self.documents_dir = documents_dir
        self.max_document_bytes = max_document_bytes

    # --- the approval document (Q24.1(2)) ----------------------------------------------
    def check_document(self, doc: Document) -> tuple[str, str]:
        """(type, sha256) of an acceptable document, else ValidationFailed. Nothing stored."""
        if not doc.data:
            raise ValidationFailed("the approval document is empty", field="document")
        if len(doc.data) > self.max_document_bytes:
            raise ValidationFailed(f"the approval document has {len(doc.data)} bytes, over the "
                                   f"limit of {self.max_document_bytes}", field="document")
        for magic, kind in DOCUMENT_MAGIC:
            if doc.data.startswith(magic):
                return kind, hashlib.sha256(doc.data).hexdigest()
        raise ValidationFailed("the approval document must be a PDF, PNG or JPEG file "
                               "(checked by its content, not its name)", field="document")

    def _store(self, data: bytes, sha: str, kind: str) -> Path:
        """Content-addressed, written once, read-only."""
        self.documents_dir.mkdir(parents=True, exist_ok=True)
        path = self.documents_dir / f"{sha}.{kind}"
        if path.exists():
            return path
        tmp = path.with_suffix(f".{kind}.tmp{os.getpid()}")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o440)
        os.replace(tmp, path)
        return path

    def _attach(self, req: RetrievalRequest, doc: Document, checked: tuple[str, str]) -> None:
        kind, sha = checked
        self._store(doc.data, sha, kind)
        req.document_sha256, req.document_type = sha, kind
        req.document_bytes, req.document_name = len(doc.data), (doc.name or "")[:200]

    def document_path(self, req: RetrievalRequest) -> Path | None:
        if not req.document_sha256:
            return None
        return self.documents_dir / f"{req.document_sha256}.{req.document_type}"

    # --- filing --------------------------------------------------------------------------
    def create(self, s: Session, p: Principal, *, kind: str, legal_basis: str, purpose: str,
               ranges: list[RangeIn], staff_work_ids: list[str], valid_until_ms: int,
               case_number: str = "", actions: list[str] | None = None,
               document: Document | None = None, coordinating_bureau_id: int | None = None,
               person_name: str = "", person_relation: str = "",
               deliver_to: str = "") -> RetrievalRequest:
        now = self.clock.wall_ms()
        if kind not in KINDS:
            raise ValidationFailed(f"kind must be one of {', '.join(KINDS)}", field="kind")
        arts = ARTICLES[kind]
        if p.user_id is None or p.organisation_id is None:
            raise Forbidden("a retrieval request is filed by a signed-in staff member", arts)
        if not (p.roles & STAFF_ROLES[kind]) or p.org_kind not in STAFF_ORG_KINDS[kind]:
            raise Forbidden(f"a {kind} request is filed by "
                            f"{' or '.join(sorted(STAFF_ROLES[kind]))} of "
                            f"{' or '.join(sorted(STAFF_ORG_KINDS[kind]))}", arts)
        legal_basis = _text(legal_basis, "legal_basis")
        purpose = _text(purpose, "purpose")
        case_number = _text(case_number, "case_number", required=kind == POLICE, limit=100)
        # routing: who decides
        if p.org_kind == policy.DEPARTMENT:
            if coordinating_bureau_id is None:
                raise ValidationFailed("a department's request names the district bureau that "
                                       "coordinates it", field="coordinating_bureau_id",
                                       articles=("Q23.2",))
            bureau = s.get(Organisation, coordinating_bureau_id)
            if bureau is None or bureau.kind != policy.DISTRICT_BUREAU:
                raise ValidationFailed("coordinating_bureau_id must be a district police bureau",
                                       field="coordinating_bureau_id", articles=("Q23.2",))
            approving = bureau.id
        else:
            approving = p.organisation_id  # the police's own bureau; the individual's unit
        if kind == INDIVIDUAL:
            person_name = _text(person_name, "person_name", limit=200)
            if person_relation not in RELATIONS:
                raise ValidationFailed(f"person_relation must be one of {', '.join(RELATIONS)}",
                                       field="person_relation", articles=("N21.1",))
        else:
            person_name, person_relation = "", ""
        default = VIEW_ONLY if kind == INDIVIDUAL else frozenset(FOOTAGE_ACTIONS)
        acts = frozenset(actions) if actions else default
        if not acts <= set(FOOTAGE_ACTIONS):
            raise ValidationFailed(f"actions must be among {', '.join(FOOTAGE_ACTIONS)}",
                                   field="actions")
        if kind == INDIVIDUAL and not acts <= VIEW_ONLY:
            raise ValidationFailed("an individual's request is view-only: "
                                   f"{', '.join(sorted(acts - VIEW_ONLY))} cannot be granted",
                                   field="actions", articles=("N21.1",))
        deliver = self._check_delivery(s, kind, acts, deliver_to)
        ids = [w.strip() for w in staff_work_ids if w and w.strip()]
        if len(set(ids)) < 2:
            raise ValidationFailed("name the work ID numbers of at least two staff members",
                                   field="staff_work_ids", articles=("Q24.1",))
        if any(len(w) > 64 or " " in w for w in ids) or len(" ".join(ids)) > 500:
            raise ValidationFailed("work ID numbers are at most 64 characters, without spaces",
                                   field="staff_work_ids")
        if not ranges or len(ranges) > MAX_RANGES:
            raise ValidationFailed(f"name 1 to {MAX_RANGES} camera time ranges", field="ranges")
        for r in ranges:
            if r.to_ms <= r.from_ms:
                raise ValidationFailed("each range must end after it starts", field="ranges")
            if s.get(Camera, r.camera_id) is None:
                raise NotFound(f"camera {r.camera_id} does not exist")
        if not now < valid_until_ms <= now + MAX_VALIDITY_MS:
            raise ValidationFailed(f"valid_until must be in the future and at most "
                                   f"{MAX_VALIDITY_MS // DAY_MS} days ahead", field="valid_until")
        checked = self.check_document(document) if document is not None else None
        if checked is None and kind in (POLICE, DEPARTMENT):
            raise ValidationFailed("attach the approval document (PDF, PNG or JPEG)",
                                   field="document", articles=("Q24.1",))
        req = RetrievalRequest(
            kind=kind, status="pending", requester_id=p.user_id,
            requesting_org_id=p.organisation_id, approving_org_id=approving,
            legal_basis=legal_basis, purpose=purpose, case_number=case_number,
            person_name=person_name, person_relation=person_relation,
            staff_work_ids=" ".join(dict.fromkeys(ids)),
            actions=" ".join(a for a in FOOTAGE_ACTIONS if a in acts),
            requested_until_ms=valid_until_ms, review_pending=False, decision_note="",
            created_ms=now, deliver_to=deliver)
        s.add(req)
        s.flush()
        for r in ranges:
            s.add(RetrievalRange(request_id=req.id, camera_id=r.camera_id, from_ms=r.from_ms,
                                 to_ms=r.to_ms))
        if checked is not None:
            assert document is not None
            self._attach(req, document, checked)
        if kind == EMERGENCY:  # Q23.3: access at once, the approval follows
            req.status, req.review_pending = "active", True
            req.expires_ms = min(valid_until_ms, now + EMERGENCY_UNREVIEWED_MS)
            self._hold(s, req)
        s.flush()
        log.info("retrieval_filed", request_id=req.id, kind=kind, by=p.user_id)
        AuditLog(s, self.clock).append(
            "retrieval.file", actor=p, subject=f"R-{req.id}",
            details={"kind": kind, "case_number": req.case_number, "emergency_active":
                     kind == EMERGENCY, "ranges": [[r.camera_id, r.from_ms, r.to_ms]
                                                   for r in ranges[:200]],
                     "deliver_to": deliver})
        return req

    @staticmethod
    def _check_delivery(s: Session, kind: str, acts: frozenset[str], deliver_to: str) -> str | None:
        """The GB/T 28181 upper platform a copy is delivered to (Q13.1, Q23.1, Q24.1): one
        configured in the cascade; the request must allow export; never an individual's
        (N21.1: view only)."""
        v = (deliver_to or "").strip()
        if not v:
            return None
        if kind == INDIVIDUAL:
            raise ValidationFailed("an individual's request is view-only and delivers no copy",
                                   field="deliver_to", articles=("N21.1",))
        if "export" not in acts:
            raise ValidationFailed("a request that delivers a copy must allow export",
                                   field="deliver_to", articles=("Q24.1",))
        if len(v) != 20 or not v.isdigit():
            raise ValidationFailed("deliver_to is the 20-digit server ID of an upper platform",
                                   field="deliver_to")
        from viis.interconnect.gb28181.cascade_models import GbUpperPlatform

        if s.scalar(select(GbUpperPlatform.id).where(GbUpperPlatform.server_id == v)) is None:
            raise ValidationFailed(f"deliver_to: no upper platform {v} is configured",
                                   field="deliver_to")
        return v

    # --- reading -------------------------------------------------------------------------
    def get(self, s: Session, request_id: int) -> RetrievalRequest:
        req = s.get(RetrievalRequest, request_id)
        if req is None:
            raise NotFound(f"retrieval request {request_id} does not exist")
        return req

    def _deciding_orgs(self, s: Session, req: RetrievalRequest) -> set[int]:
        """The approving bureau (or unit); for police and emergency requests also the city
        bureau above a district bureau (Q23.1: head of the city or district bureau)."""
        orgs = {req.approving_org_id}
        appr = s.get(Organisation, req.approving_org_id)
        if appr is not None and appr.parent_id is not None and req.kind in (POLICE, EMERGENCY):
            orgs.add(appr.parent_id)
        return orgs

    def _orgs_of(self, s: Session, req: RetrievalRequest) -> set[int]:
        return {req.requesting_org_id} | self._deciding_orgs(s, req)

    def visible(self, s: Session, p: Principal, req: RetrievalRequest) -> bool:
        if p.bootstrap or p.roles & {policy.AUDITOR, policy.PLATFORM_ADMIN}:
            return True
        return p.organisation_id in self._orgs_of(s, req)

    def get_for(self, s: Session, p: Principal, request_id: int) -> RetrievalRequest:
        req = self.get(s, request_id)
        if not self.visible(s, p, req):
            raise NotFound(f"retrieval request {request_id} does not exist")
        return req

    def list_for(self, s: Session, p: Principal, status: str | None = None) -> list[RetrievalRequest]:
        q = select(RetrievalRequest).order_by(RetrievalRequest.id.desc()).limit(500)
        if status:
            q = q.where(RetrievalRequest.status == status)
        return [r for r in s.scalars(q) if self.visible(s, p, r)]

    # --- deciding --------------------------------------------------------------------------
    def _check_decider(self, s: Session, p: Principal, req: RetrievalRequest) -> None:
        arts = ARTICLES[req.kind]
        if p.user_id is not None and p.user_id == req.requester_id:
            raise Forbidden("the requester cannot decide their own request", arts)
        if req.kind == INDIVIDUAL:
            if policy.UNIT_ADMIN not in p.roles or p.organisation_id != req.approving_org_id:
                raise Forbidden("an individual's request is decided (consented to) by a unit "
                                "administrator of the using unit", arts)
            return
        if policy.APPROVER not in p.roles or p.organisation_id not in self._deciding_orgs(s, req):
            raise Forbidden("this request is decided by a bureau approver of "
                            + ("its district bureau" if req.kind == DEPARTMENT
                               else "the city or district bureau"), arts)

    def approve(self, s: Session, p: Principal, request_id: int, *,
                valid_until_ms: int | None = None, note: str = "",
                document: Document | None = None) -> RetrievalRequest:
        req = self.get_for(s, p, request_id)
        self._check_decider(s, p, req)
        now = self.clock.wall_ms()
        after_the_fact = req.kind == EMERGENCY and req.status == "active" and req.review_pending
        if req.status != "pending" and not after_the_fact:
            raise ValidationFailed(f"request {req.id} is {req.status}; only a pending request "
                                   "(or an emergency awaiting review) can be approved")
        until = req.requested_until_ms if valid_until_ms is None else valid_until_ms
        if not now < until <= req.requested_until_ms:
            raise ValidationFailed("valid_until must be in the future and not after what was "
                                   "requested", field="valid_until")
        checked = self.check_document(document) if document is not None else None
        if checked is None and not req.document_sha256:
            raise ValidationFailed("attach the approval document (PDF, PNG or JPEG)",
                                   field="document", articles=("Q24.1",))
        note = _text(note, "note", required=False)
        if checked is not None:
            assert document is not None
            self._attach(req, document, checked)
        req.decided_by_id, req.decided_ms, req.decision_note = p.user_id, now, note
        req.expires_ms = until
        if after_the_fact:
            req.review_pending = False
        else:
            req.status = "active"
            self._hold(s, req)
        s.flush()
        log.info("retrieval_approved", request_id=req.id, by=p.user_id, after_the_fact=after_the_fact)
        AuditLog(s, self.clock).append("retrieval.approve", actor=p, subject=f"R-{req.id}",
                                       details={"kind": req.kind, "expires_ms": until,
                                                "after_the_fact": after_the_fact,
                                                "document_sha256": req.document_sha256})
        return req

    def refuse(self, s: Session, p: Principal, request_id: int, *, note: str) -> RetrievalRequest:
        req = self.get_for(s, p, request_id)
        self._check_decider(s, p, req)
        note = _text(note, "note")
        after_the_fact = req.kind == EMERGENCY and req.status == "active" and req.review_pending
        if req.status != "pending" and not after_the_fact:
            raise ValidationFailed(f"request {req.id} is {req.status}; it cannot be refused now")
        now = self.clock.wall_ms()
        req.decided_by_id, req.decided_ms, req.decision_note = p.user_id, now, note
        req.status, req.review_pending = "refused", False
        self._end(s, req, by=f"refused by user {p.user_id}", now=now)
        log.info("retrieval_refused", request_id=req.id, by=p.user_id)
        AuditLog(s, self.clock).append("retrieval.refuse", actor=p, subject=f"R-{req.id}",
                                       details={"kind": req.kind, "after_the_fact": after_the_fact})
        return req

    def close(self, s: Session, p: Principal, request_id: int) -> RetrievalRequest:
        """The case is closed: sessions end, holds are released."""
        req = self.get_for(s, p, request_id)
        if req.status != "active":
            raise ValidationFailed(f"request {req.id} is {req.status}; only an active one closes")
        if p.user_id != req.requester_id and not (
                policy.APPROVER in p.roles and p.organisation_id in self._deciding_orgs(s, req)) and \
                not (req.kind == INDIVIDUAL and policy.UNIT_ADMIN in p.roles
                     and p.organisation_id == req.approving_org_id):
            raise Forbidden("the requester or the deciding bureau or unit closes a case")
        now = self.clock.wall_ms()
        req.status, req.closed_ms = "closed", now
        req.closed_by = f"{p.name} (user {p.user_id})"
        self._end(s, req, by=req.closed_by, now=now)
        log.info("retrieval_closed", request_id=req.id, by=p.user_id)
        AuditLog(s, self.clock).append("retrieval.close", actor=p, subject=f"R-{req.id}",
                                       details={"kind": req.kind})
        return req

    def _ranges(self, s: Session, req: RetrievalRequest) -> list[RetrievalRange]:
        return list(s.scalars(select(RetrievalRange).where(RetrievalRange.request_id == req.id)
                              .order_by(RetrievalRange.id)))

    def _hold(self, s: Session, req: RetrievalRequest) -> None:
        org = s.get(Organisation, req.requesting_org_id)
        for r in self._ranges(s, req):
            if r.hold_id is None:
                h = place_hold(s, camera_id=r.camera_id, start_ms=r.from_ms, end_ms=r.to_ms,
                               reason=f"retrieval request R-{req.id} ({req.kind})",
                               owner=org.name if org else f"organisation {req.requesting_org_id}",
                               legal_basis=req.legal_basis[:TEXT_MAX], now_ms=self.clock.wall_ms())
                r.hold_id = h.id

    def _end(self, s: Session, req: RetrievalRequest, *, by: str, now: int) -> None:
        for r in self._ranges(s, req):
            if r.hold_id is not None:
                h = s.get(Hold, r.hold_id)
                if h is not None and h.released_ms is None:
                    release_hold(s, r.hold_id, by=by[:200], now_ms=now)
        for sess in s.scalars(select(RetrievalSession).where(
                RetrievalSession.request_id == req.id, RetrievalSession.closed_ms.is_(None))):
            sess.closed_ms, sess.closed_by = now, by[:200]
        s.flush()

    # --- two-person sessions (Q24.1) --------------------------------------------------------
    def _check_staff(self, s: Session, req: RetrievalRequest, user: User, who: str) -> None:
        arts = ("Q24.1",)
        roles = frozenset(user.roles.split())
        if not user.active:
            raise Forbidden(f"the {who} staff member is not active", arts)
        if user.organisation_id != req.requesting_org_id:
            raise Forbidden(f"the {who} staff member is not of the requesting organisation", arts)
        if not roles & STAFF_ROLES[req.kind]:
            raise Forbidden(f"the {who} staff member holds no role that works on a "
                            f"{req.kind} request", arts)
        if user.work_id not in req.staff_work_ids.split():
            raise Forbidden(f"the {who} staff member's work ID is not named in request "
                            f"R-{req.id}", ("Q24.1",))
        if not self.identity.is_trained(s, user.id):
            raise Forbidden(f"the {who} staff member has no valid skills and confidentiality "
                            "training", ("Q19.2", "N16.1", "Q24.1"))

    def open_session(self, s: Session, p: Principal, request_id: int, *, second_login: str,
                     second_password: str, second_code: str | None = None) -> RetrievalSession:
        """Opened by a signed-in staff member together with a second one, who signs in here
        with their own credentials. The caller commits even on failure (failure counts)."""
        req = self.get_for(s, p, request_id)
        now = self.clock.wall_ms()
        if req.status != "active" or req.expires_ms is None:
            raise Forbidden(f"request R-{req.id} is {req.status}, not approved", ARTICLES[req.kind])
        if now >= req.expires_ms:
            raise Forbidden(f"the approval of R-{req.id} expired at {iso_utc(req.expires_ms)}",
                            ARTICLES[req.kind])
        first = s.get(User, p.user_id) if p.user_id is not None else None
        if first is None:
            raise Forbidden("a retrieval session is opened by a signed-in staff member")
        self._check_staff(s, req, first, "first")
        try:
            second = self.identity.authenticate(s, second_login, second_password, second_code)
        except (SignInFailed, AccountLocked) as e:
            log.warning("retrieval_second_failed", request_id=req.id, by=p.user_id)
            raise Forbidden("the second staff member could not be authenticated: "
                            + ("the account is locked" if isinstance(e, AccountLocked)
                               else "login, password or one-time code is wrong"),
                            ("Q24.1",)) from e
        if second.id == first.id:
            raise Forbidden("a retrieval session needs two distinct staff members", ("Q24.1",))
        self._check_staff(s, req, second, "second")
        sess = RetrievalSession(request_id=req.id, user_a_id=first.id, user_b_id=second.id,
                                opened_ms=now, expires_ms=req.expires_ms)
        s.add(sess)
        s.flush()
        log.info("retrieval_session_opened", request_id=req.id, session_id=sess.id,
                 users=[first.id, second.id])
        AuditLog(s, self.clock).append("retrieval.session_open", actor=p, subject=f"R-{req.id}",
                                       details={"session_id": sess.id,
                                                "staff": [first.login, second.login]})
        return sess

    def close_session(self, s: Session, p: Principal, request_id: int,
                      session_id: int) -> RetrievalSession:
        sess = s.get(RetrievalSession, session_id)
        if sess is None or sess.request_id != request_id or \
                p.user_id not in (sess.user_a_id, sess.user_b_id):
            raise NotFound(f"retrieval session {session_id} of request {request_id} does not exist")
        if sess.closed_ms is None:
            sess.closed_ms, sess.closed_by = self.clock.wall_ms(), f"{p.name} (user {p.user_id})"
        return sess

    def sessions(self, s: Session, req: RetrievalRequest) -> list[RetrievalSession]:
        return list(s.scalars(select(RetrievalSession).where(RetrievalSession.request_id == req.id)
                              .order_by(RetrievalSession.id)))

    def scope_for(self, s: Session, user_id: int, request_id: int | None = None) -> Scope | None:
        """The scope of the caller's newest open session on an active, unexpired request."""
        now = self.clock.wall_ms()
        q = (select(RetrievalSession, RetrievalRequest)
             .join(RetrievalRequest, RetrievalRequest.id == RetrievalSession.request_id)
             .where(RetrievalSession.closed_ms.is_(None), RetrievalRequest.status == "active",
                    RetrievalRequest.expires_ms > now,
                    or_(RetrievalSession.user_a_id == user_id,
                        RetrievalSession.user_b_id == user_id))
             .order_by(RetrievalSession.id.desc()).limit(1))
        if request_id is not None:
            q = q.where(RetrievalRequest.id == request_id)
        row = s.execute(q).first()
        if row is None:
            return None
        sess, req = row
        ranges = tuple(ScopeRange(r.camera_id, r.from_ms, r.to_ms) for r in self._ranges(s, req))
        return Scope(request_ref=f"R-{req.id}", ranges=ranges,
                     actions=frozenset(req.actions.split()), expires_ms=req.expires_ms,
                     principals=frozenset({sess.user_a_id, sess.user_b_id}),
                     request_id=req.id, session_id=sess.id)

    # --- views -------------------------------------------------------------------------------
    def view(self, s: Session, req: RetrievalRequest) -> dict:
        now = self.clock.wall_ms()
        status = req.status
        if status == "active" and req.expires_ms is not None and now >= req.expires_ms:
            status = "expired"
        return {
            "id": req.id, "ref": f"R-{req.id}", "kind": req.kind, "status": status,
            "review_pending": req.review_pending,
            "review": "approval pending review" if req.review_pending else None,
            "requester_id": req.requester_id, "requesting_org_id": req.requesting_org_id,
            "approving_org_id": req.approving_org_id, "legal_basis": req.legal_basis,
            "purpose": req.purpose, "case_number": req.case_number,
            "person_name": req.person_name, "person_relation": req.person_relation,
            "staff_work_ids": req.staff_work_ids.split(), "actions": req.actions.split(),
            "ranges": [{"camera_id": r.camera_id, "from_ms": r.from_ms, "to_ms": r.to_ms,
                        "from": iso_utc(r.from_ms), "to": iso_utc(r.to_ms), "hold_id": r.hold_id}
                       for r in self._ranges(s, req)],
            "requested_until_ms": req.requested_until_ms, "expires_ms": req.expires_ms,
            "document": ({"sha256": req.document_sha256, "type": req.document_type,
                          "bytes": req.document_bytes, "name": req.document_name}
                         if req.document_sha256 else None),
            "decided_by_id": req.decided_by_id, "decided_ms": req.decided_ms,
            "decision_note": req.decision_note, "closed_ms": req.closed_ms,
            "created_ms": req.created_ms, "deliver_to": req.deliver_to,
            "sessions": [session_view(x) for x in self.sessions(s, req)],
        }


def session_view(x: RetrievalSession) -> dict:
    return {"id": x.id, "request_id": x.request_id, "staff": [x.user_a_id, x.user_b_id],
            "opened_ms": x.opened_ms, "expires_ms": x.expires_ms, "closed_ms": x.closed_ms}


def delivery_scope(s: Session, server_id: str, camera_id: int, from_ms: int, to_ms: int,
                   now_ms: int) -> Scope | None:
    """The scope under which upper platform ``server_id`` may receive a copy (GB/T 28181
    Download) of ``camera_id`` over [from_ms, to_ms]: an approved request (decided by the
    bureau head, not an emergency still awaiting review: Q23.1, Q23.3, Q24.1) that names this
    platform as its delivery target. The covering one if any; else the newest such request,
    so that the door says what it does not cover (camera, times, expiry); None without any.
    The door (:func:`viis.access.policy.decide_footage`) decides."""
    reqs = list(s.scalars(
        select(RetrievalRequest)
        .where(RetrievalRequest.deliver_to == server_id, RetrievalRequest.status == "active",
               RetrievalRequest.review_pending.is_(False),
               RetrievalRequest.expires_ms.is_not(None))
        .order_by(RetrievalRequest.id.desc()).limit(50)))
    scopes = []
    for r in reqs:
        ranges = s.scalars(select(RetrievalRange).where(RetrievalRange.request_id == r.id)
                           .order_by(RetrievalRange.id))
        scopes.append(Scope(request_ref=f"R-{r.id}",
                            ranges=tuple(ScopeRange(x.camera_id, x.from_ms, x.to_ms)
                                         for x in ranges),
                            actions=frozenset(r.actions.split()), expires_ms=r.expires_ms,
                            request_id=r.id, delivery=r.deliver_to))
    for sc in scopes:
        if sc.covers(None, camera_id, "export", from_ms, to_ms, now_ms) is None:
            return sc
    return scopes[0] if scopes else None
