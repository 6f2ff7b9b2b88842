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


# -- tampering with SQL, each way ------------------------------------------------------------
@pytest.fixture
def sealed(db, clock, signer):
    """20 entries, a signed checkpoint (kept outside, like a file given to the police), 5 more."""
    fill(db, clock, 20)
    saved = checkpoint(db, clock, signer)
    fill(db, clock, 5)
    checkpoint(db, clock, signer)
    assert report(db, signer, saved).ok
    return saved


def sql(db, *stmts: str) -> None:
    with db.session() as s:
        for st in stmts:
            s.execute(text(st))


def first(rep):
    assert not rep.ok
    return rep.first()


def test_a_changed_row_is_named(db, signer, sealed):
    sql(db, "UPDATE audit_entries SET actor = 'someone else' WHERE seq = 7")
    p = first(report(db, signer, sealed))
    assert (p.kind, p.seq) == ("changed", 7) and "seq 7" in p.message


def test_a_changed_row_with_a_recomputed_leaf_hash_still_breaks_the_signed_root(db, signer, sealed):
    """An attacker who knows the leaf format rewrites the stored leaf too: the signed
    checkpoints, which need the audit key, still catch it."""
    with db.session() as s:
        r = s.execute(text("SELECT seq, at_ms, kind, actor, organisation, subject, details "
                           "FROM audit_entries WHERE seq = 9")).one()
        forged = merkle.leaf_hash(canonical(r.seq, r.at_ms, r.kind, "nobody", r.organisation,
                                            r.subject, r.details)).hex()
        s.execute(text("UPDATE audit_entries SET actor = 'nobody', leaf_hash = :h WHERE seq = 9"),
                  {"h": forged})
    rep = report(db, signer, sealed)
    kinds = {p.kind for p in rep.problems}
    assert {"checkpoint_mismatch", "inconsistent"} <= kinds
    assert rep.first().seq == 1 and "1..21" in rep.first().message


def test_a_deleted_row_is_named(db, signer, sealed):
    sql(db, "DELETE FROM audit_entries WHERE seq = 12")
    p = first(report(db, signer, sealed))
    assert (p.kind, p.seq) == ("deleted", 12)


def test_deleting_the_newest_rows_is_caught_by_the_recorded_size(db, signer, sealed):
    sql(db, "DELETE FROM audit_entries WHERE seq > 24")
    p = first(report(db, signer, sealed))
    assert p.kind == "deleted" and p.seq == 25


INSERT = ("INSERT INTO audit_entries (seq, at_ms, kind, actor, organisation, subject, details,"
          " leaf_hash) VALUES ({seq}, 0, 'auth.login', 'ghost', '', '', '{{}}', '{h}')")


def test_a_row_added_at_the_end_is_named(db, signer, sealed):
    sql(db, INSERT.format(seq=28, h="0" * 64))
    p = first(report(db, signer, sealed))
    assert (p.kind, p.seq) == ("inserted", 28)


def test_a_row_inserted_in_the_middle_is_named(db, signer, sealed):
    sql(db, "UPDATE audit_entries SET seq = seq + 1000 WHERE seq >= 10",
        "UPDATE audit_entries SET seq = seq - 999 WHERE seq >= 1000",
        INSERT.format(seq=10, h="0" * 64))
    p = first(report(db, signer, sealed))
    assert (p.kind, p.seq) == ("inserted", 10)


def test_a_row_deleted_in_the_middle_and_the_rest_renumbered_is_named(db, signer, sealed):
    sql(db, "DELETE FROM audit_entries WHERE seq = 10",
        "UPDATE audit_entries SET seq = seq + 1000 WHERE seq > 10",
        "UPDATE audit_entries SET seq = seq - 1001 WHERE seq >= 1000",
        "UPDATE audit_state SET size = size - 1")
    p = first(report(db, signer, sealed))
    assert (p.kind, p.seq) == ("deleted", 10)


def test_reordered_rows_are_named(db, signer, sealed):
    sql(db, "UPDATE audit_entries SET seq = -1 WHERE seq = 4",
        "UPDATE audit_entries SET seq = 4 WHERE seq = 5",
        "UPDATE audit_entries SET seq = 5 WHERE seq = -1")
    p = first(report(db, signer, sealed))
    assert (p.kind, p.seq) == ("reordered", 4) and "written as seq 5" in p.message


def test_a_forged_checkpoint_signature_fails(db, clock, signer, sealed, tmp_path):
    other = Signer.generate()  # an attacker's key: right format, wrong key
    fake = Checkpoint(sealed.tree_size, sealed.root_hash, sealed.at_ms)
    fake.signature = other.sign(fake.signed_bytes())
    rep = report(db, signer, fake)
    assert [p.kind for p in rep.problems] == ["forged_checkpoint"]
    altered = Checkpoint(sealed.tree_size, "0" * 64, sealed.at_ms, sealed.signature)
    assert first(report(db, signer, altered)).kind == "forged_checkpoint"


def test_a_forged_stored_checkpoint_is_reported(db, signer, sealed):
    sql(db, "UPDATE audit_checkpoints SET root_hash = '" + "1" * 64 + "' WHERE tree_size = 21")
    assert first(report(db, signer)).kind == "forged_checkpoint"


def test_a_saved_checkpoint_from_a_longer_log_shows_truncation(db, clock, signer, sealed):
    fill(db, clock, 3)
    later = checkpoint(db, clock, signer)
    sql(db, f"DELETE FROM audit_entries WHERE seq > {sealed.tree_size}",
        f"DELETE FROM audit_checkpoints WHERE tree_size > {sealed.tree_size}",
        # the attacker also puts the state back to the shorter tree
        f"UPDATE audit_state SET size = {sealed.tree_size}")
    rep = report(db, signer, later)
    assert first(rep).kind == "deleted" and first(rep).seq == sealed.tree_size + 1


def test_a_rewritten_footage_chain_is_caught_through_the_committed_heads(footage, db, clock, signer):
    cam = footage.camera("gate")
    for i in range(3):
        footage.segment(cam, 1_767_225_600_000 + i * 60_000)
    cp = checkpoint(db, clock, signer)
    assert report(db, signer, cp).ok
    sql(db, f"UPDATE segments SET chain_hash = '{'a' * 64}' WHERE seq = 3")
    p = first(report(db, signer, cp))
    assert p.kind == "chain_rewritten" and cam.uid in p.message


@pytest.mark.parametrize("content", [
    b"", b"not json", b"[]", b'{"format": "x"}', b"{" * 100_000,
    b'{"format": "viis-audit-checkpoint/1", "tree_size": -1, "root_hash": "00", "at_ms": 0}',
    b'{"format": "viis-audit-checkpoint/1", "tree_size": 1, "root_hash": "' + b"0" * 64
    + b'", "at_ms": 0, "signature": "x"}',
])
def test_hostile_checkpoint_files_are_refused_with_a_clear_error(tmp_path, content):
    p = tmp_path / "cp.json"
    p.write_bytes(content)
    with pytest.raises(ValidationFailed):
        Checkpoint.load(p)


def test_concurrent_appenders_queue_on_the_log_and_never_fork_the_tree(db, clock, signer):
    import threading

    errors: list[BaseException] = []

    def worker(name: str) -> None:
        try:
            for i in range(25):
                with db.session() as s:
                    AuditLog(s, clock).append("footage.live", actor=name, subject=f"camera {i}")
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(f"op{k}",)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    with db.session() as s:
        assert AuditLog(s, clock).state()[0] == 75
        seqs = [r[0] for r in s.execute(text("SELECT seq FROM audit_entries ORDER BY seq"))]
    assert seqs == list(range(1, 76))
    checkpoint(db, clock, signer)
    assert report(db, signer).ok
