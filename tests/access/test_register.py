"""The retrieval register (Q19.1, Q24.1(3), N16.1): every decision of the door is exactly one
entry with who (unit, names, work IDs of both staff), when, camera and times, action, why and
under which approval; refusals too. Searchable and exportable as CSV; the door stays shut
when the register cannot be written."""

from __future__ import annotations

import csv
import io

import pytest

from tests.access.retrieval_helpers import World
from viis.access.door import authorize_footage
from viis.access.policy import Forbidden, Principal


def _count(w: World) -> int:
    return len(w.register())


def test_every_door_decision_writes_exactly_one_entry_with_the_n16_fields(tmp_path, db, clock):
    w = World(tmp_path, db, clock)
    req = w.file("inv1", actions=["timeline", "export"])
    w.approve(req["id"])
    w.open(req["id"])
    rg = req["ranges"][0]
    cam, other = w.cams
    n = _count(w)
    assert w.c("inv1").get(f"/api/cameras/{cam}/timeline?{w.range_q(req)}").status_code == 200
    assert _count(w) == n + 1
    assert w.c("inv1").get(f"/api/cameras/{other}/timeline?{w.range_q(req)}").status_code == 403
    assert w.c("inv2").get(f"/api/cameras/{cam}/snapshot.jpg?at={rg['from_ms']}").status_code == 403
    assert _count(w) == n + 3
    allowed, refused, snap = w.register()[-3:]
    assert allowed == allowed | {
        "outcome": "allowed", "action": "timeline", "camera_id": cam,
        "from_ms": rg["from_ms"], "to_ms": rg["to_ms"], "at_ms": clock.wall_ms(),
        "unit_id": w.district, "unit_name": "district bureau",
        "user_login": "inv1", "user_name": "Inv1", "user_work_id": "W-inv1",
        "second_name": "Inv2", "second_work_id": "W-inv2",
        "request_id": req["id"], "request_kind": "police", "case_number": "QD-2026-0042",
        "purpose": "investigate a theft at the gate",
        "legal_basis": "Criminal Procedure Law art. 54"}
    assert allowed["session_id"] and "Q24.1" in allowed["articles"]
    assert refused["outcome"] == "refused" and refused["camera_id"] == other
    assert refused["second_work_id"] == "W-inv2" and "outside" in refused["reason"]
    assert snap["outcome"] == "refused" and snap["action"] == "snapshot"
    assert snap["user_work_id"] == "W-inv2" and snap["second_work_id"] == "W-inv1"
    # duty use without a request: the operator's own clearance, the duty as the reason
    assert w.c("op1").get(f"/api/cameras/{cam}/timeline?start=0&end=1000").status_code == 200
    duty = w.register()[-1]
    assert duty["user_login"] == "op1" and duty["request_id"] is None
    assert duty["purpose"].startswith("duty of operator_on_duty") and duty["unit_name"]
    # an unauthenticated call never reaches the door: 401, no entry
    assert w.site.client().get(f"/api/cameras/{cam}/timeline?start=0&end=1").status_code == 401
    assert _count(w) == n + 4


def test_the_register_is_searchable_and_exports_csv(tmp_path, db, clock):
    w = World(tmp_path, db, clock)
    w.site.user("eve", ("police_investigator",), kind="district_bureau")
    req = w.file("inv1", staff=("W-inv1", "W-inv2"), purpose="=HYPERLINK(\"http://x\")")
    w.approve(req["id"])
    w.open(req["id"])
    cam, other = w.cams
    w.c("inv1").get(f"/api/cameras/{cam}/timeline?{w.range_q(req)}")
    w.c("inv1").get(f"/api/cameras/{other}/timeline?{w.range_q(req)}")
    w.c("op1").get(f"/api/cameras/{other}/timeline?start=0&end=1000")
    aud = w.c("aud")
    assert len(aud.get("/api/register").json()) == 3
    assert [e["camera_id"] for e in aud.get(f"/api/register?camera={cam}").json()] == [cam]
    assert len(aud.get(f"/api/register?request={req['id']}").json()) == 2
    assert [e["user_login"] for e in aud.get("/api/register?user=op1").json()] == ["op1"]
    inv2_id = w.register()[0]["second_user_id"]
    assert len(aud.get(f"/api/register?user={inv2_id}").json()) == 2  # as the second staff member
    assert len(aud.get("/api/register?outcome=refused").json()) == 1
    assert aud.get(f"/api/register?since={clock.wall_ms() + 1}").json() == []
    assert len(aud.get("/api/register?start=0&end=500").json()) == 1  # footage time
    r = aud.get(f"/api/register.csv?request={req['id']}")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 2 and rows[0]["user_work_id"] == "W-inv1"
    assert rows[0]["second_work_id"] == "W-inv2" and rows[0]["case_number"] == "QD-2026-0042"
    assert rows[0]["purpose"].startswith("'=")  # no formula injection in a spreadsheet
    for login in ("inv1", "op1", "appr"):
        assert w.c(login).get("/api/register").status_code == 403


def test_the_door_stays_shut_when_the_register_cannot_be_written():
    p = Principal("olga", frozenset({"operator_on_duty"}), user_id=1, clearance=5, trained=True)

    def broken(_use):
        raise RuntimeError("disk full")

    with pytest.raises(Forbidden) as e:
        authorize_footage(p, "live", 1, security_level=1, now_ms=0, register=broken)
    assert "register" in str(e.value) and "N16.1" in e.value.articles
    seen = []
    authorize_footage(p, "live", 1, security_level=1, now_ms=0, register=seen.append)
    with pytest.raises(Forbidden):
        authorize_footage(p, "export", 1, 0, 10, security_level=1, now_ms=0, register=seen.append)
    assert [(u.action, u.allowed) for u in seen] == [("live", True), ("export", False)]
