"""Reports: the unit's to-do list sorted by deadline (filing deadlines Q16.1/N14.1, reminders
such as a maintainer's qualification Q14.1, drafted filings) and the bureau's dashboard by
district, category and status with overdue filings and open cases; CSV (formula-safe) and PDF."""

from __future__ import annotations

import csv
import io

from .test_register import SYSTEM, UNIT, build, unit_site


def test_unit_todo_sorted_by_deadline_with_csv_and_pdf(tmp_path, db, clock):
    site, ua = unit_site(tmp_path, db, clock)          # today 2026-01-01
    build(ua, site)
    ua.patch("/api/compliance/systems/cctv", json={
        "accepted_on": "2025-12-15", "in_use_on": "2025-12-15",
        "contractors": SYSTEM["contractors"] + [{"role": "maintainer", "name": "M Co", "qualification": "Q-2",
                                                 "qualification_expires": "2026-03-01"}]})
    r = ua.get("/api/compliance/reports/todo?unit=harbour")
    assert r.status_code == 200, r.text
    got = [(i["kind"], i["check"], i["deadline"]) for i in r.json()["items"]]
    assert got == [("reminder", "filing.national-2025.in_use.due", "2026-01-14"),
                   ("reminder", "filing.qingdao-2020.acceptance.due", "2026-01-14"),
                   ("reminder", "contractor_qualification_expiring", "2026-03-01")]
    f = ua.post("/api/compliance/filings", json={"system": "cctv", "kind": "in_use"}).json()
    items = ua.get("/api/compliance/reports/todo?unit=harbour&on=2026-01-20").json()["items"]
    assert [(i["kind"], i["check"], i["deadline"]) for i in items] == [
        ("draft_filing", "filing.national-2025.in_use", "2026-01-14"),
        # breaches: the proposed rectification day (detected 2026-01-15 + 30)
        ("breach", "filing.national-2025.in_use", "2026-02-14"),
        ("breach", "filing.qingdao-2020.acceptance", "2026-02-14"),
        ("reminder", "contractor_qualification_expiring", "2026-03-01")]
    assert items[0]["overdue"] and f["id"]
    text = ua.get("/api/compliance/reports/todo?unit=harbour&on=2026-01-20&format=csv").text
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["deadline", "kind", "check", "subject", "requirements", "penalties", "what_to_do"]
    assert rows[2][:6] == ["2026-02-14", "breach", "filing.national-2025.in_use", "system:cctv", "N14.1", "N29"]
    pdf = ua.get("/api/compliance/reports/todo?unit=harbour&format=pdf")
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    # doors
    assert ua.get("/api/compliance/reports/todo?unit=ghost").status_code == 404
    assert ua.get("/api/compliance/reports/todo?unit=harbour&format=xml").status_code == 422
    assert ua.get("/api/compliance/reports/todo?unit=harbour&on=2026-02-31").status_code == 422
    assert ua.get("/api/compliance/reports/todo").status_code == 422
    assert site.sign_in("chief").get("/api/compliance/reports/todo?unit=harbour").status_code == 403


def test_bureau_dashboard_by_district_category_status(tmp_path, db, clock):
    site, ua = unit_site(tmp_path, db, clock)
    build(ua, site)
    ua.patch("/api/compliance/systems/cctv", json={"accepted_on": "2025-12-15", "in_use_on": "2025-12-15"})
    # a second unit, in another district, whose name would be a spreadsheet formula
    ua.post("/api/compliance/units", json=dict(UNIT, code="mall", name="=HYPERLINK(1)", district="Laoshan"))
    ua.post("/api/compliance/sites", json={"unit": "mall", "code": "m1", "name": "mall",
                                           "categories": ["qingdao-2020:commerce_education_health_culture"]})
    chief = site.sign_in("chief")
    assert ua.get("/api/compliance/reports/dashboard").status_code == 403
    snap = ua.get("/api/compliance/units/harbour/snapshot").json()
    from viis.compliance.findings import finding_id
    fid = finding_id("harbour", "filing.national-2025.in_use", "system:cctv")
    r = chief.post("/api/compliance/cases", json={"snapshot": snap, "on": "2026-01-20", "finding_id": fid})
    assert r.status_code == 201, r.text
    d = chief.get("/api/compliance/reports/dashboard?on=2026-01-20").json()
    assert d["by_district"] == {
        "Laoshan": {"units": 1, "breaches": 1, "overdue_filings": 0, "filings_received": 0, "filings_late": 0,
                    "open_cases": 0},
        "Shinan": {"units": 1, "breaches": 2, "overdue_filings": 2, "filings_received": 0, "filings_late": 0,
                   "open_cases": 1}}
    assert d["by_category"]["qingdao-2020:commerce_education_health_culture"] == {"sites": 1, "breaches": 1}
    assert d["by_category"]["national-2025:crowded_venues"] == {"sites": 1, "breaches": 2}
    assert d["findings_by_status"] == {"breach": 3} and d["cases_by_state"] == {"open": 1}
    assert [(o["unit"], o["check"], o["days_overdue"]) for o in d["overdue_filings"]] == [
        ("harbour", "filing.national-2025.in_use", 6), ("harbour", "filing.qingdao-2020.acceptance", 6)]
    text = chief.get("/api/compliance/reports/dashboard?on=2026-01-20&format=csv&table=districts").text
    assert text.splitlines()[0] == "district,units,breaches,overdue_filings,filings_received,filings_late,open_cases"
    assert "Shinan,1,2,2,0,0,1" in text
    # the mall's name reaches no CSV cell as a formula
    ua.post("/api/compliance/systems", json=dict(SYSTEM, site="m1", code="msys", in_use_on="2025-12-01",
                                                 accepted_on="2025-12-01"))
    text = chief.get("/api/compliance/reports/dashboard?on=2026-01-20&format=csv&table=overdue").text
    assert "'=HYPERLINK(1)" in text and ",=HYPERLINK" not in text
    pdf = chief.get("/api/compliance/reports/dashboard?on=2026-01-20&format=pdf")
    assert pdf.content.startswith(b"%PDF")
    assert chief.get("/api/compliance/reports/dashboard?table=bogus&format=csv").status_code == 422


def test_bureau_dashboard_from_snapshots_units_send(tmp_path, db, clock):
    """A unit signs its live snapshot; another installation (the bureau's platform) verifies it
    against the unit's registered key, keeps it once, refuses altered or malformed ones, and
    counts it on its dashboard."""
    import json

    from tests.access.helpers import Site
    from viis.core.db import Database

    site, ua = unit_site(tmp_path, db, clock)
    build(ua, site)
    ua.patch("/api/compliance/systems/cctv", json={"accepted_on": "2025-12-15", "in_use_on": "2025-12-15"})
    pkg = ua.get("/api/compliance/units/harbour/snapshot.signed").json()
    assert pkg["document"]["organisation"]["id"] == "harbour"

    (tmp_path / "bureau").mkdir()
    bdb = Database(f"sqlite:///{tmp_path / 'bureau' / 'viis.db'}")
    bdb.migrate()
    bureau = Site(tmp_path / "bureau", bdb, clock)
    bureau.user("chief", ("bureau_approver",))
    chief, anon = bureau.sign_in("chief"), bureau.client()
    assert anon.post("/api/compliance/intake/snapshots", content=json.dumps(pkg)).status_code == 422  # no key yet
    chief.post("/api/compliance/intake/keys", json={"unit_code": "harbour", "unit_name": "Harbour Hotel",
                                                    "district": "Shinan",
                                                    "public_pem": ua.get("/api/compliance/signing-key").json()["public_pem"]})
    altered = json.loads(json.dumps(pkg))
    altered["document"]["cameras"] = []
    bad = json.loads(json.dumps(pkg))
    bad["document"]["cameras"][0]["retention_days"] = "30"
    for body, words in ((json.dumps(altered), "forged or was altered"), (json.dumps(bad), "cameras[0].retention_days"),
                        ("[]", "exactly"), ("{", "not valid JSON")):
        r = anon.post("/api/compliance/intake/snapshots", content=body)
        assert r.status_code == 422 and words in r.text, r.text
    assert chief.get("/api/compliance/reports/dashboard?on=2026-01-20").json()["by_district"] == {}
    assert anon.post("/api/compliance/intake/snapshots", content=json.dumps(pkg)).status_code == 201
    assert anon.post("/api/compliance/intake/snapshots", content=json.dumps(pkg)).status_code == 200
    d = chief.get("/api/compliance/reports/dashboard?on=2026-01-20").json()
    assert d["by_district"]["Shinan"] | {} == {"units": 1, "breaches": 2, "overdue_filings": 2, "filings_received": 0,
                                               "filings_late": 0, "open_cases": 0}
    assert [o["unit_name"] for o in d["overdue_filings"]] == ["Harbour Hotel", "Harbour Hotel"]
    bdb.dispose()
