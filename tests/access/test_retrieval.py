"""Retrieval requests end to end through the API: routing by kind (Q23.1, Q23.2, Q23.3,
N21.1), nobody approves their own request, two distinct trained staff per session (Q24.1),
the session's scope and expiry, holds until the case closes, and approval documents."""

from __future__ import annotations

import hashlib

from tests.access.helpers import Site
from tests.access.retrieval_helpers import HOUR_MS, PDF, PNG, World, doc


def _timeline(w: World, login: str, req: dict, cam=None, q=None, extra=""):
    cam = cam if cam is not None else req["ranges"][0]["camera_id"]
    return w.c(login).get(f"/api/cameras/{cam}/timeline?{q or w.range_q(req)}{extra}")


def test_police_request_is_decided_by_a_bureau_approver_of_its_bureau_and_holds_until_closed(
        tmp_path, db, clock):
    w = World(tmp_path, db, clock)
    req = w.file("inv1")
    assert req["status"] == "pending" and req["approving_org_id"] == w.district
    assert req["document"]["sha256"] == hashlib.sha256(PDF).hexdigest()
    rid = req["id"]
    assert w.open(rid).status_code == 403  # not approved yet
    assert w.c("inv2").post(f"/api/retrievals/{rid}/approve", json={}).status_code == 403  # no role
    r = w.c("otherappr").post(f"/api/retrievals/{rid}/approve", json={})
    assert r.status_code in (403, 404)  # another district's approver does not decide it
    assert w.c("uadmin").post(f"/api/retrievals/{rid}/approve", json={}).status_code in (403, 404)
    got = w.approve(rid, "cityappr")  # the city bureau over the district (Q23.1)
    assert got["status"] == "active" and got["expires_ms"] == req["requested_until_ms"]
    holds = w.site.admin.get("/api/holds").json()
    held = [h for h in holds if f"R-{rid}" in h["reason"]]
    assert len(held) == 1 and held[0]["camera_id"] == w.cams[0]
    assert all(rg["hold_id"] for rg in got["ranges"])
    # the case closes: holds are released, the session ends
    assert w.open(rid).status_code == 201
    assert w.c("inv1").post(f"/api/retrievals/{rid}/close").status_code == 200
    holds = w.site.admin.get("/api/holds").json()
    assert all(h.get("released_ms") for h in holds if f"R-{rid}" in h["reason"])
    assert _timeline(w, "inv1", got).status_code == 403


def test_the_requester_cannot_approve_their_own_request(tmp_path, db, clock):
    w = World(tmp_path, db, clock)
    w.site.user("both", ("police_investigator", "bureau_approver"), kind="district_bureau")
    rid = w.file("both", staff=("W-both", "W-inv1"))["id"]
    r = w.c("both").post(f"/api/retrievals/{rid}/approve", json={})
    assert r.status_code == 403 and "own request" in r.json()["error"]
    assert w.c("both").post(f"/api/retrievals/{rid}/refuse", json={"note": "no"}).status_code == 403
    assert w.site.admin.get(f"/api/retrievals/{rid}").json()["status"] == "pending"
    w.approve(rid, "appr")


def test_police_requests_are_filed_by_police_with_a_document_and_a_case_number(tmp_path, db, clock):
    w = World(tmp_path, db, clock)
    assert w.c("dep1").post("/api/retrievals", json=w.body("police")).status_code == 403
    assert w.c("op1").post("/api/retrievals", json=w.body("police")).status_code == 403
    r = w.c("inv1").post("/api/retrievals", json=w.body("police", document=False))
    assert r.status_code == 422 and r.json()["field"] == "document"
    r = w.c("inv1").post("/api/retrievals", json=w.body("police", case_number=""))
    assert r.status_code == 422 and r.json()["field"] == "case_number"
    r = w.c("inv1").post("/api/retrievals", json=w.body("police", staff=("W-inv1",)))
    assert r.status_code == 422 and "Q24.1" in r.json()["articles"]


def test_department_request_is_coordinated_by_the_named_district_bureau(tmp_path, db, clock):
    w = World(tmp_path, db, clock)
    staff = ("W-dep1", "W-dep2")
    r = w.c("dep1").post("/api/retrievals", json=w.body("department", staff=staff))
    assert r.status_code == 422 and r.json()["field"] == "coordinating_bureau_id"
    r = w.c("dep1").post("/api/retrievals", json=w.body("department", staff=staff,
                                                        coordinating_bureau_id=w.city))
    assert r.status_code == 422  # a district bureau coordinates (Q23.2)
    req = w.file("dep1", "department", staff=staff, coordinating_bureau_id=w.district)
    assert req["status"] == "pending" and req["approving_org_id"] == w.district
    assert w.c("cityappr").post(f"/api/retrievals/{req['id']}/approve", json={}).status_code == 404
    assert w.c("otherappr").post(f"/api/retrievals/{req['id']}/approve", json={}).status_code == 404
    w.approve(req["id"], "appr")
    assert w.open(req["id"], "dep1", "dep2").status_code == 201
    assert _timeline(w, "dep1", req).status_code == 200


def test_a_refused_request_never_opens(tmp_path, db, clock):
    w = World(tmp_path, db, clock)
    rid = w.file("inv1")["id"]
    assert w.c("appr").post(f"/api/retrievals/{rid}/refuse", json={"note": ""}).status_code == 422
    r = w.c("appr").post(f"/api/retrievals/{rid}/refuse", json={"note": "no legal basis"})
    assert r.status_code == 200 and r.json()["status"] == "refused"
    assert w.open(rid).status_code == 403
    assert w.c("appr").post(f"/api/retrievals/{rid}/approve", json={}).status_code == 422


def test_emergency_request_works_at_once_and_is_flagged_for_review(tmp_path, db, clock):
    w = World(tmp_path, db, clock)
    req = w.file("dep1", "emergency", staff=("W-dep1", "W-dep2"), document=False, valid_h=72,
                 coordinating_bureau_id=w.district, purpose="chemical leak: find the lorry")
    assert req["status"] == "active" and req["review_pending"] is True
    assert req["review"] == "approval pending review"
    assert req["expires_ms"] == w.now() + 24 * HOUR_MS  # capped until reviewed
    assert all(rg["hold_id"] for rg in req["ranges"])
    assert w.open(req["id"], "dep1", "dep2").status_code == 201
    assert _timeline(w, "dep1", req).status_code == 200
    listed = w.c("appr").get("/api/retrievals").json()
    assert [x["review"] for x in listed if x["id"] == req["id"]] == ["approval pending review"]
    # approval recorded afterwards needs the document
    r = w.c("appr").post(f"/api/retrievals/{req['id']}/approve", json={})
    assert r.status_code == 422 and r.json()["field"] == "document"
    got = w.approve(req["id"], "appr", document=doc(PNG, "approval.png"), note="confirmed")
    assert got["review_pending"] is False and got["status"] == "active"
    assert got["expires_ms"] == req["requested_until_ms"] and got["document"]["type"] == "png"


def test_an_emergency_refused_after_the_fact_stops_at_once(tmp_path, db, clock):
    w = World(tmp_path, db, clock)
    req = w.file("inv1", "emergency", document=False)
    assert w.open(req["id"]).status_code == 201
    assert _timeline(w, "inv2", req).status_code == 200
    r = w.c("appr").post(f"/api/retrievals/{req['id']}/refuse", json={"note": "not an emergency"})
    assert r.status_code == 200 and r.json()["status"] == "refused"
    assert _timeline(w, "inv2", req).status_code == 403
    holds = w.site.admin.get("/api/holds").json()
    assert all(h.get("released_ms") for h in holds if f"R-{req['id']}" in h["reason"])


def test_individual_request_is_view_only_with_the_units_consent(tmp_path, db, clock):
    w = World(tmp_path, db, clock)
    staff = ("W-op1", "W-op2")
    extra = dict(person_name="Zhang San", person_relation="self", case_number="")
    r = w.c("op1").post("/api/retrievals", json=w.body("individual", staff=staff,
                                                       actions=["playback", "export"], **extra))
    assert r.status_code == 422 and "N21.1" in r.json()["articles"]
    r = w.c("op1").post("/api/retrievals", json=w.body("individual", staff=staff, document=False,
                                                       person_name="Zhang San", person_relation="boss"))
    assert r.status_code == 422 and r.json()["field"] == "person_relation"
    req = w.file("op1", "individual", staff=staff, document=False, **extra)
    assert set(req["actions"]) == {"live", "playback", "timeline"}
    assert req["approving_org_id"] == w.unit
    assert w.c("op2").post(f"/api/retrievals/{req['id']}/approve", json={}).status_code == 403
    assert w.c("appr").post(f"/api/retrievals/{req['id']}/approve", json={}).status_code == 404
    got = w.approve(req["id"], "uadmin", document=doc(PDF, "consent.pdf"))
    assert got["status"] == "active"
    assert w.open(req["id"], "op1", "op2").status_code == 201
    cam = req["ranges"][0]["camera_id"]
    q = w.range_q(req)
    assert w.c("op1").get(f"/api/cameras/{cam}/fmp4?{q}").status_code != 403
    r = w.c("op1").get(f"/api/cameras/{cam}/export.mp4?{q}")
    assert r.status_code == 403 and "export" in r.json()["error"]
    assert w.c("op2").get(f"/api/cameras/{cam}/export.mp4?{q}").status_code == 403
    entries = [e for e in w.register() if e["request_id"] == req["id"]]
    assert [(e["action"], e["outcome"]) for e in entries] == [
        ("playback", "allowed"), ("export", "refused"), ("export", "refused")]


def test_a_session_needs_two_distinct_authenticated_trained_named_staff(tmp_path, db, clock):
    w = World(tmp_path, db, clock)
    w.site.user("inv5", ("police_investigator",), kind="district_bureau")
    rid = w.file("inv1", staff=("W-inv1", "W-inv2", "W-inv3"))["id"]
    w.approve(rid)
    cases = {"same person twice": w.open(rid, "inv1", "inv1"),
             "untrained second": w.open(rid, "inv1", "inv3"),
             "wrong second password": w.open(rid, "inv1", "inv2", password="wrong-password-9"),
             "unknown second": w.open(rid, "inv1", "nobody"),
             "second not named": w.open(rid, "inv1", "inv5"),
             "first not named": w.open(rid, "inv4", "inv2"),
             "second of another organisation": w.open(rid, "inv1", "dep1")}
    for why, r in cases.items():
        assert r.status_code == 403, (why, r.status_code, r.text)
        assert "Q24.1" in r.json().get("articles", []), why
    assert "distinct" in cases["same person twice"].json()["error"]
    assert "training" in cases["untrained second"].json()["error"]
    # the wrong password counted against the second's account
    with w.site.app.db.session() as s:
        from sqlalchemy import select

        from viis.access.models import User
        assert s.scalar(select(User.failed_logins).where(User.login == "inv2")) == 1
    # one person alone sees nothing
    req = w.site.admin.get(f"/api/retrievals/{rid}").json()
    assert _timeline(w, "inv1", req).status_code == 403
    r = w.open(rid, "inv1", "inv2")
    assert r.status_code == 201 and len(set(r.json()["staff"])) == 2
    assert _timeline(w, "inv1", req).status_code == 200


def test_the_session_sees_only_the_approved_cameras_times_and_actions_until_expiry(
        tmp_path, db, clock):
    w = World(tmp_path, db, clock)
    req = w.file("inv1", actions=["timeline", "export"], valid_h=0.25)
    w.approve(req["id"])
    rg = req["ranges"][0]
    cam, other = w.cams
    assert _timeline(w, "inv1", req).status_code == 403  # no session yet
    sess = w.open(req["id"]).json()
    assert _timeline(w, "inv1", req).status_code == 200
    assert _timeline(w, "inv2", req).status_code == 200  # the second staff member too
    assert _timeline(w, "inv4", req).status_code == 403  # not party to it
    assert _timeline(w, "inv1", req, cam=other).status_code == 403
    late = f"start={rg['to_ms'] - 1000}&end={rg['to_ms'] + 1000}"
    assert _timeline(w, "inv1", req, q=late).status_code == 403
    at = rg["from_ms"] + 1000
    assert w.c("inv1").get(f"/api/cameras/{cam}/snapshot.jpg?at={at}").status_code == 403
    assert w.c("inv1").get(f"/api/cameras/{cam}/export.mp4?{w.range_q(req)}").status_code != 403
    assert _timeline(w, "inv1", req, extra=f"&retrieval={req['id']}").status_code == 200
    # expiry: the session ends with the approval
    clock.advance(16 * 60)
    assert _timeline(w, "inv1", req).status_code == 403
    assert w.open(req["id"]).status_code == 403
    got = w.site.admin.get(f"/api/retrievals/{req['id']}").json()
    assert got["status"] == "expired" and got["sessions"][0]["id"] == sess["id"]


def test_a_closed_session_sees_nothing(tmp_path, db, clock):
    w = World(tmp_path, db, clock)
    req = w.file("inv1")
    w.approve(req["id"])
    sid = w.open(req["id"]).json()["id"]
    assert w.c("inv4").post(f"/api/retrievals/{req['id']}/sessions/{sid}/close").status_code == 404
    assert w.c("inv2").post(f"/api/retrievals/{req['id']}/sessions/{sid}/close").status_code == 200
    assert _timeline(w, "inv1", req).status_code == 403


def test_bad_approval_documents_are_refused_and_nothing_is_stored(tmp_path, db, clock):
    w = World(tmp_path, db, clock)
    w.site.api.state.retrievals.max_document_bytes = 1000
    docs_dir = w.site.app.settings.data_dir / "retrieval-documents"
    bad = {"wrong type": doc(b"GIF89a" + b"\x00" * 20, "approval.pdf"),
           "html as pdf": doc(b"<html>%PDF-1.4</html>", "approval.pdf"),
           "oversized": doc(PDF + b"\x00" * 1000),
           "empty": doc(b""),
           "not base64": {"name": "a.pdf", "content_base64": "%%%not-base64%%%"}}
    for why, d in bad.items():
        r = w.c("inv1").post("/api/retrievals", json=w.body(document=d))
        assert r.status_code == 422, (why, r.text)
        assert r.json()["field"] == "document" and r.json()["error"], why
    assert "PDF, PNG or JPEG" in w.c("inv1").post("/api/retrievals", json=w.body(
        document=bad["wrong type"])).json()["error"]
    assert "over the limit" in w.c("inv1").post("/api/retrievals", json=w.body(
        document=bad["oversized"])).json()["error"]
    assert w.site.admin.get("/api/retrievals").json() == []
    assert not docs_dir.exists() or not any(docs_dir.iterdir())
    req = w.file("inv1")
    stored = docs_dir / f"{hashlib.sha256(PDF).hexdigest()}.pdf"
    assert stored.read_bytes() == PDF and req["document"]["bytes"] == len(PDF)


def test_requests_are_visible_to_their_parties_and_auditors_only(tmp_path, db, clock):
    w = World(tmp_path, db, clock)
    rid = w.file("inv1")["id"]
    for login in ("inv2", "appr", "cityappr", "aud"):
        assert w.c(login).get(f"/api/retrievals/{rid}").status_code == 200, login
    for login in ("dep1", "op1", "otherappr"):
        assert w.c(login).get(f"/api/retrievals/{rid}").status_code == 404, login
        assert w.c(login).get("/api/retrievals").json() == [], login


def test_the_bootstrap_token_cannot_open_a_session(tmp_path, db, clock):
    site = Site(tmp_path, db, clock)
    assert site.admin.post("/api/retrievals/1/sessions",
                           json={"second_login": "x", "second_password": "y"}).status_code == 403
