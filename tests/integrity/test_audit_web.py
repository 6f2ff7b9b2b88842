"""GET /api/audit and /api/audit/checkpoint: auditors search the log and take a signed
checkpoint whose proofs verify offline (invariant 2; Q19.1, Q20.3)."""

from __future__ import annotations

import pytest

from tests.access.helpers import PASSWORD, Site
from viis.core.signing import Signature, verify
from viis.integrity import merkle
from viis.integrity.audit import AuditLog, Checkpoint


@pytest.fixture
def site(tmp_path, db, clock):
    s = Site(tmp_path, db, clock)
    s.user("aud", ("auditor",))
    return s


def fill(site, n):
    with site.app.db.session() as s:
        for i in range(n):
            site.clock.advance(1)
            AuditLog(s, site.clock).append("camera.update" if i % 2 else "auth.login",
                                           actor=f"u{i % 3}", subject=f"camera {i}")


def test_auditor_searches_by_kind_actor_and_time(site):
    fill(site, 12)
    aud = site.sign_in("aud")  # the sign-in itself is an entry once identity is hooked
    t = site.clock.wall_ms()
    r = aud.get("/api/audit", params={"kind": "camera.update", "actor": "u1"})
    assert r.status_code == 200
    got = r.json()["entries"]
    assert got and all(e["kind"] == "camera.update" and e["actor"] == "u1" for e in got)
    r = aud.get("/api/audit", params={"kind": "camera.", "since": str(t - 3000), "until": str(t)})
    assert [e["subject"] for e in r.json()["entries"]] == ["camera 9"]
    r = aud.get("/api/audit", params={"limit": 3})
    assert len(r.json()["entries"]) == 3 and r.json()["tree_size"] >= 12


@pytest.mark.parametrize("params", [{"since": "yesterday"}, {"limit": 0}, {"limit": 5000},
                                    {"kind": "x" * 65}, {"offset": -1}, {"actor": "a" * 201}])
def test_malformed_search_parameters_are_refused(site, params):
    aud = site.sign_in("aud")
    r = aud.get("/api/audit", params=params)
    assert r.status_code in (400, 422) and "error" in r.json()


def test_checkpoint_and_its_proofs_verify_offline(site):
    fill(site, 7)
    aud = site.sign_in("aud")
    first = aud.get("/api/audit/checkpoint").json()
    old = Checkpoint.from_dict(first["checkpoint"])
    pem = first["public_key"].encode()
    assert old.verify(pem) and "PRIVATE" not in str(first)
    assert aud.get("/api/audit/checkpoint").json()["checkpoint"] == first["checkpoint"]  # idle
    fill(site, 9)
    r = aud.get("/api/audit/checkpoint", params={"from_size": old.tree_size, "seq": 3}).json()
    new = Checkpoint.from_dict(r["checkpoint"])
    assert new.tree_size > old.tree_size
    assert verify(pem, new.signed_bytes(), Signature.from_dict(r["checkpoint"]["signature"]))
    merkle.verify_consistency(old.tree_size, new.tree_size, bytes.fromhex(old.root_hash),
                              bytes.fromhex(new.root_hash),
                              [bytes.fromhex(h) for h in r["consistency"]["proof"]])
    entry = next(e for e in aud.get("/api/audit", params={"limit": 1000}).json()["entries"]
                 if e["seq"] == 3)
    merkle.verify_inclusion(2, new.tree_size, bytes.fromhex(entry["leaf_hash"]),
                            [bytes.fromhex(h) for h in r["inclusion"]["proof"]],
                            bytes.fromhex(new.root_hash))


@pytest.mark.parametrize("params", [{"from_size": 10_000}, {"seq": 10_000}, {"from_size": 0},
                                    {"seq": "x"}])
def test_proofs_outside_the_tree_are_refused(site, params):
    fill(site, 3)
    r = site.sign_in("aud").get("/api/audit/checkpoint", params=params)
    assert r.status_code == 422 and "error" in r.json()


def test_an_operator_may_not_read_the_audit_log(site):
    site.user("op", ("operator_on_duty",))
    c = site.sign_in("op", PASSWORD)
    assert c.get("/api/audit").status_code == 403
    assert c.get("/api/audit/checkpoint").status_code == 403
