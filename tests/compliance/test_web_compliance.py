"""The compliance API, police side: a case from a snapshot's finding through the decision,
an inspection with a photo, and public tips (open, bounded, rate-limited)."""

from __future__ import annotations

import base64
import hashlib

from tests.access.helpers import Site

from .snapbuild import clean

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 200


def police(tmp_path, db, clock):
    site = Site(tmp_path, db, clock)
    site.user("inv", ("police_investigator",))
    site.user("chief", ("bureau_approver",))
    site.user("ua", ("unit_admin",))
    return site, site.sign_in("inv"), site.sign_in("chief")


def test_case_from_a_snapshot_finding_to_a_decision(tmp_path, db, clock):
    site, inv, chief = police(tmp_path, db, clock)
    d = clean()
    d["cameras"][0]["location_type"] = "toilet"
    r = site.client().post("/api/compliance/cases", json={})
    assert r.status_code == 401
    found = inv.post("/api/compliance/cases", json={"snapshot": d, "on": "2026-03-01",
                                                    "finding_id": "Fnope"})
    assert found.status_code == 404
    from viis.compliance.findings import finding_id
    fid = finding_id("org1", "forbidden_location", "camera:c1")
    r = inv.post("/api/compliance/cases", json={"snapshot": d, "on": "2026-03-01", "finding_id": fid})
    assert r.status_code == 201, r.text
    case = r.json()
    assert case["state"] == "open" and [c["penalty"] for c in case["citations"]] == ["N27.1", "Q27"]
    cid = case["id"]
    assert site.sign_in("ua").get(f"/api/compliance/cases/{cid}").status_code == 403
    r = inv.post(f"/api/compliance/cases/{cid}/reinspect", json={"rectified": True})
    assert r.status_code == 422 and "cannot reinspect" in r.json()["error"]
    assert inv.post(f"/api/compliance/cases/{cid}/order", json={"rectify_by": "2026-01-31"}).status_code == 200
    r = inv.post(f"/api/compliance/cases/{cid}/reinspect", json={"rectified": False, "on": "2026-02-01"})
    assert r.json()["state"] == "unrectified"
    body = {"penalty": "Q27", "party": "unit", "amount": 40_000, "served_on": "2026-02-02"}
    assert inv.post(f"/api/compliance/cases/{cid}/decide", json=body).status_code == 403
    r = chief.post(f"/api/compliance/cases/{cid}/decide", json=body)
    assert r.status_code == 422
    assert "10,000–30,000 CNY" in r.json()["error"] and r.json()["articles"] == ["Q27"]
    r = chief.post(f"/api/compliance/cases/{cid}/decide", json=body | {"amount": 12_000})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["decision"]["amount"] == 12_000 and got["appeal"]["reconsideration_by"] == "2026-04-03"
    assert [(e["action"], e["actor"]) for e in got["events"]] == [
        ("open", "inv"), ("order", "inv"), ("reinspect", "inv"), ("decide", "chief")]
    assert [c["id"] for c in inv.get("/api/compliance/cases?state=decided").json()] == [cid]


def test_inspection_with_a_photo_and_its_finding(tmp_path, db, clock):
    site, inv, _ = police(tmp_path, db, clock)
    r = inv.post("/api/compliance/inspections", json={
        "organisation": "org1", "organisation_name": "Harbour Hotel", "use": "business",
        "site": "s1", "site_categories": ["qingdao-2020:residential_lodging_catering_markets_parking"],
        "on": "2026-03-01"})
    assert r.status_code == 201, r.text
    insp = r.json()
    seq = next(i["seq"] for i in insp["items"] if i["requirement"] == "Q17.1")
    r = inv.post(f"/api/compliance/inspections/{insp['id']}/items/{seq}",
                 json={"result": "fail", "note": "no sign at the gate", "photo_base64": "!!"})
    assert r.status_code == 422
    r = inv.post(f"/api/compliance/inspections/{insp['id']}/items/{seq}", json={
        "result": "fail", "note": "no sign at the gate",
        "photo_base64": base64.b64encode(PNG).decode()})
    assert r.status_code == 200
    sha = hashlib.sha256(PNG).hexdigest()
    photo = inv.get(f"/api/compliance/photos/{sha}")
    assert photo.content == PNG and photo.headers["content-type"] == "image/png"
    (f,) = inv.get(f"/api/compliance/inspections/{insp['id']}/findings").json()
    assert f["requirements"] == ["Q17.1"] and [c["penalty"] for c in f["penalties"]] == ["Q28.2"]
    r = inv.post("/api/compliance/cases", json={"inspection_id": insp["id"], "finding_id": f["id"]})
    assert r.status_code == 201 and r.json()["source"] == "inspection"


def test_public_tips_bounded_and_rate_limited(tmp_path, db, clock):
    site, inv, _ = police(tmp_path, db, clock)
    anon = site.client()
    bad = [{"location": "x" * 501, "description": "d"},
           {"location": "Hai'an Rd", "description": "a\x00b"},
           {"location": "Hai'an Rd", "description": "d", "photo_base64": base64.b64encode(b"<html>" * 20).decode()},
           {"location": "Hai'an Rd", "description": "d", "extra": 1}]
    for body in bad:
        assert anon.post("/api/compliance/tips", json=body).status_code == 422, body
    assert inv.get("/api/compliance/tips").json() == []
    big = anon.post("/api/compliance/tips", content=b"{" + b" " * 2_000_000 + b"}",
                    headers={"content-type": "application/json"})
    assert big.status_code == 413
    r = anon.post("/api/compliance/tips", json={"location": "Hai'an Rd 3", "description": "camera in bath",
                                               "photo_base64": base64.b64encode(PNG).decode()})
    assert r.status_code == 201 and set(r.json()) == {"id", "received_ms", "state"}
    # the four refused tips count: the fifth of the hour was the last one from this address
    again = anon.post("/api/compliance/tips", json={"location": "Hai'an Rd 3", "description": "again"})
    assert again.status_code == 429 and again.headers["retry-after"] == "3600"
    tid = r.json()["id"]
    assert anon.get("/api/compliance/tips").status_code == 401
    r = inv.post(f"/api/compliance/tips/{tid}/dismiss", json={"reason": "visited: no camera"})
    assert r.json()["state"] == "dismissed" and r.json()["triaged_by"] == "inv"
