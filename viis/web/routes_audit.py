"""Audit log API: search the entries, fetch a signed checkpoint with its proofs (invariant 2;
Q19.1 inspection, Q20.3). Read-only for auditors and platform administrators
(``audit.read``); the log itself is written only by the actions it records."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from viis.core.clock import parse_time
from viis.core.errors import ValidationFailed
from viis.integrity.audit import AuditLog, entry_view, signer_for
from viis.web.auth import allow

router = APIRouter(prefix="/api", tags=["audit"])


def _time(text: str | None, name: str) -> int | None:
    if text is None:
        return None
    try:
        return parse_time(text)
    except ValueError as e:
        raise ValidationFailed(str(e), field=name) from None


@router.get("/audit", dependencies=[Depends(allow("audit.read"))])
def search_audit(request: Request,
                 kind: Annotated[str | None, Query(max_length=64)] = None,
                 actor: Annotated[str | None, Query(max_length=200)] = None,
                 since: Annotated[str | None, Query(max_length=64)] = None,
                 until: Annotated[str | None, Query(max_length=64)] = None,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 200,
                 offset: Annotated[int, Query(ge=0, le=1 << 40)] = 0) -> dict:
    """Newest first. ``kind`` is exact, or a prefix ending in '.' (``auth.``)."""
    app = request.app.state.viis
    with app.db.session() as s:
        log = AuditLog(s, app.clock)
        size, root = log.state()
        rows = log.search(kind=kind, actor=actor, since_ms=_time(since, "since"),
                          until_ms=_time(until, "until"), limit=limit, offset=offset)
        return {"tree_size": size, "root_hash": root, "entries": [entry_view(e) for e in rows]}


@router.get("/audit/checkpoint", dependencies=[Depends(allow("audit.read"))])
def audit_checkpoint(request: Request,
                     from_size: Annotated[int | None, Query(ge=1, le=1 << 62)] = None,
                     seq: Annotated[int | None, Query(ge=1, le=1 << 62)] = None) -> dict:
    """The newest signed checkpoint (a fresh one when the log has grown since the last),
    the public key to check it with, and optionally a consistency proof from an earlier
    ``from_size`` and an inclusion proof for entry ``seq`` — all verifiable offline."""
    app = request.app.state.viis
    signer = signer_for(app.settings.data_dir)
    with app.db.session() as s:
        log = AuditLog(s, app.clock)
        cp = log.latest_checkpoint()
        if cp is None or cp.tree_size < log.state()[0]:
            cp = log.checkpoint(signer)
        out = {"checkpoint": cp.as_dict(), "public_key": signer.public_pem().decode()}
        if from_size is not None:
            if from_size > cp.tree_size:
                raise ValidationFailed(f"from_size {from_size} is beyond the checkpoint's "
                                       f"{cp.tree_size} entries", field="from_size")
            out["consistency"] = {"from_size": from_size, "to_size": cp.tree_size,
                                  "proof": log.consistency_proof(from_size, cp.tree_size)}
        if seq is not None:
            if seq > cp.tree_size:
                raise ValidationFailed(f"seq {seq} is beyond the checkpoint's {cp.tree_size} "
                                       "entries", field="seq")
            out["inclusion"] = {"seq": seq, "leaf_index": seq - 1,
                                "proof": log.inclusion_proof(seq, cp.tree_size)}
        return out
