"""Every penalty article of both rule packs, proven (invariant 4; issue 6, Done-when 1).

For each penalty of each pack, a state that breaches it and one that just does not (boundary
days and metres included), with the findings checked exactly: kind, check, subject,
requirement ids and penalty ids — no missing citation, no extra one. The guard at the end walks
the packs, so a penalty added to a pack without a case here fails the suite.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import pytest

from viis.compliance.engine import evaluate

from .snapbuild import clean, snap

ON = date(2026, 3, 1)

# Penalties a unit's state cannot show, with the reason (each is still cited whenever a check
# breaches a requirement it punishes).
NOT_FROM_STATE = {
    "Q33": "civil and criminal liability for infringing secrets or privacy through the system "
           "(Q5.1, Q20.2): established by a court on facts outside the registry",
    "Q34": "dereliction of the police or other departments (Q11.1, Q25.1): officials' conduct, "
           "not a using unit's state",
}


@dataclass(frozen=True)
class Case:
    penalty: str
    name: str
    breach: Callable[[dict], None]
    just_not: Callable[[dict], None]
    want: list            # exact findings of the breaching state
    want_not: list = ()   # exact findings of the state that just does not breach
    on: date = ON


def found(rules, d: dict, on: date = ON) -> list:
    return [(f.kind, f.check, f.subject, f.requirements, f.penalty_ids) for f in evaluate(snap(d), rules, on)]


def _set(*path_value):
    def f(d):
        *path, key, value = path_value
        x = d
        for k in path:
            x = x[k]
        x[key] = value
    return f


def _new_system(d, filings_kept=()):
    d["systems"][0]["accepted_on"] = d["systems"][0]["in_use_on"] = "2026-01-30"
    d["filings"] = [f for f in d["filings"] if f["kind"] in filings_kept]


def _filed(kind, day):
    def f(d):
        keep = ("acceptance", "in_use")
        _new_system(d, tuple(k for k in keep if k != kind))
        d["filings"].append({"id": "fx", "system": "sys1", "kind": kind, "filed_on": day})
    return f


def _removed(day_filed):
    """A second system of the site removed 2026-01-30 (the first keeps the site equipped, Q7.1)."""
    def f(d):
        d["systems"].append(dict(d["systems"][0], id="sys2", removed_on="2026-01-30"))
        d["filings"] += [dict(x, id=x["id"] + "b", system="sys2") for x in d["filings"]]
        if day_filed:
            d["filings"].append({"id": "fr", "system": "sys2", "kind": "removal", "filed_on": day_filed})
    return f


def _fault(repaired_at=None, cause=None, kind="video_occluded"):
    def f(d):
        x = {"id": "F1", "camera": "c1", "kind": kind, "first_seen": "2026-03-01T08:00:00+08:00"}
        if repaired_at:
            x["repaired_at"] = repaired_at
        if cause:
            x["cause"] = cause
        d["activity"]["faults"] = [x]
    return f


def _privacy(checked_on):
    def f(d):
        d["sites"][0]["privacy_areas"] = ["toilet", "changing_room"]
        d["sites"][0]["privacy_checked_on"] = checked_on
    return f


ZONE = {"id": "z1", "name": "naval depot", "kind": "military", "lat": 36.0, "lon": 120.0, "radius_m": 500}
METRE_LAT = 1 / 111_195.08   # degrees of latitude per metre on the mean sphere


def _zone(metres, consent_on=None, kind="military"):
    def f(d):
        d["zones"] = [dict(ZONE, kind=kind)]
        d["cameras"][0].update(lat=36.0 + metres * METRE_LAT, lon=120.0)
        if consent_on:
            d["consents"] = [{"zone": "z1", "system": "sys1", "document": "PLA-2025-7", "on": consent_on}]
    return f


def _unauthorised(authorised, categories=None):
    def f(d):
        d["systems"][0]["authorised"] = authorised
        if categories:
            d["sites"][0]["categories"] = categories
            d["filings"] = [x for x in d["filings"] if x["kind"] != "in_use"]
    return f


OTHER_PUBLIC = ["qingdao-2020:other_public_security_places", "national-2025:other_public_place"]
REMIND_Q19_3 = ("reminder", "fault_repair_due", "fault:F1", ("Q19.3",), ("Q29",))

CASES = [
    # Q26: a category-7 place (Q7.1, Q8.2) whose system goes into use the day after.
    Case("Q26", "mandatory place without a system in use",
         _set("systems", 0, "in_use_on", "2026-03-02"), _set("systems", 0, "in_use_on", "2026-03-01"),
         [("breach", "mandatory_site_without_system", "site:s1", ("Q7.1", "Q8.2"), ("Q26",))]),
    # Q27 / N27.1: a camera in a toilet; a camera at the entrance is lawful.
    Case("Q27", "camera in a forbidden place (Q9.1, N8.1)",
         _set("cameras", 0, "location_type", "toilet"), _set("cameras", 0, "location_type", "entrance_exit"),
         [("breach", "forbidden_location", "camera:c1", ("N8.1", "Q9.1"), ("N27.1", "Q27"))]),
    Case("N27.1", "camera in a private dining room (national list only)",
         _set("cameras", 0, "location_type", "private_dining_room"), _set("cameras", 0, "location_type", "public_area"),
         [("breach", "forbidden_location", "camera:c1", ("N8.1",), ("N27.1",))]),
    # Q27 (Q8.3) and N26 (N7.3): a system built by a unit without the authority to build.
    Case("N26", "unauthorised installation at an article-7 place",
         _unauthorised(False), _unauthorised(True),
         [("breach", "unauthorised_installation", "system:sys1", ("N7.3", "Q8.3"), ("N26", "Q27"))]),
    Case("N26", "unauthorised installation at another public place (N9.1)",
         _unauthorised(False, OTHER_PUBLIC), _unauthorised(True, OTHER_PUBLIC),
         [("breach", "unauthorised_installation", "system:sys1", ("N9.1", "Q8.3"), ("N26", "Q27"))]),
    # Q28.1: acceptance filing on day 30 is in time, day 31 is late (Q16.1); removal (Q16.2).
    Case("Q28.1", "acceptance filed on day 31 vs day 30",
         _filed("acceptance", "2026-03-02"), _filed("acceptance", "2026-03-01"),
         [("breach", "filing.qingdao-2020.acceptance.late", "system:sys1", ("Q16.1",), ("Q28.1",))],
         on=date(2026, 3, 2)),
    Case("Q28.1", "removal unfiled on day 31 vs filed on day 30",
         _removed(None), _removed("2026-03-01"),
         [("breach", "filing.qingdao-2020.removal", "system:sys2", ("Q16.2",), ("Q28.1",))],
         on=date(2026, 3, 2)),
    Case("Q28.1", "system built before 2010-03-01 filed on day 61 vs day 60 (Q35.1)",
         lambda d: _transitional(d, "2010-05-01"), lambda d: _transitional(d, "2010-04-30"),
         [("breach", "filing.qingdao-2020.transitional.late", "system:sys1", ("Q35.1",), ("Q28.1",))]),
    # Q28.2 / N13.2: no sign in a public place; a sign present.
    Case("Q28.2", "no visible sign (Q17.1, N13.1)",
         _set("cameras", 0, "signage", {"present": False}), _set("cameras", 0, "signage", {"present": True}),
         [("breach", "signage_missing", "camera:c1", ("N13.1", "Q17.1"), ("N13.2", "Q28.2"))]),
    # Q28.3 / N30: the view is blocked on the evaluation day; cleared before its end.
    Case("Q28.3", "camera obstructed (Q18.1, N23.1 item 2)",
         _fault(), _fault(repaired_at="2026-03-01T23:59:59+08:00"),
         [("breach", "camera_obstructed", "fault:F1", ("N23.1", "Q18.1"), ("N30", "Q28.3")), REMIND_Q19_3]),
    Case("Q28.3", "facility hinders the system (Q18.2)",
         _fault(cause="facility"), _fault(cause="facility", kind="video_blur"),
         [("breach", "camera_obstructed", "fault:F1", ("N23.1", "Q18.1", "Q18.2"), ("N30", "Q28.3")),
          REMIND_Q19_3], [REMIND_Q19_3]),
    # Q29 / N31: retention 29 vs 30 days (Q19.7, N17.1).
    Case("Q29", "retention one day short",
         _set("cameras", 0, "retention_days", 29), _set("cameras", 0, "retention_days", 30),
         [("breach", "retention_below_minimum", "camera:c1", ("N17.1", "Q19.7"), ("N31", "Q29"))]),
    Case("Q29", "fault open past 72 h without an emergency measure (Q19.3)",
         _set("activity", "faults", [{"id": "F1", "camera": "c1", "kind": "offline",
                                      "first_seen": "2026-02-26T00:00:00+08:00"}]),
         _set("activity", "faults", [{"id": "F1", "camera": "c1", "kind": "offline",
                                      "first_seen": "2026-02-26T00:00:00+08:00",
                                      "emergency_measure": "spare camera"}]),
         [("breach", "fault_unrepaired", "fault:F1", ("Q19.3",), ("Q29",))]),
    # Q30 / N31: original footage altered within retention (Q20.3, N15.1, N23.1 — not N30).
    Case("Q30", "integrity verification failed",
         _set("activity", "integrity", [{"camera": "c1", "verified_at": "2026-02-28T23:00:00+08:00", "ok": False,
                                         "problems": [{"kind": "altered"}]}]),
         _set("activity", "integrity", [{"camera": "c1", "verified_at": "2026-02-28T23:00:00+08:00", "ok": True}]),
         [("breach", "integrity_failure", "camera:c1", ("N15.1", "N23.1", "Q20.3"), ("N31", "Q30"))]),
    Case("N31", "footage kept 31 days past the national default without a basis (N17.1)",
         lambda d: d["activity"]["retention"][0].update(kept_days=31),
         lambda d: d["activity"]["retention"][0].update(kept_days=30),
         [("breach", "footage_kept_past_default", "camera:c1", ("N17.1",), ("N31",))]),
    # Q31, N32, Q30: a police retrieval without approval; Q31 alone: one officer, not two.
    Case("N32", "police retrieval without the bureau head's approval (Q23.1, N20.1, Q20.5)",
         lambda d: d["activity"]["retrievals"][0].update(approved=False, approval_document=""),
         lambda d: d["activity"]["retrievals"][0].update(approved=True),
         [("breach", "retrieval_unapproved", "retrieval:r1", ("N20.1", "Q20.5", "Q23.1"), ("N32", "Q30", "Q31"))]),
    Case("Q31", "retrieval with one officer (Q24.1)",
         lambda d: d["activity"]["retrievals"][0].update(staff_count=1),
         lambda d: d["activity"]["retrievals"][0].update(staff_count=2),
         [("breach", "retrieval_procedure", "retrieval:r1", ("Q24.1",), ("Q31",))]),
    Case("N13.2", "no conspicuous sign; none needed where the camera is not in a public place",
         _set("cameras", 0, "signage", {"present": False, "photo": False}),
         _set("cameras", 0, "public_place", False),
         [("breach", "signage_missing", "camera:c1", ("N13.1", "Q17.1"), ("N13.2", "Q28.2"))]),
    # N27.2: the privacy rooms were last checked 31 days ago; 30 days ago is in time (reminder).
    Case("N27.2", "privacy rooms not checked for cameras for 31 days (N8.2)",
         _privacy("2026-01-29"), _privacy("2026-01-30"),
         [("breach", "privacy_check_overdue", "site:s1", ("N8.2",), ("N27.2",))],
         [("reminder", "privacy_check_due", "site:s1", ("N8.2",), ("N27.2",))]),
    # N28: a camera 495 m from a military zone of radius 500 m without prior consent; at 505 m,
    # or with consent dated the day the system went into use, nothing.
    Case("N28", "camera inside a military zone without consent (Q7.3, N10.1)",
         _zone(495), _zone(505),
         [("breach", "zone_without_consent", "camera:c1@z1", ("N10.1", "Q7.3"), ("N28",))]),
    Case("N28", "consent the day after going into use is not prior consent",
         _zone(100, consent_on="2025-06-02"), _zone(100, consent_on="2025-06-01"),
         [("breach", "zone_without_consent", "camera:c1@z1", ("N10.1", "Q7.3"), ("N28",))]),
    Case("N28", "classified unit: N10.1 only (Q7.3 is about military zones)",
         _zone(10, kind="classified"), _zone(10, consent_on="2025-05-01", kind="classified"),
         [("breach", "zone_without_consent", "camera:c1@z1", ("N10.1",), ("N28",))]),
    # N29: going into use, filed day 31 vs day 30 (N14.1); a change unfiled (30-day default).
    Case("N29", "in-use filing on day 31 vs day 30",
         _filed("in_use", "2026-03-02"), _filed("in_use", "2026-03-01"),
         [("breach", "filing.national-2025.in_use.late", "system:sys1", ("N14.1",), ("N29",))],
         on=date(2026, 3, 2)),
    Case("N29", "change filed on day 31 vs day 30",
         lambda d: _change(d, "2026-01-31"), lambda d: _change(d, "2026-01-30"),
         [("breach", "filing.national-2025.change.late", "system:sys1#0", ("N14.1",), ("N29",))]),
    Case("N30", "covering a camera of an article-7 place (N23.1 item 2)",
         _fault(cause="third_party"), _fault(cause="third_party", repaired_at="2026-03-01T12:00:00+08:00"),
         [("breach", "camera_obstructed", "fault:F1", ("N23.1", "Q18.1"), ("N30", "Q28.3")), REMIND_Q19_3]),
]


def _transitional(d, filed):
    d["systems"][0]["accepted_on"] = d["systems"][0]["in_use_on"] = "2009-06-01"
    d["filings"] = [{"id": "ft", "system": "sys1", "kind": "transitional", "filed_on": filed},
                    {"id": "fe", "system": "sys1", "kind": "existing", "filed_on": "2025-05-01"}]


def _change(d, filed):
    d["systems"][0]["changes"] = [{"on": "2025-12-31", "what": "cameras_added"}]
    d["filings"].append({"id": "fc", "system": "sys1", "kind": "change", "filed_on": filed})


@pytest.mark.parametrize("case", CASES, ids=[f"{c.penalty}:{c.name}" for c in CASES])
def test_breach_and_just_not(rules, case):
    """The breaching state yields exactly the findings listed (every citation, no extra); the
    state one day / one metre / one field away yields exactly its own list (usually none)."""
    d = clean()
    case.breach(d)
    got = found(rules, d, case.on)
    assert got == case.want
    assert any(case.penalty in f[4] for f in got if f[0] == "breach")
    d = clean()
    case.just_not(d)
    assert found(rules, d, case.on) == list(case.want_not)


def test_every_penalty_article_of_both_packs_has_a_case(rules):
    """Guard: a penalty added to a pack without a breach/just-not case here fails."""
    cited = {p for c in CASES for f in c.want for p in f[4] if f[0] == "breach"}
    named = {c.penalty for c in CASES}
    for pack in rules.packs:
        for pen in pack.penalties:
            if pen.id in NOT_FROM_STATE:
                continue
            assert pen.id in named or pen.id in cited, f"{pack.id} {pen.id} has no breach case"
            if pen.fines:   # a fine article: a case that names it as its subject
                assert pen.id in named or pen.id in cited, pen.id
    assert set(NOT_FROM_STATE) <= {p.id for pk in rules.packs for p in pk.penalties}


def test_fine_articles_each_have_their_own_case(rules):
    """Every penalty with a fine range is the named subject of at least one case."""
    named = {c.penalty for c in CASES}
    fines = {p.id for pk in rules.packs for p in pk.penalties if p.fines}
    assert fines - named == set()


@pytest.mark.parametrize("change,path", [
    (lambda d: d["cameras"][0].update(lat=91.0, lon=120.0), "cameras[0].lat"),
    (lambda d: d["cameras"][0].update(lat=36.0), "cameras[0].lat"),
    (lambda d: d.update(zones=[dict(ZONE, radius_m="500")]), "zones[0].radius_m"),
    (lambda d: d.update(zones=[dict(ZONE, kind="embassy")]), "zones[0].kind"),
    (lambda d: d.update(zones=[ZONE], consents=[{"zone": "z9", "system": "sys1", "document": "x",
                                                 "on": "2025-01-01"}]), "consents[0].zone"),
    (lambda d: d["systems"][0].update(authorised="yes"), "systems[0].authorised"),
    (lambda d: d["activity"]["faults"].append({"id": "F", "camera": "c1", "kind": "video_occluded",
                                               "first_seen": "2026-03-01T08:00:00+08:00", "cause": "wind"}),
     "activity.faults[0].cause"),
])
def test_new_fields_refuse_bad_values_naming_the_path(rules, change, path):
    """Zones, consents, coordinates, authority and fault cause are hostile input like the rest."""
    from viis.compliance.snapshot import SnapshotError
    d = clean()
    change(d)
    with pytest.raises(SnapshotError) as e:
        evaluate(snap(d), rules, ON)
    assert e.value.path == path


def test_privacy_areas_must_be_forbidden_location_types(rules):
    from viis.compliance.snapshot import SnapshotError
    d = clean()
    _privacy("2026-02-20")(d)
    d["sites"][0]["privacy_areas"] = ["toilet", "entrance_exit"]
    with pytest.raises(SnapshotError) as e:
        evaluate(snap(d), rules, ON)
    assert e.value.path == "sites[0].privacy_areas[1]"
