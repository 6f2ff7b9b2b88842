"""RFC 6962 hashing and proofs against a straightforward recursive reference (invariant 2)."""

from __future__ import annotations

import hashlib

import pytest

from viis.integrity import merkle


def ref_mth(d: list[bytes]) -> bytes:
    """MTH(D[n]) written exactly as RFC 6962 §2.1 states it, over raw entries."""
    n = len(d)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:])).digest()


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return ref_path(m, d[:k]) + [ref_mth(d[k:])]
    return ref_path(m - k, d[k:]) + [ref_mth(d[:k])]


def ref_proof(m: int, d: list[bytes]) -> list[bytes]:
    def sub(m: int, d: list[bytes], b: bool) -> list[bytes]:
        n = len(d)
        if m == n:
            return [] if b else [ref_mth(d)]
        k = 1
        while k * 2 < n:
            k *= 2
        if m <= k:
            return sub(m, d[:k], b) + [ref_mth(d[k:])]
        return sub(m - k, d[k:], False) + [ref_mth(d[:k])]
    return sub(m, d, True)


DATA = [f"entry {i}".encode() for i in range(70)]
LEAVES = [merkle.leaf_hash(x) for x in DATA]


def test_leaf_and_node_hashes_carry_the_rfc_prefixes():
    assert merkle.leaf_hash(b"a") == hashlib.sha256(b"\x00a").digest()
    assert merkle.node_hash(b"l" * 32, b"r" * 32) == hashlib.sha256(b"\x01" + b"l" * 32 + b"r" * 32).digest()
    # a leaf can never be passed off as a node (second-preimage resistance of the shape)
    assert merkle.leaf_hash(b"\x01" + b"l" * 32 + b"r" * 32) != merkle.node_hash(b"l" * 32, b"r" * 32)


@pytest.mark.parametrize("n", list(range(0, 70)))
def test_frontier_root_equals_the_rfc_tree_for_every_size(n):
    f = merkle.Frontier()
    for leaf in LEAVES[:n]:
        f.append(leaf)
    assert len(f.nodes) <= max(1, n.bit_length())  # O(log n) state
    assert f.root() == ref_mth(DATA[:n])
    assert merkle.Frontier.from_hex(n, f.to_hex()).root() == f.root()


def test_frontier_refuses_a_node_list_that_does_not_fit_its_size():
    with pytest.raises(ValueError):
        merkle.Frontier(5, [b"x" * 32])


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 8, 9, 16, 17, 31, 70])
def test_inclusion_proofs_match_the_reference_and_verify(n):
    root = ref_mth(DATA[:n])
    for m in range(n):
        proof = merkle.inclusion_proof(LEAVES, m, n)
        assert proof == ref_path(m, DATA[:n])
        merkle.verify_inclusion(m, n, LEAVES[m], proof, root)
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(m, n, merkle.leaf_hash(b"forged"), proof, root)
        if proof:
            with pytest.raises(merkle.ProofError):
                merkle.verify_inclusion(m, n, LEAVES[m], proof[:-1], root)
            with pytest.raises(merkle.ProofError):
                merkle.verify_inclusion(m, n, LEAVES[m], proof + [proof[0]], root)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 17, 33, 70])
def test_consistency_proofs_match_the_reference_and_verify(n):
    new_root = ref_mth(DATA[:n])
    for m in range(1, n + 1):
        proof = merkle.consistency_proof(LEAVES, m, n)
        assert proof == ref_proof(m, DATA[:n])
        merkle.verify_consistency(m, n, ref_mth(DATA[:m]), new_root, proof)


def test_a_consistency_proof_fails_when_the_old_tree_was_rewritten():
    old = [merkle.leaf_hash(x) for x in DATA[:10]]
    old[3] = merkle.leaf_hash(b"rewritten")
    old_root = merkle.root(old)
    proof = merkle.consistency_proof(LEAVES, 10, 40)
    with pytest.raises(merkle.ProofError, match="old root"):
        merkle.verify_consistency(10, 40, old_root, merkle.root(LEAVES[:40]), proof)


@pytest.mark.parametrize("bad", [
    "empty", "short", "long", "bytes", "sizes", "equal_with_proof", "equal_other_root",
])
def test_malformed_consistency_proofs_are_refused_not_crashed(bad):
    m, n = 6, 21
    proof = merkle.consistency_proof(LEAVES, m, n)
    old, new = merkle.root(LEAVES[:m]), merkle.root(LEAVES[:n])
    args = {"empty": (m, n, old, new, []), "short": (m, n, old, new, proof[:-1]),
            "long": (m, n, old, new, proof + [proof[0]]),
            "bytes": (m, n, old, new, [b"short"] + proof[1:]),
            "sizes": (n, m, old, new, proof),
            "equal_with_proof": (m, m, old, old, proof),
            "equal_other_root": (m, m, old, new, [])}[bad]
    with pytest.raises(merkle.ProofError):
        merkle.verify_consistency(*args)


def test_proofs_for_positions_outside_the_tree_are_refused():
    with pytest.raises(merkle.ProofError):
        merkle.inclusion_proof(LEAVES, 70, 70)
    with pytest.raises(merkle.ProofError):
        merkle.consistency_proof(LEAVES, 0, 5)
    with pytest.raises(merkle.ProofError):
        merkle.root_from_inclusion(5, 5, LEAVES[0], [])
