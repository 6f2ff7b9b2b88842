"""The police intake of filing packages (bureau side; Q16.3 EDI, N14.1).

A unit's installation posts the signed JSON package its filing produced. The intake checks, in
this order and before anything is stored: size, JSON (no NaN, nesting), the package shape, the
document's format and fields, the unit's registered public key, the signature over the canonical
bytes of the document. Only then is it recorded — once per SHA-256 of those bytes, so posting
the same package again returns the same receipt (idempotent) — and a receipt signed with the
bureau's own key is returned. A forged, altered, oversized or malformed package is refused with
a message naming what is wrong, and nothing is stored.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from viis.compliance.filings import FORMAT, VERSION, canonical
from viis.compliance.registry_models import IntakeFiling, IntakeKey
from viis.core.errors import ValidationFailed
from viis.core.signing import Signature, Signer, key_id_of, load_public, verify

MAX_PACKAGE_BYTES = 1024 * 1024      # a system with thousands of cameras stays far below
MAX_DEPTH = 10
KINDS = ("acceptance", "removal", "transitional", "in_use", "existing", "change")


class IntakeRefused(ValidationFailed):
    """A package the intake will not record; the message says why."""


def register_key(s: Session, *, unit_code: str, unit_name: str, district: str, public_pem: str,
                 actor: str, now_ms: int) -> IntakeKey:
    """Register (or replace) a unit's public key; only packages it signs are accepted."""
    if not unit_code or len(unit_code) > 64:
        raise ValidationFailed("unit_code must be 1-64 characters", field="unit_code")
    _, raw = load_public(public_pem.encode())   # refuses anything but a PEM public key
    k = s.scalar(select(IntakeKey).where(IntakeKey.unit_code == unit_code))
    if k is None:
        k = IntakeKey(unit_code=unit_code, unit_name=unit_name, district=district, public_pem=public_pem,
                      key_id=key_id_of(raw), registered_by=actor, registered_ms=now_ms)
        s.add(k)
    else:
        k.unit_name, k.district, k.public_pem, k.key_id = unit_name, district, public_pem, key_id_of(raw)
        k.registered_by, k.registered_ms = actor, now_ms
    s.flush()
    return k


def _depth(v: Any, limit: int) -> bool:
    stack = [(v, 1)]
    while stack:
        x, d = stack.pop()
        if d > limit:
            return False
        if isinstance(x, dict):
            stack.extend((y, d + 1) for y in x.values() if isinstance(y, dict | list))
        elif isinstance(x, list):
            stack.extend((y, d + 1) for y in x if isinstance(y, dict | list))
    return True


def _no_constant(name: str):
    raise IntakeRefused(f"{name} is not a JSON number", field="package")


def _date(doc: dict, key: str, optional: bool = False) -> date | None:
    v = doc.get(key)
    if v is None and optional:
        return None
    try:
        return date.fromisoformat(v) if isinstance(v, str) and len(v) == 10 else _bad(key)
    except ValueError:
        _bad(key)


def _bad(key: str):
    raise IntakeRefused(f"document.{key} must be a date YYYY-MM-DD", field=f"document.{key}")


def _signed_object(body: bytes, limit: int, depth: int | None) -> dict[str, Any]:
    """The outer ``{"document", "signature"}`` object of a signed upload, read as hostile
    input: bounded size, UTF-8, strict JSON (no NaN), bounded nesting when ``depth`` is given."""
    if len(body) > limit:
        raise IntakeRefused(f"package of {len(body)} bytes; at most {limit}", field="package")
    too_deep = f"nested deeper than {depth} levels" if depth else "nested too deep"
    try:
        raw = json.loads(body.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError as e:
        raise IntakeRefused(f"not UTF-8 at byte {e.start}", field="package") from None
    except json.JSONDecodeError as e:
        raise IntakeRefused(f"not valid JSON at line {e.lineno} column {e.colno}: {e.msg}", field="package") from None
    except RecursionError:
        raise IntakeRefused(too_deep, field="package") from None
    if depth and not _depth(raw, depth):
        raise IntakeRefused(too_deep, field="package")
    if not isinstance(raw, dict) or set(raw) != {"document", "signature"}:
        raise IntakeRefused("a package is an object with exactly 'document' and 'signature'", field="package")
    return raw


def parse_package(body: bytes) -> tuple[dict[str, Any], Signature]:
    raw = _signed_object(body, MAX_PACKAGE_BYTES, MAX_DEPTH)
    doc = raw["document"]
    if not isinstance(doc, dict):
        raise IntakeRefused("document must be an object", field="document")
    if doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise IntakeRefused(f"document is not {FORMAT} version {VERSION}", field="document.format")
    for key in ("unit", "system", "kind", "authority"):
        if not isinstance(doc.get(key), str) or not doc[key] or len(doc[key]) > 200:
            raise IntakeRefused(f"document.{key} must be non-empty text", field=f"document.{key}")
    if doc["kind"] not in KINDS:
        raise IntakeRefused(f"document.kind {doc['kind']!r} is not one of {', '.join(KINDS)}",
                            field="document.kind")
    if not isinstance(doc.get("contents"), dict):
        raise IntakeRefused("document.contents must be an object", field="document.contents")
    _date(doc, "due_on")
    _date(doc, "event_on", optional=True)
    try:
        sig = Signature.from_dict(raw["signature"])
    except ValidationFailed as e:
        raise IntakeRefused(str(e), field="signature") from None
    return doc, sig


def receive(s: Session, body: bytes, *, bureau: Signer, today: date, now_ms: int) -> tuple[dict[str, Any], bool]:
    """Verify and record a package; (signed receipt, created). Refuses with IntakeRefused."""
    doc, sig = parse_package(body)
    key = s.scalar(select(IntakeKey).where(IntakeKey.unit_code == doc["unit"]))
    if key is None:
        raise IntakeRefused(f"unit {doc['unit']!r} has no registered key at this bureau; register "
                            "its public key first", field="document.unit")
    data = canonical(doc)
    if not verify(key.public_pem.encode(), data, sig):
        raise IntakeRefused(f"the signature does not verify against the key registered for unit "
                            f"{doc['unit']!r} (key {key.key_id}): the package is forged or was altered",
                            field="signature")
    sha = hashlib.sha256(data).hexdigest()
    old = s.scalar(select(IntakeFiling).where(IntakeFiling.content_sha256 == sha))
    if old is not None:
        return _receipt(old, bureau), False
    row = IntakeFiling(content_sha256=sha, receipt_id="RCPT-" + sha[:16], unit_code=doc["unit"],
                       district=key.district, system_code=doc["system"], kind=doc["kind"],
                       event_on=_date(doc, "event_on", optional=True), due_on=_date(doc, "due_on"),
                       received_on=today, received_ms=now_ms, package={"document": doc, "signature": sig.as_dict()})
    try:
        with s.begin_nested():
            s.add(row)
    except IntegrityError:   # the same package raced in: the first one's receipt
        old = s.scalar(select(IntakeFiling).where(IntakeFiling.content_sha256 == sha))
        return _receipt(old, bureau), False
    return _receipt(row, bureau), True


def _receipt(row: IntakeFiling, bureau: Signer) -> dict[str, Any]:
    body = {"receipt_id": row.receipt_id, "content_sha256": row.content_sha256, "unit": row.unit_code,
            "system": row.system_code, "kind": row.kind, "received_on": row.received_on.isoformat(),
            "due_on": row.due_on.isoformat() if row.due_on else None,
            "on_time": row.due_on is None or row.received_on <= row.due_on}
    return body | {"signature": bureau.sign(canonical(body)).as_dict()}


def intake_view(row: IntakeFiling) -> dict[str, Any]:
    return {"receipt_id": row.receipt_id, "unit": row.unit_code, "district": row.district,
            "system": row.system_code, "kind": row.kind,
            "event_on": row.event_on.isoformat() if row.event_on else None,
            "due_on": row.due_on.isoformat() if row.due_on else None,
            "received_on": row.received_on.isoformat(), "content_sha256": row.content_sha256}


# --- snapshots: a unit's whole state, sent to the bureau's platform ------------------------------

MAX_SNAPSHOT_BYTES = 16 * 1024 * 1024   # a 1,000-camera unit is about 0.3 MB


def sign_snapshot(snapshot: dict[str, Any], signer: Signer) -> dict[str, Any]:
    """Unit side: the package a unit sends (the same format as a filing's: document + signature)."""
    return {"document": snapshot, "signature": signer.sign(canonical(snapshot)).as_dict()}


def receive_snapshot(s: Session, body: bytes, *, now_ms: int) -> tuple[dict[str, Any], bool]:
    """Verify a signed snapshot against the unit's registered key and keep it (once per content).
    The snapshot is parsed with the same hostile-input rules as ``viis compliance evaluate``."""
    from viis.compliance.snapshot import SnapshotError, parse

    raw = _signed_object(body, MAX_SNAPSHOT_BYTES, None)  # the snapshot's parser bounds depth
    try:
        snap = parse(raw["document"])
    except SnapshotError as e:
        raise IntakeRefused(str(e), field=f"document.{e.path}" if e.path else "document") from None
    try:
        sig = Signature.from_dict(raw["signature"])
    except ValidationFailed as e:
        raise IntakeRefused(str(e), field="signature") from None
    code = snap.organisation.id
    key = s.scalar(select(IntakeKey).where(IntakeKey.unit_code == code))
    if key is None:
        raise IntakeRefused(f"unit {code!r} has no registered key at this bureau; register its public key "
                            "first", field="document.organisation.id")
    data = canonical(raw["document"])
    if not verify(key.public_pem.encode(), data, sig):
        raise IntakeRefused(f"the signature does not verify against the key registered for unit {code!r} "
                            f"(key {key.key_id}): the package is forged or was altered", field="signature")
    sha = hashlib.sha256(data).hexdigest()
    from viis.compliance.registry_models import IntakeSnapshot

    old = s.scalar(select(IntakeSnapshot).where(IntakeSnapshot.content_sha256 == sha))
    if old is not None:
        return {"unit": code, "content_sha256": sha, "id": old.id}, False
    row = IntakeSnapshot(content_sha256=sha, unit_code=code, generated_ms=int(snap.generated_at.timestamp() * 1000),
                         received_ms=now_ms, snapshot=raw["document"])
    try:
        with s.begin_nested():
            s.add(row)
    except IntegrityError:
        old = s.scalar(select(IntakeSnapshot).where(IntakeSnapshot.content_sha256 == sha))
        return {"unit": code, "content_sha256": sha, "id": old.id}, False
    return {"unit": code, "content_sha256": sha, "id": row.id}, True


def latest_snapshots(s: Session) -> dict[str, dict[str, Any]]:
    """unit code → its newest received snapshot (by generated time, then arrival)."""
    from viis.compliance.registry_models import IntakeSnapshot

    out: dict[str, dict[str, Any]] = {}
    for row in s.scalars(select(IntakeSnapshot).order_by(IntakeSnapshot.generated_ms, IntakeSnapshot.id)):
        out[row.unit_code] = row.snapshot
    return out
