"""Rule packs as data (invariant 4): the Qingdao 2020 and national 2025 packs load, validate
and answer the questions of the registry and the coming compliance engine."""

from datetime import date
from pathlib import Path

import pytest

from viis.compliance.rulepack import RuleBook, parse_pack
from viis.core.config import REPO_ROOT
from viis.core.errors import ConfigError

PACKS = REPO_ROOT / "rulepacks"
ON = date(2026, 1, 1)


def _text(name: str) -> str:
    return (PACKS / name).read_text(encoding="utf-8")


def _line(text: str, needle: str, nth: int = 1) -> int:
    """1-based line of the nth line containing needle."""
    hits = [i for i, ln in enumerate(text.splitlines(), 1) if needle in ln]
    return hits[nth - 1]


def _broken(tmp_path: Path, name: str, old: str, new: str, count: int = 1) -> tuple[Path, str]:
    text = _text(name)
    assert old in text, old
    broken = text.replace(old, new, count)
    d = tmp_path / "packs"
    d.mkdir(exist_ok=True)
    for f in PACKS.glob("*.toml"):
        (d / f.name).write_text(broken if f.name == name else f.read_text(encoding="utf-8"), encoding="utf-8")
    return d, broken


def test_both_packs_load_and_are_in_force_national_first(rules):
    """Q36.1, N34.1: both packs in force in 2026; the national one ranks higher."""
    assert [p.id for p in rules.in_force(ON)] == ["national-2025", "qingdao-2020"]
    assert [p.id for p in rules.in_force(date(2024, 1, 1))] == ["qingdao-2020"]


def test_retention_api_is_unchanged(rules):
    """Q19.7, N17.1: 30 days minimum citing both; national default ceiling 30 days."""
    assert rules.retention_minimum(ON) == (30, ("N17.1", "Q19.7"))
    assert rules.retention_default_max(ON) == 30
    assert rules.retention_default_max(date(2024, 1, 1)) is None
    assert set(rules.tamper_articles(ON)) == {"Q20.3", "N15.1", "N23.1"}


def test_every_cited_id_is_a_requirement_of_its_pack(rules):
    """Every article a section cites is defined in [requirements] of the same pack."""
    for p in rules.packs:
        prefix = p.id[0].upper()
        assert p.requirements and all(k.startswith(prefix) for k in p.requirements)
        for x in p.penalties:
            assert x.id in p.requirements and set(x.punishes) <= set(p.requirements)


def test_qingdao_nine_mandatory_categories(rules):
    """Q7.1: nine categories of places must have a system, items 1-9."""
    cats = [c for c in rules.site_categories(ON, must_install=True) if c.pack == "qingdao-2020"]
    assert [c.item for c in cats] == list(range(1, 10))
    assert all("Q7.1" in c.articles for c in cats)
    assert cats[0].builder == "government" and "Q8.1" in cats[0].articles


def test_national_classes_map_onto_qingdao_categories(rules):
    """N7.1, N9.1: national classes say who builds; N9 lists the exempt duties."""
    nat = {c.id: c for c in rules.site_categories(ON) if c.pack == "national-2025"}
    assert nat["government_public_places"].builder == "government"
    assert "qingdao-2020:transport_hubs_and_vehicles" in nat["transport_hubs"].maps_to
    other = nat["other_public_place"]
    assert other.articles == ("N9.1",) and {"N14.1", "N17.1"} <= set(other.exempt)


def test_forbidden_locations_cite_every_pack(rules):
    """Q9.1, N8.1: the national list is wider; shared places cite both articles."""
    f = rules.forbidden_locations(ON)
    for place in ("hotel_guest_room", "collective_dormitory", "public_bath", "toilet",
                  "changing_room", "nursing_room", "fitting_room", "other_privacy_place"):
        assert f[place].articles == ("N8.1", "Q9.1"), place
    assert f["private_dining_room"].articles == ("N8.1",)
    assert f["staff_rest_room"].articles == ("N8.1",)
    old = rules.forbidden_locations(date(2024, 1, 1))
    assert "private_dining_room" not in old and old["toilet"].articles == ("Q9.1",)
    assert "public_area" in rules.allowed_locations(ON)
    assert not set(f) & set(rules.allowed_locations(ON))


def test_filing_deadlines(rules):
    """Q16.1 acceptance+30, Q16.2 removal+30, N14.1 in use+30 and existing by 2025-04-01+90."""
    by = {(f.pack, f.id): f for f in rules.filing_rules(ON)}
    acc = by[("qingdao-2020", "acceptance")]
    assert acc.articles[0] == "Q16.1" and acc.due(date(2026, 3, 1)) == date(2026, 3, 31)
    assert by[("qingdao-2020", "removal")].days == 30 and "Q16.2" in by[("qingdao-2020", "removal")].articles
    assert by[("national-2025", "in_use")].due(date(2026, 1, 10)) == date(2026, 2, 9)
    assert by[("national-2025", "existing")].due() == date(2025, 6, 30)
    change = by[("national-2025", "change")]
    assert change.source == "default" and change.note
    assert [f.id for f in rules.filing_rules(ON, "removal")] == ["removal"]


def test_limits_without_a_number_in_the_text_are_marked_default(rules):
    """Q19.3, Q19.6: no number in the text, so the pack's values are documented defaults."""
    for name in ("clock_max_offset", "fault_notify", "fault_repair", "storage_min_height"):
        lim = rules.limit(name, ON)
        assert lim is not None and lim.source == "default" and lim.note
    assert rules.limit("clock_max_offset", ON).articles == ("Q19.3",)
    assert rules.limit("storage_min_fps", ON).articles == ("Q19.6",)


@pytest.mark.parametrize("article,expected", [
    # Q27: 10,000-30,000 business, 1,000-3,000 non-business
    ("Q9.1", [("Q27", "any", "business", 10000, 30000), ("Q27", "any", "non_business", 1000, 3000)]),
    ("Q16.1", [("Q28.1", "any", "any", 500, 1000)]),
    ("Q19.7", [("Q29", "any", "any", 500, 1000)]),
    ("Q20.3", [("Q30", "any", "business", 10000, 30000), ("Q30", "any", "non_business", 1000, 3000)]),
    ("Q7.1", [("Q26", "any", "any", 500, 1000)]),
    ("N8.1", [("N27.1", "individual", "any", 5000, 10000), ("N27.1", "unit", "any", 10000, 20000),
              ("N27.1", "responsible_person", "any", 5000, 10000)]),
    ("N7.3", [("N26", "individual", "any", None, 5000), ("N26", "unit", "any", None, 20000),
              ("N26", "responsible_person", "any", None, 5000)]),
    ("N14.1", [("N29", "any", "any", None, 10000)]),
    ("N10.1", [("N28", "individual", "any", 5000, 10000), ("N28", "unit", "any", 10000, 20000),
               ("N28", "responsible_person", "any", 5000, 10000)]),
])
def test_penalty_ranges(rules, article, expected):
    """Q26-Q30 and N26-N30: fine ranges by use and by party, as the texts give them."""
    got = [(x.id, f.party, f.use, f.min, f.max) for x in rules.penalties_for(article, ON) for f in x.fines]
    assert got == expected


def test_n30_unit_range_and_fines_on_refusal(rules):
    """N30: individual up to 5,000, unit 5,000-10,000, only on refusal or serious harm."""
    (n30,) = rules.penalties_for("N23.1", ON)[:1]
    assert n30.id == "N30"
    unit = n30.fines_for(party="unit")
    assert [(f.min, f.max, f.when) for f in unit] == [(5000, 10000, "on_refusal_or_serious_harm")]
    assert "warning" in n30.measures


def test_forbidden_place_finding_cites_national_then_qingdao_penalty(rules):
    """Q27 and N27.1 both punish a camera in a toilet; strongest pack first."""
    arts = rules.forbidden_locations(ON)["toilet"].articles
    assert [x.id for x in rules.penalties_for_any(arts, ON)] == ["N27.1", "Q27"]
    assert rules.penalty("Q27").fines_for(use="non_business")[0].max == 3000


def test_every_penalty_article_is_in_the_packs(rules):
    """Q26-Q31, Q33, Q34; N13.2, N26-N32: every liability article is carried."""
    ids = {x.id for x in rules.penalties(ON)}
    assert ids == {"Q26", "Q27", "Q28.1", "Q28.2", "Q28.3", "Q29", "Q30", "Q31", "Q33", "Q34",
                   "N13.2", "N26", "N27.1", "N27.2", "N28", "N29", "N30", "N31", "N32"}


# --- broken packs are refused with file and line ---------------------------------------------

def test_unknown_article_in_penalty_names_file_and_line(tmp_path):
    d, text = _broken(tmp_path, "qingdao-2020.toml", 'punishes = ["Q17.1"]', 'punishes = ["Q99.9"]')
    with pytest.raises(ConfigError) as e:
        RuleBook.load(d)
    msg = str(e.value)
    assert f"qingdao-2020.toml:{_line(text, 'Q99.9')}:" in msg and "Q99.9" in msg


def test_fine_min_above_max_names_the_line(tmp_path):
    d, text = _broken(tmp_path, "national-2025.toml", "min = 10000\nmax = 20000", "min = 30000\nmax = 20000")
    with pytest.raises(ConfigError) as e:
        RuleBook.load(d)
    assert f"national-2025.toml:{_line(text, 'min = 30000')}:" in str(e.value)
    assert "min is above max" in str(e.value)


def test_negative_fine_is_refused(tmp_path):
    d, text = _broken(tmp_path, "qingdao-2020.toml", "min = 500\n", "min = -500\n")
    with pytest.raises(ConfigError, match=rf"qingdao-2020.toml:{_line(text, 'min = -500')}:.*negative"):
        RuleBook.load(d)


def test_missing_field_names_the_table_line(tmp_path):
    d, text = _broken(tmp_path, "national-2025.toml", 'trigger = "in_use"\n', "")
    with pytest.raises(ConfigError) as e:
        RuleBook.load(d)
    assert "missing key 'trigger'" in str(e.value)
    # the [[filing]] header of the first filing
    assert f"national-2025.toml:{_line(text, '[[filing]]')}:" in str(e.value)


def test_wrong_type_names_the_line(tmp_path):
    d, text = _broken(tmp_path, "qingdao-2020.toml", "days = 30\nsource", 'days = "thirty"\nsource')
    with pytest.raises(ConfigError) as e:
        RuleBook.load(d)
    assert f"qingdao-2020.toml:{_line(text, 'thirty')}:" in str(e.value) and "must be int" in str(e.value)


def test_unknown_key_and_unknown_section_are_refused(tmp_path):
    d, text = _broken(tmp_path, "qingdao-2020.toml", 'id = "Q26"\n', 'id = "Q26"\nfines_cny = 5\n')
    with pytest.raises(ConfigError, match=rf":{_line(text, 'fines_cny')}:.*unknown key 'fines_cny'"):
        RuleBook.load(d)
    d2 = tmp_path / "x"
    d2.mkdir()
    bad = _text("national-2025.toml") + "\n[penalties]\nx = 1\n"
    with pytest.raises(ConfigError, match=r"unknown section \[penalties\]"):
        parse_pack(bad, "n.toml")


def test_unknown_requirement_id_in_forbidden_place_and_bad_vocabulary(tmp_path):
    text = _text("national-2025.toml").replace('articles = ["N8.1"]', 'articles = ["N8.9"]', 1)
    with pytest.raises(ConfigError, match=rf"n.toml:{_line(text, 'N8.9')}:.*unknown requirement id 'N8.9'"):
        parse_pack(text, "n.toml")
    text = _text("national-2025.toml").replace('party = "unit"', 'party = "company"', 1)
    with pytest.raises(ConfigError, match=rf"n.toml:{_line(text, 'company')}:.*not one of"):
        parse_pack(text, "n.toml")


def test_default_without_note_is_refused():
    """A default must say what the text says instead (no invented law)."""
    text = _text("qingdao-2020.toml").replace(
        'note = "see storage_min_width"\n', "")
    with pytest.raises(ConfigError, match="needs a note"):
        parse_pack(text, "q.toml")


def test_cross_pack_mapping_to_unknown_category_is_refused(tmp_path):
    d, text = _broken(tmp_path, "national-2025.toml", "qingdao-2020:transport_hubs_and_vehicles",
                      "qingdao-2020:no_such_category")
    with pytest.raises(ConfigError, match=rf"national-2025.toml:{_line(text, 'no_such_category')}:"):
        RuleBook.load(d)
