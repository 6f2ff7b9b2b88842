"""Inspections (Q25.1, N24.1), their photos, and public tips about unlawful installations.

A checklist is generated from the packs in force on the inspection day: one item per duty
requirement that applies to a site of the given categories. A duty is a requirement that a
penalty sanctions (its ``punishes``), except those sanctioned only by official accountability
(police retrieval procedure Q23/Q24, Q25/N24 themselves: duties of the police, not of the
unit). A requirement that some site category of the pack names in its ``articles`` (Q7.1,
Q8.1/Q8.2, N7.3, N9.1, N33.1: who must or may build where) applies only if one of the site's
categories names it, and the duties a category lifts (N9¶2, ``exempt``) are left out, as the
engine does. A failed item yields a breach finding whose citations come from the engine
(:meth:`Evaluator.requirement_citations`): the same penalties and ranges a check gives.

Uploads are hostile input: a photo must be JPEG or PNG by its magic bytes, of bounded size,
and is stored once under its SHA-256. A tip (N24.1, anyone may report) is bounded in every
field and refused whole on the first bad one: nothing is stored from a refused tip.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
import unicodedata
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from viis.compliance.engine import RECTIFY_NOTE, Evaluator
from viis.compliance.findings import BREACH, Evidence, Finding, finding_id
from viis.compliance.models import CompliancePhoto, Inspection, InspectionItem, Tip
from viis.compliance.rulepack import RuleBook
from viis.core.errors import NotFound, ValidationFailed

RESULTS = ("pending", "pass", "fail", "not_applicable")
USES = ("business", "non_business")
PARTIES = ("unit", "individual")
MAX_PHOTO_BYTES = 8 * 1024 * 1024
MIN_PHOTO_BYTES = 64
_MAGIC = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"))
MAX_LOCATION = 500
MAX_DESCRIPTION = 4000
MAX_CONTACT = 200
MAX_NOTE = 4000


class InspectionError(ValidationFailed):
    pass


@dataclass(frozen=True)
class ChecklistItem:
    requirement: str
    pack: str
    article: str
    summary: str


def checklist(book: RuleBook, on: date, categories: list[str] | tuple[str, ...]) -> list[ChecklistItem]:
    """The items to check at a site of these categories ("pack:category"), strongest pack first."""
    packs = book.in_force(on)
    known = {f"{p.id}:{c.id}": c for p in packs for c in p.site_categories}
    chosen = []
    for i, name in enumerate(categories):
        if name not in known:
            raise InspectionError(f"unknown site category {name!r} on {on}; the packs in force define "
                                  f"{', '.join(sorted(known))}", field=f"site_categories[{i}]")
        chosen.append(known[name])
    items: list[ChecklistItem] = []
    for p in packs:
        duties = {a for x in p.penalties if set(x.measures) - {"official_accountability", "criminal_liability"}
                  for a in x.punishes}
        bound = {a for c in p.site_categories for a in c.articles}
        mine = [c for c in chosen if c.pack == p.id]
        named = {a for c in mine for a in c.articles}
        exempt = set.intersection(*(set(c.exempt) for c in mine)) if mine else set()
        for req in p.requirements.values():
            if req.id not in duties or req.id in exempt or (req.id in bound and req.id not in named):
                continue
            items.append(ChecklistItem(req.id, p.id, req.article, req.summary))
    return items


# --- photos ----------------------------------------------------------------------------------

def sniff_photo(data: bytes) -> str:
    """The media type by magic bytes; refuses anything but a JPEG or PNG of bounded size."""
    if not isinstance(data, (bytes, bytearray)):
        raise InspectionError("photo must be bytes", field="photo")
    if len(data) > MAX_PHOTO_BYTES:
        raise InspectionError(f"photo of {len(data)} bytes is over the limit of {MAX_PHOTO_BYTES}",
                              field="photo")
    if len(data) < MIN_PHOTO_BYTES:
        raise InspectionError(f"photo of {len(data)} bytes is too small to be a picture", field="photo")
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    raise InspectionError("photo must be a JPEG or PNG image (checked by its first bytes)", field="photo")


def store_photo(s: Session, data: bytes, *, by: str, now_ms: int) -> str:
    kind = sniff_photo(data)
    sha = hashlib.sha256(data).hexdigest()
    if s.get(CompliancePhoto, sha) is None:
        s.add(CompliancePhoto(sha256=sha, media_type=kind, size=len(data), data=bytes(data),
                              stored_ms=now_ms, stored_by=by))
        s.flush()
    return sha


def get_photo(s: Session, sha: str) -> CompliancePhoto:
    p = s.get(CompliancePhoto, sha.lower()) if len(sha) == 64 else None
    if p is None:
        raise NotFound(f"no photo {sha[:64]}")
    return p


# --- inspections ------------------------------------------------------------------------------

def _text(v: str, name: str, limit: int, *, required: bool = True) -> str:
    if not isinstance(v, str):
        raise InspectionError(f"{name} must be text", field=name)
    v = v.strip()
    if required and not v:
        raise InspectionError(f"{name} is required", field=name)
    if len(v) > limit:
        raise InspectionError(f"{name} is {len(v)} characters; at most {limit}", field=name)
    bad = next((ch for ch in v if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co")
                and ch not in "\n\t"), None)
    if bad is not None:
        raise InspectionError(f"{name} contains a control or format character U+{ord(bad):04X}",
                              field=name)
    return v


def start_inspection(s: Session, book: RuleBook, *, organisation: str, organisation_name: str,
                     use: str, party: str, site: str, categories: list[str], on: date,
                     inspector: str, now_ms: int, tip_id: int | None = None) -> Inspection:
    if use not in USES:
        raise InspectionError(f"use must be one of {', '.join(USES)}", field="use")
    if party not in PARTIES:
        raise InspectionError(f"party must be one of {', '.join(PARTIES)}", field="party")
    items = checklist(book, on, categories)
    insp = Inspection(organisation=_text(organisation, "organisation", 200),
                      organisation_name=_text(organisation_name, "organisation_name", 200),
                      use=use, party=party, site=_text(site, "site", 200),
                      site_categories=list(categories), on_day=on, state="open", inspector=inspector,
                      tip_id=tip_id, created_ms=now_ms)
    s.add(insp)
    s.flush()
    for i, it in enumerate(items, 1):
        s.add(InspectionItem(inspection_id=insp.id, seq=i, requirement=it.requirement, pack=it.pack,
                             article=it.article, summary=it.summary, result="pending", note=""))
    s.flush()
    return insp


def get_inspection(s: Session, inspection_id: int) -> Inspection:
    insp = s.get(Inspection, inspection_id)
    if insp is None:
        raise NotFound(f"no inspection {inspection_id}")
    return insp


def items_of(s: Session, inspection_id: int) -> list[InspectionItem]:
    return list(s.scalars(select(InspectionItem).where(InspectionItem.inspection_id == inspection_id)
                          .order_by(InspectionItem.seq)))


def record_result(s: Session, inspection_id: int, seq: int, *, result: str, actor: str, now_ms: int,
                  note: str = "", photo: bytes | None = None) -> InspectionItem:
    insp = get_inspection(s, inspection_id)
    if insp.state != "open":
        raise InspectionError(f"inspection {inspection_id} is {insp.state}; results are final",
                              field="state")
    if result not in RESULTS[1:]:
        raise InspectionError(f"result must be one of {', '.join(RESULTS[1:])}", field="result")
    note = _text(note, "note", MAX_NOTE, required=result == "fail")
    item = s.scalar(select(InspectionItem).where(InspectionItem.inspection_id == inspection_id,
                                                 InspectionItem.seq == seq))
    if item is None:
        raise NotFound(f"inspection {inspection_id} has no item {seq}")
    if photo is not None:
        item.photo_sha256 = store_photo(s, photo, by=actor, now_ms=now_ms)
    item.result, item.note, item.recorded_by, item.recorded_ms = result, note, actor, now_ms
    s.flush()
    return item


def complete_inspection(s: Session, inspection_id: int, *, actor: str, now_ms: int) -> Inspection:
    insp = get_inspection(s, inspection_id)
    if insp.state != "open":
        raise InspectionError(f"inspection {inspection_id} is already {insp.state}", field="state")
    pending = [i.seq for i in items_of(s, inspection_id) if i.result == "pending"]
    if pending:
        raise InspectionError(f"items without a result: {', '.join(map(str, pending))}", field="items")
    insp.state, insp.completed_ms, insp.completed_by = "completed", now_ms, actor
    s.flush()
    return insp


def inspection_findings(s: Session, book: RuleBook, inspection_id: int) -> list[Finding]:
    """A breach finding per failed item, citing the requirement and the engine's penalties."""
    insp = get_inspection(s, inspection_id)
    ev = Evaluator(book, insp.on_day)
    out = []
    for it in items_of(s, inspection_id):
        if it.result != "fail":
            continue
        subject = f"site:{insp.site}"
        check = f"inspection.{it.requirement}"
        ref = f"inspection:{insp.id}#{it.seq}"
        evidence = [Evidence(ref, "note", it.note)]
        if it.photo_sha256:
            evidence.append(Evidence(ref, "photo_sha256", it.photo_sha256))
        out.append(Finding(
            finding_id(insp.organisation, check, subject), BREACH, check, subject, (it.requirement,),
            ev.requirement_citations(it.requirement, insp.use, insp.party), tuple(evidence),
            insp.on_day, None, None,
            f"{it.requirement} ({it.pack} art. {it.article}: {it.summary}) failed at inspection "
            f"{insp.id} by {it.recorded_by}: {it.note}",
            f"Satisfy {it.requirement}; a re-inspection records it as passed.",
            (RECTIFY_NOTE,)))
    return out


def inspection_view(insp: Inspection, items: list[InspectionItem]) -> dict:
    return {
        "id": insp.id, "organisation": insp.organisation, "organisation_name": insp.organisation_name,
        "use": insp.use, "party": insp.party, "site": insp.site, "site_categories": insp.site_categories,
        "on": insp.on_day.isoformat(), "state": insp.state, "inspector": insp.inspector,
        "tip_id": insp.tip_id, "created_ms": insp.created_ms, "completed_ms": insp.completed_ms,
        "completed_by": insp.completed_by,
        "items": [{"seq": i.seq, "requirement": i.requirement, "pack": i.pack, "article": i.article,
                   "summary": i.summary, "result": i.result, "note": i.note,
                   "photo_sha256": i.photo_sha256, "recorded_by": i.recorded_by,
                   "recorded_ms": i.recorded_ms} for i in items],
    }


# --- tips (N24.1) -----------------------------------------------------------------------------

def submit_tip(s: Session, *, location: str, description: str, now_ms: int,
               latitude: float | None = None, longitude: float | None = None, contact: str = "",
               photo: bytes | None = None) -> Tip:
    """A public report. Everything is checked before anything is stored."""
    location = _text(location, "location", MAX_LOCATION)
    description = _text(description, "description", MAX_DESCRIPTION)
    contact = _text(contact, "contact", MAX_CONTACT, required=False)
    for name, v, lim in (("latitude", latitude, 90), ("longitude", longitude, 180)):
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or abs(v) > lim:
            raise InspectionError(f"{name} must be a number within ±{lim}", field=name)
    if (latitude is None) != (longitude is None):
        raise InspectionError("give both latitude and longitude, or neither", field="latitude")
    if photo is not None:
        sniff_photo(photo)
    sha = store_photo(s, photo, by="public", now_ms=now_ms) if photo is not None else None
    tip = Tip(received_ms=now_ms, location=location, latitude=latitude, longitude=longitude,
              description=description, contact=contact, photo_sha256=sha, state="new")
    s.add(tip)
    s.flush()
    return tip


def get_tip(s: Session, tip_id: int) -> Tip:
    t = s.get(Tip, tip_id)
    if t is None:
        raise NotFound(f"no tip {tip_id}")
    return t


def dismiss_tip(s: Session, tip_id: int, *, reason: str, actor: str, now_ms: int) -> Tip:
    t = get_tip(s, tip_id)
    if t.state != "new":
        raise InspectionError(f"tip {tip_id} was already triaged ({t.state})", field="state")
    t.reason = _text(reason, "reason", MAX_NOTE)
    t.state, t.triaged_by, t.triaged_ms = "dismissed", actor, now_ms
    s.flush()
    return t


def tip_to_inspection(s: Session, book: RuleBook, tip_id: int, *, actor: str, now_ms: int,
                      **inspection) -> tuple[Tip, Inspection]:
    """Triage a tip into an inspection of the site it names (``start_inspection`` arguments)."""
    t = get_tip(s, tip_id)
    if t.state != "new":
        raise InspectionError(f"tip {tip_id} was already triaged ({t.state})", field="state")
    insp = start_inspection(s, book, inspector=actor, now_ms=now_ms, tip_id=t.id, **inspection)
    t.state, t.triaged_by, t.triaged_ms, t.inspection_id = "inspection", actor, now_ms, insp.id
    t.reason = "inspection opened"
    s.flush()
    return t, insp


def tip_view(t: Tip) -> dict:
    return {"id": t.id, "received_ms": t.received_ms, "location": t.location, "latitude": t.latitude,
            "longitude": t.longitude, "description": t.description, "contact": t.contact,
            "photo_sha256": t.photo_sha256, "state": t.state, "triaged_by": t.triaged_by,
            "triaged_ms": t.triaged_ms, "reason": t.reason, "inspection_id": t.inspection_id}


class TipLimiter:
    """Public intake is unauthenticated: at most ``per_window`` tips per client address per
    ``window_s`` seconds (in memory, per process), and a bounded table of addresses."""

    def __init__(self, per_window: int = 5, window_s: float = 3600.0, max_clients: int = 10_000,
                 clock=time.monotonic) -> None:
        self.per_window, self.window_s, self.max_clients, self.clock = per_window, window_s, max_clients, clock
        self._seen: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def allow(self, client: str) -> bool:
        now = self.clock()
        with self._lock:
            if len(self._seen) >= self.max_clients:
                self._seen = {k: v for k, v in self._seen.items() if v and v[-1] > now - self.window_s}
                if len(self._seen) >= self.max_clients:
                    return False
            hits = [t for t in self._seen.get(client, []) if t > now - self.window_s]
            if len(hits) >= self.per_window:
                self._seen[client] = hits
                return False
            hits.append(now)
            self._seen[client] = hits
            return True
