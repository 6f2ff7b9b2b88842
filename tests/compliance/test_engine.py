"""The compliance engine: for each penalty article it covers, a state that breaches it and one
that just does not (boundary days included), checked exactly: requirement ids and penalty
articles, no missing citation and no extra one (invariant 4)."""

from __future__ import annotations

import random
from datetime import date

import pytest

from viis.compliance.engine import evaluate
from viis.compliance.snapshot import SnapshotError

from .snapbuild import clean, snap

ON = date(2026, 3, 1)


def found(rules, d, on=ON):
    return [(f.kind, f.check, f.subject, f.requirements, f.penalty_ids)
            for f in evaluate(snap(d), rules, on)]


def only(rules, d, on=ON):
    got = found(rules, d, on)
    assert len(got) == 1, got
    return got[0]


def test_clean_unit_has_no_findings(rules):
    """A unit meeting every covered duty (Q16.1, N14.1, Q17.1, Q19.7, ...) yields nothing."""
    assert found(rules, clean()) == []


# --- filings: Q16.1/Q28.1, N14.1/N29 -----------------------------------------------------------

def _new_system(d, day="2026-01-30"):
    d["systems"][0]["accepted_on"] = d["systems"][0]["in_use_on"] = day
    d["cameras"][0]["installed_on"] = day
    return d


@pytest.mark.parametrize("kind,check,req,pen", [
    ("acceptance", "filing.qingdao-2020.acceptance", "Q16.1", "Q28.1"),
    ("in_use", "filing.national-2025.in_use", "N14.1", "N29"),
])
def test_filing_day_30_is_in_time_day_31_is_late(rules, kind, check, req, pen):
    """Q16.1 (30 days after acceptance) and N14.1 (30 days after going into use): accepted and
    in use 2026-01-30, the last day is 2026-03-01 (day 30); filed on day 31 is late."""
    d = _new_system(clean())
    other = [f for f in d["filings"] if f["kind"] != kind]
    d["filings"] = other + [{"id": "fx", "system": "sys1", "kind": kind, "filed_on": "2026-03-01"}]
    assert found(rules, d, date(2026, 3, 2)) == []
    d["filings"][-1]["filed_on"] = "2026-03-02"
    assert only(rules, d, date(2026, 3, 2)) == ("breach", check + ".late", "system:sys1", (req,), (pen,))
    d["filings"] = other
    assert only(rules, d, date(2026, 3, 1)) == ("reminder", check + ".due", "system:sys1", (req,), (pen,))
    f = evaluate(snap(d), rules, date(2026, 3, 2))
    assert [(x.check, x.requirements, x.penalty_ids) for x in f] == [(check, (req,), (pen,))]
    assert f[0].due == date(2026, 3, 1) and f[0].detected_on == date(2026, 3, 2)
    assert f[0].rectify_by == date(2026, 4, 1)
    assert found(rules, d, date(2026, 2, 14)) == []   # 15 days ahead: no reminder yet


def test_existing_system_files_within_90_days_of_2025_04_01(rules):
    """N14.1: a system in use before 2025-04-01 files within 90 days (last day 2025-06-30);
    its in-use date does not count. Either filing kind of N14.1 satisfies it."""
    d = clean()
    d["systems"][0]["accepted_on"] = d["systems"][0]["in_use_on"] = "2024-06-01"
    d["filings"] = [{"id": "f1", "system": "sys1", "kind": "acceptance", "filed_on": "2024-06-20"},
                    {"id": "f2", "system": "sys1", "kind": "existing", "filed_on": "2025-06-30"}]
    assert found(rules, d) == []
    d["filings"][1]["kind"] = "in_use"
    assert found(rules, d) == []
    d["filings"][1]["filed_on"] = "2025-07-01"
    assert only(rules, d) == ("breach", "filing.national-2025.existing.late", "system:sys1", ("N14.1",), ("N29",))
    d["filings"].pop()
    assert only(rules, d) == ("breach", "filing.national-2025.existing", "system:sys1", ("N14.1",), ("N29",))
    assert only(rules, d, date(2025, 6, 30))[0:2] == ("reminder", "filing.national-2025.existing.due")


def test_removal_filing_q16_2(rules):
    """Q16.2: a removal is filed within 30 days; day 31 without one is a Q28.1 breach."""
    d = clean()
    d["systems"].append({"id": "sys2", "site": "s1", "purpose": "p", "storage_days": 30,
                         "accepted_on": "2025-06-01", "in_use_on": "2025-06-01",
                         "removed_on": "2026-01-30"})
    d["filings"] += [{"id": "f3", "system": "sys2", "kind": "acceptance", "filed_on": "2025-06-02"},
                     {"id": "f4", "system": "sys2", "kind": "in_use", "filed_on": "2025-06-02"}]
    assert found(rules, d, date(2026, 3, 2)) == [
        ("breach", "filing.qingdao-2020.removal", "system:sys2", ("Q16.2",), ("Q28.1",))]
    d["filings"].append({"id": "f5", "system": "sys2", "kind": "removal", "filed_on": "2026-03-01"})
    assert found(rules, d, date(2026, 3, 2)) == []


def test_change_filing_uses_the_default_and_says_so(rules):
    """N14.1: a change is filed promptly; 30 days is a VIIS default and the finding says so."""
    d = clean()
    d["systems"][0]["changes"] = [{"on": "2026-01-01", "what": "storage_period"}]
    f = evaluate(snap(d), rules, ON)
    assert [(x.check, x.subject, x.requirements, x.penalty_ids) for x in f] == [
        ("filing.national-2025.change", "system:sys1#0", ("N14.1",), ("N29",))]
    assert any("VIIS default" in n for n in f[0].defaults)
    d["filings"].append({"id": "f9", "system": "sys1", "kind": "change", "filed_on": "2026-01-31"})
    assert found(rules, d) == []


# --- places: Q9.1/Q27, N8.1/N27.1, Q17.1/Q28.2, N13.1/N13.2, Q7.1/Q26 ---------------------------

@pytest.mark.parametrize("place,reqs,pens", [
    ("toilet", ("N8.1", "Q9.1"), ("N27.1", "Q27")),
    ("hotel_guest_room", ("N8.1", "Q9.1"), ("N27.1", "Q27")),
    ("private_dining_room", ("N8.1",), ("N27.1",)),
    ("staff_rest_room", ("N8.1",), ("N27.1",)),
    ("entrance_exit", None, None),
])
def test_forbidden_location_by_import(rules, place, reqs, pens):
    """Q9.1, N8.1: a camera imported in a privacy place yields the finding citing both."""
    d = clean()
    d["cameras"][0]["location_type"] = place
    want = [] if reqs is None else [("breach", "forbidden_location", "camera:c1", reqs, pens)]
    assert found(rules, d) == want


def test_fine_ranges_follow_use_and_party(rules):
    """Q27 (business 10,000-30,000 / non-business 1,000-3,000), N27.1 (unit 10,000-20,000 and
    managers 5,000-10,000; individual 5,000-10,000)."""
    d = clean()
    d["cameras"][0]["location_type"] = "toilet"
    f = evaluate(snap(d), rules, ON)[0]
    fines = {c.penalty: [(x.party, x.min, x.max) for x in c.fines] for c in f.penalties}
    assert fines == {"N27.1": [("unit", 10000, 20000), ("responsible_person", 5000, 10000)],
                     "Q27": [("any", 10000, 30000)]}
    d["organisation"].update(use="non_business", party="individual")
    f = evaluate(snap(d), rules, ON)[0]
    fines = {c.penalty: [(x.party, x.min, x.max) for x in c.fines] for c in f.penalties}
    assert fines == {"N27.1": [("individual", 5000, 10000)], "Q27": [("any", 1000, 3000)]}


def test_before_the_national_pack_only_qingdao_is_cited(rules):
    """Q9.1/Q27 alone on 2024-12-01: N8.1 is not in force before 2025-04-01 (N34.1)."""
    d = clean()
    d["systems"][0]["accepted_on"] = d["systems"][0]["in_use_on"] = "2023-01-01"
    d["filings"] = [{"id": "f1", "system": "sys1", "kind": "acceptance", "filed_on": "2023-01-10"}]
    d["cameras"][0]["location_type"] = "toilet"
    assert found(rules, d, date(2024, 12, 1)) == [
        ("breach", "forbidden_location", "camera:c1", ("Q9.1",), ("Q27",))]


def test_signage(rules):
    """Q17.1/Q28.2 and N13.1/N13.2: no sign in a public place; none needed in a non-public one."""
    d = clean()
    d["cameras"][0]["signage"] = {"present": False}
    assert found(rules, d) == [("breach", "signage_missing", "camera:c1", ("N13.1", "Q17.1"), ("N13.2", "Q28.2"))]
    d["cameras"][0]["public_place"] = False
    assert found(rules, d) == []


def test_mandatory_site_without_a_running_system(rules):
    """Q7.1, Q8.2 → Q26: a category-7 place whose system is not yet in use."""
    d = clean()
    d["systems"][0]["in_use_on"] = "2026-03-02"
    got = found(rules, d)
    assert ("breach", "mandatory_site_without_system", "site:s1", ("Q7.1", "Q8.2"), ("Q26",)) in got
    assert [g for g in got if g[1] != "mandatory_site_without_system"] == []


# --- retention: Q19.7/Q29, N17.1/N31 ---------------------------------------------------------------

@pytest.mark.parametrize("days,want", [(29, True), (30, False)])
def test_retention_below_minimum(rules, days, want):
    """Q19.7, N17.1: 29 days breaches, 30 does not."""
    d = clean()
    d["cameras"][0]["retention_days"] = days
    assert found(rules, d) == ([("breach", "retention_below_minimum", "camera:c1", ("N17.1", "Q19.7"),
                                 ("N31", "Q29"))] if want else [])


def test_other_public_place_is_exempt_from_n17_and_n14(rules):
    """N9.1 ¶2 lifts N14.1 and N17.1 at other public places; Q19.7 still applies (Q29 only)."""
    d = clean()
    d["sites"][0]["categories"] = ["qingdao-2020:other_public_security_places", "national-2025:other_public_place"]
    d["filings"] = [f for f in d["filings"] if f["kind"] != "in_use"]
    d["cameras"][0]["retention_days"] = 29
    assert found(rules, d) == [("breach", "retention_below_minimum", "camera:c1", ("Q19.7",), ("Q29",))]


@pytest.mark.parametrize("kept,recording,removed,want", [
    (29, 200, 0, True), (30, 200, 0, False), (20, 20, 0, False), (30, 200, 1, True)])
def test_footage_cut_short(rules, kept, recording, removed, want):
    """Q19.7, N17.1: footage younger than 30 days on a camera that recorded longer, or removed
    within retention."""
    d = clean()
    d["activity"]["retention"][0].update(kept_days=kept, recording_days=recording, removed_in_retention=removed)
    assert found(rules, d) == ([("breach", "footage_cut_short", "camera:c1", ("N17.1", "Q19.7"),
                                 ("N31", "Q29"))] if want else [])


@pytest.mark.parametrize("kept,basis,want", [(31, "", True), (30, "", False), (31, "hold 7: case 12", False)])
def test_footage_kept_past_the_national_default(rules, kept, basis, want):
    """N17.1: after 30 days footage whose purpose is served goes, unless a basis is recorded."""
    d = clean()
    d["activity"]["retention"][0].update(kept_days=kept, basis=basis)
    assert found(rules, d) == ([("breach", "footage_kept_past_default", "camera:c1", ("N17.1",), ("N31",))]
                               if want else [])


def test_retention_configured_past_default_needs_a_basis(rules):
    """N17.1: a retention setting above 30 days needs a recorded legal basis."""
    d = clean()
    d["cameras"][0]["retention_days"] = 31
    assert found(rules, d) == [("breach", "retention_past_default", "camera:c1", ("N17.1",), ("N31",))]
    d["cameras"][0]["retention_basis"] = "bank rules: 90 days"
    assert found(rules, d) == []


# --- integrity: Q20.3/Q30, N15.1+N23.1/N31 (not N30) ---------------------------------------------

def test_integrity_failure_cites_tamper_articles_not_n30(rules):
    """Q20.3, N15.1, N23.1: a failed verification; N30 (moving cameras) is not cited."""
    d = clean()
    d["activity"]["integrity"][0] = {"camera": "c1", "verified_at": "2026-02-28T23:00:00+08:00",
                                     "ok": False, "problems": [{"kind": "removed"}]}
    assert found(rules, d) == [("breach", "integrity_failure", "camera:c1", ("N15.1", "N23.1", "Q20.3"),
                                ("N31", "Q30"))]


# --- faults: Q19.3/Q29 --------------------------------------------------------------------------------

@pytest.mark.parametrize("first_seen,measure,kind", [
    ("2026-02-26T00:00:00+08:00", "", "breach"),      # 72 h end at 03-01 00:00 < end of 03-01
    ("2026-02-27T00:00:00+08:00", "", "reminder"),    # ends 03-02 00:00: not yet past
    ("2026-02-20T00:00:00+08:00", "spare camera on the pole", None),
])
def test_fault_unrepaired_past_the_repair_limit(rules, first_seen, measure, kind):
    """Q19.3: a fault open past fault_repair (72 h, a VIIS default) without an emergency measure."""
    d = clean()
    d["activity"]["faults"] = [{"id": "F1", "camera": "c1", "kind": "offline", "first_seen": first_seen,
                                "emergency_measure": measure}]
    got = found(rules, d)
    if kind is None:
        assert got == []
    else:
        check = "fault_unrepaired" if kind == "breach" else "fault_repair_due"
        assert got == [(kind, check, "fault:F1", ("Q19.3",), ("Q29",))]


# --- duty and training: Q19.1, Q19.2/Q29, N16.1/N31 --------------------------------------------------

@pytest.mark.parametrize("trained,want", [("2026-02-28", True), ("2026-02-27", False), (None, True)])
def test_untrained_staff_on_duty(rules, trained, want):
    """Q19.2, N16.1: on duty 2026-02-27; trained that day is fine, the day after is not."""
    d = clean()
    d["activity"]["duty"]["staff"][0]["trained_on"] = trained
    assert found(rules, d) == ([("breach", "untrained_on_duty", "staff:u1", ("N16.1", "Q19.2"), ("N31", "Q29"))]
                               if want else [])


def test_duty_log_missing(rules):
    """Q19.1 → Q29."""
    d = clean()
    d["activity"]["duty"]["log_kept"] = False
    assert found(rules, d) == [("breach", "duty_log_missing", "organisation:org1", ("Q19.1",), ("Q29",))]


# --- retrievals: Q23.1/Q31, Q20.5/Q30, N20.1/N32, Q24.1/Q31, N21.1/N31 -------------------------------

def test_retrieval_without_approval(rules):
    """Q23.1, N20.1, Q20.5: police retrieval without the bureau head's approval."""
    d = clean()
    d["activity"]["retrievals"][0].update(approved=False, approval_document="")
    assert found(rules, d) == [("breach", "retrieval_unapproved", "retrieval:r1", ("N20.1", "Q20.5", "Q23.1"),
                                ("N32", "Q30", "Q31"))]


def test_individual_viewing_without_consent(rules):
    """N21.1, Q20.5: an individual viewed footage without the operator's consent."""
    d = clean()
    d["activity"]["retrievals"][0].update(requester_kind="individual", approved=False, staff_count=0)
    assert found(rules, d) == [("breach", "retrieval_unapproved", "retrieval:r1", ("N21.1", "Q20.5"),
                                ("N31", "Q30"))]


@pytest.mark.parametrize("staff,want", [(1, True), (2, False)])
def test_retrieval_needs_two_staff(rules, staff, want):
    """Q24.1 → Q31: at least two staff."""
    d = clean()
    d["activity"]["retrievals"][0]["staff_count"] = staff
    assert found(rules, d) == ([("breach", "retrieval_procedure", "retrieval:r1", ("Q24.1",), ("Q31",))]
                               if want else [])


def test_retrieval_register_fields(rules):
    """Q19.1, N16.1: reason, content, unit and name are registered."""
    d = clean()
    d["activity"]["retrievals"][0]["reason"] = ""
    assert found(rules, d) == [("breach", "retrieval_register_incomplete", "retrieval:r1", ("N16.1", "Q19.1"),
                                ("N31", "Q29"))]


# --- contractors: Q14.1 (no penalty article in either pack) -------------------------------------------

@pytest.mark.parametrize("expires,want", [("2025-05-31", True), ("2025-06-01", False)])
def test_builder_qualification_at_acceptance(rules, expires, want):
    """Q14.1: the builder's qualification must hold on the acceptance day (2025-06-01)."""
    d = clean()
    d["systems"][0]["contractors"][0]["qualification_expires"] = expires
    assert found(rules, d) == ([("breach", "contractor_unqualified", "system:sys1.contractors[0]", ("Q14.1",), ())]
                               if want else [])


def test_maintainer_expiring_yields_a_reminder(rules):
    """Q14.1: a maintainer's qualification expiring within the reminder window."""
    d = clean()
    d["systems"][0]["contractors"][1]["qualification_expires"] = "2026-03-10"
    assert found(rules, d) == [("reminder", "contractor_qualification_expiring", "system:sys1.contractors[1]",
                                ("Q14.1",), ())]


# --- properties -----------------------------------------------------------------------------------------

def _messy():
    d = clean()
    d["cameras"] += [{"id": f"c{i}", "system": "sys1", "location_type": lt, "retention_days": 20 + i}
                     for i, lt in enumerate(["toilet", "public_area", "fitting_room", "road"], 2)]
    d["filings"] = []
    d["activity"]["duty"]["log_kept"] = False
    return d


def test_idempotent_sorted_and_stable_ids(rules):
    """Same state and date → equal findings with the same ids; input order does not matter;
    ids survive a later evaluation day."""
    d = _messy()
    a = evaluate(snap(d), rules, ON)
    assert a == evaluate(snap(d), rules, ON)
    random.Random(1).shuffle(d["cameras"])
    assert [f.as_dict() for f in evaluate(snap(d), rules, ON)] == [f.as_dict() for f in a]
    assert [f.sort_key() for f in a] == sorted(f.sort_key() for f in a)
    later = {(f.check, f.subject): f.id for f in evaluate(snap(d), rules, date(2026, 3, 9))}
    assert all(later[(f.check, f.subject)] == f.id for f in a if f.kind == "breach")
    assert len({f.id for f in a}) == len(a)


def test_every_finding_explains_itself(rules):
    """Each breach has evidence, an explanation, what clears it, and cites only requirement ids
    its penalties punish (or none, Q14.1)."""
    for f in evaluate(snap(_messy()), rules, ON):
        assert f.evidence and f.explanation and f.clears
        for c in f.penalties:
            assert set(rules.penalty(c.penalty).punishes) & set(f.requirements)


def test_unknown_location_type_names_the_field(rules):
    d = clean()
    d["cameras"][0]["location_type"] = "attic"
    with pytest.raises(SnapshotError) as e:
        evaluate(snap(d), rules, ON)
    assert e.value.path == "cameras[0].location_type"
