"""Duty and room through the API (Q19.1, Q19.2, Q19.4, Q19.5, N16.1): only a trained operator
goes on duty; a shift ends with a handover the next person sees; the duty log belongs to a
shift; the monitoring-room register names every visitor, why and who let them in, and refuses
hostile input without storing anything; a report to the police holds its footage; every
action is an audit entry."""

from __future__ import annotations

import pytest

from tests.access.helpers import DAY_MS, Site

HOUR_MS = 3_600_000


@pytest.fixture
def site(tmp_path, db, clock):
    site = Site(tmp_path, db, clock)
    r = site.admin.post("/api/cameras", json={"name": "gate", "main_url": "rtsp://h/gate"})
    assert r.status_code == 201, r.text
    site.cam = r.json()["id"]
    for login, roles, trained in (("op1", ("operator_on_duty",), True),
                                  ("op2", ("operator_on_duty",), True),
                                  ("novice", ("operator_on_duty",), False),
                                  ("uadmin", ("unit_admin",), True),
                                  ("aud", ("auditor",), True),
                                  ("maint", ("maintainer",), True)):
        site.user(login, roles, trained=trained)
    site.user("inv", ("police_investigator",), kind="district_bureau")
    site.c = {}
    return site


def c(site, login):
    if login not in site.c:
        site.c[login] = site.sign_in(login)
    return site.c[login]


def audit_kinds(site, prefix: str) -> list[str]:
    r = site.admin.get(f"/api/audit?kind={prefix}&limit=1000")
    assert r.status_code == 200, r.text
    return [e["kind"] for e in r.json()["entries"]][::-1]


def test_an_untrained_operator_cannot_go_on_duty_q19_2_n16_1(site, clock):
    r = c(site, "novice").post("/api/duty/shifts")
    assert r.status_code == 403
    assert {"Q19.2", "N16.1"} <= set(r.json()["articles"]) and "training" in r.json()["error"]
    assert site.admin.get("/api/duty/shifts").json() == []
    # training runs out: the next shift is refused too (checked when the shift starts)
    clock.advance(366 * DAY_MS / 1000)
    op = site.sign_in("op1")
    assert op.post("/api/duty/shifts").status_code == 403
    assert site.admin.get("/api/duty/roster").json()["on_duty"] == []


def test_a_shift_ends_with_a_handover_the_next_person_sees_q19_1(site, clock):
    op1, op2 = c(site, "op1"), c(site, "op2")
    r = op1.post("/api/duty/shifts")
    assert r.status_code == 201, r.text
    shift = r.json()
    assert shift["on_duty"] and shift["login"] == "op1" and shift["handover"] is None
    assert op1.post("/api/duty/shifts").status_code == 422  # one open shift per person
    clock.advance(60)
    footage = clock.wall_ms() - 30_000
    r = op1.post("/api/duty/log", json={"text": "crowd gathering at the gate",
                                         "camera_id": site.cam, "footage_at": str(footage)})
    assert r.status_code == 201, r.text
    assert r.json()["footage_ms"] == footage and r.json()["shift_id"] == shift["id"]
    assert op2.post("/api/duty/log", json={"text": "not on duty"}).status_code == 422
    roster = site.admin.get("/api/duty/roster").json()
    assert [s["login"] for s in roster["on_duty"]] == ["op1"]
    # only the person on duty ends their own shift, and only with a note
    assert op2.post(f"/api/duty/shifts/{shift['id']}/end", json={"note": "x"}).status_code == 404
    assert op1.post(f"/api/duty/shifts/{shift['id']}/end", json={"note": "  "}).status_code == 422
    assert op1.post(f"/api/duty/shifts/{shift['id']}/end",
                    json={"note": "x", "handover_to": "nobody"}).status_code == 422
    clock.advance(25 * 60)  # inside the 30-minute idle limit of the sessions
    r = op1.post(f"/api/duty/shifts/{shift['id']}/end",
                 json={"note": "gate camera 1 flickers; police asked for 14:00 footage",
                       "handover_to": "op2"})
    assert r.status_code == 200, r.text
    assert r.json()["ended_ms"] == clock.wall_ms() and r.json()["handover_to"] == "op2"
    assert op1.post("/api/duty/log", json={"text": "after my shift"}).status_code == 422
    r = op2.post("/api/duty/shifts")
    assert r.status_code == 201
    assert r.json()["handover"]["handover_note"].startswith("gate camera 1 flickers")
    assert r.json()["handover"]["login"] == "op1"
    assert [s["login"] for s in site.admin.get("/api/duty/roster").json()["on_duty"]] == ["op2"]
    log = c(site, "aud").get(f"/api/duty/log?shift={shift['id']}").json()
    assert [e["text"] for e in log] == ["crowd gathering at the gate"]
    assert audit_kinds(site, "duty.") == ["duty.shift_start", "duty.log", "duty.shift_end",
                                          "duty.shift_start"]


HOSTILE_ROOM = [
    {"reason": "inspection", "person_name": "Li\x00Lei", "id_number": "370202199001011234",
     "organisation": "fire brigade"},
    {"reason": "inspection", "person_name": "Li\nLei", "id_number": "370202199001011234",
     "organisation": "fire brigade"},
    {"reason": "inspection", "person_name": "Li Lei", "id_number": "<script>alert(1)</script>",
     "organisation": "fire brigade"},
    {"reason": "inspection", "person_name": "Li Lei", "id_number": "12",
     "organisation": "fire brigade"},
    {"reason": "x" * 5000, "person_name": "Li Lei", "id_number": "370202199001011234",
     "organisation": "fire brigade"},
    {"reason": "inspection", "person_name": "L" * 101, "id_number": "370202199001011234",
     "organisation": "fire brigade"},
    {"reason": "inspection", "person_name": "Li Lei", "id_number": "370202199001011234",
     "organisation": "\u202e\x1b[31m"},
    {"reason": "inspection", "person_name": "\u202eieL iL", "id_number": "370202199001011234",
     "organisation": "fire brigade"},
    {"reason": "", "person_name": "Li Lei", "id_number": "370202199001011234",
     "organisation": "fire brigade"},
    {"reason": "inspection", "person_name": "", "id_number": "", "organisation": ""},
    {"reason": "inspection", "person_name": "Li Lei", "id_number": "370202199001011234",
     "organisation": "fire brigade", "admitted_by": "op2"},
    {"reason": "inspection", "login": "ghost"},
    {"reason": ["inspection"], "person_name": "Li Lei"},
]


def test_the_room_register_names_who_came_why_and_who_let_them_in_q19_4(site, clock):
    op1 = c(site, "op1")
    r = op1.post("/api/duty/room", json={"reason": "annual fire inspection (消防检查)",
                                          "person_name": "李雷", "id_number": "37020219900101123X",
                                          "organisation": "Qingdao fire brigade"})
    assert r.status_code == 201, r.text
    v = r.json()
    assert v | {"person_name": "李雷", "id_number": "37020219900101123X",
                "organisation": "Qingdao fire brigade", "admitted_by": "op1", "present": True} == v
    r = c(site, "uadmin").post("/api/duty/room", json={"reason": "repair the wall screen",
                                                        "login": "maint"})
    assert r.status_code == 201
    assert r.json()["person_name"] == "Maint" and r.json()["id_number"] == "W-maint"
    clock.advance(20 * 60)
    r = op1.post(f"/api/duty/room/{v['id']}/leave")
    assert r.status_code == 200 and r.json()["left_ms"] == clock.wall_ms()
    assert op1.post(f"/api/duty/room/{v['id']}/leave").status_code == 422
    assert op1.post("/api/duty/room/999/leave").status_code == 404
    present = site.admin.get("/api/duty/roster").json()["in_room"]
    assert [x["person_name"] for x in present] == ["Maint"]
    assert audit_kinds(site, "room.") == ["room.enter", "room.enter", "room.leave"]


def test_hostile_or_oversized_room_entries_are_refused_and_nothing_is_stored(site):
    for body in HOSTILE_ROOM:
        r = c(site, "op1").post("/api/duty/room", json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["error"]
    assert site.admin.get("/api/duty/room").json() == []
    assert audit_kinds(site, "room.") == []


def test_a_report_to_the_police_holds_its_footage_and_the_police_acknowledge_it_q19_5(site, clock):
    op1 = c(site, "op1")
    assert op1.post("/api/duty/shifts").status_code == 201
    t = clock.wall_ms()
    body = {"text": "a man tried car doors in the car park for 20 minutes",
            "police_unit": "Shinan district bureau",
            "ranges": [{"camera_id": site.cam, "start": str(t - HOUR_MS), "end": str(t)}]}
    # refused ranges store neither a report nor a hold
    for bad in ({"camera_id": site.cam, "start": str(t), "end": str(t - 1)},
                {"camera_id": site.cam, "start": str(t - 40 * DAY_MS), "end": str(t)},
                {"camera_id": site.cam, "start": "yesterday", "end": str(t)},
                {"camera_id": 999, "start": str(t - HOUR_MS), "end": str(t)}):
        r = op1.post("/api/duty/reports", json=body | {"ranges": [bad]})
        assert r.status_code in (404, 422), (bad, r.text)
    assert op1.post("/api/duty/reports", json=body | {"text": "x" * 2001}).status_code == 422
    assert op1.post("/api/duty/reports", json=body | {"ranges": body["ranges"] * 21}).status_code == 422
    assert site.admin.get("/api/holds").json() == []
    assert site.admin.get("/api/duty/reports").json() == []
    r = op1.post("/api/duty/reports", json=body)
    assert r.status_code == 201, r.text
    rep = r.json()
    assert rep["status"] == "reported" and rep["shift_id"] and rep["reporter"] == "op1"
    holds = site.admin.get("/api/holds").json()
    assert len(holds) == 1 and holds[0]["id"] == rep["ranges"][0]["hold_id"]
    assert holds[0] | {"camera_id": site.cam, "start_ms": t - HOUR_MS, "end_ms": t,
                       "released_ms": None, "legal_basis": "Q19.5"} == holds[0]
    assert f"P-{rep['id']}" in holds[0]["reason"]
    inv = c(site, "inv")
    assert [x["id"] for x in inv.get("/api/duty/reports").json()] == [rep["id"]]
    assert op1.post(f"/api/duty/reports/{rep['id']}/acknowledge").status_code == 403
    r = inv.post(f"/api/duty/reports/{rep['id']}/acknowledge")
    assert r.status_code == 200 and r.json()["status"] == "acknowledged"
    assert r.json()["acknowledged_by"] == "inv"
    assert inv.post(f"/api/duty/reports/{rep['id']}/acknowledge").status_code == 422
    assert inv.get("/api/duty/reports?status=reported").json() == []
    assert [k for k in audit_kinds(site, "duty.") if k.startswith("duty.report")] == \
        ["duty.report", "duty.report_ack"]
    assert "hold.create" in audit_kinds(site, "hold.")


def test_each_role_is_refused_what_is_not_its_duty(site):
    assert c(site, "uadmin").post("/api/duty/shifts").status_code == 403  # watching is the operator's
    assert c(site, "aud").post("/api/duty/shifts").status_code == 403
    assert site.admin.post("/api/duty/shifts").status_code == 403  # bootstrap is no person
    assert c(site, "maint").post("/api/duty/room", json={"reason": "x", "login": "maint"}).status_code == 403
    assert c(site, "aud").post("/api/duty/reports", json={"text": "x"}).status_code == 403
    assert c(site, "inv").post("/api/duty/reports", json={"text": "x"}).status_code == 403
    assert c(site, "inv").get("/api/duty/room").status_code == 403
    assert c(site, "maint").get("/api/duty/log").status_code == 403
    assert c(site, "uadmin").post("/api/duty/reports/1/acknowledge").status_code == 403
    assert site.client().get("/api/duty/roster").status_code == 401
    assert site.admin.get("/api/duty/shifts").json() == []
    kinds = audit_kinds(site, "access.denied")
    assert len(kinds) == 9


def test_the_compliance_snapshot_shows_the_shifts_held_q19_1_q19_2(site, clock):
    from viis.compliance.snapshot import parse

    ua = c(site, "uadmin")
    r = ua.post("/api/compliance/units", json={"code": "harbour", "name": "Harbour Hotel",
                                                "use": "business", "organisation_id": site.org("using_unit")})
    assert r.status_code == 201, r.text
    duty = ua.get("/api/compliance/units/harbour/snapshot").json()["activity"]["duty"]
    assert "shifts" not in duty and "log_kept" not in duty  # no shift held: unknown
    assert c(site, "op1").post("/api/duty/shifts").status_code == 201
    snap = ua.get("/api/compliance/units/harbour/snapshot").json()
    assert snap["activity"]["duty"]["shifts"] == [{"staff": "op1", "on": "2026-01-01"}]
    assert snap["activity"]["duty"]["log_kept"] is True
    assert parse(snap).activity.shifts[0].staff == "op1"  # the documented format
