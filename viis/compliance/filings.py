"""Filings with the police (Q16.1, Q16.2, Q16.3, Q35.1, N14.1), unit side.

A filing is generated from the live configuration: its contents (N14.1: the unit, the system's
location, the number and kinds of cameras, the storage period; Q16.1: the system's documents —
contractors, inspection report, dates) are a JSON document signed with the installation's key
(``viis/core/signing.py``), the package the police intake verifies; the same contents make the
PDF for people (``filing_pdf``). Deadlines come from the packs (``FilingRule.due``, Asia/Shanghai
calendar days) and the channel must be one the pack allows (Q16.3).

States: draft → submitted (``filed_on`` = the day it left) → accepted (a receipt) or refused.
Submitted and accepted filings count as filed for the engine (``live.COUNTED``); a refused one
does not, so its overdue finding comes back.

Changes (N14.1 "changes are filed promptly"): ``detect_changes`` diffs the facts of the live
configuration — cameras added, cameras removed, storage period, locations — against the contents
of the system's last counted filing and records each new difference once, dated the day it was
first seen; a change filing submitted on or after that day covers it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from viis.compliance.register import system_cameras
from viis.compliance.registry_models import (
    ComplianceFiling,
    ComplianceSite,
    ComplianceSystem,
    ComplianceUnit,
    FiledChange,
)
from viis.compliance.rulepack import FilingRule, RuleBook
from viis.core.errors import NotFound, ValidationFailed
from viis.core.signing import Signer

FORMAT = "viis-filing"
VERSION = 1
COUNTED = ("submitted", "accepted")
# The national text names no channel; these are the ways a filing reaches a county bureau.
DEFAULT_CHANNELS = ("online", "edi", "in_person", "letter", "email")
CHANGE_ASPECTS = ("cameras_added", "cameras_removed", "storage_period", "locations")


def canonical(doc: dict[str, Any]) -> bytes:
    """The bytes that are signed and hashed: sorted keys, no spaces, UTF-8."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def _ctx(s: Session, sy: ComplianceSystem) -> tuple[ComplianceSite, ComplianceUnit]:
    site = s.get(ComplianceSite, sy.site_id)
    return site, s.get(ComplianceUnit, site.unit_id)


def contents_of(s: Session, sy: ComplianceSystem) -> dict[str, Any]:
    """N14.1 contents from the live configuration, plus Q16.1's system documents."""
    site, unit = _ctx(s, sy)
    cams = [(c, ln) for c, ln in system_cameras(s, sy.id) if c.enabled]
    kinds: dict[str, int] = {}
    for c, _ in cams:
        kinds[c.location_type] = kinds.get(c.location_type, 0) + 1
    return {
        "unit_details": {"code": unit.code, "name": unit.name, "use": unit.use, "address": unit.address,
                         "contact": unit.contact, "district": unit.district},
        "system_location": {"site": site.code, "name": site.name, "address": site.address,
                            "lat": site.lat, "lon": site.lon, "categories": list(site.categories),
                            "public_place": site.public_place},
        "camera_count_and_types": {
            "count": len(cams), "by_location_type": dict(sorted(kinds.items())),
            "cameras": [{"id": c.uid, "name": c.name, "location_type": c.location_type,
                         "lat": ln.lat, "lon": ln.lon, "audio": ln.audio} for c, ln in cams]},
        "storage_period": {"system_days": sy.storage_days,
                           "camera_days": sorted({c.retention_days for c, _ in cams})},
        "system": {"code": sy.code, "name": sy.name, "purpose": sy.purpose,
                   "contractors": list(sy.contractors), "inspection_report": sy.inspection_report,
                   "accepted_on": _iso(sy.accepted_on), "in_use_on": _iso(sy.in_use_on),
                   "removed_on": _iso(sy.removed_on)},
    }


def _iso(d: date | None) -> str | None:
    return d.isoformat() if d else None


def facts(contents: dict[str, Any]) -> dict[str, Any]:
    """The filed facts whose change needs a change filing (N14.1)."""
    cams = contents["camera_count_and_types"]["cameras"]
    return {"cameras": sorted(c["id"] for c in cams),
            "storage_period": contents["storage_period"],
            "site": [contents["system_location"].get(k) for k in ("address", "lat", "lon")],
            "places": {c["id"]: [c["location_type"], c["lat"], c["lon"]] for c in cams}}


def _rule(book: RuleBook, kind: str, on: date) -> FilingRule:
    rules = [r for r in book.filing_rules(on) if r.id == kind]
    if not rules:
        known = sorted({r.id for r in book.filing_rules(on)})
        raise ValidationFailed(f"no filing kind {kind!r} in the packs in force on {on}; "
                               f"known: {', '.join(known)}", field="kind")
    return rules[0]


def _event(s: Session, sy: ComplianceSystem, rule: FilingRule) -> date | None:
    if rule.trigger == "acceptance":
        return sy.accepted_on
    if rule.trigger == "in_use":
        return sy.in_use_on
    if rule.trigger == "removal":
        return sy.removed_on
    if rule.trigger == "change":
        ch = s.scalar(select(FiledChange).where(FiledChange.system_id == sy.id, FiledChange.filing_id.is_(None))
                      .order_by(FiledChange.detected_on))
        return ch.detected_on if ch else None
    return None   # anchor: the rule's fixed date


def create_filing(s: Session, book: RuleBook, signer: Signer, *, system_code: str, kind: str,
                  today: date, actor: str, now_ms: int) -> ComplianceFiling:
    """A draft filing of ``kind`` for a system, its contents generated now and signed."""
    from viis.compliance.register import system

    sy = system(s, system_code)
    rule = _rule(book, kind, today)
    event = _event(s, sy, rule)
    if rule.trigger != "anchor" and event is None:
        what = {"acceptance": "accepted_on", "in_use": "in_use_on", "removal": "removed_on",
                "change": "an unfiled change"}[rule.trigger]
        raise ValidationFailed(f"a {kind} filing needs {what} on system {sy.code}; record it first",
                               field="kind", articles=rule.articles)
    due = rule.due(event)
    site, unit = _ctx(s, sy)
    contents = contents_of(s, sy)
    doc = {"format": FORMAT, "version": VERSION, "unit": unit.code, "district": unit.district,
           "system": sy.code, "kind": kind, "pack": rule.pack, "articles": list(rule.articles),
           "authority": rule.authority, "event_on": _iso(event), "due_on": due.isoformat(),
           "generated_on": today.isoformat(), "contents": contents}
    body = canonical(doc)
    sig = signer.sign(body)
    f = ComplianceFiling(system_id=sy.id, kind=kind, pack=rule.pack, state="draft", channel="",
                         authority=rule.authority, event_on=event, due_on=due, contents=contents,
                         contents_sha256=hashlib.sha256(body).hexdigest(),
                         package={"document": doc, "signature": sig.as_dict()}, created_by=actor,
                         created_ms=now_ms, updated_ms=now_ms)
    s.add(f)
    s.flush()
    return f


def get(s: Session, filing_id: int) -> ComplianceFiling:
    f = s.get(ComplianceFiling, filing_id)
    if f is None:
        raise NotFound(f"no filing {filing_id}")
    return f


def channels_for(book: RuleBook, f: ComplianceFiling, on: date) -> tuple[str, ...]:
    rules = [r for r in book.filing_rules(on) if r.id == f.kind and r.pack == f.pack]
    return (rules[0].channels if rules and rules[0].channels else DEFAULT_CHANNELS)


def submit(s: Session, book: RuleBook, filing_id: int, *, channel: str, today: date,
           now_ms: int) -> ComplianceFiling:
    """The filing leaves by ``channel`` (Q16.3) today; a change filing covers the open changes."""
    f = get(s, filing_id)
    if f.state != "draft":
        raise ValidationFailed(f"filing {f.id} is {f.state}; only a draft can be submitted", field="state")
    allowed = channels_for(book, f, today)
    if channel not in allowed:
        raise ValidationFailed(f"channel {channel!r} is not one the pack allows ({', '.join(allowed)})",
                               field="channel", articles=("Q16.3",) if f.pack == "qingdao-2020" else ())
    f.state, f.channel, f.filed_on, f.updated_ms = "submitted", channel, today, now_ms
    if f.kind == "change":
        for ch in s.scalars(select(FiledChange).where(FiledChange.system_id == f.system_id,
                                                      FiledChange.filing_id.is_(None))):
            ch.filing_id = f.id
    s.flush()
    return f


def record_receipt(s: Session, filing_id: int, *, receipt: dict[str, Any] | None = None,
                   refused: str | None = None, now_ms: int) -> ComplianceFiling:
    """The police answer: a receipt (accepted) or a refusal with the reason."""
    f = get(s, filing_id)
    if f.state != "submitted":
        raise ValidationFailed(f"filing {f.id} is {f.state}; a receipt answers a submitted filing",
                               field="state")
    if (receipt is None) == (refused is None):
        raise ValidationFailed("give a receipt or a refusal reason", field="receipt")
    if receipt is not None:
        if receipt.get("content_sha256") not in (None, f.contents_sha256):
            raise ValidationFailed("the receipt is for other contents (content_sha256 differs)",
                                   field="receipt")
        f.state, f.receipt = "accepted", receipt
    else:
        f.state, f.refusal = "refused", refused
        if f.kind == "change":   # the changes it was to cover are open again
            for ch in s.scalars(select(FiledChange).where(FiledChange.filing_id == f.id)):
                ch.filing_id = None
    f.updated_ms = now_ms
    s.flush()
    return f


def detect_changes(s: Session, sy: ComplianceSystem, *, today: date, now_ms: int) -> list[FiledChange]:
    """Record each filed fact that differs from the system's last counted filing (N14.1)."""
    last = s.scalar(select(ComplianceFiling).where(ComplianceFiling.system_id == sy.id,
                                                   ComplianceFiling.state.in_(COUNTED),
                                                   ComplianceFiling.kind != "removal")
                    .order_by(ComplianceFiling.filed_on.desc(), ComplianceFiling.id.desc()))
    if last is None or sy.removed_on is not None:
        return []
    was, now = facts(last.contents), facts(contents_of(s, sy))
    diffs: dict[str, dict[str, Any]] = {}
    added = sorted(set(now["cameras"]) - set(was["cameras"]))
    removed = sorted(set(was["cameras"]) - set(now["cameras"]))
    if added:
        diffs["cameras_added"] = {"cameras": added}
    if removed:
        diffs["cameras_removed"] = {"cameras": removed}
    if now["storage_period"] != was["storage_period"]:
        diffs["storage_period"] = {"was": was["storage_period"], "now": now["storage_period"]}
    # a camera that stayed but moved (or changed place type), or the site's address or position;
    # cameras added or removed are their own changes
    moved = sorted(k for k in set(now["places"]) & set(was["places"]) if now["places"][k] != was["places"][k])
    if moved or now["site"] != was["site"]:
        diffs["locations"] = {"cameras": moved, "site": {"was": was["site"], "now": now["site"]}}
    open_ = {c.what: c for c in s.scalars(select(FiledChange).where(
        FiledChange.system_id == sy.id, FiledChange.filing_id.is_(None)))}
    out = []
    for what, detail in diffs.items():
        if what in open_:
            if open_[what].detail != detail:
                open_[what].detail = detail   # still unfiled: keep its first day, show the latest
            continue
        ch = FiledChange(system_id=sy.id, what=what, detail=detail, detected_on=today, created_ms=now_ms)
        s.add(ch)
        out.append(ch)
    s.flush()
    return out


def detect_unit_changes(s: Session, unit_code: str, *, today: date, now_ms: int) -> list[FiledChange]:
    from viis.compliance.register import unit

    u = unit(s, unit_code)
    out = []
    for sy in s.scalars(select(ComplianceSystem).join(ComplianceSite, ComplianceSite.id == ComplianceSystem.site_id)
                        .where(ComplianceSite.unit_id == u.id)):
        out += detect_changes(s, sy, today=today, now_ms=now_ms)
    return out


def filing_view(f: ComplianceFiling, system_code: str = "") -> dict[str, Any]:
    return {"id": f.id, "system": system_code or f.package.get("document", {}).get("system"),
            "kind": f.kind, "pack": f.pack, "state": f.state, "channel": f.channel,
            "authority": f.authority, "event_on": _iso(f.event_on), "due_on": _iso(f.due_on),
            "filed_on": _iso(f.filed_on), "contents_sha256": f.contents_sha256,
            "key_id": f.package["signature"]["key_id"], "receipt": f.receipt, "refusal": f.refusal,
            "created_by": f.created_by}


def change_view(c: FiledChange) -> dict[str, Any]:
    return {"id": c.id, "what": c.what, "detail": c.detail, "detected_on": c.detected_on.isoformat(),
            "filing_id": c.filing_id}
