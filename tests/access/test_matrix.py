"""Every route of the app × every role (and no one, and the bootstrap token): the status
follows the policy. A new route fails this test until it is added to EXPECT."""

from __future__ import annotations

from tests.access.helpers import Site, all_routes

ROLES = ("operator_on_duty", "unit_admin", "maintainer", "auditor", "police_investigator",
         "bureau_approver", "department_requester", "platform_admin")
ALL = set(ROLES) | {"bootstrap"}
OPEN = "open"
ADMINS = {"unit_admin", "platform_admin", "bootstrap"}
ADMIN_AUDIT = ADMINS | {"auditor"}
HEALTH = ADMIN_AUDIT | {"maintainer"}
# retrieval requests: who files them and works in their sessions; who reads them
FILERS = {"operator_on_duty", "unit_admin", "police_investigator", "department_requester"}
READERS = FILERS | {"bureau_approver", "auditor", "platform_admin", "bootstrap"}
# Written out independently of viis.access.policy: trained users of clearance 5, camera of
# level 1, no approved request in force.
EXPECT: dict[tuple[str, str], set[str] | str] = {
    ("GET", "/api/health"): OPEN,
    ("GET", "/metrics"): OPEN,
    ("GET", "/api/openapi.json"): OPEN,
    ("GET", "/api/docs"): OPEN,
    ("GET", "/docs/oauth2-redirect"): OPEN,
    ("POST", "/api/session"): OPEN,
    ("DELETE", "/api/session"): ALL,
    ("GET", "/api/me"): ALL,
    ("POST", "/api/me/password"): ALL,
    ("POST", "/api/me/totp"): ALL,
    ("POST", "/api/me/totp/confirm"): ALL,
    ("GET", "/api/me/tokens"): ALL,
    ("POST", "/api/me/tokens"): ALL,
    ("POST", "/api/me/tokens/{token_id}/revoke"): ALL,
    ("GET", "/api/cameras"): ALL,
    ("GET", "/api/cameras/{camera_id}"): ALL,
    ("POST", "/api/cameras"): ADMINS,
    ("PATCH", "/api/cameras/{camera_id}"): ADMINS,
    ("GET", "/api/cameras/{camera_id}/timeline"):
        {"operator_on_duty", "unit_admin", "maintainer", "auditor", "bureau_approver", "platform_admin"},
    ("GET", "/api/cameras/{camera_id}/fmp4"): {"operator_on_duty"},
    ("GET", "/api/cameras/{camera_id}/snapshot.jpg"): {"operator_on_duty"},
    ("GET", "/api/cameras/{camera_id}/export.mp4"): set(),  # a copy needs an approved request
    ("GET", "/api/holds"): ADMIN_AUDIT | {"bureau_approver"},
    ("POST", "/api/holds"): ADMINS,
    ("POST", "/api/holds/{hold_id}/release"): ADMINS,
    ("GET", "/api/verify"): HEALTH,
    ("GET", "/api/capacity"): HEALTH,
    ("GET", "/api/faults"): HEALTH | {"operator_on_duty"},
    ("GET", "/api/retention/report"): ADMIN_AUDIT,
    ("GET", "/api/organisations"): ADMIN_AUDIT,
    ("POST", "/api/organisations"): {"platform_admin", "bootstrap"},
    ("GET", "/api/users"): ADMIN_AUDIT,
    ("POST", "/api/users"): ADMINS,
    ("GET", "/api/users/{user_id}"): ADMIN_AUDIT,
    ("PATCH", "/api/users/{user_id}"): ADMINS,
    ("POST", "/api/users/{user_id}/password"): ADMINS,
    ("POST", "/api/users/{user_id}/unlock"): ADMINS,
    ("GET", "/api/users/{user_id}/training"): ADMIN_AUDIT,
    ("POST", "/api/users/{user_id}/training"): ADMINS,
    ("POST", "/api/retrievals"): FILERS,
    ("GET", "/api/retrievals"): READERS,
    ("GET", "/api/retrievals/{request_id}"): READERS,
    ("POST", "/api/retrievals/{request_id}/approve"): {"bureau_approver", "unit_admin"},
    ("POST", "/api/retrievals/{request_id}/refuse"): {"bureau_approver", "unit_admin"},
    ("POST", "/api/retrievals/{request_id}/close"): FILERS | {"bureau_approver"},
    ("POST", "/api/retrievals/{request_id}/sessions"): FILERS,
    ("POST", "/api/retrievals/{request_id}/sessions/{session_id}/close"): FILERS,
    ("GET", "/api/register"): ADMIN_AUDIT,
    ("GET", "/api/register.csv"): ADMIN_AUDIT,
}
# Police side of compliance: cases, inspections, tip triage (viis.access.policy case.*,
# inspection.*, tip.triage). Deciding a penalty is the bureau approver's. Tip intake is open
# to anyone (N24.1), bounded by size and by a per-address rate.
POLICE = {"police_investigator", "bureau_approver"}
EXPECT.update({
    ("POST", "/api/compliance/cases"): POLICE,
    ("GET", "/api/compliance/cases"): POLICE,
    ("GET", "/api/compliance/cases/{case_id}"): POLICE,
    ("POST", "/api/compliance/cases/{case_id}/order"): POLICE,
    ("POST", "/api/compliance/cases/{case_id}/reinspect"): POLICE,
    ("POST", "/api/compliance/cases/{case_id}/decide"): {"bureau_approver"},
    ("POST", "/api/compliance/cases/{case_id}/appeal"): POLICE,
    ("POST", "/api/compliance/cases/{case_id}/close"): POLICE,
    ("GET", "/api/compliance/checklist"): POLICE,
    ("POST", "/api/compliance/inspections"): POLICE,
    ("GET", "/api/compliance/inspections/{inspection_id}"): POLICE,
    ("POST", "/api/compliance/inspections/{inspection_id}/items/{seq}"): POLICE,
    ("POST", "/api/compliance/inspections/{inspection_id}/complete"): POLICE,
    ("GET", "/api/compliance/inspections/{inspection_id}/findings"): POLICE,
    ("GET", "/api/compliance/photos/{sha256}"): POLICE,
    ("POST", "/api/compliance/tips"): OPEN,
    ("GET", "/api/compliance/tips"): POLICE,
    ("POST", "/api/compliance/tips/{tip_id}/dismiss"): POLICE,
    ("POST", "/api/compliance/tips/{tip_id}/inspect"): POLICE,
})
# Privacy masks (Q9.2, N13.1): read by whoever may view some camera live and by the admins
# who draw them; written by admins; lifting asked by retrieval staff, approved by a second,
# deciding user (viis.access.policy mask.*).
EXPECT.update({
    ("GET", "/api/cameras/{camera_id}/privacy-masks"):
        ADMINS | {"operator_on_duty", "maintainer", "police_investigator", "department_requester"},
    ("PUT", "/api/cameras/{camera_id}/privacy-masks"): ADMINS,
    ("GET", "/api/retrievals/{request_id}/mask-lifts"): READERS,
    ("POST", "/api/retrievals/{request_id}/mask-lifts"): FILERS,
    ("POST", "/api/retrievals/{request_id}/mask-lifts/{lift_id}/approve"):
        {"bureau_approver", "unit_admin"},
    ("POST", "/api/retrievals/{request_id}/mask-lifts/{lift_id}/refuse"):
        {"bureau_approver", "unit_admin"},
})
# Evidence packages (Q23, Q24.1): the staff of a retrieval session; no session → 404/403.
EXPECT.update({
    ("POST", "/api/retrievals/{request_id}/sessions/{session_id}/exports"): FILERS,
    ("GET", "/api/retrievals/{request_id}/sessions/{session_id}/exports/{job_id}"): FILERS,
    ("GET", "/api/retrievals/{request_id}/sessions/{session_id}/exports/{job_id}/package.zip"):
        FILERS,
})
# Camera administration in the console (issue 3): "test connection" probes a stream for the
# admins who add cameras; signage photos (Q17.1, N13.1) are uploaded by them, seen by all.
EXPECT.update({
    ("POST", "/api/cameras/probe"): ADMINS,
    ("PUT", "/api/cameras/{camera_id}/signage"): ADMINS,
    ("GET", "/api/cameras/{camera_id}/signage"): ALL,
    ("GET", "/api/cameras/location-types"): ALL,
})
# The tamper-evident audit log (invariant 2): read by auditors and platform admins only.
EXPECT.update({
    ("GET", "/api/audit"): {"auditor", "platform_admin", "bootstrap"},
    ("GET", "/api/audit/checkpoint"): {"auditor", "platform_admin", "bootstrap"},
})
# The compliance register, live findings, filings, the police intake and reports (issue 6):
# unit admins keep the register and file; auditors and the police read it; the bureau owns the
# zones and the unit keys; the intake is open (the signature authenticates).
REG_READ = {"unit_admin", "auditor", "police_investigator", "bureau_approver", "platform_admin", "bootstrap"}
EXPECT.update({
    ("GET", "/api/compliance/units"): REG_READ,
    ("POST", "/api/compliance/units"): ADMINS,
    ("GET", "/api/compliance/sites"): REG_READ,
    ("POST", "/api/compliance/sites"): ADMINS,
    ("PATCH", "/api/compliance/sites/{code}"): ADMINS,
    ("GET", "/api/compliance/systems"): REG_READ,
    ("POST", "/api/compliance/systems"): ADMINS,
    ("PATCH", "/api/compliance/systems/{code}"): ADMINS,
    ("PUT", "/api/compliance/cameras/{camera_id}/link"): ADMINS,
    ("GET", "/api/compliance/zones"): REG_READ,
    ("POST", "/api/compliance/zones"): {"bureau_approver", "platform_admin", "bootstrap"},
    ("POST", "/api/compliance/consents"): ADMINS,
    ("GET", "/api/compliance/consents/{consent_id}/document"): REG_READ,
    ("GET", "/api/compliance/units/{code}/snapshot"): REG_READ,
    ("GET", "/api/compliance/units/{code}/findings"): REG_READ,
    ("GET", "/api/compliance/units/{code}/changes"): REG_READ,
    ("GET", "/api/compliance/signing-key"): REG_READ,
    ("GET", "/api/compliance/filings"): REG_READ,
    ("POST", "/api/compliance/filings"): ADMINS,
    ("GET", "/api/compliance/filings/{filing_id}"): REG_READ,
    ("GET", "/api/compliance/filings/{filing_id}/package.json"): REG_READ,
    ("GET", "/api/compliance/filings/{filing_id}/filing.pdf"): REG_READ,
    ("POST", "/api/compliance/filings/{filing_id}/submit"): ADMINS,
    ("POST", "/api/compliance/filings/{filing_id}/receipt"): ADMINS,
    ("POST", "/api/compliance/intake"): OPEN,
    ("POST", "/api/compliance/intake/snapshots"): OPEN,
    ("GET", "/api/compliance/units/{code}/snapshot.signed"): REG_READ,
    ("POST", "/api/compliance/intake/keys"): {"bureau_approver", "platform_admin", "bootstrap"},
    ("GET", "/api/compliance/intake/filings"): POLICE,
    ("GET", "/api/compliance/reports/todo"): {"unit_admin", "auditor", "platform_admin", "bootstrap"},
    ("GET", "/api/compliance/reports/dashboard"): POLICE,
})
# Health wall and fault tickets (Q19.3, Q19.6): those who watch and inspect read it; the
# maintainer and the unit's administrators work the tickets.
TICKET_WORK = {"maintainer", "unit_admin", "platform_admin", "bootstrap"}
EXPECT.update({
    ("GET", "/api/health/cameras"): HEALTH | {"operator_on_duty"},
    ("GET", "/api/health/cameras/{camera_id}/history"): HEALTH | {"operator_on_duty"},
    ("GET", "/api/health/tickets"): HEALTH | {"operator_on_duty"},
    ("POST", "/api/health/tickets/{ticket_id}/ack"): TICKET_WORK,
    ("POST", "/api/health/tickets/{ticket_id}/repair"): TICKET_WORK,
    ("POST", "/api/health/tickets/{ticket_id}/emergency"): TICKET_WORK,
    ("POST", "/api/health/tickets/{ticket_id}/close"): TICKET_WORK,
})
# The web console (issue 3): its files are open (no data in them); its pages sign in.
EXPECT.update({
    ("GET", "/"): OPEN,
    ("GET", "/static/{name:path}"): OPEN,
    ("GET", "/api/me/settings"): ALL,
    ("PUT", "/api/me/settings"): ALL,
})
# Duty and room (Q19.1, Q19.4, Q19.5): the operator on duty keeps the shift and its log;
# operators and unit admins admit people to the monitoring room and report to the police;
# the police read and acknowledge reports; administrators and auditors read everything.
DUTY_READ = ADMIN_AUDIT | {"operator_on_duty"}
EXPECT.update({
    ("GET", "/api/duty/roster"): DUTY_READ,
    ("GET", "/api/duty/shifts"): DUTY_READ,
    ("POST", "/api/duty/shifts"): {"operator_on_duty"},
    ("POST", "/api/duty/shifts/{shift_id}/end"): {"operator_on_duty"},
    ("POST", "/api/duty/log"): {"operator_on_duty"},
    ("GET", "/api/duty/log"): DUTY_READ,
    ("GET", "/api/duty/room"): DUTY_READ,
    ("POST", "/api/duty/room"): {"operator_on_duty", "unit_admin"},
    ("POST", "/api/duty/room/{visit_id}/leave"): {"operator_on_duty", "unit_admin"},
    ("GET", "/api/duty/reports"): DUTY_READ | POLICE,
    ("POST", "/api/duty/reports"): {"operator_on_duty", "unit_admin"},
    ("POST", "/api/duty/reports/{report_id}/acknowledge"): POLICE,
    ("GET", "/api/register.pdf"): ADMIN_AUDIT,
})
# GB/T 28181 devices below us (Q13.2): read by those who keep the system running; catalog
# refresh and SIP traces by its maintainers and administrators; PTZ by those who watch live.
GB_READ = HEALTH | {"operator_on_duty"}
GB_MAINT = {"maintainer", "unit_admin", "platform_admin", "bootstrap"}
EXPECT.update({
    ("GET", "/api/gb28181/devices"): GB_READ,
    ("GET", "/api/gb28181/devices/{device_id}"): GB_READ,
    ("GET", "/api/gb28181/devices/{device_id}/channels"): GB_READ,
    ("POST", "/api/gb28181/devices/{device_id}/catalog"): GB_MAINT,
    ("GET", "/api/gb28181/devices/{device_id}/trace"): GB_MAINT,
    ("PUT", "/api/gb28181/devices/{device_id}/trace"): GB_MAINT,
    ("POST", "/api/gb28181/devices/{device_id}/channels/{channel_id}/ptz"):
        {"operator_on_duty", "maintainer"},
    ("GET", "/api/gb28181/devices/{device_id}/channels/{channel_id}/records"): GB_READ,
    ("GET", "/api/gb28181/devices/{device_id}/channels/{channel_id}/playback"): GB_READ,
})
# GB/T 28181 upper platforms we register to (Q13.1): the unit's administrators decide what
# each sees; auditors read it.
EXPECT.update({
    ("GET", "/api/gb28181/uppers"): ADMIN_AUDIT,
    ("POST", "/api/gb28181/uppers"): ADMINS,
    ("GET", "/api/gb28181/uppers/{upper_id}"): ADMIN_AUDIT,
    ("PATCH", "/api/gb28181/uppers/{upper_id}"): ADMINS,
    ("DELETE", "/api/gb28181/uppers/{upper_id}"): ADMINS,
    ("GET", "/api/gb28181/uppers/{upper_id}/shares"): ADMIN_AUDIT,
    ("PUT", "/api/gb28181/uppers/{upper_id}/shares"): ADMINS,
    ("GET", "/api/gb28181/uppers/{upper_id}/trace"): GB_MAINT,
    ("PUT", "/api/gb28181/uppers/{upper_id}/trace"): GB_MAINT,
})
QUERY = {"timeline": "?start=0&end=1000", "fmp4": "?start=0&end=1000",
         "export.mp4": "?start=0&end=1000", "snapshot.jpg": "?at=0"}


def url(path: str) -> str:
    p = path.replace("{camera_id}", "1").replace("{hold_id}", "1").replace("{user_id}", "1") \
        .replace("{token_id}", "1").replace("{request_id}", "1").replace("{session_id}", "1") \
        .replace("{lift_id}", "1").replace("{job_id}", "1").replace("{ticket_id}", "1") \
        .replace("{shift_id}", "1").replace("{visit_id}", "1").replace("{report_id}", "1") \
        .replace("{upper_id}", "1")
    return p + QUERY.get(p.rsplit("/", 1)[-1], "")


def test_every_role_gets_the_expected_status_on_every_route(tmp_path, db, clock):
    site = Site(tmp_path, db, clock)
    assert site.admin.post("/api/cameras", json={"name": "gate", "main_url": "rtsp://h/x"}).status_code == 201
    routes = all_routes(site.api)
    assert routes == set(EXPECT), f"update EXPECT: {routes ^ set(EXPECT)}"
    clients = {"bootstrap": site.admin, None: site.client()}
    for i, role in enumerate(ROLES):
        site.user(f"user{i}", (role,))
        clients[role] = site.sign_in(f"user{i}")
    # sign-out last: it ends the session the rest of the walk uses
    order = sorted(routes, key=lambda r: r == ("DELETE", "/api/session"))
    wrong = []
    for method, path in order:
        allowed = EXPECT[(method, path)]
        for who, c in clients.items():
            status = c.request(method, url(path), json={}).status_code
            if allowed == OPEN:
                ok = status not in (401, 403)
            elif who is None:
                ok = status == 401
            else:
                ok = (status not in (401, 403)) if who in allowed else status == 403
            if not ok:
                wrong.append((method, path, who, status))
    assert not wrong, "\n".join(map(str, wrong))


def test_the_upper_platform_role_is_no_user_role_and_reaches_no_route(tmp_path, db, clock):
    """A GB/T 28181 upper platform (Q13.1) has a role of its own in the policy
    (``upper_platform``: live, playback, timeline within its grade; a copy only under a
    request naming it; no administration), decided only at the cascade's door: no user
    holds it, so no route of the matrix above is reachable with it."""
    from viis.access import policy

    assert set(policy.ALL_ROLES) == set(ROLES) | {"upper_platform"}
    assert set(policy.ROLES) == set(ROLES)  # the roles a user may hold
    site = Site(tmp_path, db, clock)
    org = site.org("using_unit")
    body = {"login": "city", "organisation_id": org, "work_id": "W9",
            "password": "First-pass-123", "roles": ["upper_platform"], "clearance": 2}
    r = site.admin.post("/api/users", json=body)
    assert r.status_code in (403, 422) and "upper platform" in r.text, r.text
    site.user("nina", ("operator_on_duty",))
    uid = site.sign_in("nina").get("/api/me").json()["id"]
    r = site.admin.patch(f"/api/users/{uid}", json={"roles": ["upper_platform"]})
    assert r.status_code in (403, 422), r.text


def test_the_footage_routes_need_a_signed_in_user_even_for_an_unknown_camera(tmp_path, db, clock):
    anon = Site(tmp_path, db, clock).client()
    assert anon.get("/api/cameras/99/timeline?start=0&end=1").status_code == 401
