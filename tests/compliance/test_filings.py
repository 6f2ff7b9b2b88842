"""Filings (Q16.1, Q16.2, Q16.3, N14.1) generated from the live register into a signed JSON
package and a PDF, submitted by a channel the pack allows, answered by the police intake's
signed receipt; the intake refuses forged, altered, oversized and malformed packages and stores
nothing; filing states drive the engine's filing findings; changes of filed facts are detected
by diffing the live state against the last filing."""

from __future__ import annotations

import base64
import json

from viis.core.signing import Signer

from .test_register import SYSTEM, build, camera, findings, unit_site

DAY_S = 86_400


def checks(client, on):
    return [(k, c) for k, c, _, _ in findings(client, on)]


def test_filing_package_pdf_intake_receipt_and_findings(tmp_path, db, clock):
    site, ua = unit_site(tmp_path, db, clock)          # today 2026-01-01 (Asia/Shanghai 08:00)
    cid = build(ua, site)
    ua.patch("/api/compliance/systems/cctv", json={"accepted_on": "2025-12-15", "in_use_on": "2025-12-15"})
    assert checks(ua, "2026-01-15") == [("breach", "filing.national-2025.in_use"),
                                        ("breach", "filing.qingdao-2020.acceptance")]
    # N14.1 contents from the live configuration, signed; a draft does not count as filed
    r = ua.post("/api/compliance/filings", json={"system": "cctv", "kind": "in_use"})
    assert r.status_code == 201, r.text
    fid = r.json()["id"]
    assert r.json()["due_on"] == "2026-01-14" and r.json()["state"] == "draft"
    assert ua.post("/api/compliance/filings", json={"system": "cctv", "kind": "removal"}).json()["field"] == "kind"
    assert ua.post("/api/compliance/filings", json={"system": "cctv", "kind": "bribe"}).status_code == 422
    assert ua.post("/api/compliance/filings", json={"system": "ghost", "kind": "in_use"}).status_code == 404
    pkg = ua.get(f"/api/compliance/filings/{fid}/package.json").json()
    c = pkg["document"]["contents"]
    assert c["camera_count_and_types"]["count"] == 1 and c["storage_period"]["system_days"] == 30
    assert c["unit_details"]["name"] == "Harbour Hotel" and pkg["document"]["district"] == "Shinan"
    pdf = ua.get(f"/api/compliance/filings/{fid}/filing.pdf")
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    assert b"STSong-Light" in pdf.content
    assert ("breach", "filing.national-2025.in_use") in checks(ua, "2026-01-15")
    # Q16.3 channels for the Qingdao filing; any ordinary channel for the national one
    q = ua.post("/api/compliance/filings", json={"system": "cctv", "kind": "acceptance"}).json()["id"]
    r = ua.post(f"/api/compliance/filings/{q}/submit", json={"channel": "online"})
    assert r.status_code == 422 and r.json()["articles"] == ["Q16.3"]
    assert ua.post(f"/api/compliance/filings/{q}/submit", json={"channel": "fax"}).json()["state"] == "submitted"
    assert ua.post(f"/api/compliance/filings/{fid}/submit", json={"channel": "edi"}).json()["filed_on"] == "2026-01-01"
    assert ua.post(f"/api/compliance/filings/{fid}/submit", json={"channel": "edi"}).status_code == 422
    assert checks(ua, "2026-01-15") == []            # submitted on day 17 of 30: in time

    # the bureau registers the unit's key, then its intake verifies and records the package
    chief = site.sign_in("chief")
    key = ua.get("/api/compliance/signing-key").json()
    assert "PRIVATE" not in key["public_pem"]
    assert ua.post("/api/compliance/intake/keys", json={"unit_code": "harbour", "unit_name": "x",
                                                        "public_pem": key["public_pem"]}).status_code == 403
    r = chief.post("/api/compliance/intake/keys", json={"unit_code": "harbour", "unit_name": "Harbour Hotel",
                                                        "district": "Shinan", "public_pem": key["public_pem"]})
    assert r.status_code == 201 and r.json()["key_id"] == key["key_id"]
    anon = site.client()
    r = anon.post("/api/compliance/intake", content=json.dumps(pkg))
    assert r.status_code == 201, r.text
    rec = r.json()
    assert rec["on_time"] and rec["content_sha256"] == ua.get(f"/api/compliance/filings/{fid}").json()["contents_sha256"]
    again = anon.post("/api/compliance/intake", content=json.dumps(pkg, indent=1))   # same contents
    assert again.status_code == 200 and again.json()["receipt_id"] == rec["receipt_id"]
    assert len(chief.get("/api/compliance/intake/filings").json()) == 1
    assert ua.get("/api/compliance/intake/filings").status_code == 403

    # the receipt accepts the filing; a refusal makes the finding come back
    r = ua.post(f"/api/compliance/filings/{fid}/receipt", json={"receipt": {k: v for k, v in rec.items()}})
    assert r.json()["state"] == "accepted"
    assert ua.post(f"/api/compliance/filings/{q}/receipt", json={"receipt": {"content_sha256": "0" * 64}}).status_code == 422
    assert ua.post(f"/api/compliance/filings/{q}/receipt", json={"refused": "drawings missing"}).json()["state"] == "refused"
    assert checks(ua, "2026-01-15") == [("breach", "filing.qingdao-2020.acceptance")]

    # a camera added after the filing is a change of a filed fact (N14.1), dated when first seen
    c2 = camera(site, "lobby")
    ua.put(f"/api/compliance/cameras/{c2}/link", json={"system": "cctv", "public_place": False})
    (ch,) = ua.get("/api/compliance/units/harbour/changes").json()
    assert ch["what"] == "cameras_added" and ch["detected_on"] == "2026-01-01" and ch["filing_id"] is None
    assert ("breach", "filing.national-2025.change") in checks(ua, "2026-02-01")     # day 31
    assert ("breach", "filing.national-2025.change") not in checks(ua, "2026-01-31")  # day 30
    cf = ua.post("/api/compliance/filings", json={"system": "cctv", "kind": "change"}).json()
    assert cf["due_on"] == "2026-01-31"
    ua.post(f"/api/compliance/filings/{cf['id']}/submit", json={"channel": "online"})
    assert ("breach", "filing.national-2025.change") not in checks(ua, "2026-02-01")
    assert ua.get("/api/compliance/units/harbour/changes").json()[0]["filing_id"] == cf["id"]
    assert cid


def test_intake_refuses_forged_altered_oversized_and_malformed_packages(tmp_path, db, clock):
    """Each refusal names what is wrong; nothing is stored."""
    site, ua = unit_site(tmp_path, db, clock)
    build(ua, site)
    fid = ua.post("/api/compliance/filings", json={"system": "cctv", "kind": "in_use"}).json()["id"]
    pkg = ua.get(f"/api/compliance/filings/{fid}/package.json").json()
    chief = site.sign_in("chief")
    anon = site.client()
    # unknown unit first: no key registered
    r = anon.post("/api/compliance/intake", content=json.dumps(pkg))
    assert r.status_code == 422 and "no registered key" in r.json()["error"]
    chief.post("/api/compliance/intake/keys", json={"unit_code": "harbour", "unit_name": "Harbour Hotel",
                                                    "public_pem": ua.get("/api/compliance/signing-key").json()["public_pem"]})
    altered = json.loads(json.dumps(pkg))
    altered["document"]["contents"]["camera_count_and_types"]["count"] = 0
    forged = json.loads(json.dumps(pkg))
    forged["signature"] = Signer.generate().sign(b"x").as_dict() | {"key_id": pkg["signature"]["key_id"]}
    other = Signer.generate()
    from viis.compliance.filings import canonical
    resigned = {"document": pkg["document"], "signature": other.sign(canonical(pkg["document"])).as_dict()}
    bad_b64 = json.loads(json.dumps(pkg))
    bad_b64["signature"]["value"] = "***"
    deep = {"document": pkg["document"] | {"contents": json.loads("[" * 40 + "]" * 40)}, "signature": pkg["signature"]}
    cases = [
        (json.dumps(altered), 422, "forged or was altered"),
        (json.dumps(forged), 422, "forged or was altered"),
        (json.dumps(resigned), 422, "forged or was altered"),
        (json.dumps(bad_b64), 422, "forged or was altered"),
        ("{not json", 422, "not valid JSON"),
        (b"\xff\xfe", 422, "not UTF-8"),
        (json.dumps(pkg).replace('"version":1', '"version":NaN').replace('"version": 1', '"version": NaN'), 422, "NaN"),
        (json.dumps(deep), 422, "nested deeper"),
        (json.dumps(pkg | {"extra": 1}), 422, "exactly 'document' and 'signature'"),
        (json.dumps({"document": pkg["document"]}), 422, "exactly"),
        (json.dumps({"document": pkg["document"] | {"kind": "bribe"}, "signature": pkg["signature"]}), 422, "kind"),
        (json.dumps({"document": pkg["document"] | {"due_on": "2026-02-30"}, "signature": pkg["signature"]}), 422, "due_on"),
        (json.dumps({"document": pkg["document"], "signature": "sig"}), 422, "signature"),
        (json.dumps([1, 2]), 422, "exactly"),
        (b"x" * (1024 * 1024 + 1), 413, ""),
    ]
    for body, status, words in cases:
        r = anon.post("/api/compliance/intake", content=body)
        assert r.status_code == status, (body[:80], r.status_code, r.text)
        assert words in r.text, (words, r.text)
    assert chief.get("/api/compliance/intake/filings").json() == []
    # a key that is not a PEM public key is refused at registration
    r = chief.post("/api/compliance/intake/keys", json={"unit_code": "x", "unit_name": "x",
                                                        "public_pem": base64.b64encode(b"junk").decode()})
    assert r.status_code == 422
    assert anon.post("/api/compliance/intake", content=json.dumps(pkg)).status_code == 201
    assert SYSTEM["code"] == "cctv"
    # the unit-side doors: unknown ids, malformed bodies, unknown fields
    for path in ("/api/compliance/filings/999", "/api/compliance/filings/999/filing.pdf",
                 "/api/compliance/filings/999/package.json"):
        assert ua.get(path).status_code == 404
    assert ua.post("/api/compliance/filings/999/submit", json={"channel": "edi"}).status_code == 404
    assert ua.post("/api/compliance/filings/999/receipt", json={"refused": "x"}).status_code == 404
    assert ua.post(f"/api/compliance/filings/{fid}/receipt", json={"refused": "x"}).status_code == 422  # a draft
    assert ua.post("/api/compliance/filings", content=b"{", headers={"content-type": "application/json"}).status_code == 422
    assert ua.post("/api/compliance/filings", json={"system": "cctv", "kind": "in_use", "x": 1}).status_code == 422
    assert ua.post(f"/api/compliance/filings/{fid}/submit", json={"channel": "e" * 33}).status_code == 422
    assert len(ua.get("/api/compliance/filings").json()) == 1


def test_changes_of_filed_facts_are_each_detected_once(db, clock, rules, tmp_path):
    """N14.1: storage period, a moved camera and a removed camera are three changes, each
    recorded once with the day it was first seen; a refused change filing reopens them."""
    from datetime import date

    from viis.compliance import filings, register
    from viis.registry.service import CameraInput, CameraService

    today, now = date(2026, 1, 1), clock.wall_ms()
    signer = Signer.generate()
    with db.session() as s:
        register.add_unit(s, code="u", name="U", use="business", now_ms=now)
        register.add_site(s, rules, unit_code="u", code="s", name="S", categories=[], today=today, now_ms=now)
        register.add_system(s, site_code="s", code="y", name="Y", purpose="p", storage_days=30,
                            in_use_on=date(2025, 12, 20), now_ms=now)
        cams = CameraService(rules, clock)
        a = cams.add(s, CameraInput(name="a", main_url="rtsp://127.0.0.1/a")).id
        b = cams.add(s, CameraInput(name="b", main_url="rtsp://127.0.0.1/b")).id
        for c in (a, b):
            register.link_camera(s, camera_id=c, system_code="y", lat=36.0, lon=120.0, now_ms=now)
        f = filings.create_filing(s, rules, signer, system_code="y", kind="in_use", today=today, actor="t", now_ms=now)
        filings.submit(s, rules, f.id, channel="online", today=today, now_ms=now)
        sy = register.system(s, "y")
        assert filings.detect_changes(s, sy, today=today, now_ms=now) == []
        register.update_system(s, "y", {"storage_days": 60}, now_ms=now)
        register.link_camera(s, camera_id=a, system_code="y", lat=36.001, lon=120.0, now_ms=now)
        cams.update(s, b, {"enabled": False})
        got = filings.detect_changes(s, sy, today=date(2026, 1, 2), now_ms=now)
        assert sorted(c.what for c in got) == ["cameras_removed", "locations", "storage_period"]
        assert filings.detect_changes(s, sy, today=date(2026, 1, 3), now_ms=now) == []   # once
        cf = filings.create_filing(s, rules, signer, system_code="y", kind="change", today=date(2026, 1, 3),
                                   actor="t", now_ms=now)
        assert cf.event_on == date(2026, 1, 2) and cf.due_on == date(2026, 2, 1)
        filings.submit(s, rules, cf.id, channel="online", today=date(2026, 1, 3), now_ms=now)
        filings.record_receipt(s, cf.id, refused="incomplete", now_ms=now)
        from sqlalchemy import select

        from viis.compliance.registry_models import FiledChange
        assert [c.filing_id for c in s.scalars(select(FiledChange))] == [None, None, None]
