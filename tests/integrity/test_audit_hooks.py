"""Every security-relevant action becomes one audit entry in the action's own transaction,
and an action whose entry cannot be written does not happen (invariant 2; Q19.1, Q23,
Q24.1, N16.1): sign-ins and failures, lockout, camera and retention changes, holds,
retrieval decisions, every decision of the footage door (allowed and denied)."""

from __future__ import annotations

from sqlalchemy import text

from tests.access.helpers import PASSWORD
from tests.access.retrieval_helpers import World
from viis.integrity.audit import AuditLog, signer_for, verify_log


def entries(w: World, kind: str | None = None) -> list[dict]:
    r = w.site.admin.get("/api/audit", params={"limit": 1000} | ({"kind": kind} if kind else {}))
    assert r.status_code == 200, r.text
    return list(reversed(r.json()["entries"]))


def test_sign_ins_failures_and_lockout_are_recorded(tmp_path, db, clock):
    w = World(tmp_path, db, clock)
    w.c("op1")
    assert w.site.client().post("/api/session", json={"login": "op1", "password": "wrong-password-1"}
                                ).status_code == 401
    assert w.site.client().post("/api/session", json={"login": "<script>'--" + "名" * 40,
                                                      "password": "x" * 20}).status_code == 401
    ok = entries(w, "auth.login")
    assert [e["actor"] for e in ok].count("op1") == 1
    assert ok[-1]["organisation"] == "" and ok[-1]["details"]["session_id"]
    failed = entries(w, "auth.login_failed")
    assert [(e["actor"], e["details"]["known_user"]) for e in failed] == \
        [("op1", True), ("<script>'--" + "名" * 40, False)]
    for _ in range(10):
        w.site.client().post("/api/session", json={"login": "op2", "password": "wrong-password-1"})
    assert [e["actor"] for e in entries(w, "auth.locked")] == ["op2"]
    c = w.c("op1")
    assert c.delete("/api/session").status_code == 200
    assert entries(w, "auth.logout")[-1]["actor"] == "op1"


def test_camera_and_retention_changes_are_recorded_without_credentials(tmp_path, db, clock):
    w = World(tmp_path, db, clock)
    w.site.user("ua", ("unit_admin",))
    ua = w.site.sign_in("ua")
    r = ua.post("/api/cameras", json={"name": "yard", "main_url": "rtsp://u:s3cret@h/yard"})
    assert r.status_code == 201
    cid = r.json()["id"]
    assert ua.patch(f"/api/cameras/{cid}", json={"retention_days": 90, "password": "n3w-secret"}).status_code == 200
    created = entries(w, "camera.create")[-1]
    assert created["actor"] == "ua" and created["subject"] == f"camera {cid}"
    assert created["details"]["credentials"] == "set"
    upd = entries(w, "camera.update")[-1]["details"]["changed"]
    assert upd["retention_days"][1] == 90 and upd["password"] == "changed"
    ret = entries(w, "retention.change")[-1]
    assert ret["actor"] == "ua" and ret["details"]["retention_days"][1] == 90
    dump = w.site.admin.get("/api/audit", params={"limit": 1000}).text
    assert "s3cret" not in dump and "n3w-secret" not in dump


def test_retrieval_decisions_holds_and_every_door_decision_are_recorded(tmp_path, db, clock):
    w = World(tmp_path, db, clock)
    req = w.file("inv1", actions=["timeline", "export"])
    w.approve(req["id"])
    assert w.open(req["id"]).status_code == 201
    cam, other = w.cams
    assert w.c("inv1").get(f"/api/cameras/{cam}/timeline?{w.range_q(req)}").status_code == 200
    assert w.c("inv1").get(f"/api/cameras/{other}/timeline?{w.range_q(req)}").status_code == 403
    assert [e["subject"] for e in entries(w, "retrieval.file")] == [f"R-{req['id']}"]
    appr = entries(w, "retrieval.approve")[-1]
    assert appr["actor"] == "appr" and "district bureau" in appr["organisation"]
    assert appr["details"]["document_sha256"]
    assert entries(w, "retrieval.session_open")[-1]["details"]["staff"] == ["inv1", "inv2"]
    hold = entries(w, "hold.create")[-1]
    assert hold["details"]["camera_id"] == cam and "R-" in hold["details"]["reason"]
    seen = entries(w, "footage.timeline")[-1]
    denied = entries(w, "footage.denied")[-1]
    assert seen["actor"] == "inv1" and seen["subject"] == f"camera {cam}"
    assert seen["details"]["request_id"] == req["id"] and seen["details"]["session_id"]
    assert denied["subject"] == f"camera {other}" and "outside" in denied["details"]["reason"]
    # one register entry <-> one audit entry, linked by id
    reg_ids = {e["id"] for e in w.register()}
    door = [e for e in entries(w) if e["kind"].startswith("footage.")]
    assert {e["details"]["register_id"] for e in door} == reg_ids
    assert w.c("inv1").post(f"/api/retrievals/{req['id']}/close").status_code == 200
    assert entries(w, "retrieval.close") and entries(w, "hold.release")
    with w.site.app.db.session() as s:
        AuditLog(s, clock).checkpoint(signer_for(tmp_path / "d"))
    with w.site.app.db.session() as s:
        rep = verify_log(s, signer_for(tmp_path / "d").public_pem())
    assert rep.ok, rep.as_dict()


def test_no_audit_entry_no_action(tmp_path, db, clock):
    """Fail closed: with the log unwritable, footage stays shut, sign-in and holds fail, and
    nothing of the action is stored."""
    w = World(tmp_path, db, clock)
    op = w.c("op1")
    cam = w.cams[0]
    n_reg = len(w.register())
    with w.site.app.db.session() as s:
        s.execute(text("DELETE FROM audit_state"))  # the log can no longer be appended to
    r = op.get(f"/api/cameras/{cam}/timeline?start=0&end=1000")
    assert r.status_code == 403 and "register" in r.json()["error"]
    assert len(w.register()) == n_reg  # the register entry rolled back with it
    try:
        status = w.site.client().post("/api/session", json={"login": "op2", "password": PASSWORD}
                                      ).status_code
    except RuntimeError:
        status = 500  # the test client re-raises server errors
    assert status >= 500
    with w.site.app.db.session() as s:
        assert s.execute(text("SELECT count(*) FROM auth_sessions")).scalar_one() == 1  # op1's
        assert s.execute(text("SELECT count(*) FROM holds")).scalar_one() == 0


def test_retention_removals_are_recorded_with_their_tombstones(footage, db, clock, tmp_path):
    """N17.1 deletion after retention is lawful, and on record: the sweep's tombstones and its
    audit entry commit together; a periodic checkpoint then pins the chain heads."""
    from viis.core.clock import DAY_MS
    from viis.integrity.audit import checkpoint_due
    from viis.media.retention import sweep

    cam = footage.camera("gate", retention_days=30)
    seg = footage.segment(cam, clock.wall_ms())
    clock.advance(31 * DAY_MS / 1000)
    assert sweep(db, footage.store, clock).removed == 1
    with db.session() as s:
        e = AuditLog(s, clock).search(kind="retention.remove")[0]
    assert e.actor == "retention sweeper" and f"[{seg.id}]" in e.details
    data = tmp_path / "d"
    first = checkpoint_due(db, clock, data, interval_ms=300_000)
    assert first is not None
    assert checkpoint_due(db, clock, data, interval_ms=300_000) is None  # not due yet
    clock.advance(301)
    assert checkpoint_due(db, clock, data, interval_ms=300_000).tree_size == first.tree_size + 1
    with db.session() as s:
        heads = AuditLog(s, clock).search(kind="chain.heads")[0]
        assert f'"{cam.uid}":{{"hash":"{seg.chain_hash}","seq":{seg.seq}}}' in heads.details
        assert verify_log(s, signer_for(data).public_pem()).ok


def test_refused_admin_actions_are_recorded(tmp_path, db, clock):
    w = World(tmp_path, db, clock)
    assert w.c("op1").get("/api/users").status_code == 403
    assert w.c("op1").get("/api/audit").status_code == 403
    denied = entries(w, "access.denied")
    assert [(e["actor"], e["subject"], e["details"]["path"]) for e in denied] == \
        [("op1", "user.read", "/api/users"), ("op1", "audit.read", "/api/audit")]
