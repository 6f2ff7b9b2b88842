"""Privacy masks per camera (Q9.2, N13.1): the fixed API contract the console builds on,
hostile input refused with nothing stored, and the two-person, time-limited lifting."""

from __future__ import annotations

import json

import pytest

from tests.access.helpers import Site
from tests.access.retrieval_helpers import World, doc
from viis.registry.masks import Polygon, masks_for

WINDOW = {"label": "flat window", "points": [[0.1, 0.1], [0.4, 0.1], [0.4, 0.3], [0.1, 0.3]]}
DOOR = {"label": "neighbour door", "points": [[0.7, 0.5], [0.9, 0.5], [0.8, 0.9]]}


@pytest.fixture
def site(tmp_path, db, clock):
    site = Site(tmp_path, db, clock)
    r = site.admin.post("/api/cameras", json={"name": "gate", "main_url": "rtsp://h/gate"})
    assert r.status_code == 201, r.text
    site.cam = r.json()["id"]
    return site


def url(site) -> str:
    return f"/api/cameras/{site.cam}/privacy-masks"


def test_a_camera_without_masks_answers_an_empty_set(site):
    r = site.admin.get(url(site))
    assert r.status_code == 200
    assert r.json() == {"camera_id": site.cam, "masks": [], "updated_at": None, "updated_by": ""}


def test_put_replaces_all_masks_and_get_returns_them_with_who_and_when(site):
    """Q9.2: the polygons are stored normalised, whole-set replace, who and when kept."""
    site.user("ua", ("unit_admin",))
    ua = site.sign_in("ua")
    r = ua.put(url(site), json={"masks": [WINDOW, DOOR]})
    assert r.status_code == 200, r.text
    body = site.admin.get(url(site)).json()
    assert body["masks"] == [WINDOW, DOOR]
    assert body["updated_at"] == "2026-01-01T00:00:00.000Z"
    assert body["updated_by"].startswith("ua")
    site.clock.advance(60)
    assert site.admin.put(url(site), json={"masks": [DOOR]}).status_code == 200
    body = site.admin.get(url(site)).json()
    assert body["masks"] == [DOOR]
    assert body["updated_by"] == "admin"
    assert body["updated_at"] == "2026-01-01T00:01:00.000Z"
    assert site.admin.put(url(site), json={"masks": []}).json()["masks"] == []


def test_the_python_api_gives_polygons_from_a_session_or_the_app(site):
    site.admin.put(url(site), json={"masks": [WINDOW]})
    polys = masks_for(site.app, site.cam)
    assert polys == [Polygon("flat window", ((0.1, 0.1), (0.4, 0.1), (0.4, 0.3), (0.1, 0.3)))]
    with site.app.db.session() as s:
        assert masks_for(s, site.cam) == polys
    assert polys[0].to_pixels(1000, 500)[2] == (400, 150)
    assert masks_for(site.app, 999) == []


def test_an_operator_reads_masks_but_cannot_change_them(site):
    site.user("op", ("operator_on_duty",))
    op = site.sign_in("op")
    site.admin.put(url(site), json={"masks": [WINDOW]})
    assert op.get(url(site)).json()["masks"] == [WINDOW]
    r = op.put(url(site), json={"masks": []})
    assert r.status_code == 403
    assert site.admin.get(url(site)).json()["masks"] == [WINDOW]


def test_a_camera_above_the_users_clearance_does_not_exist_for_them(site):
    """Q13.1: masks of a secret camera are not shown, nor that it exists."""
    site.admin.patch(f"/api/cameras/{site.cam}", json={"security_level": 4})
    site.user("low", ("operator_on_duty",), clearance=2)
    assert site.sign_in("low").get(url(site)).status_code == 404
    assert site.admin.get("/api/cameras/999/privacy-masks").status_code == 404


def _pts(n: int) -> list[list[float]]:
    import math
    return [[0.5 + 0.4 * math.cos(2 * math.pi * i / n), 0.5 + 0.4 * math.sin(2 * math.pi * i / n)]
            for i in range(n)]


HOSTILE = [
    ("two points", {"masks": [{"label": "x", "points": [[0, 0], [1, 1]]}]}),
    ("65 points", {"masks": [{"label": "x", "points": _pts(65)}]}),
    ("33 masks", {"masks": [{"label": str(i), "points": _pts(3)} for i in range(33)]}),
    ("long label", {"masks": [{"label": "x" * 65, "points": _pts(3)}]}),
    ("x above 1", {"masks": [{"label": "x", "points": [[0, 0], [1.5, 0], [0, 1]]}]}),
    ("y below 0", {"masks": [{"label": "x", "points": [[0, 0], [1, -0.1], [0, 1]]}]}),
    ("a point of three numbers", {"masks": [{"label": "x", "points": [[0, 0, 0], [1, 0], [0, 1]]}]}),
    ("a point of one number", {"masks": [{"label": "x", "points": [[0], [1, 0], [0, 1]]}]}),
    ("numbers as text", {"masks": [{"label": "x", "points": [["0", "0"], [1, 0], [0, 1]]}]}),
    ("booleans", {"masks": [{"label": "x", "points": [[True, False], [1, 0], [0, 1]]}]}),
    ("null point", {"masks": [{"label": "x", "points": [None, [1, 0], [0, 1]]}]}),
    ("all on one line", {"masks": [{"label": "x", "points": [[0, 0], [0.5, 0.5], [1, 1]]}]}),
    ("unknown key", {"masks": [WINDOW | {"colour": "red"}]}),
    ("masks not a list", {"masks": {"label": "x"}}),
    ("no masks key", {"polygons": []}),
    ("label not text", {"masks": [{"label": 5, "points": _pts(3)}]}),
]


@pytest.mark.parametrize("why,body", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_malformed_masks_are_refused_with_422_and_nothing_changes(site, why, body):
    assert site.admin.put(url(site), json={"masks": [WINDOW]}).status_code == 200
    r = site.admin.put(url(site), json=body)
    assert r.status_code == 422, (why, r.text)
    assert r.json()["error"]
    assert site.admin.get(url(site)).json()["masks"] == [WINDOW]


def test_nan_and_infinity_are_refused(site):
    for bad in ("NaN", "Infinity", "-Infinity"):
        raw = '{"masks": [{"label": "x", "points": [[' + bad + ', 0], [1, 0], [0, 1]]}]}'
        r = site.admin.put(url(site), content=raw, headers={"content-type": "application/json"})
        assert r.status_code == 422, (bad, r.text)
    assert site.admin.get(url(site)).json()["masks"] == []


def test_an_oversized_body_is_refused_before_it_is_read(site):
    big = json.dumps({"masks": [{"label": "x", "points": _pts(64)}] * 5000})
    r = site.admin.put(url(site), content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert site.admin.get(url(site)).json()["masks"] == []


def test_the_limits_themselves_are_accepted(site):
    body = {"masks": [{"label": "y" * 64, "points": _pts(64)} for _ in range(32)]}
    r = site.admin.put(url(site), json=body)
    assert r.status_code == 200, r.text
    assert len(r.json()["masks"]) == 32


# --- lifting (Q9.2) ------------------------------------------------------------------------
@pytest.fixture
def world(tmp_path, db, clock):
    w = World(tmp_path, db, clock)
    rid = w.file()["id"]
    w.approve(rid)
    w.rid = rid
    return w


def lifts(w) -> str:
    return f"/api/retrievals/{w.rid}/mask-lifts"


def test_lifting_is_refused_while_the_permission_is_off(world):
    """Q9.2: off by default; masks are always burned in."""
    r = world.c("inv1").post(lifts(world), json={"camera_id": world.cams[0], "reason": "the window is the scene"})
    assert r.status_code == 403
    assert "mask_lifting" in r.json()["error"]
    assert world.c("inv1").get(lifts(world)).json() == []


def test_a_lift_needs_a_second_authorised_user_and_ends_at_its_time_limit(world):
    """Q9.2: asked by the staff with a reason, approved by a second, deciding user, time-limited."""
    lifting = world.site.api.state.mask_lifting
    lifting.enabled = True
    ask = {"camera_id": world.cams[0], "reason": "the burglar climbed through the masked window"}
    r = world.c("inv1").post(lifts(world), json=ask)
    assert r.status_code == 201, r.text
    lid = r.json()["id"]
    assert r.json()["status"] == "pending"
    with world.site.app.db.session() as s:
        assert lifting.in_force(s, world.rid, world.cams[0]) is None  # pending lifts nothing
    # the second investigator holds no approving role; an unrelated bureau may not decide
    assert world.c("inv2").post(f"{lifts(world)}/{lid}/approve", json={}).status_code == 403
    assert world.c("otherappr").post(f"{lifts(world)}/{lid}/approve", json={}).status_code in (403, 404)
    r = world.c("appr").post(f"{lifts(world)}/{lid}/approve", json={"minutes": 30, "note": "ok"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "active"
    assert r.json()["expires_at"] == "2026-01-01T00:30:00.000Z"
    with world.site.app.db.session() as s:
        assert lifting.in_force(s, world.rid, world.cams[0]) is not None
        assert lifting.in_force(s, world.rid, world.cams[1]) is None
    # decided once
    assert world.c("appr").post(f"{lifts(world)}/{lid}/refuse", json={}).status_code == 403
    world.clock.advance(30 * 60)
    with world.site.app.db.session() as s:
        assert lifting.in_force(s, world.rid, world.cams[0]) is None


def test_the_one_who_asked_cannot_approve_their_own_lift(world):
    world.site.api.state.mask_lifting.enabled = True
    world.site.user("inv_appr", ("police_investigator", "bureau_approver"), kind="district_bureau")
    w = world.c("inv_appr")
    with world.site.app.db.session() as s:  # name them in the request so they may ask
        from viis.access.retrieval_models import RetrievalRequest
        s.get(RetrievalRequest, world.rid).staff_work_ids += " W-inv_appr"
    r = w.post(lifts(world), json={"camera_id": world.cams[0], "reason": "scene"})
    assert r.status_code == 201, r.text
    r = w.post(f"{lifts(world)}/{r.json()['id']}/approve", json={})
    assert r.status_code == 403
    assert "second" in r.json()["error"]


def test_a_lift_never_outlives_the_approval_and_is_capped(world):
    lifting = world.site.api.state.mask_lifting
    lifting.enabled = True
    lid = world.c("inv1").post(lifts(world), json={"camera_id": world.cams[0], "reason": "scene"}).json()["id"]
    r = world.c("appr").post(f"{lifts(world)}/{lid}/approve", json={"minutes": 7 * 24 * 60})
    assert r.status_code == 200
    # capped at max_lift_minutes (240 by default), below the request's 8 h approval
    assert r.json()["expires_at"] == "2026-01-01T04:00:00.000Z"
    assert world.c("appr").post(f"{lifts(world)}/{lid}/approve", json={"minutes": 0}).status_code == 422


def test_a_refused_lift_lifts_nothing(world):
    lifting = world.site.api.state.mask_lifting
    lifting.enabled = True
    lid = world.c("inv1").post(lifts(world), json={"camera_id": world.cams[0], "reason": "scene"}).json()["id"]
    r = world.c("appr").post(f"{lifts(world)}/{lid}/refuse", json={"note": "not needed"})
    assert r.json()["status"] == "refused"
    with world.site.app.db.session() as s:
        assert lifting.in_force(s, world.rid, world.cams[0]) is None


def test_a_lift_is_refused_outside_the_request_or_without_a_reason(world):
    world.site.api.state.mask_lifting.enabled = True
    c = world.c("inv1")
    assert c.post(lifts(world), json={"camera_id": world.cams[1], "reason": "x"}).status_code == 422
    assert c.post(lifts(world), json={"camera_id": world.cams[0], "reason": "  "}).status_code == 422
    assert c.post(lifts(world), json={"camera_id": world.cams[0], "reason": "x" * 2001}).status_code == 422
    assert c.post("/api/retrievals/999/mask-lifts", json={"camera_id": 1, "reason": "x"}).status_code == 404
    # another organisation's staff cannot ask on this request
    assert world.c("dep1").post(lifts(world), json={"camera_id": world.cams[0], "reason": "x"}).status_code in (403, 404)
    assert c.get(lifts(world)).json() == []


def test_an_individual_request_cannot_have_masks_lifted(world):
    """N21.1: view only, no export, so nothing to lift masks for."""
    world.site.api.state.mask_lifting.enabled = True
    body = world.body("individual", staff=("W-op1", "W-op2"), document=False,
                      person_name="Li Hua", person_relation="self", case_number="")
    r = world.c("op1").post("/api/retrievals", json=body)
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    world.approve(rid, "uadmin", document=doc())
    r = world.c("op1").post(f"/api/retrievals/{rid}/mask-lifts",
                            json={"camera_id": world.cams[0], "reason": "see myself"})
    assert r.status_code == 403


def test_mask_changes_and_lifts_are_audit_entries(world):
    """Issue 4 item 6: config changes and lifted masks are in the tamper-evident log."""
    from viis.integrity.audit import AuditLog

    cam = world.cams[0]
    assert world.site.admin.put(f"/api/cameras/{cam}/privacy-masks",
                                json={"masks": [WINDOW]}).status_code == 200
    world.site.api.state.mask_lifting.enabled = True
    lifts = f"/api/retrievals/{world.rid}/mask-lifts"
    lid = world.c("inv1").post(lifts, json={"camera_id": cam, "reason": "scene"}).json()["id"]
    world.c("appr").post(f"{lifts}/{lid}/approve", json={})
    with world.site.app.db.session() as s:
        log = AuditLog(s)
        kinds = [e.kind for k in ("mask.replace", "mask.lift", "mask.lift.approve")
                 for e in log.search(kind=k)]
    assert kinds == ["mask.replace", "mask.lift", "mask.lift.approve"]
