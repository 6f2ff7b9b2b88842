"""Roles, security levels and the ONE authorisation function (invariant 3).

The tables below ARE the policy; code outside this module never asks "is this user an
admin?" but calls :func:`decide_footage` or :func:`decide_admin`.

Footage (live, playback, snapshot, export, timeline) is decided by three things:

1. **role** — :data:`FOOTAGE_POLICY` gives, per role and action, one of
   ``NO`` (never), ``LEVEL`` (allowed within the user's clearance), ``SCOPE`` (allowed only
   inside the scope of an approved retrieval request, and within clearance);
2. **security level** — the camera's ``security_level`` must not exceed the user's
   ``clearance`` (Q5.1: no leaking of state or commercial secrets or privacy; Q13.1:
   government systems are managed and shared by security level and permission);
3. **scope** — for ``SCOPE`` the caller passes the :class:`Scope` of an approved request
   (Q23.1 police with the bureau head's approval, Q23.2 departments through the police,
   Q23.3 emergencies, N21.1 individuals view-only). The two-person retrieval session (Q24.1,
   :mod:`viis.access.retrieval`) supplies the scope; here it is an explicit parameter.

Besides: a user without valid training (skills and confidentiality, Q19.2, N16.1) touches
no footage at all, and copying (export) is never allowed to a maintenance contractor's
staff (N19.1) — the table simply has no such cell.

Admin actions are decided by role alone (:data:`ADMIN_POLICY`); user administration by a
unit administrator is further limited to its own organisation (:func:`may_manage_user`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from viis.core.errors import ViisError

# --- roles -----------------------------------------------------------------------------
OPERATOR = "operator_on_duty"          # watches live, reviews recent footage (Q19.1 duty)
UNIT_ADMIN = "unit_admin"              # runs the using unit's system and staff (Q19)
MAINTAINER = "maintainer"              # operation/maintenance, often a contractor (Q21.1, N19.1)
AUDITOR = "auditor"                    # security inspection regime (Q19.1), reads logs/reports
INVESTIGATOR = "police_investigator"   # police reading/copying under approval (Q23.1)
APPROVER = "bureau_approver"           # head of city/district bureau or delegate (Q23.1)
REQUESTER = "department_requester"     # other government department (Q23.2, Q23.3)
PLATFORM_ADMIN = "platform_admin"      # installs and administers the platform itself
#: A GB/T 28181 upper platform we cascade to (the video sharing, police image or emergency
#: command platform, Q13.1): not a person and never a user's role. The cascade builds its
#: principal (viis.interconnect.gb28181.cascade.Cascade.principal) with the platform's grade
#: as clearance; it watches live and plays back within that grade, reads the timeline
#: (RecordInfo), copies (GB Download) only under an approved request that names it as the
#: delivery target (Q23.1, Q24.1), and administers nothing.
UPPER_PLATFORM = "upper_platform"

#: Roles a person may hold (users, the web API).
ROLES = (OPERATOR, UNIT_ADMIN, MAINTAINER, AUDITOR, INVESTIGATOR, APPROVER, REQUESTER,
         PLATFORM_ADMIN)
#: Every role the policy tables decide: the users' and the upper platforms'.
ALL_ROLES = ROLES + (UPPER_PLATFORM,)

# --- organisations ---------------------------------------------------------------------
USING_UNIT = "using_unit"
CONTRACTOR = "maintenance_contractor"
CITY_BUREAU = "city_bureau"
DISTRICT_BUREAU = "district_bureau"
DEPARTMENT = "other_department"
ORG_KINDS = (USING_UNIT, CONTRACTOR, CITY_BUREAU, DISTRICT_BUREAU, DEPARTMENT)
#: The organisation an upper platform's principal names (its name and server ID); not a kind
#: of organisation kept in the organisations table, so no user can belong to one.
UPPER_PLATFORM_ORG = "upper_platform"
_POLICE = frozenset({CITY_BUREAU, DISTRICT_BUREAU})

#: Which kinds of organisation a role may be held in. Police powers stay with the police
#: (Q23.1), department requests come from departments (Q23.2), and a contractor's staff can
#: operate and maintain but never administer the unit or audit it (Q21.1, N19.1).
ROLE_ORG_KINDS: dict[str, frozenset[str]] = {
    OPERATOR: frozenset({USING_UNIT, CONTRACTOR}),
    UNIT_ADMIN: frozenset({USING_UNIT}),
    MAINTAINER: frozenset({USING_UNIT, CONTRACTOR}),
    AUDITOR: frozenset({USING_UNIT, CITY_BUREAU, DISTRICT_BUREAU}),
    INVESTIGATOR: _POLICE,
    APPROVER: _POLICE,
    REQUESTER: frozenset({DEPARTMENT}),
    PLATFORM_ADMIN: frozenset(ORG_KINDS),
}

#: Roles a unit administrator may grant; everything else is granted by a platform admin.
UNIT_GRANTABLE = frozenset({OPERATOR, UNIT_ADMIN, MAINTAINER, AUDITOR})

# --- footage -----------------------------------------------------------------------------
FOOTAGE_ACTIONS = ("live", "playback", "snapshot", "export", "timeline")


class Rule(Enum):
    NO = "no"
    LEVEL = "level"   # within clearance
    SCOPE = "scope"   # within clearance AND inside an approved request's scope


NO, LEVEL, SCOPE = Rule.NO, Rule.LEVEL, Rule.SCOPE

#: role → action → rule. Export is a copy: it always needs an approved request (Q23, Q24.1).
#: Timeline is metadata (where footage and gaps are), not pixels.
FOOTAGE_POLICY: dict[str, dict[str, Rule]] = {
    #                live   playback snapshot export timeline
    OPERATOR:       dict(live=LEVEL, playback=LEVEL, snapshot=LEVEL, export=SCOPE, timeline=LEVEL),
    UNIT_ADMIN:     dict(live=NO, playback=NO, snapshot=NO, export=SCOPE, timeline=LEVEL),
    MAINTAINER:     dict(live=LEVEL, playback=NO, snapshot=NO, export=NO, timeline=LEVEL),
    AUDITOR:        dict(live=NO, playback=NO, snapshot=NO, export=NO, timeline=LEVEL),
    INVESTIGATOR:   dict(live=SCOPE, playback=SCOPE, snapshot=SCOPE, export=SCOPE, timeline=SCOPE),
    APPROVER:       dict(live=NO, playback=NO, snapshot=NO, export=NO, timeline=LEVEL),
    REQUESTER:      dict(live=SCOPE, playback=SCOPE, snapshot=SCOPE, export=SCOPE, timeline=SCOPE),
    PLATFORM_ADMIN: dict(live=NO, playback=NO, snapshot=NO, export=NO, timeline=LEVEL),
    UPPER_PLATFORM: dict(live=LEVEL, playback=LEVEL, snapshot=NO, export=SCOPE, timeline=LEVEL),
}

# --- admin actions -------------------------------------------------------------------
_ALL = frozenset(ROLES)  # users' roles: an upper platform administers nothing (Q13.1)
ADMIN_POLICY: dict[str, frozenset[str]] = {
    "camera.read": _ALL,  # filtered by clearance (Q13.1); requests need camera names
    "camera.write": frozenset({UNIT_ADMIN, PLATFORM_ADMIN}),
    "hold.read": frozenset({UNIT_ADMIN, AUDITOR, APPROVER, PLATFORM_ADMIN}),
    "hold.write": frozenset({UNIT_ADMIN, PLATFORM_ADMIN}),
    "verify": frozenset({UNIT_ADMIN, MAINTAINER, AUDITOR, PLATFORM_ADMIN}),
    "capacity": frozenset({UNIT_ADMIN, MAINTAINER, AUDITOR, PLATFORM_ADMIN}),
    "faults": frozenset({OPERATOR, UNIT_ADMIN, MAINTAINER, AUDITOR, PLATFORM_ADMIN}),  # Q19.3
    # The health wall and fault tickets (Q19.3, Q19.6): who watches and inspects reads it;
    # the maintainer and the unit's administrators work the tickets (ack, repair, emergency).
    "health.read": frozenset({OPERATOR, UNIT_ADMIN, MAINTAINER, AUDITOR, PLATFORM_ADMIN}),
    "ticket.work": frozenset({MAINTAINER, UNIT_ADMIN, PLATFORM_ADMIN}),
    "retention.report": frozenset({UNIT_ADMIN, AUDITOR, PLATFORM_ADMIN}),
    "user.read": frozenset({UNIT_ADMIN, AUDITOR, PLATFORM_ADMIN}),
    "user.write": frozenset({UNIT_ADMIN, PLATFORM_ADMIN}),
    "training.write": frozenset({UNIT_ADMIN, PLATFORM_ADMIN}),  # Q19.2
    "org.read": frozenset({UNIT_ADMIN, AUDITOR, PLATFORM_ADMIN}),
    "org.write": frozenset({PLATFORM_ADMIN}),
    # Retrieval requests (Q23, N21.1): who may file, read, decide, work in and close them.
    # The service checks the rest: request kind × organisation kind, approver ≠ requester,
    # the approving bureau or unit, the two staff of a session (Q24.1).
    "retrieval.create": frozenset({INVESTIGATOR, REQUESTER, OPERATOR, UNIT_ADMIN}),
    "retrieval.read": frozenset({INVESTIGATOR, REQUESTER, OPERATOR, UNIT_ADMIN, APPROVER, AUDITOR,
                                 PLATFORM_ADMIN}),
    "retrieval.approve": frozenset({APPROVER, UNIT_ADMIN}),  # unit admin: N21.1 consent only
    "retrieval.session": frozenset({INVESTIGATOR, REQUESTER, OPERATOR, UNIT_ADMIN}),
    "retrieval.close": frozenset({INVESTIGATOR, REQUESTER, OPERATOR, UNIT_ADMIN, APPROVER}),
    "register.read": frozenset({UNIT_ADMIN, AUDITOR, PLATFORM_ADMIN}),  # Q19.1 inspection
    # The tamper-evident audit log and its signed checkpoints (invariant 2, Q20.3): read by
    # whoever inspects the unit, not by the administrators whose actions it records.
    "audit.read": frozenset({AUDITOR, PLATFORM_ADMIN}),
    # Police side of compliance (Q25.1, Q26-Q32, N24.1): bureau work only. Deciding a
    # penalty (the amount within the article's range) is the bureau's decision, so only the
    # approver (bureau head or delegate) may; investigators open, order, re-inspect, record
    # appeals and close.
    "case.read": frozenset({INVESTIGATOR, APPROVER}),
    "case.write": frozenset({INVESTIGATOR, APPROVER}),
    "case.decide": frozenset({APPROVER}),
    "inspection.read": frozenset({INVESTIGATOR, APPROVER}),
    "inspection.write": frozenset({INVESTIGATOR, APPROVER}),
    "tip.triage": frozenset({INVESTIGATOR, APPROVER}),  # read tips, dismiss or inspect (N24.1)
    # Privacy masks (Q9.2, N13.1): read by anyone who may view some camera live (the
    # console draws them over the picture) and by the administrators who draw them; the
    # route also hides cameras above the user's clearance. Lifting them for one export is
    # asked by the staff of a retrieval request and approved by a second, deciding user;
    # the installation's permission ([privacy] mask_lifting) is off by default.
    "mask.read": frozenset({r for r, a in FOOTAGE_POLICY.items()
                            if a["live"] is not NO and r != UPPER_PLATFORM}
                           | {UNIT_ADMIN, PLATFORM_ADMIN}),
    "mask.write": frozenset({UNIT_ADMIN, PLATFORM_ADMIN}),
    "mask.lift": frozenset({INVESTIGATOR, REQUESTER, OPERATOR, UNIT_ADMIN}),
    "mask.lift.approve": frozenset({APPROVER, UNIT_ADMIN}),
    # Evidence packages (Q23, Q24.1): made by the staff of a retrieval session; the door
    # then decides each camera range (export needs the approved scope, never N21.1/N19.1).
    "evidence.export": frozenset({INVESTIGATOR, REQUESTER, OPERATOR, UNIT_ADMIN}),
    # The compliance register, filings and reports (Q7-Q16, N7-N14): the unit's administrators
    # keep the register and file; auditors and the police read it; zones near military and
    # classified units (Q7.3, N10.1) are the bureau's data; unit keys for the intake are
    # registered by the bureau, whose staff read what arrived and the district dashboard.
    "compliance.read": frozenset({UNIT_ADMIN, AUDITOR, INVESTIGATOR, APPROVER, PLATFORM_ADMIN}),
    "compliance.write": frozenset({UNIT_ADMIN, PLATFORM_ADMIN}),
    "zone.write": frozenset({APPROVER, PLATFORM_ADMIN}),
    "filing.write": frozenset({UNIT_ADMIN, PLATFORM_ADMIN}),
    "intake.keys": frozenset({APPROVER, PLATFORM_ADMIN}),
    "intake.read": frozenset({INVESTIGATOR, APPROVER}),
    "report.unit": frozenset({UNIT_ADMIN, AUDITOR, PLATFORM_ADMIN}),
    "report.bureau": frozenset({INVESTIGATOR, APPROVER}),
    # Duty and room (Q19.1, Q19.2, Q19.4, Q19.5; viis.access.duty): the operator on duty
    # keeps the shift and its log; operators and the unit's administrators let people into
    # the monitoring room and report suspicious information; the police read and acknowledge
    # the reports; administrators and auditors read everything.
    "duty.read": frozenset({OPERATOR, UNIT_ADMIN, AUDITOR, PLATFORM_ADMIN}),
    "duty.shift": frozenset({OPERATOR}),
    "room.write": frozenset({OPERATOR, UNIT_ADMIN}),
    "duty.report": frozenset({OPERATOR, UNIT_ADMIN}),
    "duty.report.read": frozenset({OPERATOR, UNIT_ADMIN, AUDITOR, PLATFORM_ADMIN, INVESTIGATOR,
                                   APPROVER}),
    "duty.report.ack": frozenset({INVESTIGATOR, APPROVER}),
    # GB/T 28181 devices and lower platforms below us (Q13.2; viis.web.routes_gb28181): who
    # keeps the system running reads their state and diagnosis and refreshes catalogs; SIP
    # traces (addresses, message contents) are the maintainers' tool; PTZ moves a camera,
    # so only those who watch live may, within their clearance (Q13.1).
    "gb.read": frozenset({OPERATOR, UNIT_ADMIN, MAINTAINER, AUDITOR, PLATFORM_ADMIN}),
    "gb.write": frozenset({MAINTAINER, UNIT_ADMIN, PLATFORM_ADMIN}),
    "gb.trace": frozenset({MAINTAINER, UNIT_ADMIN, PLATFORM_ADMIN}),
    "gb.ptz": frozenset({OPERATOR, MAINTAINER}),
    # GB/T 28181 upper platforms we register to (Q13.1; viis.web.routes_gb_cascade): which
    # city platform sees which cameras at which grade is the unit's administrators' decision;
    # auditors read it (and the registration state) when they inspect the unit.
    "gb.cascade.read": frozenset({UNIT_ADMIN, AUDITOR, PLATFORM_ADMIN}),
    "gb.cascade.write": frozenset({UNIT_ADMIN, PLATFORM_ADMIN}),
    "self": _ALL,  # own profile, password, TOTP, API tokens: any signed-in user, even one
                   # without roles (see decide_admin)
}
ADMIN_ACTIONS = tuple(ADMIN_POLICY)
#: Actions anyone may take without signing in; the routes bound them by size and rate.
#: ``tip.create``: anyone may report an unlawful installation (N24.1).
#: ``filing.intake``: a unit's installation posts a signed filing package; the signature
#: against the unit's registered key is the authentication (Q16.3 EDI, N14.1).
PUBLIC_ACTIONS = ("tip.create", "filing.intake")


class Forbidden(ViisError):
    """The principal may not do this. ``articles`` names the requirements behind the refusal."""

    def __init__(self, message: str, articles: tuple[str, ...] = ()):
        super().__init__(message)
        self.articles = articles


@dataclass(frozen=True)
class Principal:
    """Who is asking. Built by the web layer from a session or API token (or the bootstrap
    local token); ``trained`` is evaluated at sign-in time against the training records."""

    name: str
    roles: frozenset[str]
    user_id: int | None = None
    organisation_id: int | None = None
    org_kind: str | None = None
    clearance: int = 0
    trained: bool = False
    work_id: str = ""
    bootstrap: bool = False
    session_id: int | None = None
    must_change_password: bool = False
    organisation_name: str = ""  # for a principal outside the organisations table (an upper
                                 # platform: "<name> (<server id>)"), the register's unit


@dataclass(frozen=True)
class ScopeRange:
    camera_id: int
    from_ms: int
    to_ms: int


@dataclass(frozen=True)
class Scope:
    """What an approved retrieval request allows: cameras × time ranges × actions, until
    ``expires_ms``. N21.1 (individuals) gives ``actions`` without ``export``."""

    request_ref: str
    ranges: tuple[ScopeRange, ...]
    actions: frozenset[str]
    expires_ms: int
    principals: frozenset[int] = field(default_factory=frozenset)  # user ids party to it
    request_id: int | None = None  # the retrieval request, for the register
    session_id: int | None = None  # the two-person retrieval session (Q24.1)
    delivery: str | None = None  # the upper platform (server ID) a copy is delivered to

    def covers(self, user_id: int | None, camera_id: int, action: str, from_ms: int, to_ms: int,
               now_ms: int) -> str | None:
        """None when covered, else why not."""
        if now_ms >= self.expires_ms:
            return f"the approval of {self.request_ref} has expired"
        if self.principals and user_id not in self.principals:
            return f"this user is not party to {self.request_ref}"
        if action not in self.actions:
            return f"{self.request_ref} does not allow {action}"
        for r in self.ranges:
            if r.camera_id == camera_id and r.from_ms <= from_ms and to_ms <= r.to_ms:
                return None
        return f"camera {camera_id} at these times is outside {self.request_ref}"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    articles: tuple[str, ...] = ()
    role: str | None = None  # the role that allowed it


def _roles(p: Principal) -> list[str]:
    return [r for r in ALL_ROLES if r in p.roles]


def decide_footage(principal: Principal | None, action: str, camera_id: int, security_level: int,
                   from_ms: int | None, to_ms: int | None, now_ms: int,
                   scope: Scope | None = None) -> Decision:
    """THE decision for every use of footage (invariant 3; Q5.1, Q13.1, Q19.2, Q23, Q24.1,
    N16.1, N19.1, N21.1). ``from_ms``/``to_ms`` default to now (live)."""
    if action not in FOOTAGE_ACTIONS:
        raise ValueError(f"unknown footage action {action!r}")
    if principal is None:
        return Decision(False, "not signed in")
    frm = now_ms if from_ms is None else from_ms
    to = frm if to_ms is None else to_ms
    if not principal.trained:
        return Decision(False, "no valid skills and confidentiality training on record",
                        ("Q19.2", "N16.1"))
    if security_level > principal.clearance:
        return Decision(False, f"camera security level {security_level} is above the user's "
                               f"clearance {principal.clearance}", ("Q5.1", "Q13.1"))
    why_not: list[str] = []
    for role in _roles(principal):
        rule = FOOTAGE_POLICY[role][action]
        if rule is LEVEL:
            return Decision(True, f"{role} within clearance", role=role)
        if rule is SCOPE:
            if role == UPPER_PLATFORM:  # a copy to an upper: only where the request names it
                if scope is None:
                    why_not.append(f"{role} needs an approved retrieval request naming it as "
                                   f"the delivery target for {action} (Q23.1, Q24.1)")
                    continue
                if scope.delivery is None or scope.delivery != principal.work_id:
                    why_not.append(f"{scope.request_ref} does not name upper platform "
                                   f"{principal.work_id} as its delivery target (Q23.1, Q24.1)")
                    continue
            elif scope is None:
                why_not.append(f"{role} needs an approved retrieval request for {action}")
                continue
            miss = scope.covers(principal.user_id, camera_id, action, frm, to, now_ms)
            if miss is None:
                return Decision(True, f"{role} within {scope.request_ref}", ("Q23.1", "Q24.1"),
                                role=role)
            why_not.append(miss)
    reason = "; ".join(why_not) or f"no role of this user allows {action}"
    articles = ("Q23.1", "Q24.1") if why_not else ("Q5.1",)
    if action == "export" and MAINTAINER in principal.roles:
        articles += ("N19.1",)
    return Decision(False, reason, articles)


def decide_admin(principal: Principal | None, action: str) -> Decision:
    """Every non-footage action, by role (:data:`ADMIN_POLICY`)."""
    if action not in ADMIN_POLICY:
        raise ValueError(f"unknown action {action!r}")
    if principal is None:
        return Decision(False, "not signed in")
    if UPPER_PLATFORM in principal.roles:
        return Decision(False, "an upper platform takes no administrative action", ("Q13.1",))
    if action == "self":
        return Decision(True, "own account")
    for role in _roles(principal):
        if role in ADMIN_POLICY[action]:
            return Decision(True, f"{role} may {action}", role=role)
    return Decision(False, f"no role of this user allows {action}")


def check_admin(principal: Principal | None, action: str) -> Principal:
    d = decide_admin(principal, action)
    if not d.allowed:
        raise Forbidden(d.reason, d.articles)
    assert principal is not None
    return principal


def may_see_camera(principal: Principal, security_level: int) -> bool:
    """Listing cameras is filtered by level (Q13.1)."""
    return security_level <= principal.clearance


def may_manage_user(principal: Principal, organisation_id: int) -> bool:
    """A platform admin manages everyone; a unit admin only its own organisation."""
    if PLATFORM_ADMIN in principal.roles or principal.bootstrap:
        return True
    return UNIT_ADMIN in principal.roles and principal.organisation_id == organisation_id


def check_grant(principal: Principal, roles: set[str]) -> None:
    """May ``principal`` give these roles? (Which organisation kinds may hold a role is
    checked by the identity service against :data:`ROLE_ORG_KINDS`.)"""
    if PLATFORM_ADMIN in principal.roles or principal.bootstrap:
        return
    beyond = set(roles) - UNIT_GRANTABLE
    if beyond:
        raise Forbidden(f"a unit administrator cannot grant {', '.join(sorted(beyond))}")
