"""RFC 6962 Merkle tree hashing, proofs and proof verification (invariant 2; Q20.3, N23.1).

Pure functions over hashes; no database. The tree shape is the RFC's (§2.1): for n > 1 leaves
the left subtree holds the largest power of two k < n leaves, the right one the rest.

- ``leaf_hash(data)   = SHA-256(0x00 || data)``
- ``node_hash(l, r)   = SHA-256(0x01 || l || r)``
- inclusion proofs (audit paths, §2.1.1) and consistency proofs (§2.1.2), and the
  verifiers of RFC 9162 §2.1.3.2 and §2.1.4.2, which a third party can rerun from a
  checkpoint alone.

:class:`Frontier` keeps the roots of the complete subtrees of the binary decomposition of n
(at most log2 n + 1 hashes), so appending a leaf and computing the new root cost O(log n),
whatever the size of the log.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()  # MTH({}) (RFC 6962 §2.1)


class ProofError(ValueError):
    """A proof is malformed or does not prove what it claims."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH over leaf hashes (already ``leaf_hash``-ed), iteratively: O(n) time."""
    f = Frontier()
    for h in leaves:
        f.append(h)
    return f.root()


class Frontier:
    """The right edge of the tree: roots of the perfect subtrees whose sizes are the set bits
    of ``size``, largest first. Appending is a binary-counter carry; the root folds the
    subtrees from the right, which is exactly the RFC's shape for any n."""

    __slots__ = ("size", "nodes")

    def __init__(self, size: int = 0, nodes: Iterable[bytes] = ()) -> None:
        self.size = size
        self.nodes: list[bytes] = list(nodes)
        if len(self.nodes) != size.bit_count():
            raise ValueError(f"a frontier of size {size} has {size.bit_count()} nodes, "
                             f"not {len(self.nodes)}")

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash."""
        h = leaf
        n = self.size
        nodes = self.nodes
        while n & 1:  # merge equal-sized subtrees while the counter carries
            h = node_hash(nodes.pop(), h)
            n >>= 1
        nodes.append(h)
        self.size += 1

    def root(self) -> bytes:
        if not self.nodes:
            return EMPTY_ROOT
        h = self.nodes[-1]
        for left in reversed(self.nodes[:-1]):
            h = node_hash(left, h)
        return h

    def copy(self) -> Frontier:
        return Frontier(self.size, self.nodes)

    def to_hex(self) -> list[str]:
        return [h.hex() for h in self.nodes]

    @classmethod
    def from_hex(cls, size: int, nodes: Sequence[str]) -> Frontier:
        return cls(size, (bytes.fromhex(h) for h in nodes))


# --- proofs (generation needs the leaves; the logs here are small enough to hold them) ----

def _subroot(leaves: Sequence[bytes], lo: int, hi: int) -> bytes:
    f = Frontier()
    for i in range(lo, hi):
        f.append(leaves[i])
    return f.root()


def inclusion_proof(leaves: Sequence[bytes], index: int, size: int | None = None) -> list[bytes]:
    """PATH(index, D[size]) of RFC 6962 §2.1.1 (index is 0-based)."""
    n = len(leaves) if size is None else size
    if not 0 <= index < n <= len(leaves):
        raise ProofError(f"no leaf {index} in a tree of {n}")
    path: list[bytes] = []
    lo, hi, m = 0, n, index
    while hi - lo > 1:
        k = _split(hi - lo)
        if m < k:
            path.append(_subroot(leaves, lo + k, hi))
            hi = lo + k
        else:
            path.append(_subroot(leaves, lo, lo + k))
            lo, m = lo + k, m - k
    path.reverse()  # the RFC lists the path from the leaf upwards
    return path


def consistency_proof(leaves: Sequence[bytes], old_size: int, new_size: int | None = None) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 6962 §2.1.2."""
    n = len(leaves) if new_size is None else new_size
    m = old_size
    if not 0 < m <= n <= len(leaves):
        raise ProofError(f"no consistency proof from size {m} to size {n}")
    out: list[bytes] = []

    def subproof(m: int, lo: int, hi: int, whole: bool) -> None:
        size = hi - lo
        if m == size:
            if not whole:
                out.append(_subroot(leaves, lo, hi))
            return
        k = _split(size)
        if m <= k:
            subproof(m, lo, lo + k, whole)
            out.append(_subroot(leaves, lo + k, hi))
        else:
            subproof(m - k, lo + k, hi, False)
            out.append(_subroot(leaves, lo, lo + k))

    if m < n:
        subproof(m, 0, n, True)
    return out


def _check_hashes(proof: Sequence[bytes]) -> None:
    for h in proof:
        if not isinstance(h, bytes | bytearray) or len(h) != HASH_SIZE:
            raise ProofError("a proof element is not a 32-byte hash")


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root that ``proof`` yields for ``leaf`` at ``index`` (RFC 9162 §2.1.3.2)."""
    _check_hashes(proof)
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("the inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the inclusion proof is too short")
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes],
                     expected_root: bytes) -> None:
    if root_from_inclusion(index, size, leaf, proof) != expected_root:
        raise ProofError(f"leaf {index} is not in the tree of size {size} with that root")


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes,
                       proof: Sequence[bytes]) -> None:
    """Raise :class:`ProofError` unless ``proof`` shows the tree (old_size, old_root) is a
    prefix of (new_size, new_root) (RFC 9162 §2.1.4.2)."""
    _check_hashes(proof)
    if not 0 <= old_size <= new_size:
        raise ProofError(f"the old size {old_size} is larger than the new size {new_size}")
    if old_size == new_size:
        if proof:
            raise ProofError("a proof between equal sizes must be empty")
        if old_root != new_root:
            raise ProofError("two checkpoints of the same size have different roots")
        return
    if old_size == 0:
        if proof:
            raise ProofError("a proof from the empty tree must be empty")
        return
    if not proof:
        raise ProofError("the consistency proof is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is the first node
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("the consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the consistency proof is too short")
    if fr != old_root:
        raise ProofError(f"the proof does not lead to the old root: the first {old_size} "
                         "entries were changed")
    if sr != new_root:
        raise ProofError("the proof does not lead to the new root")
