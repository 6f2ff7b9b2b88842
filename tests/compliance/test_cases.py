"""Cases (Q26–Q32, N27): a finding taken up by the police, the order, the re-inspection, the
penalty decision inside the cited article's range, and the appeal deadlines (Q32)."""

from __future__ import annotations

from datetime import date

import pytest

from viis.compliance import cases
from viis.compliance.cases import CaseError, add_months, appeal_info
from viis.compliance.engine import evaluate

from .snapbuild import clean, snap

ON = date(2026, 3, 1)
T0 = 1_772_000_000_000


def forbidden_finding(rules, use="business", party="unit"):
    d = clean()
    d["organisation"].update(use=use, party=party)
    d["cameras"][0]["location_type"] = "toilet"
    (f,) = evaluate(snap(d), rules, ON)
    assert f.penalty_ids == ("N27.1", "Q27")
    return f, d["organisation"]


def opened(s, rules, use="business", party="unit"):
    f, org = forbidden_finding(rules, use, party)
    return cases.open_case(s, f, organisation=org["id"], organisation_name=org["name"], use=use,
                           party=party, actor="inv1", now_ms=T0)


def to_unrectified(s, rules, **kw):
    c = opened(s, rules, **kw)
    cases.order(s, c.id, rectify_by=date(2026, 3, 31), today=ON, actor="inv1", now_ms=T0 + 1)
    cases.reinspect(s, c.id, rectified=False, on=date(2026, 4, 1), actor="inv2", now_ms=T0 + 2)
    return c


# the amount: inside the range of the article for the party and the use ------------------------

@pytest.mark.parametrize("use,party,penalty,fine_party,outside,inside,rng", [
    # Q27: business 10,000–30,000; non-business 1,000–3,000 (any party)
    ("business", "unit", "Q27", "unit", 5_000, 20_000, "10,000–30,000 CNY"),
    ("business", "unit", "Q27", "unit", 30_001, 30_000, "10,000–30,000 CNY"),
    ("non_business", "unit", "Q27", "unit", 3_001, 1_000, "1,000–3,000 CNY"),
    ("non_business", "individual", "Q27", "individual", 999, 3_000, "1,000–3,000 CNY"),
    # N27.1: unit 10,000–20,000, managers 5,000–10,000, individual 5,000–10,000
    ("business", "unit", "N27.1", "unit", 25_000, 15_000, "10,000–20,000 CNY"),
    ("non_business", "unit", "N27.1", "responsible_person", 12_000, 8_000, "5,000–10,000 CNY"),
    ("business", "individual", "N27.1", "individual", 4_999, 5_000, "5,000–10,000 CNY"),
])
def test_penalty_outside_the_range_is_refused_inside_accepted(db, rules, use, party, penalty,
                                                              fine_party, outside, inside, rng):
    with db.session() as s:
        c = to_unrectified(s, rules, use=use, party=party)
        with pytest.raises(CaseError) as e:
            cases.decide(s, c.id, penalty=penalty, party=fine_party, amount=outside, served_on=ON,
                         book=rules, actor="chief", now_ms=T0 + 3)
        msg = str(e.value)
        assert rng in msg and penalty in msg and f"{outside:,}" in msg, msg
        assert e.value.field == "amount" and e.value.articles == (penalty,)
        assert c.state == "unrectified" and c.amount is None
        cases.decide(s, c.id, penalty=penalty, party=fine_party, amount=inside, served_on=ON,
                     book=rules, actor="chief", now_ms=T0 + 4)
    with db.session() as s:
        c2 = cases.get_case(s, c.id)
        assert (c2.state, c2.penalty, c2.fine_party, c2.amount) == ("decided", penalty, fine_party, inside)
        assert [e.action for e in cases.events(s, c.id)] == ["open", "order", "reinspect", "decide"]


def test_a_penalty_the_case_does_not_cite_is_refused(db, rules):
    with db.session() as s:
        c = to_unrectified(s, rules)
        with pytest.raises(CaseError, match="Q29 was not cited by this case; cited: N27.1, Q27"):
            cases.decide(s, c.id, penalty="Q29", party="unit", amount=800, served_on=ON, book=rules,
                         actor="chief", now_ms=T0 + 3)


def test_party_must_fit_the_case(db, rules):
    with db.session() as s:
        c = to_unrectified(s, rules, party="individual")
        with pytest.raises(CaseError, match="individual"):
            cases.decide(s, c.id, penalty="N27.1", party="unit", amount=15_000, served_on=ON,
                         book=rules, actor="chief", now_ms=T0 + 3)


def test_q27_names_no_responsible_persons(db, rules):
    """Q27's fine ("any") is the violator's; managers are fined only where the article says."""
    with db.session() as s:
        c = to_unrectified(s, rules, party="unit")
        with pytest.raises(CaseError, match="sets no fine for a responsible_person"):
            cases.decide(s, c.id, penalty="Q27", party="responsible_person", amount=10_000,
                         served_on=ON, book=rules, actor="chief", now_ms=T0 + 3)


def test_copied_citations_do_not_follow_later_changes(db, rules):
    f, org = forbidden_finding(rules)
    with db.session() as s:
        c = cases.open_case(s, f, organisation="org1", organisation_name="Harbour Hotel",
                            use="business", party="unit", actor="inv1", now_ms=T0)
        assert c.citations == [x.as_dict() for x in f.penalties]
        assert c.requirements == ["N8.1", "Q9.1"] and c.finding_id == f.id


# the state machine ------------------------------------------------------------------------

def test_state_machine_refuses_illegal_transitions(db, rules):
    with db.session() as s:
        c = opened(s, rules)
        with pytest.raises(CaseError, match="case .* is open: cannot reinspect.*possible now: close, order"):
            cases.reinspect(s, c.id, rectified=True, on=ON, actor="inv1", now_ms=T0)
        with pytest.raises(CaseError, match="cannot decide"):
            cases.decide(s, c.id, penalty="Q27", party="unit", amount=20_000, served_on=ON, book=rules,
                         actor="chief", now_ms=T0)
        with pytest.raises(CaseError, match="before today"):
            cases.order(s, c.id, rectify_by=date(2026, 2, 28), today=ON, actor="inv1", now_ms=T0)
        cases.order(s, c.id, rectify_by=date(2026, 3, 31), today=ON, actor="inv1", now_ms=T0 + 1)
        with pytest.raises(CaseError, match="cannot order"):
            cases.order(s, c.id, rectify_by=date(2026, 4, 30), today=ON, actor="inv1", now_ms=T0)
        # not rectified can be found only after the order's last day
        with pytest.raises(CaseError, match="runs until 2026-03-31.*from 2026-04-01"):
            cases.reinspect(s, c.id, rectified=False, on=date(2026, 3, 31), actor="inv2", now_ms=T0)
        cases.reinspect(s, c.id, rectified=True, on=date(2026, 3, 20), actor="inv2", now_ms=T0 + 2)
        assert c.state == "rectified"
        with pytest.raises(CaseError, match="cannot appeal"):
            cases.record_appeal(s, c.id, kind="litigation", filed_on=ON, actor="x", now_ms=T0)
        cases.close(s, c.id, outcome="camera removed, footage deleted", actor="inv2", now_ms=T0 + 3)
        for action in ("order", "close"):
            with pytest.raises(CaseError, match="is closed.*nothing, it is closed"):
                if action == "order":
                    cases.order(s, c.id, rectify_by=date(2026, 5, 1), today=ON, actor="x", now_ms=T0)
                else:
                    cases.close(s, c.id, outcome="again", actor="x", now_ms=T0)
        evs = cases.events(s, c.id)
        assert [(e.action, e.from_state, e.to_state, e.actor) for e in evs] == [
            ("open", None, "open", "inv1"), ("order", "open", "ordered", "inv1"),
            ("reinspect", "ordered", "rectified", "inv2"), ("close", "rectified", "closed", "inv2")]
        assert [e.at_ms for e in evs] == [T0, T0 + 1, T0 + 2, T0 + 3]


def test_a_finding_has_one_open_case_and_reminders_open_none(db, rules):
    with db.session() as s:
        opened(s, rules)
        with pytest.raises(CaseError, match="already has open case"):
            opened(s, rules)
        d = clean()
        d["activity"]["faults"] = [{"id": "F1", "camera": "c1", "kind": "offline",
                                    "first_seen": "2026-02-27T00:00:00+08:00"}]
        (rem,) = evaluate(snap(d), rules, ON)
        with pytest.raises(CaseError, match="reminder, not a breach"):
            cases.open_case(s, rem, organisation="org1", organisation_name="H", use="business",
                            party="unit", actor="inv1", now_ms=T0)


def test_rectified_case_takes_only_fines_imposed_with_the_order(db, rules):
    """N27.1 and Q27 fine with the order (并处): a rectified case may still be decided."""
    with db.session() as s:
        c = opened(s, rules)
        cases.order(s, c.id, rectify_by=date(2026, 3, 31), today=ON, actor="inv1", now_ms=T0)
        cases.reinspect(s, c.id, rectified=True, on=date(2026, 3, 5), actor="inv1", now_ms=T0)
        cases.decide(s, c.id, penalty="Q27", party="unit", amount=10_000, served_on=ON, book=rules,
                     actor="chief", now_ms=T0)
        assert c.state == "decided"


# appeal deadlines (Q32) -------------------------------------------------------------------

def test_appeal_deadlines_from_the_appeal_section(rules):
    info = appeal_info(rules, date(2026, 3, 1))
    assert info["articles"] == ["Q32"] and info["court_enforcement"] is True
    assert info["reconsideration_by"] == "2026-04-30"     # 60 calendar days
    assert info["litigation_by"] == "2026-09-01"          # 6 months
    assert info["payment_by"] == "2026-03-16"
    assert info["court_enforcement_from"] == "2026-09-02"
    assert info["court_enforcement_apply_by"] == "2026-12-01"
    assert any("not in the packs" in b for b in info["basis"])


def test_month_end_boundary():
    assert add_months(date(2026, 8, 31), 6) == date(2027, 2, 28)
    assert add_months(date(2027, 8, 31), 6) == date(2028, 2, 29)
    assert add_months(date(2026, 12, 31), 2) == date(2027, 2, 28)


def test_appeal_on_the_last_day_is_in_time_the_next_day_late(db, rules):
    with db.session() as s:
        c = to_unrectified(s, rules)
        cases.decide(s, c.id, penalty="Q27", party="unit", amount=20_000, served_on=date(2026, 8, 31),
                     book=rules, actor="chief", now_ms=T0)
        assert c.appeal["reconsideration_by"] == "2026-10-30"
        assert c.appeal["litigation_by"] == "2027-02-28"
        with pytest.raises(CaseError, match="late: the last day was 2026-10-30"):
            cases.record_appeal(s, c.id, kind="reconsideration", filed_on=date(2026, 10, 31),
                                actor="inv1", now_ms=T0)
        cases.record_appeal(s, c.id, kind="reconsideration", filed_on=date(2026, 10, 30),
                            actor="inv1", now_ms=T0)
        # suit after the reconsideration decision: 15 days from it
        with pytest.raises(CaseError, match="last day was 2026-12-16"):
            cases.record_appeal(s, c.id, kind="litigation", filed_on=date(2026, 12, 17), actor="inv1",
                                now_ms=T0, reconsideration_decided_on=date(2026, 12, 1))
        cases.record_appeal(s, c.id, kind="litigation", filed_on=date(2026, 12, 16), actor="inv1",
                            now_ms=T0, reconsideration_decided_on=date(2026, 12, 1))
        assert c.state == "appealed" and [f["kind"] for f in c.appeal["filings"]] == [
            "reconsideration", "litigation"]
        cases.close(s, c.id, outcome="court upheld the decision; paid", actor="chief", now_ms=T0)
    with db.session() as s:
        assert cases.get_case(s, c.id).appeal["filings"][1]["due"] == "2026-12-16"
