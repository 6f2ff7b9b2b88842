"""The tamper-evident audit log (invariant 2; Q19.1, Q20.3, Q24.1, N16.1, N23.1).

Every security-relevant action — sign-ins and failures, configuration and retention
changes, holds, retrieval decisions, every door decision on footage, lifted masks — is one
entry of an append-only Merkle log after RFC 6962 (:mod:`viis.integrity.merkle`). Signed
checkpoints (tree size, root, time; the installation's ``audit`` key) let anyone holding one
prove later that no entry before it was changed, deleted, inserted or reordered. Each
checkpoint first commits every camera's chain head, so it also pins the footage chains.

How other modules write to it (the whole API)::

    from viis.integrity.audit import AuditLog

    AuditLog(session, clock).append("mask.lift", actor=principal, subject="camera 7",
                                    details={"request_id": 3, "until_ms": ...})

``append`` writes in the caller's transaction: the entry commits with the action or not at
all, and if it cannot be written it raises, so the action fails closed. ``actor`` is a
:class:`~viis.access.policy.Principal` (login and organisation are taken from it) or a
string; ``organisation`` may be given explicitly; ``details`` is a JSON object (at most
:data:`MAX_DETAILS` bytes in canonical form). ``kind`` is a dotted lower-case name such as
``auth.login``, ``camera.update``, ``hold.create``, ``retrieval.approve``,
``footage.export`` (:data:`KINDS` lists those in use; others are accepted if well formed).

Appends are serialised on one state row (the tree's frontier, O(log n) hashes per append).
:class:`AuditAppender` groups many entries into one transaction for high-volume writers.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from viis.core.clock import Clock, SystemClock, iso_utc
from viis.core.errors import ValidationFailed
from viis.core.signing import Signature, Signer, verify
from viis.integrity import merkle
from viis.integrity.models import AuditCheckpoint, AuditEntry, AuditState, ChainHead

__all__ = ["KINDS", "AuditAppender", "AuditLog", "AuditProblem", "AuditReport", "Checkpoint",
           "EntryInput", "canonical", "verify_log"]

KEY_NAME = "audit"
FORMAT = "viis-audit-checkpoint/1"
MAX_DETAILS = 64 * 1024            # bytes of canonical JSON from a caller
MAX_CHAIN_DETAILS = 16 * 1024 * 1024  # the chain-heads entry grows with the fleet
MAX_CHECKPOINT_FILE = 64 * 1024
_KIND = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+){0,4}$")
_LIMITS = {"actor": 200, "organisation": 200, "subject": 400}

KINDS = (
    "auth.login", "auth.login_failed", "auth.locked", "auth.logout",
    "camera.create", "camera.update", "retention.change", "retention.remove",
    "hold.create", "hold.release",
    "retrieval.file", "retrieval.approve", "retrieval.refuse", "retrieval.close",
    "retrieval.session_open",
    "footage.live", "footage.playback", "footage.snapshot", "footage.export",
    "footage.timeline", "footage.denied",
    "evidence.export",
    "access.denied",
    "mask.replace", "mask.lift", "mask.lift.approve", "mask.lift.refuse",
    "duty.shift_start", "duty.shift_end", "duty.log", "room.enter", "room.leave",
    "duty.report", "duty.report_ack",
    "gb.upper.create", "gb.upper.update", "gb.upper.delete", "gb.share.set",
    "gb.upper.trace",
    "chain.heads",
    "gb28181.trace", "gb28181.ptz",
)


def _clean(value: Any, name: str) -> str:
    """A text field as stored: str, no NUL (PostgreSQL refuses it), valid UTF-8, bounded. A
    hostile login name must not stop the failure from being recorded, so long values are
    cut (with a marker) rather than refused."""
    s = "" if value is None else str(value)
    limit = _LIMITS[name]
    if len(s) <= limit and s.isascii() and "\x00" not in s:
        return s  # the common case, cheaply
    s = s.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
    return s if len(s) <= limit else s[:limit - 1] + "…"


def canonical_details(details: Any, limit: int = MAX_DETAILS) -> str:
    if details is None:
        details = {}
    if not isinstance(details, dict):
        raise ValidationFailed("audit details must be a JSON object", field="details")
    try:
        text_ = _DETAILS_JSON.encode(details)
    except (TypeError, ValueError, RecursionError) as e:
        raise ValidationFailed(f"audit details are not plain JSON: {e}", field="details") from None
    text_ = text_.encode("utf-8", "replace").decode("utf-8")
    if len(text_.encode()) > limit:
        raise ValidationFailed(f"audit details are over {limit} bytes", field="details")
    return text_


_COLUMNS = ("seq", "at_ms", "kind", "actor", "organisation", "subject", "details", "leaf_hash")
_INSERT_SQL = (f"INSERT INTO audit_entries ({', '.join(_COLUMNS)}) "
               f"VALUES ({', '.join('?' for _ in _COLUMNS)})")


def _insert(s: Session, rows: list[dict]) -> None:
    """Rows straight to the driver: COPY on PostgreSQL for batches, executemany on SQLite;
    the ORM's per-row bookkeeping would cost more than the hashing (bench/audit.py)."""
    conn = s.connection()
    dialect = conn.dialect.name
    if dialect == "postgresql" and len(rows) >= 20:
        raw = conn.connection.driver_connection
        with raw.cursor() as cur, cur.copy(f"COPY audit_entries ({', '.join(_COLUMNS)}) "
                                           "FROM STDIN") as cp:
            for r in rows:
                cp.write_row(tuple(r[c] for c in _COLUMNS))
    elif dialect == "sqlite":
        conn.exec_driver_sql(_INSERT_SQL, [tuple(r[c] for c in _COLUMNS) for r in rows])
    else:
        conn.execute(insert(AuditEntry.__table__), rows)


def _json_default(o: Any) -> Any:
    if isinstance(o, set | frozenset | tuple):
        return sorted(o, key=str) if isinstance(o, set | frozenset) else list(o)
    raise TypeError(f"{type(o).__name__} is not JSON")


_DETAILS_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                                 allow_nan=False, default=_json_default)
_LEAF_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def canonical(seq: int, at_ms: int, kind: str, actor: str, organisation: str, subject: str,
              details: str) -> bytes:
    """The bytes of a leaf: a fixed-order JSON array, UTF-8. ``details`` is the stored
    canonical JSON text, included verbatim so any byte change to a row changes its leaf."""
    return _LEAF_JSON.encode(["viis-audit/1", seq, at_ms, kind, actor, organisation, subject,
                              details]).encode("utf-8")


def _row_leaf(r: Any) -> bytes:
    return merkle.leaf_hash(canonical(r.seq, r.at_ms, r.kind, r.actor, r.organisation,
                                      r.subject, r.details))


@dataclass
class EntryInput:
    """One entry to append (for :meth:`AuditLog.append_many` and :class:`AuditAppender`)."""

    kind: str
    actor: Any = None
    subject: Any = None
    details: dict | None = None
    organisation: str | None = None
    at_ms: int | None = None


@dataclass(frozen=True)
class Appended:
    seq: int
    leaf_hash: str
    tree_size: int
    root_hash: str


class AuditLog:
    """The audit log, seen through one database session (one transaction)."""

    def __init__(self, session: Session, clock: Clock | None = None) -> None:
        self.s = session
        self.clock = clock or SystemClock()

    # -- writing ------------------------------------------------------------------------
    def append(self, kind: str, *, actor: Any = None, subject: Any = None,
               details: dict | None = None, organisation: str | None = None,
               at_ms: int | None = None) -> Appended:
        """Append one entry in the session's transaction; raises if it cannot be written."""
        return self.append_many([EntryInput(kind, actor, subject, details, organisation,
                                            at_ms)])[-1]

    def append_many(self, entries: Iterable[EntryInput], *,
                    details_limit: int = MAX_DETAILS) -> list[Appended]:
        rows = [self._row(e, details_limit) for e in entries]
        if not rows:
            return []
        state = self._lock_state()
        f = merkle.Frontier.from_hex(state.size, json.loads(state.frontier))
        out: list[Appended] = []
        for r in rows:
            r["seq"] = f.size + 1
            leaf = merkle.leaf_hash(canonical(r["seq"], r["at_ms"], r["kind"], r["actor"],
                                              r["organisation"], r["subject"], r["details"]))
            r["leaf_hash"] = leaf.hex()
            f.append(leaf)
            out.append(Appended(r["seq"], r["leaf_hash"], f.size, ""))
        root = f.root().hex()
        _insert(self.s, rows)
        self.s.execute(update(AuditState).where(AuditState.id == 1).values(
            size=f.size, root_hash=root, frontier=json.dumps(f.to_hex()),
            updated_ms=self.clock.wall_ms()))
        last = out[-1]
        out[-1] = Appended(last.seq, last.leaf_hash, f.size, root)
        return out

    def _row(self, e: EntryInput, details_limit: int) -> dict:
        if not isinstance(e.kind, str) or not _KIND.match(e.kind) or len(e.kind) > 64:
            raise ValidationFailed(f"audit kind {str(e.kind)[:80]!r} is not a dotted "
                                   "lower-case name", field="kind")
        actor, org = e.actor, e.organisation
        if actor is not None and not isinstance(actor, str):  # a Principal
            org = org if org is not None else self._org_name(actor)
            actor = getattr(actor, "name", actor)
        at = self.clock.wall_ms() if e.at_ms is None else int(e.at_ms)
        return {"at_ms": at, "kind": e.kind, "actor": _clean(actor, "actor"),
                "organisation": _clean(org, "organisation"),
                "subject": _clean(e.subject, "subject"),
                "details": canonical_details(e.details, details_limit)}

    def _org_name(self, principal: Any) -> str:
        org_id = getattr(principal, "organisation_id", None)
        if org_id is None:
            return ""
        from viis.access.models import Organisation

        org = self.s.get(Organisation, org_id)
        return f"{org.name} (#{org_id})" if org is not None else f"#{org_id}"

    def _lock_state(self) -> Any:
        """Take the log's lock (a row lock on PostgreSQL, the write lock on SQLite) BEFORE
        reading the frontier, so concurrent appenders queue instead of forking the tree."""
        res = self.s.execute(update(AuditState).where(AuditState.id == 1)
                             .values(version=AuditState.version + 1))
        if res.rowcount != 1:
            raise RuntimeError("the audit log has no state row: run `viis migrate`")
        return self.s.execute(select(AuditState.size, AuditState.frontier)
                              .where(AuditState.id == 1)).one()

    def commit_chain_heads(self) -> Appended:
        """One entry carrying every camera's current chain head (invariant 2)."""
        from viis.registry.models import Camera

        heads = {uid: {"seq": seq, "hash": h} for uid, seq, h in self.s.execute(
            select(Camera.uid, ChainHead.seq, ChainHead.chain_hash)
            .join(ChainHead, ChainHead.camera_id == Camera.id).order_by(Camera.uid))}
        return self.append_many([EntryInput("chain.heads", actor="system",
                                            details={"cameras": heads})],
                                details_limit=MAX_CHAIN_DETAILS)[-1]

    def checkpoint(self, signer: Signer) -> Checkpoint:
        """Commit the chain heads, then sign the tree head and keep the signature."""
        self.commit_chain_heads()
        st = self.s.execute(select(AuditState.size, AuditState.root_hash)
                            .where(AuditState.id == 1)).one()
        cp = Checkpoint(st.size, st.root_hash, self.clock.wall_ms())
        cp.signature = signer.sign(cp.signed_bytes())
        self.s.add(AuditCheckpoint(tree_size=cp.tree_size, root_hash=cp.root_hash,
                                   at_ms=cp.at_ms, algorithm=cp.signature.algorithm,
                                   key_id=cp.signature.key_id, signature=cp.signature.value))
        self.s.flush()
        return cp

    # -- reading ------------------------------------------------------------------------
    def state(self) -> tuple[int, str]:
        st = self.s.execute(select(AuditState.size, AuditState.root_hash)
                            .where(AuditState.id == 1)).one()
        return st.size, st.root_hash

    def latest_checkpoint(self) -> Checkpoint | None:
        row = self.s.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.tree_size.desc(),
                                                              AuditCheckpoint.id.desc())
                             .limit(1)).first()
        return Checkpoint.from_row(row) if row is not None else None

    def search(self, *, kind: str | None = None, actor: str | None = None,
               since_ms: int | None = None, until_ms: int | None = None,
               limit: int = 200, offset: int = 0) -> list[AuditEntry]:
        q = select(AuditEntry)
        if kind:
            q = q.where(AuditEntry.kind.startswith(kind, autoescape=True)
                        if kind.endswith(".") else AuditEntry.kind == kind)
        if actor:
            q = q.where(AuditEntry.actor == actor)
        if since_ms is not None:
            q = q.where(AuditEntry.at_ms >= since_ms)
        if until_ms is not None:
            q = q.where(AuditEntry.at_ms < until_ms)
        q = q.order_by(AuditEntry.seq.desc()).offset(max(0, offset)).limit(max(1, min(limit, 1000)))
        return list(self.s.scalars(q))

    def leaves(self, upto: int | None = None) -> list[bytes]:
        """Stored leaf hashes in order (for proofs served to clients)."""
        q = select(AuditEntry.leaf_hash).order_by(AuditEntry.seq)
        if upto is not None:
            q = q.where(AuditEntry.seq <= upto)
        return [bytes.fromhex(h) for h in self.s.scalars(q)]

    def inclusion_proof(self, seq: int, tree_size: int) -> list[str]:
        return [h.hex() for h in merkle.inclusion_proof(self.leaves(tree_size), seq - 1, tree_size)]

    def consistency_proof(self, old_size: int, new_size: int) -> list[str]:
        return [h.hex() for h in merkle.consistency_proof(self.leaves(new_size), old_size,
                                                          new_size)]


def entry_view(e: AuditEntry) -> dict:
    try:
        details = json.loads(e.details)
    except ValueError:
        details = e.details
    return {"seq": e.seq, "at": iso_utc(e.at_ms), "at_ms": e.at_ms, "kind": e.kind,
            "actor": e.actor, "organisation": e.organisation, "subject": e.subject,
            "details": details, "leaf_hash": e.leaf_hash}


def checkpoint_due(db: Any, clock: Clock, data_dir: Path, interval_ms: int) -> Checkpoint | None:
    """Sign a checkpoint when the newest is older than ``interval_ms`` (``viis run`` calls this
    periodically): it commits the chain heads even when nothing else happened, and keeps
    the unsigned tail short (see docs/design/integrity.md)."""
    with db.session() as s:
        log = AuditLog(s, clock)
        last = log.latest_checkpoint()
        if last is not None and clock.wall_ms() - last.at_ms < interval_ms:
            return None
        return log.checkpoint(signer_for(data_dir))


# -- checkpoints --------------------------------------------------------------------------
@dataclass
class Checkpoint:
    """A signed tree head. The signed bytes are four lines, so a verifier needs no JSON
    canonicalisation: format, size, root (hex), time (UTC ms)."""

    tree_size: int
    root_hash: str
    at_ms: int
    signature: Signature | None = None

    def signed_bytes(self) -> bytes:
        return f"{FORMAT}\n{self.tree_size}\n{self.root_hash}\n{self.at_ms}\n".encode()

    def verify(self, public_pem: bytes) -> bool:
        return self.signature is not None and verify(public_pem, self.signed_bytes(),
                                                     self.signature)

    def as_dict(self) -> dict:
        return {"format": FORMAT, "tree_size": self.tree_size, "root_hash": self.root_hash,
                "at": iso_utc(self.at_ms), "at_ms": self.at_ms,
                "signature": self.signature.as_dict() if self.signature else None}

    @classmethod
    def from_row(cls, r: AuditCheckpoint) -> Checkpoint:
        return cls(r.tree_size, r.root_hash, r.at_ms, Signature(r.algorithm, r.key_id,
                                                                 r.signature))

    @classmethod
    def from_dict(cls, d: Any) -> Checkpoint:
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ValidationFailed(f"not a VIIS audit checkpoint (format must be {FORMAT})")
        size, root, at = d.get("tree_size"), d.get("root_hash"), d.get("at_ms")
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size < 1 << 62:
            raise ValidationFailed("checkpoint tree_size must be a non-negative integer",
                                   field="tree_size")
        if not isinstance(root, str) or not re.fullmatch(r"[0-9a-f]{64}", root):
            raise ValidationFailed("checkpoint root_hash must be 64 lower-case hex digits",
                                   field="root_hash")
        if not isinstance(at, int) or isinstance(at, bool) or not 0 <= at < 1 << 62:
            raise ValidationFailed("checkpoint at_ms must be a non-negative integer",
                                   field="at_ms")
        return cls(size, root, at, Signature.from_dict(d.get("signature")))

    @classmethod
    def load(cls, path: Path) -> Checkpoint:
        path = Path(path)
        try:
            size = path.stat().st_size
        except OSError as e:
            raise ValidationFailed(f"cannot read checkpoint file {path}: {e.strerror}") from None
        if size > MAX_CHECKPOINT_FILE:
            raise ValidationFailed(f"{path} is {size} bytes; a checkpoint file is under "
                                   f"{MAX_CHECKPOINT_FILE}")
        try:
            return cls.from_dict(json.loads(path.read_bytes()))
        except (ValueError, RecursionError) as e:
            if isinstance(e, ValidationFailed):
                raise
            raise ValidationFailed(f"{path} is not JSON: {e}") from None


def signer_for(data_dir: Path) -> Signer:
    return Signer.for_data_dir(data_dir, KEY_NAME)


# -- verification -------------------------------------------------------------------------
PROBLEM_KINDS = (
    "changed",            # a row's content no longer matches the leaf written for it
    "reordered",          # a row sits at another position than the one it was written at
    "deleted",            # rows are missing (a hole in seq, or fewer rows than recorded)
    "inserted",           # a row the tree does not account for
    "checkpoint_mismatch",  # the rows no longer yield a signed checkpoint's root
    "forged_checkpoint",  # a checkpoint's signature is not valid for the audit key
    "inconsistent",       # a saved checkpoint is not a prefix of the log (consistency proof)
    "state_mismatch",     # the recorded tree head differs from the rows
    "chain_rewritten",    # a committed camera chain head no longer matches the footage chain
)

ROW_KINDS = frozenset({"changed", "reordered", "deleted", "inserted", "chain_rewritten"})


@dataclass
class AuditProblem:
    kind: str
    message: str
    seq: int | None = None

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class AuditReport:
    entries: int = 0
    tree_size: int = 0
    root_hash: str = ""
    checkpoints: int = 0
    latest_checkpoint: int | None = None
    unsigned_tail: int = 0  # entries after the latest signed checkpoint
    saved_checkpoint: int | None = None
    consistency_proof: list[str] | None = None
    problems: list[AuditProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def first(self) -> AuditProblem | None:
        """The problem at the lowest row that can be named; a range (a checkpoint's root no
        longer matching) only when no single row can be."""
        for group in (ROW_KINDS, None):
            cands = [p for p in self.problems if group is None or p.kind in group]
            with_seq = [p for p in cands if p.seq is not None]
            if with_seq:
                return min(with_seq, key=lambda p: p.seq)
            if cands and group is None:
                return cands[0]
        return None

    def as_dict(self) -> dict:
        first = self.first()
        return {"ok": self.ok, "entries": self.entries, "tree_size": self.tree_size,
                "root_hash": self.root_hash, "checkpoints": self.checkpoints,
                "latest_checkpoint": self.latest_checkpoint,
                "unsigned_tail": self.unsigned_tail, "saved_checkpoint": self.saved_checkpoint,
                "consistency_proof": self.consistency_proof,
                "first_problem": first.as_dict() if first else None,
                "problems": [p.as_dict() for p in self.problems]}


def _label(r: Any) -> str:
    return f"seq {r.seq} ({iso_utc(r.at_ms)} {r.kind} by {r.actor or '-'})"


MAX_PROBLEMS = 200


def _rows(s: Session) -> Iterator[Any]:
    q = select(AuditEntry.seq, AuditEntry.at_ms, AuditEntry.kind, AuditEntry.actor,
               AuditEntry.organisation, AuditEntry.subject, AuditEntry.details,
               AuditEntry.leaf_hash).order_by(AuditEntry.seq)
    # Core on the session's connection: the ORM's row processing would double the time
    yield from s.connection().execute(q.execution_options(yield_per=20_000))


def verify_log(s: Session, public_pem: bytes, saved: Checkpoint | None = None, *,
               check_chains: bool = True) -> AuditReport:
    """Recompute every leaf from the rows and the tree from the leaves; check them against
    every signed checkpoint, the recorded state, and ``saved`` (a checkpoint file kept
    outside the system) by an RFC 6962 consistency proof. Problems name the first row
    concerned."""
    rep = AuditReport()
    add = rep.problems.append
    cps = [Checkpoint.from_row(r) for r in
           s.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.tree_size,
                                                      AuditCheckpoint.id))]
    good_cps: list[Checkpoint] = []
    for cp in cps:
        if cp.verify(public_pem):
            good_cps.append(cp)
        else:
            add(AuditProblem("forged_checkpoint", f"stored checkpoint of size {cp.tree_size} "
                             f"({iso_utc(cp.at_ms)}) does not carry a valid signature of the "
                             "audit key", seq=cp.tree_size or None))
    rep.checkpoints = len(good_cps)
    by_size: dict[int, list[Checkpoint]] = {}
    for cp in good_cps:
        by_size.setdefault(cp.tree_size, []).append(cp)
    if saved is not None:
        rep.saved_checkpoint = saved.tree_size
        if not saved.verify(public_pem):
            add(AuditProblem("forged_checkpoint", "the saved checkpoint's signature is not "
                             "valid for this installation's audit key (forged or altered)"))
            saved = None
    st = s.execute(select(AuditState.size, AuditState.root_hash, AuditState.frontier)
                   .where(AuditState.id == 1)).one()

    f = merkle.Frontier()
    leaves: list[bytes] = []
    mismatched: dict[int, Any] = {}
    heads: list[tuple[int, dict]] = []
    last_good_size = 0
    expected = 1
    enc, sha256 = _LEAF_JSON.encode, hashlib.sha256  # the hot loop: 1 M rows in seconds
    size_limit, append_leaf, append_tree = st.size, leaves.append, f.append
    for r in _rows(s):
        seq, kind = r[0], r[2]
        leaf = sha256(b"\x00" + enc(["viis-audit/1", seq, r[1], kind, r[3], r[4], r[5], r[6]])
                      .encode()).digest()
        if seq == expected and seq <= size_limit and leaf.hex() == r[7] \
                and kind != "chain.heads" and (f.size + 1) not in by_size:
            append_leaf(leaf)
            append_tree(leaf)
            expected += 1
            continue
        if r.seq != expected:
            if r.seq > expected:
                span = f"seq {expected}" if r.seq == expected + 1 else f"seq {expected}..{r.seq - 1}"
                add(AuditProblem("deleted", f"{span} deleted: the rows before {_label(r)} "
                                 "are missing", seq=expected))
            else:
                add(AuditProblem("inserted", f"{_label(r)} is out of sequence", seq=r.seq))
            expected = r.seq
        if leaf.hex() != r.leaf_hash:
            mismatched[r.seq] = r
        if r.seq > st.size:
            add(AuditProblem("inserted", f"{_label(r)} is beyond the recorded tree size "
                             f"{st.size}: it was added outside the audit log", seq=r.seq))
        elif r.kind == "chain.heads" and check_chains:
            try:
                heads.append((r.seq, json.loads(r.details).get("cameras", {})))
            except (ValueError, AttributeError):
                pass  # a changed row is reported as such
        leaves.append(leaf)
        f.append(leaf)
        expected += 1
        for cp in by_size.get(f.size, ()):
            if f.root().hex() == cp.root_hash:
                last_good_size = max(last_good_size, f.size)
            else:
                add(AuditProblem("checkpoint_mismatch",
                                 f"the first {f.size} entries no longer yield the root signed "
                                 f"at {iso_utc(cp.at_ms)}: something in seq "
                                 f"{last_good_size + 1}..{f.size} was changed, deleted, "
                                 "inserted or reordered", seq=last_good_size + 1))
    rep.entries = len(leaves)
    rep.tree_size = f.size
    rep.root_hash = f.root().hex()
    _explain_mismatches(mismatched, add)
    for cp in good_cps:
        if cp.tree_size > f.size:
            add(AuditProblem("deleted", f"a checkpoint signed at {iso_utc(cp.at_ms)} covers "
                             f"{cp.tree_size} entries but only {f.size} remain: the newest "
                             "entries were deleted", seq=f.size + 1))
    if st.size > expected - 1:
        add(AuditProblem("deleted", f"the log recorded {st.size} entries; seq {expected}.."
                         f"{st.size} are gone", seq=expected))
    elif st.size == f.size and st.root_hash != rep.root_hash:
        add(AuditProblem("state_mismatch", "the recorded tree head differs from the rows"))
    if good_cps:
        latest = good_cps[-1]
        rep.latest_checkpoint = latest.tree_size
        rep.unsigned_tail = max(0, f.size - latest.tree_size)
    if saved is not None:
        _check_saved(saved, leaves, good_cps, rep, add)
    if check_chains and heads:
        _check_chains(s, heads, add)
    return rep


def _explain_mismatches(mismatched: dict[int, Any], add) -> None:
    """Name what happened to rows whose content no longer matches their leaf. A row that
    matches its leaf under another seq was moved: a swap is a reordering; a run shifted
    down by one follows a deleted row, a run shifted up by one follows an inserted row."""
    seqs = sorted(mismatched)[:MAX_PROBLEMS]
    moved: dict[int, int] = {}
    for seq in seqs:
        r = mismatched[seq]
        for other in dict.fromkeys([seq - 1, seq + 1, *seqs]):
            if other == seq or other < 1:
                continue
            cand = merkle.leaf_hash(canonical(other, r.at_ms, r.kind, r.actor, r.organisation,
                                              r.subject, r.details)).hex()
            if cand == r.leaf_hash:
                moved[seq] = other
                break
    for seq in seqs:
        r, orig = mismatched[seq], moved.get(seq)
        if orig is None:
            if moved.get(seq + 1) == seq:
                add(AuditProblem("inserted", f"{_label(r)} was inserted: the rows after it "
                                 "were renumbered to make room", seq=seq))
            else:
                add(AuditProblem("changed", f"{_label(r)} was changed after it was written "
                                 "(its content no longer matches its leaf)", seq=seq))
        elif orig == seq + 1 and moved.get(orig) != seq and moved.get(seq - 1) != seq:
            add(AuditProblem("deleted", f"the row written as seq {seq} was deleted and the "
                             f"rows after it renumbered ({_label(r)} was written as seq "
                             f"{orig})", seq=seq))
        else:
            add(AuditProblem("reordered", f"{_label(r)} was written as seq {orig}: rows were "
                             "reordered", seq=seq))


def _check_saved(saved: Checkpoint, leaves: list[bytes], good_cps: list[Checkpoint],
                 rep: AuditReport, add) -> None:
    n = len(leaves)
    if saved.tree_size > n:
        add(AuditProblem("deleted", f"the saved checkpoint covers {saved.tree_size} entries "
                         f"but the log has {n}: entries were deleted", seq=n + 1))
        return
    # Prove the saved tree is a prefix of the newest signed tree (or of the rows, if none
    # is newer), exactly as a third party holding both checkpoints would.
    target = good_cps[-1] if good_cps and good_cps[-1].tree_size >= saved.tree_size else None
    new_size = target.tree_size if target else n
    if new_size > n:
        return  # reported above (a signed checkpoint beyond the rows)
    new_root = bytes.fromhex(target.root_hash) if target else merkle.root(leaves)
    try:
        proof = merkle.consistency_proof(leaves, saved.tree_size, new_size) \
            if saved.tree_size else []
        merkle.verify_consistency(saved.tree_size, new_size, bytes.fromhex(saved.root_hash),
                                  new_root, proof)
        rep.consistency_proof = [h.hex() for h in proof]
    except merkle.ProofError as e:
        # Without the original leaves the row cannot be named from the proof alone; the
        # row checks above name it unless the attacker also rewrote the stored leaf hashes.
        add(AuditProblem("inconsistent", f"the log is not an extension of the saved checkpoint "
                         f"(size {saved.tree_size}, {iso_utc(saved.at_ms)}): something in seq "
                         f"1..{saved.tree_size} was changed, deleted, inserted or reordered "
                         f"({e})"))


def _check_chains(s: Session, heads: list[tuple[int, dict]], add) -> None:
    from viis.media.models import Gap, Segment
    from viis.registry.models import Camera

    ids = {uid: cid for cid, uid in s.execute(select(Camera.id, Camera.uid))}
    reported: set[str] = set()
    for seq, cams in heads:
        if not isinstance(cams, dict):
            continue
        for uid, head in cams.items():
            if uid in reported or not isinstance(head, dict):
                continue
            cid = ids.get(uid)
            link_seq, h = head.get("seq"), head.get("hash")
            found = None
            if cid is not None:
                for model in (Segment, Gap):
                    found = s.scalars(select(model.chain_hash).where(
                        model.camera_id == cid, model.seq == link_seq)).first()
                    if found is not None:
                        break
            if found != h:
                reported.add(uid)
                add(AuditProblem("chain_rewritten", f"camera {uid}: chain link seq {link_seq} "
                                 f"committed at audit seq {seq} is "
                                 f"{'gone' if found is None else 'different now'}: its footage "
                                 "chain was rewritten", seq=seq))


# -- batching -----------------------------------------------------------------------------
class AuditAppender:
    """Groups entries from many callers into one transaction per flush (high-volume writers
    and the benchmark). ``add`` queues; ``flush`` writes what is queued and raises if it
    cannot, so a caller that needs its entry durable calls ``flush`` before acting."""

    def __init__(self, db: Any, clock: Clock | None = None, batch: int = 1000) -> None:
        self.db = db
        self.clock = clock or SystemClock()
        self.batch = batch
        self._q: list[EntryInput] = []
        self._lock = threading.Lock()

    def add(self, kind: str, *, actor: Any = None, subject: Any = None,
            details: dict | None = None, organisation: str | None = None) -> None:
        e = EntryInput(kind, actor, subject, details, organisation, self.clock.wall_ms())
        with self._lock:
            self._q.append(e)
            full = len(self._q) >= self.batch
        if full:
            self.flush()

    def flush(self) -> int:
        with self._lock:
            q, self._q = self._q, []
            if not q:
                return 0
            try:
                with self.db.session() as s:
                    AuditLog(s, self.clock).append_many(q)
            except BaseException:
                self._q = q + self._q  # nothing was written; keep them for the next try
                raise
            return len(q)

