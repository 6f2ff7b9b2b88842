"""Rule packs: the law as data (invariant 4).

A pack is a TOML file in ``rulepacks/`` naming its jurisdiction, rank and effective dates,
with sections per duty: the requirement ids it defines, site categories (Q7.1, N7.1, N9.1),
location types allowed and forbidden (Q9.1, N8.1), filing deadlines (Q16, N14), limits the
duties need (clock, repair, storage quality; Q19.3, Q19.6) and penalties with their fine
ranges, each naming the duty articles it punishes. The format is described in
``docs/design/rulepacks.md``.

This module loads and validates packs and answers the questions the other subsystems ask,
always for the packs in force on a given date. Validation is strict: an unknown section or
key, a missing field, a wrong type, a bad range or an id the pack does not define is refused
with an error that names the file and the line, because a typo in a pack is a wrong law.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, NoReturn

from viis.core.errors import ConfigError

# Vocabularies of the format (not of the law): the values a pack may use in these fields.
BUILDERS = frozenset({"government", "operator", "security_duty_holder", "owner"})
PARTIES = frozenset({"any", "individual", "unit", "responsible_person"})
USES = frozenset({"any", "business", "non_business"})
FINE_WHEN = frozenset({"with_order", "on_refusal", "on_refusal_or_serious_harm"})
MEASURES = frozenset({
    "order_rectify", "order_rectify_by_deadline", "order_remove_by_deadline", "warning",
    "delete_footage", "confiscate", "confiscate_on_refusal", "notify_regulator_business_sanction",
    "public_order_penalty", "criminal_liability", "official_accountability", "legal_liability",
    "other_law",
})
FILING_TRIGGERS = frozenset({"acceptance", "removal", "in_use", "change", "anchor"})
SOURCES = frozenset({"text", "default"})
# name -> (unit, which way is stricter: "max" = a smaller value is stricter, "min" = larger)
LIMITS: Mapping[str, tuple[str, str]] = {
    "clock_max_offset": ("seconds", "max"),
    "fault_notify": ("hours", "max"),
    "fault_repair": ("hours", "max"),
    "storage_min_width": ("pixels", "min"),
    "storage_min_height": ("pixels", "min"),
    "storage_min_fps": ("fps", "min"),
    "privacy_check_interval": ("days", "max"),
}

_SECTIONS = ("pack", "retention", "requirements", "site_category", "location_type", "filing",
             "limits", "penalty", "appeal")
_SLUG = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class RetentionRule:
    min_days: int
    articles: tuple[str, ...]
    default_max_days: int | None = None
    tamper_articles: tuple[str, ...] = ()


@dataclass(frozen=True)
class Requirement:
    id: str
    article: str
    summary: str
    pack: str


@dataclass(frozen=True)
class SiteCategory:
    """A class of places (Q7.1 items, N7.1/N9.1 classes) and who must or may build there."""
    id: str
    item: int
    title: str
    must_install: bool
    builder: str
    articles: tuple[str, ...]
    pack: str
    maps_to: tuple[str, ...] = ()
    exempt: tuple[str, ...] = ()


@dataclass(frozen=True)
class LocationType:
    """Where a camera is; ``forbidden`` ones are refused (Q9.1, N8.1)."""
    id: str
    title: str
    forbidden: bool
    text: str
    articles: tuple[str, ...]
    pack: str


@dataclass(frozen=True)
class ForbiddenLocation:
    """A forbidden location type merged over the packs in force, strongest pack first."""
    id: str
    titles: tuple[str, ...]
    articles: tuple[str, ...]


@dataclass(frozen=True)
class FilingRule:
    """A filing duty (Q16.1, Q16.2, Q35.1, N14.1): ``days`` calendar days after the trigger."""
    id: str
    trigger: str
    days: int
    source: str
    authority: str
    articles: tuple[str, ...]
    pack: str
    anchor: date | None = None
    contents: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    applies_to: str = ""
    note: str = ""

    def due(self, event: date | None = None) -> date:
        """Last day to file (Asia/Shanghai calendar), from the event or the fixed anchor."""
        start = self.anchor if self.trigger == "anchor" else event
        if start is None:
            raise ValueError(f"filing {self.id} runs from a {self.trigger} date; give it")
        return start + timedelta(days=self.days)


@dataclass(frozen=True)
class Limit:
    """A number a duty needs; ``source`` is "text" or "default" (the text gives none)."""
    name: str
    value: int | float
    unit: str
    source: str
    articles: tuple[str, ...]
    pack: str
    note: str = ""


@dataclass(frozen=True)
class Fine:
    """A fine range in the pack's currency; ``min`` None means "up to max" (以下)."""
    party: str
    use: str
    min: int | None
    max: int
    when: str

    def applies(self, party: str | None = None, use: str | None = None) -> bool:
        return ((party is None or self.party in ("any", party))
                and (use is None or self.use in ("any", use)))


@dataclass(frozen=True)
class Penalty:
    id: str
    article: str
    punishes: tuple[str, ...]
    measures: tuple[str, ...]
    fines: tuple[Fine, ...]
    pack: str
    rank: int
    currency: str = "CNY"
    note: str = ""

    def fines_for(self, party: str | None = None, use: str | None = None) -> tuple[Fine, ...]:
        """The fines that apply to this party (individual/unit/responsible_person) and use."""
        return tuple(f for f in self.fines if f.applies(party, use))


@dataclass(frozen=True)
class RulePack:
    id: str
    title: str
    jurisdiction: str
    rank: int
    effective_from: date
    effective_to: date | None
    retention: RetentionRule | None
    raw: dict[str, Any] = field(repr=False, default_factory=dict)
    requirements: Mapping[str, Requirement] = field(repr=False, default_factory=dict)
    site_categories: tuple[SiteCategory, ...] = field(repr=False, default=())
    location_types: tuple[LocationType, ...] = field(repr=False, default=())
    filings: tuple[FilingRule, ...] = field(repr=False, default=())
    limits: Mapping[str, Limit] = field(repr=False, default_factory=dict)
    penalties: tuple[Penalty, ...] = field(repr=False, default=())
    appeal_articles: tuple[str, ...] = ()
    currency: str = "CNY"
    source: str = ""
    lines: Mapping[tuple[Any, ...], int] = field(repr=False, compare=False, default_factory=dict)

    def in_force(self, on: date) -> bool:
        return self.effective_from <= on and (self.effective_to is None or on < self.effective_to)

    def line_of(self, path: tuple[Any, ...]) -> int | None:
        return _line_of(self.lines, path)


# ---------------------------------------------------------------------------------------------
# Line numbers: tomllib gives none for values, so the source is scanned once to map each table
# header and key to its line. Inline tables and list items map to the line of their key.


def _split_key(s: str) -> list[str]:
    parts, cur, quote = [], "", None
    for ch in s:
        if quote:
            if ch == quote:
                quote = None
            else:
                cur += ch
        elif ch in "\"'":
            quote = ch
        elif ch == ".":
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    parts.append(cur.strip())
    return parts


def _outside_strings(s: str) -> str:
    """``s`` with quoted strings and comments blanked, to count brackets and find ``=``."""
    out, quote = [], None
    for ch in s:
        if quote:
            out.append(" ")
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
            out.append(" ")
        elif ch == "#":
            break
        else:
            out.append(ch)
    return "".join(out)


def _index_lines(text: str) -> dict[tuple[Any, ...], int]:
    lines: dict[tuple[Any, ...], int] = {}
    arrays: dict[tuple[Any, ...], int] = {}  # resolved path of an array of tables -> last index
    current: tuple[Any, ...] = ()
    depth = 0
    in_ml_string: str | None = None
    for n, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if in_ml_string:
            if s.count(in_ml_string) % 2 == 1:
                in_ml_string = None
            continue
        if depth > 0:
            bare = _outside_strings(s)
            depth += bare.count("[") + bare.count("{") - bare.count("]") - bare.count("}")
            continue
        if not s or s.startswith("#"):
            continue
        if s.startswith("["):
            aot = s.startswith("[[")
            inner = s[2:s.index("]]")] if aot else s[1:s.index("]")]
            keys = _split_key(inner)
            path: tuple[Any, ...] = ()
            for k in keys[:-1]:
                path += (k,)
                if path in arrays:
                    path += (arrays[path],)
            path += (keys[-1],)
            if aot:
                arrays[path] = arrays.get(path, -1) + 1
                path += (arrays[path],)
            current = path
            lines.setdefault(current, n)
            continue
        bare = _outside_strings(s)
        if "=" not in bare:
            continue
        eq = bare.index("=")
        lines.setdefault(current + tuple(_split_key(s[:eq])), n)
        value = s[eq + 1:].strip()
        for q in ('"""', "'''"):
            if value.startswith(q) and value.count(q) == 1:
                in_ml_string = q
        rest = bare[eq + 1:]
        depth = max(0, rest.count("[") + rest.count("{") - rest.count("]") - rest.count("}"))
    return lines


def _line_of(lines: Mapping[tuple[Any, ...], int], path: tuple[Any, ...]) -> int | None:
    for k in range(len(path), 0, -1):
        if path[:k] in lines:
            return lines[path[:k]]
    return None


def _show(path: tuple[Any, ...]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


# ---------------------------------------------------------------------------------------------
# Reading one pack


class _Reader:
    def __init__(self, source: str, text: str) -> None:
        self.source = source
        self.lines = _index_lines(text)

    def fail(self, path: tuple[Any, ...], msg: str) -> NoReturn:
        line = _line_of(self.lines, path)
        where = f"{self.source}:{line}" if line else self.source
        raise ConfigError(f"rule pack {where}: {_show(path)}: {msg}" if path else f"rule pack {where}: {msg}")

    def table(self, d: Any, path: tuple[Any, ...], required: dict[str, str],
              optional: dict[str, str] | None = None) -> dict[str, Any]:
        """Check a table's keys and value types; return the values (optional ones may be None).

        Types: str, int, bool, number, date, strs (list of text), table."""
        optional = optional or {}
        if not isinstance(d, dict):
            self.fail(path, f"must be a table, not {_tname(d)}")
        unknown = sorted(set(d) - set(required) - set(optional))
        if unknown:
            self.fail(path + (unknown[0],),
                      f"unknown key {unknown[0]!r}; known keys: {', '.join(sorted({*required, *optional}))}")
        out: dict[str, Any] = {}
        for key, typ in {**required, **optional}.items():
            if key not in d:
                if key in required:
                    self.fail(path, f"missing key {key!r}")
                out[key] = None
                continue
            out[key] = self.value(d[key], path + (key,), typ)
        return out

    def value(self, v: Any, path: tuple[Any, ...], typ: str) -> Any:
        if typ == "date":
            if isinstance(v, date):
                return v
            if isinstance(v, str):
                try:
                    return date.fromisoformat(v)
                except ValueError:
                    pass
            self.fail(path, f"{v!r} is not a date (YYYY-MM-DD)")
        ok = {
            "str": lambda: isinstance(v, str) and v.strip() != "",
            "int": lambda: isinstance(v, int) and not isinstance(v, bool),
            "number": lambda: isinstance(v, int | float) and not isinstance(v, bool),
            "bool": lambda: isinstance(v, bool),
            "strs": lambda: isinstance(v, list) and all(isinstance(x, str) and x for x in v),
            "table": lambda: isinstance(v, dict),
        }[typ]
        if not ok():
            want = {"str": "non-empty text", "strs": "a list of non-empty texts",
                    "number": "a number"}.get(typ, typ)
            self.fail(path, f"must be {want}, not {_tname(v)} {v!r}")
        return tuple(v) if typ == "strs" else v

    def one_of(self, v: str, path: tuple[Any, ...], allowed: frozenset[str] | Mapping[str, Any]) -> str:
        if v not in allowed:
            self.fail(path, f"{v!r} is not one of {', '.join(sorted(allowed))}")
        return v


def _tname(v: Any) -> str:
    return {str: "text", int: "integer", float: "number", bool: "boolean", list: "list",
            dict: "table"}.get(type(v), type(v).__name__)


def parse_pack(text: str, source: str) -> RulePack:
    """Parse and validate one pack; ``source`` (its path or name) is used in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"rule pack {source}: not valid TOML: {e}") from e
    r = _Reader(source, text)
    if not isinstance(data.get("pack"), dict):
        raise ConfigError(f"rule pack {source}: missing [pack] section")
    for key in data:
        if key not in _SECTIONS:
            r.fail((key,), f"unknown section [{key}]; known sections: {', '.join(_SECTIONS)}")
    head = r.table(data["pack"], ("pack",),
                   {"id": "str", "title": "str", "jurisdiction": "str", "rank": "int",
                    "effective_from": "date"},
                   {"effective_to": "date", "id_prefix": "str", "currency": "str", "source_text": "str"})
    pid = head["id"]
    if head["effective_to"] and head["effective_to"] <= head["effective_from"]:
        r.fail(("pack", "effective_to"), "must be after effective_from")

    # Requirement ids: every other section may cite only these.
    reqs: dict[str, Requirement] = {}
    prefix = head["id_prefix"]
    id_re = re.compile(rf"^{re.escape(prefix)}\d+(\.\d+)?$") if prefix else None
    if "requirements" in data:
        section = r.value(data["requirements"], ("requirements",), "table")
        for rid, body in section.items():
            p = ("requirements", rid)
            if id_re and not id_re.match(rid):
                r.fail(p, f"requirement id {rid!r} must look like {prefix}<article>[.<n>]")
            t = r.table(body, p, {"article": "str", "summary": "str"})
            reqs[rid] = Requirement(rid, t["article"], t["summary"], pid)
    elif any(k in data for k in _SECTIONS[3:]):
        raise ConfigError(f"rule pack {source}: missing [requirements] section (the ids the "
                          f"other sections cite)")

    def cite(ids: tuple[str, ...] | None, path: tuple[Any, ...], *, empty_ok: bool = False) -> tuple[str, ...]:
        ids = ids or ()
        if not ids and not empty_ok:
            r.fail(path, "must cite at least one requirement id")
        if reqs or "requirements" in data:
            for i, a in enumerate(ids):
                if a not in reqs:
                    r.fail(path + (i,), f"unknown requirement id {a!r} (not in [requirements] of {pid})")
        return ids

    retention = None
    if "retention" in data:
        t = r.table(data["retention"], ("retention",), {"min_days": "int", "articles": "strs"},
                    {"default_max_days": "int", "tamper_articles": "strs"})
        if t["min_days"] < 1:
            r.fail(("retention", "min_days"), "must be at least 1")
        if t["default_max_days"] is not None and t["default_max_days"] < t["min_days"]:
            r.fail(("retention", "default_max_days"), "must not be below min_days")
        retention = RetentionRule(t["min_days"], cite(t["articles"], ("retention", "articles")),
                                  t["default_max_days"],
                                  cite(t["tamper_articles"], ("retention", "tamper_articles"), empty_ok=True))

    def entries(name: str) -> list[tuple[tuple[Any, ...], Any]]:
        if name not in data:
            return []
        if not isinstance(data[name], list):
            r.fail((name,), f"must be an array of tables, written [[{name}]]")
        return [((name, i), e) for i, e in enumerate(data[name])]

    def unique(seen: set[str], value: str, path: tuple[Any, ...], what: str) -> None:
        if value in seen:
            r.fail(path, f"duplicate {what} id {value!r}")
        seen.add(value)

    categories, seen = [], set()
    for p, e in entries("site_category"):
        t = r.table(e, p, {"id": "str", "item": "int", "title": "str", "must_install": "bool",
                           "builder": "str", "articles": "strs"}, {"maps_to": "strs", "exempt": "strs"})
        _slug(r, t["id"], p + ("id",))
        unique(seen, t["id"], p + ("id",), "site_category")
        r.one_of(t["builder"], p + ("builder",), BUILDERS)
        for i, m in enumerate(t["maps_to"] or ()):
            if m.count(":") != 1 or not all(m.split(":")):
                r.fail(p + ("maps_to", i), f"{m!r} must be 'pack-id:category-id'")
        categories.append(SiteCategory(
            t["id"], t["item"], t["title"], t["must_install"], t["builder"],
            cite(t["articles"], p + ("articles",)), pid, t["maps_to"] or (),
            cite(t["exempt"], p + ("exempt",), empty_ok=True)))

    locations, seen = [], set()
    for p, e in entries("location_type"):
        t = r.table(e, p, {"id": "str", "title": "str", "forbidden": "bool", "text": "str",
                           "articles": "strs"})
        _slug(r, t["id"], p + ("id",))
        unique(seen, t["id"], p + ("id",), "location_type")
        locations.append(LocationType(t["id"], t["title"], t["forbidden"], t["text"],
                                      cite(t["articles"], p + ("articles",)), pid))

    filings, seen = [], set()
    for p, e in entries("filing"):
        t = r.table(e, p, {"id": "str", "trigger": "str", "days": "int", "source": "str",
                           "authority": "str", "articles": "strs"},
                    {"anchor": "date", "contents": "strs", "channels": "strs", "applies_to": "str",
                     "note": "str"})
        _slug(r, t["id"], p + ("id",))
        unique(seen, t["id"], p + ("id",), "filing")
        r.one_of(t["trigger"], p + ("trigger",), FILING_TRIGGERS)
        r.one_of(t["source"], p + ("source",), SOURCES)
        if t["days"] < 1:
            r.fail(p + ("days",), "must be at least 1")
        if (t["trigger"] == "anchor") != (t["anchor"] is not None):
            r.fail(p, "a filing has an anchor date exactly when its trigger is 'anchor'")
        if t["source"] == "default" and not t["note"]:
            r.fail(p, "a default (source = \"default\") needs a note saying what the text says instead")
        filings.append(FilingRule(t["id"], t["trigger"], t["days"], t["source"], t["authority"],
                                  cite(t["articles"], p + ("articles",)), pid, t["anchor"],
                                  t["contents"] or (), t["channels"] or (), t["applies_to"] or "",
                                  t["note"] or ""))

    limits: dict[str, Limit] = {}
    if "limits" in data:
        for name, e in r.value(data["limits"], ("limits",), "table").items():
            p = ("limits", name)
            r.one_of(name, p, LIMITS)
            t = r.table(e, p, {"value": "number", "unit": "str", "source": "str", "articles": "strs"},
                        {"note": "str"})
            if t["value"] <= 0:
                r.fail(p + ("value",), "must be positive")
            if t["unit"] != LIMITS[name][0]:
                r.fail(p + ("unit",), f"must be {LIMITS[name][0]!r} for {name}")
            r.one_of(t["source"], p + ("source",), SOURCES)
            if t["source"] == "default" and not t["note"]:
                r.fail(p, "a default (source = \"default\") needs a note saying what the text says instead")
            limits[name] = Limit(name, t["value"], t["unit"], t["source"],
                                 cite(t["articles"], p + ("articles",)), pid, t["note"] or "")

    currency = head["currency"] or "CNY"
    penalties, seen = [], set()
    for p, e in entries("penalty"):
        t = r.table({k: v for k, v in e.items() if k != "fine"} if isinstance(e, dict) else e, p,
                    {"id": "str", "article": "str", "punishes": "strs", "measures": "strs"},
                    {"note": "str"})
        unique(seen, t["id"], p + ("id",), "penalty")
        cite((t["id"],), p + ("id",))
        for i, m in enumerate(t["measures"]):
            r.one_of(m, p + ("measures", i), MEASURES)
        raw_fines = e.get("fine", [])
        if not isinstance(raw_fines, list):
            r.fail(p + ("fine",), "must be an array of tables, written [[penalty.fine]]")
        fines, keys = [], set()
        for i, f in enumerate(raw_fines):
            fp = p + ("fine", i)
            ft = r.table(f, fp, {"max": "int", "when": "str"},
                         {"min": "int", "party": "str", "use": "str"})
            party = r.one_of(ft["party"] or "any", fp + ("party",), PARTIES)
            use = r.one_of(ft["use"] or "any", fp + ("use",), USES)
            r.one_of(ft["when"], fp + ("when",), FINE_WHEN)
            if ft["min"] is not None and ft["min"] < 0:
                r.fail(fp + ("min",), f"fine min {ft['min']} is negative")
            if ft["max"] <= 0:
                r.fail(fp + ("max",), f"fine max {ft['max']} must be positive")
            if ft["min"] is not None and ft["min"] > ft["max"]:
                r.fail(fp + ("min",), f"fine range {ft['min']}-{ft['max']}: min is above max")
            if (party, use, ft["when"]) in keys:
                r.fail(fp, f"a second fine for party {party!r}, use {use!r}, when {ft['when']!r}")
            keys.add((party, use, ft["when"]))
            fines.append(Fine(party, use, ft["min"], ft["max"], ft["when"]))
        penalties.append(Penalty(t["id"], t["article"], cite(t["punishes"], p + ("punishes",)),
                                 t["measures"], tuple(fines), pid, head["rank"], currency,
                                 t["note"] or ""))

    appeal: tuple[str, ...] = ()
    if "appeal" in data:
        t = r.table(data["appeal"], ("appeal",), {"articles": "strs"}, {"court_enforcement": "bool"})
        appeal = cite(t["articles"], ("appeal", "articles"))

    return RulePack(
        id=pid, title=head["title"], jurisdiction=head["jurisdiction"], rank=head["rank"],
        effective_from=head["effective_from"], effective_to=head["effective_to"],
        retention=retention, raw=data, requirements=reqs, site_categories=tuple(categories),
        location_types=tuple(locations), filings=tuple(filings), limits=limits,
        penalties=tuple(penalties), appeal_articles=appeal, currency=currency, source=source,
        lines=r.lines,
    )


def _slug(r: _Reader, v: str, path: tuple[Any, ...]) -> None:
    if not _SLUG.match(v):
        r.fail(path, f"{v!r} must be a machine id: lower case letters, digits and _")


# ---------------------------------------------------------------------------------------------


class RuleBook:
    """All loaded packs; answers questions for the packs in force on a date.

    Lists are ordered by pack rank, strongest (national) first, then by order in the file."""

    def __init__(self, packs: list[RulePack]) -> None:
        ids = [p.id for p in packs]
        if len(set(ids)) != len(ids):
            raise ConfigError(f"rule packs: duplicate pack ids in {ids}")
        self.packs = sorted(packs, key=lambda p: -p.rank)
        self._check_cross_references()

    def _check_cross_references(self) -> None:
        by_id = {p.id: p for p in self.packs}
        for pack in self.packs:
            for i, c in enumerate(pack.site_categories):
                for j, m in enumerate(c.maps_to):
                    other, cat = m.split(":")
                    if other in by_id and cat not in {x.id for x in by_id[other].site_categories}:
                        line = pack.line_of(("site_category", i, "maps_to", j))
                        raise ConfigError(
                            f"rule pack {pack.source}:{line}: site_category[{i}].maps_to: "
                            f"{other} has no site category {cat!r}")

    @classmethod
    def load(cls, directory: Path) -> RuleBook:
        files = sorted(Path(directory).glob("*.toml"))
        if not files:
            raise ConfigError(f"rule packs: no *.toml file in {directory}")
        return cls([parse_pack(f.read_text(encoding="utf-8"), str(f)) for f in files])

    def in_force(self, on: date) -> list[RulePack]:
        return [p for p in self.packs if p.in_force(on)]

    def retention_minimum(self, on: date) -> tuple[int, tuple[str, ...]]:
        """The strictest minimum retention in force, and every article that sets one."""
        rules = [p.retention for p in self.in_force(on) if p.retention]
        if not rules:
            raise ConfigError(f"rule packs: no pack in force on {on} sets a retention minimum")
        days = max(r.min_days for r in rules)
        arts = tuple(a for r in rules for a in r.articles)
        return days, arts

    def retention_default_max(self, on: date) -> int | None:
        """Days after which footage without a hold or legal basis must go (N17.1)."""
        vals = [p.retention.default_max_days for p in self.in_force(on)
                if p.retention and p.retention.default_max_days]
        return min(vals) if vals else None

    def tamper_articles(self, on: date) -> tuple[str, ...]:
        """Articles that forbid altering or removing footage within retention (Q20.3, N15.1, N23.1)."""
        return tuple(a for p in self.in_force(on) if p.retention for a in p.retention.tamper_articles)

    def requirement(self, req_id: str) -> Requirement | None:
        """The requirement with this id in any loaded pack (in force or not)."""
        for p in self.packs:
            if req_id in p.requirements:
                return p.requirements[req_id]
        return None

    # --- places ---------------------------------------------------------------------------------

    def site_categories(self, on: date, *, must_install: bool | None = None) -> list[SiteCategory]:
        """Classes of places in force (Q7.1, N7.1, N9.1); ``must_install`` filters the mandatory."""
        return [c for p in self.in_force(on) for c in p.site_categories
                if must_install is None or c.must_install == must_install]

    def forbidden_locations(self, on: date) -> dict[str, ForbiddenLocation]:
        """Location types where a camera is forbidden (Q9.1, N8.1), each with every article
        of every pack in force that forbids it."""
        merged: dict[str, tuple[list[str], list[str]]] = {}
        for p in self.in_force(on):
            for lt in p.location_types:
                if lt.forbidden:
                    titles, arts = merged.setdefault(lt.id, ([], []))
                    titles.append(lt.title)
                    arts.extend(a for a in lt.articles if a not in arts)
        return {k: ForbiddenLocation(k, tuple(t), tuple(a)) for k, (t, a) in merged.items()}

    def allowed_locations(self, on: date) -> tuple[str, ...]:
        """Location types the packs in force define and no pack in force forbids, sorted."""
        forbidden = self.forbidden_locations(on)
        return tuple(sorted({lt.id for p in self.in_force(on) for lt in p.location_types
                             if not lt.forbidden and lt.id not in forbidden}))

    def location_vocabulary(self, on: date) -> tuple[str, ...]:
        return tuple(sorted({lt.id for p in self.in_force(on) for lt in p.location_types}))

    # --- filings, limits ----------------------------------------------------------------------

    def filing_rules(self, on: date, trigger: str | None = None) -> list[FilingRule]:
        """Filing duties in force (Q16.1, Q16.2, Q35.1, N14.1), optionally for one trigger."""
        return [f for p in self.in_force(on) for f in p.filings if trigger is None or f.trigger == trigger]

    def limits(self, name: str, on: date) -> list[Limit]:
        if name not in LIMITS:
            raise KeyError(f"unknown limit {name!r}; known: {', '.join(LIMITS)}")
        return [p.limits[name] for p in self.in_force(on) if name in p.limits]

    def limit(self, name: str, on: date) -> Limit | None:
        """The strictest value of a limit over the packs in force (e.g. ``clock_max_offset``)."""
        vals = self.limits(name, on)
        if not vals:
            return None
        pick = min if LIMITS[name][1] == "max" else max
        return pick(vals, key=lambda x: x.value)

    # --- penalties -----------------------------------------------------------------------------

    def penalties(self, on: date) -> list[Penalty]:
        return [x for p in self.in_force(on) for x in p.penalties]

    def penalties_for(self, article: str, on: date) -> list[Penalty]:
        """Every penalty in force that punishes a breach of ``article`` (a duty id such as
        ``Q9.1``), from every pack, strongest pack first. A finding cites them all."""
        return [x for x in self.penalties(on) if article in x.punishes]

    def penalties_for_any(self, articles: tuple[str, ...] | list[str], on: date) -> list[Penalty]:
        """The penalties for a breach citing several duty articles (e.g. Q9.1 and N8.1), once each."""
        return [x for x in self.penalties(on) if any(a in x.punishes for a in articles)]

    def penalty(self, penalty_id: str) -> Penalty | None:
        for p in self.packs:
            for x in p.penalties:
                if x.id == penalty_id:
                    return x
        return None
