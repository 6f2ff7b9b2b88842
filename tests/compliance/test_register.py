"""The compliance register in the database and the live snapshot built from it: units, sites
(categories from the packs, Q7.1/N7.1/N9.1), systems (contractors Q14.1, inspection report
Q15.1, acceptance and going-into-use days, purpose Q20.1), camera links, zones and consents
(Q7.3, N10.1); ``snapshot_from_db`` in the documented format; ``viis compliance evaluate
--live``. Every door refuses bad input with the field named and stores nothing."""

from __future__ import annotations

import base64
import json

from tests.access.helpers import Site
from viis.compliance.live import snapshot_from_db
from viis.compliance.snapshot import parse
from viis.registry.service import CameraInput, CameraService

DAY_MS = 86_400_000
UNIT = {"code": "harbour", "name": "Harbour Hotel", "use": "business", "district": "Shinan"}
SITE = {"unit": "harbour", "code": "main", "name": "main building",
        "categories": ["qingdao-2020:residential_lodging_catering_markets_parking",
                       "national-2025:crowded_venues"]}
SYSTEM = {"site": "main", "code": "cctv", "name": "lobby CCTV", "purpose": "public security",
          "storage_days": 30, "accepted_on": "2025-12-01", "in_use_on": "2025-12-01",
          "inspection_report": "QD-INSP-2025-88",
          "contractors": [{"role": "builder", "name": "B Co", "qualification": "Q-1",
                           "qualification_expires": "2027-01-01"}]}


def unit_site(tmp_path, db, clock):
    site = Site(tmp_path, db, clock)      # clock: 2026-01-01T00:00Z
    site.user("ua", ("unit_admin",))
    site.user("op", ("operator_on_duty",))
    site.user("chief", ("bureau_approver",))
    return site, site.sign_in("ua")


def camera(site, name="gate", **kw) -> int:
    with site.app.db.session() as s:
        return CameraService(site.app.rules, site.clock).add(
            s, CameraInput(name=name, main_url=f"rtsp://127.0.0.1/{name}", **kw)).id


def build(ua, site):
    assert ua.post("/api/compliance/units", json=UNIT).status_code == 201
    r = ua.post("/api/compliance/sites", json=SITE)
    assert r.status_code == 201, r.text
    assert r.json()["builders"][0]["builder"] == "operator"   # Q8.2: the unit builds
    r = ua.post("/api/compliance/systems", json=SYSTEM)
    assert r.status_code == 201, r.text
    cid = camera(site)
    r = ua.put(f"/api/compliance/cameras/{cid}/link", json={"system": "cctv", "public_place": False})
    assert r.status_code == 200, r.text
    return cid


def findings(client, on):
    r = client.get(f"/api/compliance/units/harbour/findings?on={on}")
    assert r.status_code == 200, r.text
    return [(f["kind"], f["check"], tuple(f["requirements"]), tuple(p["penalty"] for p in f["penalties"]))
            for f in r.json()["findings"]]


def test_live_register_yields_the_snapshot_and_findings(tmp_path, db, clock):
    """Q16.1, N14.1: a system in use 2025-12-01 with no filing is overdue on 2026-01-01 (day 31);
    the live snapshot carries the register in the documented format."""
    site, ua = unit_site(tmp_path, db, clock)
    build(ua, site)
    snap = ua.get("/api/compliance/units/harbour/snapshot").json()
    parse(snap)   # the documented format
    assert snap["organisation"] == {"id": "harbour", "name": "Harbour Hotel", "use": "business", "party": "unit"}
    assert [c["system"] for c in snap["cameras"]] == ["cctv"]
    assert snap["systems"][0]["contractors"][0]["qualification"] == "Q-1"
    assert findings(ua, "2025-12-31") == [
        ("reminder", "filing.national-2025.in_use.due", ("N14.1",), ("N29",)),
        ("reminder", "filing.qingdao-2020.acceptance.due", ("Q16.1",), ("Q28.1",))]
    assert findings(ua, "2026-01-01") == [
        ("breach", "filing.national-2025.in_use", ("N14.1",), ("N29",)),
        ("breach", "filing.qingdao-2020.acceptance", ("Q16.1",), ("Q28.1",))]
    # the police read the register; an operator does not
    assert site.sign_in("chief").get("/api/compliance/units/harbour/findings").status_code == 200
    assert site.sign_in("op").get("/api/compliance/units/harbour/findings").status_code == 403


def test_live_activity_from_health_and_media(tmp_path, db, clock, footage):
    """Q19.3 and Q19.7 from the other subsystems: an open fault ticket past 72 h and footage
    younger than the 30-day minimum on a camera that has recorded longer."""
    from viis.health.tickets import FaultTicket

    site, ua = unit_site(tmp_path, db, clock)
    cid = build(ua, site)
    ua.patch("/api/compliance/systems/cctv", json={"accepted_on": "2025-12-20", "in_use_on": "2025-12-20"})
    now = clock.wall_ms()
    with site.app.db.session() as s:
        s.add(FaultTicket(camera_id=cid, kind="video_occluded", severity="critical", message="covered",
                          first_seen_ms=now - 4 * DAY_MS, repair_due_ms=now - DAY_MS,
                          repair_limit="72 hours (default, Q19.3)"))
    clock.advance(40 * 86_400)
    ua = site.sign_in("ua")
    with site.app.db.session() as s:
        snap = snapshot_from_db(s, "harbour", clock.wall_ms())
    assert [f["kind"] for f in snap["activity"]["faults"]] == ["video_occluded"]
    r = ua.get("/api/compliance/units/harbour/findings?on=2026-02-09")
    assert r.status_code == 200, r.text
    got = {f["check"] for f in r.json()["findings"]}
    assert {"fault_unrepaired", "camera_obstructed"} <= got


def test_cli_evaluates_the_live_register(tmp_path, monkeypatch, capsys, clock):
    """viis compliance evaluate --live --on DATE on a running installation's database."""
    from viis.cli import main
    from viis.core.db import Database

    data = tmp_path / "d"
    data.mkdir()
    db = Database(f"sqlite:///{data / 'viis.db'}")
    db.migrate()
    site, ua = unit_site(tmp_path, db, clock)
    build(ua, site)
    monkeypatch.setenv("VIIS_DATA_DIR", str(data))
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()  # the setup's own output
    assert main(["compliance", "evaluate", "--live", "--on", "2026-01-01", "--json"]) == 1
    text = capsys.readouterr().out
    out = json.loads(text)  # stdout holds the JSON alone: log lines go to stderr
    assert sorted(f["check"] for f in out["findings"]) == [
        "filing.national-2025.in_use", "filing.qingdao-2020.acceptance"]
    assert main(["compliance", "evaluate", "--live", "--unit", "nope", "--on", "2026-01-01"]) == 2
    assert "no unit 'nope'" in capsys.readouterr().err
    # the unit side from the command line: a filing generated, written as PDF and signed JSON,
    # submitted; the to-do list as CSV
    assert main(["compliance", "filing", "create", "--system", "cctv", "--kind", "in_use", "--by", "admin"]) == 0
    text = capsys.readouterr().out
    created = json.loads(text[text.index("{\n"):])
    assert created["state"] == "draft" and created["due_on"] == "2025-12-31"
    assert main(["compliance", "filing", "pdf", str(created["id"]), "--out", str(tmp_path / "f.pdf")]) == 0
    assert (tmp_path / "f.pdf").read_bytes().startswith(b"%PDF")
    assert main(["compliance", "filing", "package", str(created["id"]), "--out", str(tmp_path / "f.json")]) == 0
    assert json.loads((tmp_path / "f.json").read_text())["document"]["kind"] == "in_use"
    assert main(["compliance", "filing", "submit", str(created["id"]), "--channel", "pigeon"]) == 2
    assert "channel 'pigeon'" in capsys.readouterr().err
    assert main(["compliance", "todo", "--unit", "harbour", "--on", "2025-12-20", "--csv"]) == 0
    rows = [r for r in capsys.readouterr().out.splitlines() if r.startswith(("deadline", "2025"))]
    assert rows[0].startswith("deadline,kind") and rows[1].startswith("2025-12-31,draft_filing")
    db.dispose()


BAD = [
    ("/api/compliance/units", dict(UNIT, use="charity"), "use"),
    ("/api/compliance/units", dict(UNIT, code="has space"), "code"),
    ("/api/compliance/units", dict(UNIT, extra=1), "extra"),
    ("/api/compliance/sites", dict(SITE, categories=["qingdao-2020:casino"]), "categories[0]"),
    ("/api/compliance/sites", dict(SITE, privacy_areas=["lobby"]), "privacy_areas[0]"),
    ("/api/compliance/sites", dict(SITE, lat=36.0), "lat"),
    ("/api/compliance/sites", dict(SITE, lat=91.0, lon=120.0), "lat"),
    ("/api/compliance/sites", dict(SITE, privacy_checked_on="2026-13-01"), "privacy_checked_on"),
    ("/api/compliance/sites", dict(SITE, categories=["x"] * 33), "categories"),
    ("/api/compliance/sites", dict(SITE, name="n" * 201), "name"),
    ("/api/compliance/systems", dict(SYSTEM, storage_days=-1), "storage_days"),
    ("/api/compliance/systems", dict(SYSTEM, removed_on="2025-01-01"), "removed_on"),
    ("/api/compliance/systems", dict(SYSTEM, contractors=[{"role": "cook", "name": "x"}]), "contractors[0].role"),
    ("/api/compliance/systems", dict(SYSTEM, in_use_on="yesterday"), "in_use_on"),
    ("/api/compliance/zones", {"code": "z", "name": "depot", "kind": "embassy", "lat": 36, "lon": 120,
                               "radius_m": 100}, "kind"),
    ("/api/compliance/zones", {"code": "z", "name": "depot", "kind": "military", "lat": 36, "lon": 120,
                               "radius_m": 0}, "radius_m"),

]
def test_register_doors_refuse_bad_input_and_store_nothing(tmp_path, db, clock):
    """Each door names the bad field (422) and the register is unchanged afterwards."""
    site, ua = unit_site(tmp_path, db, clock)
    assert ua.post("/api/compliance/units", json=UNIT).status_code == 201
    ua.post("/api/compliance/sites", json=SITE)
    admin = site.admin

    def count():
        return {p: len(admin.get(f"/api/compliance/{p}").json()) for p in ("units", "sites", "systems", "zones")}

    before = count()
    for path, body, field in BAD:
        body = dict(body, code="other") if "code" in body and body["code"] in ("harbour", "main", "cctv") else body
        r = admin.post(path, json=body)
        assert r.status_code == 422, (path, body, r.text)
        assert r.json().get("field", "").endswith(field), (path, r.json())
    assert count() == before


def test_unknown_ids_and_malformed_json(tmp_path, db, clock):
    site, ua = unit_site(tmp_path, db, clock)
    build(ua, site)
    assert ua.post("/api/compliance/sites", json=dict(SITE, unit="ghost", code="x")).status_code == 404
    assert ua.post("/api/compliance/systems", json=dict(SYSTEM, site="ghost", code="x")).status_code == 404
    assert ua.put("/api/compliance/cameras/999/link", json={"system": "cctv"}).status_code == 404
    assert ua.put("/api/compliance/cameras/1/link", json={"system": "ghost"}).status_code == 404
    assert ua.get("/api/compliance/units/ghost/findings").status_code == 404
    assert ua.get("/api/compliance/units/harbour/findings?on=2026-02-30").status_code == 422
    r = ua.post("/api/compliance/units", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert ua.post("/api/compliance/units", json=UNIT).status_code == 422   # the code exists already
    big = json.dumps(dict(UNIT, code="big", address="x" * 1_000_001))
    assert ua.post("/api/compliance/units", content=big, headers={"content-type": "application/json"}).status_code == 413
    assert ua.post("/api/compliance/units", json=dict(UNIT, code="big", address="x" * 4001)).status_code == 422
    assert [u["code"] for u in ua.get("/api/compliance/units").json()] == ["harbour"]
    assert ua.patch("/api/compliance/sites/main", json={"categories": ["national-2025:nope"]}).status_code == 422
    assert ua.patch("/api/compliance/systems/cctv", json={"code": "new"}).status_code == 422


def test_zone_and_consent(tmp_path, db, clock):
    """N10.1, Q7.3: a camera 100 m from a military zone without prior consent is a finding
    (N28); the consent dated before going into use clears it. Zones are the bureau's data."""
    site, ua = unit_site(tmp_path, db, clock)
    cid = build(ua, site)
    ua.put(f"/api/compliance/cameras/{cid}/link",
           json={"system": "cctv", "public_place": False, "lat": 36.0009, "lon": 120.0})
    zone = {"code": "z1", "name": "naval depot", "kind": "military", "lat": 36.0, "lon": 120.0, "radius_m": 500}
    assert ua.post("/api/compliance/zones", json=zone).status_code == 403
    chief = site.sign_in("chief")
    assert chief.post("/api/compliance/zones", json=zone).status_code == 201
    got = findings(ua, "2025-12-15")
    assert ("breach", "zone_without_consent", ("N10.1", "Q7.3"), ("N28",)) in got
    r = ua.post("/api/compliance/consents", json={"zone": "z1", "system": "cctv", "document": "", "on": "2025-11-20"})
    assert r.status_code == 422 and r.json()["field"] == "document"
    body = {"zone": "z1", "system": "cctv", "document": "PLA-7", "on": "2025-11-20"}
    for bad in ("!!", base64.b64encode(b"MZ" + b"\0" * 100).decode(), base64.b64encode(b"%PDF-1").decode()):
        r = ua.post("/api/compliance/consents", json=body | {"document_base64": bad})
        assert r.status_code == 422 and r.json()["field"].startswith("document_"), r.text
    assert [g for g in findings(ua, "2025-12-15") if g[1] == "zone_without_consent"] != []   # nothing stored
    pdf = b"%PDF-1.4\n" + b"0" * 200
    r = ua.post("/api/compliance/consents", json=body | {"document_base64": base64.b64encode(pdf).decode()})
    assert r.status_code == 201, r.text
    got = ua.get(f"/api/compliance/consents/{r.json()['id']}/document")
    assert got.content == pdf and got.headers["content-type"] == "application/pdf"
    assert [g for g in findings(ua, "2025-12-15") if g[1] == "zone_without_consent"] == []


def test_a_camera_without_a_position_stands_at_its_site(tmp_path, db, clock):
    """Q7.3: a site inside a military zone, its camera with no position of its own."""
    site, ua = unit_site(tmp_path, db, clock)
    build(ua, site)
    ua.patch("/api/compliance/sites/main", json={"lat": 36.0, "lon": 120.0})
    site.sign_in("chief").post("/api/compliance/zones", json={"code": "z1", "name": "depot", "kind": "military",
                                                              "lat": 36.0, "lon": 120.001, "radius_m": 200})
    assert ("breach", "zone_without_consent", ("N10.1", "Q7.3"), ("N28",)) in findings(ua, "2025-12-15")
