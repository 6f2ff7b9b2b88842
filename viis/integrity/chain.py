"""Per-camera hash chains over segments and gaps (invariant 2; Q20.3, N15.1, N23.1).

Every segment and every gap of a camera is a link. A link's hash covers the previous link's
hash and the link's own canonical fields, so removing, altering, reordering or inserting a
link breaks every hash after it. The chain head (newest seq and hash) is stored apart, for
the audit log's Merkle tree.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

GENESIS_PREFIX = b"viis-chain-genesis:"


def genesis(camera_uid: str) -> str:
    """The 'previous hash' of a camera's first link."""
    return hashlib.sha256(GENESIS_PREFIX + camera_uid.encode()).hexdigest()


def segment_fields(camera_uid: str, seq: int, start_ms: int, end_ms: int, frames: int,
                   nbytes: int, sha256: str) -> dict[str, Any]:
    return {"kind": "segment", "camera": camera_uid, "seq": seq, "start_ms": start_ms,
            "end_ms": end_ms, "frames": frames, "bytes": nbytes, "sha256": sha256}


def gap_fields(camera_uid: str, seq: int, start_ms: int, end_ms: int, cause: str) -> dict[str, Any]:
    return {"kind": "gap", "camera": camera_uid, "seq": seq, "start_ms": start_ms,
            "end_ms": end_ms, "cause": cause}


def link_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    payload = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(bytes.fromhex(prev_hash) + payload).hexdigest()
