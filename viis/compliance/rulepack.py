"""Rule packs: the law as data (invariant 4).

A pack is a TOML file in ``rulepacks/`` naming its jurisdiction, rank and effective dates,
with sections per duty. This module loads and validates packs and answers the questions
the other subsystems ask, always for the packs in force on a given date. The compliance
issue extends the schema (categories, deadlines, fines); unknown sections are kept.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from viis.core.errors import ConfigError


@dataclass(frozen=True)
class RetentionRule:
    min_days: int
    articles: tuple[str, ...]
    default_max_days: int | None = None


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

    def in_force(self, on: date) -> bool:
        return self.effective_from <= on and (self.effective_to is None or on < self.effective_to)


def _req(d: dict[str, Any], key: str, typ: type, where: str) -> Any:
    if key not in d:
        raise ConfigError(f"{where}: missing key {key!r}")
    v = d[key]
    if typ is date and isinstance(v, str):
        try:
            return date.fromisoformat(v)
        except ValueError as e:
            raise ConfigError(f"{where}: {key} = {v!r} is not a date (YYYY-MM-DD)") from e
    if not isinstance(v, typ) or (typ is int and isinstance(v, bool)):
        raise ConfigError(f"{where}: {key} must be {typ.__name__}, not {type(v).__name__}")
    return v


def parse_pack(text: str, source: str) -> RulePack:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"rule pack {source}: not valid TOML: {e}") from e
    head = data.get("pack")
    if not isinstance(head, dict):
        raise ConfigError(f"rule pack {source}: missing [pack] section")
    where = f"rule pack {source} [pack]"
    to = head.get("effective_to")
    retention = None
    if "retention" in data:
        r = data["retention"]
        w = f"rule pack {source} [retention]"
        min_days = _req(r, "min_days", int, w)
        if min_days < 1:
            raise ConfigError(f"{w}: min_days must be at least 1")
        arts = _req(r, "articles", list, w)
        if not arts or not all(isinstance(a, str) for a in arts):
            raise ConfigError(f"{w}: articles must be a non-empty list of requirement ids")
        mx = r.get("default_max_days")
        retention = RetentionRule(min_days, tuple(arts), mx)
    return RulePack(
        id=_req(head, "id", str, where),
        title=_req(head, "title", str, where),
        jurisdiction=_req(head, "jurisdiction", str, where),
        rank=_req(head, "rank", int, where),
        effective_from=_req(head, "effective_from", date, where),
        effective_to=_req(head, "effective_to", date, where) if to is not None else None,
        retention=retention,
        raw=data,
    )


class RuleBook:
    """All loaded packs; answers questions for the packs in force on a date."""

    def __init__(self, packs: list[RulePack]) -> None:
        ids = [p.id for p in packs]
        if len(set(ids)) != len(ids):
            raise ConfigError(f"rule packs: duplicate pack ids in {ids}")
        self.packs = sorted(packs, key=lambda p: -p.rank)

    @classmethod
    def load(cls, directory: Path) -> RuleBook:
        files = sorted(Path(directory).glob("*.toml"))
        if not files:
            raise ConfigError(f"rule packs: no *.toml file in {directory}")
        return cls([parse_pack(f.read_text(encoding="utf-8"), f.name) for f in files])

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
