"""Inspections (Q25.1, N24.1): checklists from the packs, results with photos, findings that
cite what the engine cites; public tips refused whole on hostile input."""

from __future__ import annotations

import hashlib
from datetime import date

import pytest
from sqlalchemy import func, select

from viis.compliance import cases, inspections
from viis.compliance.engine import evaluate
from viis.compliance.inspections import InspectionError, TipLimiter, checklist
from viis.compliance.models import CompliancePhoto, Tip

from .snapbuild import clean, snap

ON = date(2026, 3, 1)
T0 = 1_772_000_000_000
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 200
JPEG = b"\xff\xd8\xff\xe0" + b"\x01" * 200
HUB = ["qingdao-2020:transport_hubs_and_vehicles", "national-2025:transport_hubs"]
OTHER = ["national-2025:other_public_place"]


def reqs(rules, cats, on=ON):
    return [i.requirement for i in checklist(rules, on, cats)]


def test_checklist_for_a_mandatory_transport_hub(rules):
    got = reqs(rules, HUB)
    # who must build (Q7.1 item 2, Q8.2 operator) and who may install (N7.3) come from the categories
    assert {"Q7.1", "Q8.2", "N7.3"} <= set(got)
    # the unit's duties: filing, signage, forbidden places, retention, duty regime, data
    assert {"Q16.1", "N14.1", "Q17.1", "N13.1", "Q9.1", "N8.1", "Q19.3", "Q19.7", "N17.1",
            "Q20.3", "N23.1"} <= set(got)
    # police duties (Q23/Q24 retrieval, Q25.1, N24.1) are not the unit's; neither are other classes'
    assert not {"Q23.1", "Q24.1", "Q25.1", "N24.1", "N20.1", "N9.1", "N33.1", "Q8.1"} & set(got)
    assert got[0].startswith("N")  # strongest pack first
    assert len(got) == len(set(got))


def test_checklist_for_an_other_public_place_leaves_out_what_n9_lifts(rules):
    got = reqs(rules, OTHER)
    assert "N9.1" in got and "N7.3" not in got
    assert not {"N11.1", "N14.1", "N15.1", "N16.1", "N17.1"} & set(got)   # N9¶2 exemptions
    assert not {"Q7.1", "Q8.2"} & set(got)   # no Qingdao mandatory category given
    assert {"Q17.1", "N13.1", "Q9.1", "N8.1"} <= set(got)


def test_checklist_before_the_national_pack_is_qingdao_only(rules):
    got = reqs(rules, ["qingdao-2020:transport_hubs_and_vehicles"], on=date(2025, 3, 31))
    assert got and all(r.startswith("Q") for r in got)


def test_unknown_category_is_refused(rules):
    with pytest.raises(InspectionError, match="unknown site category 'qingdao-2020:moon'") as e:
        checklist(rules, ON, ["qingdao-2020:moon"])
    assert e.value.field == "site_categories[0]"


def start(s, rules, use="business", party="unit", cats=None):
    return inspections.start_inspection(
        s, rules, organisation="org1", organisation_name="Harbour Hotel", use=use, party=party,
        site="s1", categories=cats or ["qingdao-2020:residential_lodging_catering_markets_parking",
                                       "national-2025:crowded_venues"], on=ON, inspector="inv1",
        now_ms=T0)


def seq_of(s, insp, req):
    return next(i.seq for i in inspections.items_of(s, insp.id) if i.requirement == req)


def engine_finding(rules, change):
    d = clean()
    change(d)
    (f,) = [x for x in evaluate(snap(d), rules, ON) if x.kind == "breach"]
    return f


def _fault(d):
    d["activity"]["faults"] = [{"id": "F1", "camera": "c1", "kind": "offline",
                                "first_seen": "2026-02-20T00:00:00+08:00"}]


def _no_acceptance_filing(d):
    d["filings"] = [x for x in d["filings"] if x["kind"] != "acceptance"]


def _no_sign(d):
    d["cameras"][0]["signage"] = {"present": False, "photo": False}


@pytest.mark.parametrize("change,failed", [
    (_fault, ["Q19.3"]),                      # Q29
    (_no_acceptance_filing, ["Q16.1"]),       # Q28.1, and not Q27's order to remove
    (_no_sign, ["N13.1", "Q17.1"]),           # N13.2 + Q28.2
])
@pytest.mark.parametrize("use,party", [("business", "unit"), ("non_business", "individual")])
def test_failed_item_cites_what_the_engine_cites(db, rules, change, failed, use, party):
    def mutate(d):
        d["organisation"].update(use=use, party=party)
        change(d)

    f = engine_finding(rules, mutate)
    assert list(f.requirements) == failed
    with db.session() as s:
        insp = start(s, rules, use=use, party=party)
        for req in failed:
            inspections.record_result(s, insp.id, seq_of(s, insp, req), result="fail",
                                      note=f"{req} not met", actor="inv1", now_ms=T0, photo=PNG)
        got = inspections.inspection_findings(s, rules, insp.id)
    assert [g.requirements for g in got] == [(r,) for r in failed]
    cited = [c for g in got for c in g.penalties]
    assert sorted(cited, key=lambda c: c.penalty) == sorted(f.penalties, key=lambda c: c.penalty)
    assert all(g.kind == "breach" and g.evidence[1].value == hashlib.sha256(PNG).hexdigest() for g in got)


def test_inspection_finding_becomes_a_case(db, rules):
    with db.session() as s:
        insp = start(s, rules)
        inspections.record_result(s, insp.id, seq_of(s, insp, "Q9.1"), result="fail",
                                  note="camera in the staff toilet", actor="inv1", now_ms=T0)
        (f,) = inspections.inspection_findings(s, rules, insp.id)
        assert f.penalty_ids == ("Q27",)
        with pytest.raises(InspectionError, match="items without a result"):
            inspections.complete_inspection(s, insp.id, actor="inv1", now_ms=T0)
        c = cases.open_case(s, f, organisation="org1", organisation_name="Harbour Hotel",
                            use="business", party="unit", actor="inv1", now_ms=T0,
                            source="inspection", inspection_id=insp.id)
        assert c.citations[0]["fines"][0]["min"] == 10_000 and c.source == "inspection"
        # the same failure keeps its id: a second inspection does not open a second case
        again = start(s, rules)
        inspections.record_result(s, again.id, seq_of(s, again, "Q9.1"), result="fail", note="still",
                                  actor="inv1", now_ms=T0)
        assert inspections.inspection_findings(s, rules, again.id)[0].id == f.id


def test_results_need_a_note_on_failure_and_are_final_once_completed(db, rules):
    with db.session() as s:
        insp = start(s, rules, cats=OTHER)
        with pytest.raises(InspectionError, match="note is required"):
            inspections.record_result(s, insp.id, 1, result="fail", actor="inv1", now_ms=T0)
        with pytest.raises(InspectionError, match="result must be one of"):
            inspections.record_result(s, insp.id, 1, result="maybe", actor="inv1", now_ms=T0)
        for it in inspections.items_of(s, insp.id):
            inspections.record_result(s, insp.id, it.seq, result="pass", actor="inv1", now_ms=T0)
        inspections.complete_inspection(s, insp.id, actor="inv1", now_ms=T0)
        with pytest.raises(InspectionError, match="results are final"):
            inspections.record_result(s, insp.id, 1, result="fail", note="x", actor="inv1", now_ms=T0)
        assert inspections.inspection_findings(s, rules, insp.id) == []


@pytest.mark.parametrize("data,why", [
    (b"GIF89a" + b"\x00" * 200, "JPEG or PNG"),
    (b"<svg onload=alert(1)>" + b" " * 100, "JPEG or PNG"),
    (b"\x89PNG", "too small"),
    (b"\xff\xd8\xff" + b"\x00" * inspections.MAX_PHOTO_BYTES, "over the limit"),
])
def test_photos_are_checked_by_magic_bytes_and_size(db, rules, data, why):
    with db.session() as s:
        insp = start(s, rules)
        with pytest.raises(InspectionError, match=why):
            inspections.record_result(s, insp.id, 1, result="fail", note="x", actor="inv1",
                                      now_ms=T0, photo=data)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(CompliancePhoto)) == 0


def test_photo_stored_once_under_its_sha256(db, rules):
    with db.session() as s:
        insp = start(s, rules)
        for seq in (1, 2):
            inspections.record_result(s, insp.id, seq, result="fail", note="x", actor="inv1",
                                      now_ms=T0, photo=JPEG)
    with db.session() as s:
        (p,) = s.scalars(select(CompliancePhoto)).all()
        assert p.sha256 == hashlib.sha256(JPEG).hexdigest() and p.media_type == "image/jpeg"
        assert p.data == JPEG and p.size == len(JPEG)


# tips (N24.1) ------------------------------------------------------------------------------

GOOD = dict(location="Hai'an Rd 3, behind the bath house", description="a camera faces the showers")


@pytest.mark.parametrize("change,why", [
    (dict(location="x" * 501), "location is 501 characters"),
    (dict(description="y" * 4001), "description is 4001 characters"),
    (dict(location="   "), "location is required"),
    (dict(description="ok\x00<script>"), "control or format character U\\+0000"),
    (dict(description="rtl \u202e trick"), "U\\+202E"),
    (dict(latitude=91.0, longitude=120.0), "latitude must be a number"),
    (dict(latitude=float("nan"), longitude=120.0), "latitude must be a number"),
    (dict(latitude=36.0), "both latitude and longitude"),
    (dict(photo=b"MZ\x90\x00" + b"\x00" * 100), "JPEG or PNG"),
    (dict(photo=PNG, contact="\x1b[31m"), "contact contains"),
])
def test_hostile_tips_are_refused_and_nothing_is_stored(db, change, why):
    with db.session() as s:
        with pytest.raises(InspectionError, match=why):
            inspections.submit_tip(s, **(GOOD | change), now_ms=T0)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Tip)) == 0
        assert s.scalar(select(func.count()).select_from(CompliancePhoto)) == 0


def test_tip_triage_into_an_inspection_or_dismissed(db, rules):
    with db.session() as s:
        a = inspections.submit_tip(s, **GOOD, latitude=36.06, longitude=120.38, photo=PNG, now_ms=T0)
        b = inspections.submit_tip(s, location="Zhongshan Rd", description="camera in fitting room",
                                   now_ms=T0)
        t, insp = inspections.tip_to_inspection(
            s, rules, a.id, actor="inv1", now_ms=T0 + 1, organisation="bath1",
            organisation_name="Bath House", use="business", party="unit", site="main",
            categories=["qingdao-2020:residential_lodging_catering_markets_parking"], on=ON)
        assert (t.state, t.inspection_id, insp.tip_id) == ("inspection", insp.id, a.id)
        with pytest.raises(InspectionError, match="reason is required"):
            inspections.dismiss_tip(s, b.id, reason=" ", actor="inv1", now_ms=T0)
        inspections.dismiss_tip(s, b.id, reason="no camera found on site visit", actor="inv1", now_ms=T0)
        with pytest.raises(InspectionError, match="already triaged"):
            inspections.dismiss_tip(s, a.id, reason="x", actor="inv1", now_ms=T0)


def test_tip_limiter_per_address():
    now = [0.0]
    lim = TipLimiter(per_window=2, window_s=60, clock=lambda: now[0])
    assert lim.allow("a") and lim.allow("a") and not lim.allow("a") and lim.allow("b")
    now[0] = 61
    assert lim.allow("a")
