"""The audit log on SQLite and PostgreSQL: appends, signed checkpoints, proofs, and the
verifier catching a changed, deleted, inserted or reordered row edited with SQL (invariant 2;
Q19.1, Q20.3, N16.1, N23.1)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from viis.core.errors import ValidationFailed
from viis.core.signing import Signer
from viis.integrity import merkle
from viis.integrity.audit import (
    AuditAppender,
    AuditLog,
    Checkpoint,
    EntryInput,
    canonical,
    signer_for,
    verify_log,
)


@pytest.fixture
def signer(tmp_path) -> Signer:
    return signer_for(tmp_path / "data")


def fill(db, clock, n: int) -> None:
    with db.session() as s:
        log = AuditLog(s, clock)
        for i in range(n):
            clock.advance(1)
            log.append("auth.login", actor=f"user{i % 3}", subject=f"session {i}",
                       details={"ip": f"10.0.0.{i}", "n": i})


def checkpoint(db, clock, signer) -> Checkpoint:
    with db.session() as s:
        return AuditLog(s, clock).checkpoint(signer)


def report(db, signer, saved=None):
    with db.session() as s:
        return verify_log(s, signer.public_pem(), saved)


def test_entries_are_leaves_of_an_rfc6962_tree_whose_root_the_state_records(db, clock):
    fill(db, clock, 13)
    with db.session() as s:
        log = AuditLog(s, clock)
        size, root = log.state()
        rows = s.execute(text("SELECT seq, at_ms, kind, actor, organisation, subject, details "
                              "FROM audit_entries ORDER BY seq")).all()
    assert size == 13 and [r.seq for r in rows] == list(range(1, 14))
    leaves = [merkle.leaf_hash(canonical(*r)) for r in rows]
    assert root == merkle.root(leaves).hex()
    assert json.loads(rows[4].details) == {"ip": "10.0.0.4", "n": 4}


def test_a_fresh_log_with_checkpoints_verifies_and_proves_consistency(db, clock, signer):
    fill(db, clock, 5)
    first = checkpoint(db, clock, signer)
    fill(db, clock, 9)
    second = checkpoint(db, clock, signer)
    assert (first.tree_size, second.tree_size) == (6, 16)  # each adds a chain-heads entry
    rep = report(db, signer, saved=first)
    assert rep.ok, rep.as_dict()
    assert rep.latest_checkpoint == 16 and rep.unsigned_tail == 0
    # a third party holding only the two checkpoints and the proof can check it
    merkle.verify_consistency(first.tree_size, second.tree_size, bytes.fromhex(first.root_hash),
                              bytes.fromhex(second.root_hash),
                              [bytes.fromhex(h) for h in rep.consistency_proof])
    with db.session() as s:
        proof = AuditLog(s, clock).inclusion_proof(3, second.tree_size)
        leaf = s.execute(text("SELECT leaf_hash FROM audit_entries WHERE seq = 3")).scalar_one()
    merkle.verify_inclusion(2, second.tree_size, bytes.fromhex(leaf),
                            [bytes.fromhex(h) for h in proof], bytes.fromhex(second.root_hash))


def test_the_appender_groups_entries_into_one_transaction(db, clock, signer):
    app = AuditAppender(db, clock, batch=50)
    for i in range(120):
        app.add("footage.live", actor="op", subject=f"camera {i % 4}")
    assert app.flush() == 20
    with db.session() as s:
        assert AuditLog(s, clock).state()[0] == 120
    checkpoint(db, clock, signer)
    assert report(db, signer).ok


def test_an_action_that_rolls_back_takes_its_entry_with_it(db, clock):
    with pytest.raises(RuntimeError), db.session() as s:
        AuditLog(s, clock).append("camera.update", actor="admin", subject="camera 1")
        raise RuntimeError("the action failed")
    fill(db, clock, 1)
    with db.session() as s:
        assert AuditLog(s, clock).state()[0] == 1  # no hole, no orphan


@pytest.mark.parametrize("kind", ["", "Auth.Login", "auth login", "a" * 65, "auth..x", None, 5])
def test_malformed_kinds_are_refused(db, clock, kind):
    with pytest.raises(ValidationFailed), db.session() as s:
        AuditLog(s, clock).append(kind, actor="x")


@pytest.mark.parametrize("details", [[1, 2], "text", {"x": float("nan")}, {"x": object()},
                                     {"big": "x" * 70_000}])
def test_details_that_are_not_a_bounded_json_object_are_refused(db, clock, details):
    with pytest.raises(ValidationFailed), db.session() as s:
        AuditLog(s, clock).append("auth.login", actor="x", details=details)
    with db.session() as s:
        assert AuditLog(s, clock).state()[0] == 0


def test_hostile_text_is_recorded_faithfully_within_bounds(db, clock, signer):
    evil = "'; DROP TABLE audit_entries; --\x00\u202e" + "名" * 500
    with db.session() as s:
        AuditLog(s, clock).append("auth.login_failed", actor=evil, subject=evil,
                                  details={"login": evil, "\x00k": [None, True, 1.5]})
    with db.session() as s:
        e = AuditLog(s, clock).search()[0]
    assert e.actor.startswith("'; DROP TABLE") and "\x00" not in e.actor and len(e.actor) == 200
    assert json.loads(e.details)["login"] == evil
    checkpoint(db, clock, signer)
    assert report(db, signer).ok


def test_many_appends_in_one_call_match_one_by_one(db, clock):
    with db.session() as s:
        AuditLog(s, clock).append_many([EntryInput("auth.login", actor=f"u{i}", at_ms=1000 + i)
                                        for i in range(40)])
        size, root = AuditLog(s, clock).state()
    f = merkle.Frontier()
    for i in range(40):
        f.append(merkle.leaf_hash(canonical(i + 1, 1000 + i, "auth.login", f"u{i}", "", "", "{}")))
    assert (size, root) == (40, f.root().hex())
