"""``viis audit verify`` and ``viis audit checkpoint``: proving the audit log's integrity from
the command line (invariant 2; Q20.3, N23.1). Exit codes: 0 intact, 1 tampering found (the
first changed, deleted, inserted or reordered row is named), 2 unusable input."""

from __future__ import annotations

import json
import os
from pathlib import Path

from viis.core.errors import ValidationFailed


def _app(args):
    from viis.cli import _app as open_app

    return open_app(args)


def _public_pem(app, args) -> bytes:
    from viis.integrity.audit import signer_for

    if args.public_key:
        try:
            return Path(args.public_key).read_bytes()[:16_384]
        except OSError as e:
            raise ValidationFailed(f"cannot read public key {args.public_key}: {e.strerror}") from None
    return signer_for(app.settings.data_dir).public_pem()


def cmd_audit_verify(args) -> int:
    from viis.integrity.audit import Checkpoint, verify_log

    app = _app(args)
    saved = Checkpoint.load(Path(args.checkpoint)) if args.checkpoint else None
    pem = _public_pem(app, args)
    with app.db.session() as s:
        rep = verify_log(s, pem, saved)
    if args.json:
        print(json.dumps(rep.as_dict(), ensure_ascii=False, indent=2))
        return 0 if rep.ok else 1
    print(f"recomputed {rep.entries} entries; tree size {rep.tree_size}, root {rep.root_hash}")
    print(f"{rep.checkpoints} signed checkpoint(s); latest covers "
          f"{rep.latest_checkpoint if rep.latest_checkpoint is not None else 'nothing'}"
          + (f"; {rep.unsigned_tail} newer entries not yet signed" if rep.unsigned_tail else ""))
    if rep.saved_checkpoint is not None and rep.consistency_proof is not None:
        target = rep.latest_checkpoint if rep.latest_checkpoint is not None else rep.tree_size
        if rep.consistency_proof:
            print(f"saved checkpoint (size {rep.saved_checkpoint}): consistency proof of "
                  f"{len(rep.consistency_proof)} hashes to the signed tree of size {target} "
                  "verifies")
        else:
            print(f"saved checkpoint (size {rep.saved_checkpoint}) is the signed tree of size "
                  f"{target} itself")
    first = rep.first()
    if first is None:
        print("OK: no audit entry was changed, deleted, inserted or reordered")
        return 0
    print(f"FIRST PROBLEM {first.kind}: {first.message}")
    for p in rep.problems:
        if p is not first:
            print(f"PROBLEM {p.kind}: {p.message}")
    print(f"FAILED: {len(rep.problems)} problem(s)")
    return 1


def cmd_audit_checkpoint(args) -> int:
    from viis.integrity.audit import AuditLog, signer_for

    app = _app(args)
    signer = signer_for(app.settings.data_dir)
    with app.db.session() as s:
        cp = AuditLog(s, app.clock).checkpoint(signer)
    doc = cp.as_dict()
    doc["public_key"] = signer.public_pem().decode()  # for third parties; verify pins the key
    out = Path(args.out)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, out)
    print(f"checkpoint of {cp.tree_size} entries, root {cp.root_hash}, signed by key "
          f"{cp.signature.key_id if cp.signature else '?'}: {out}")
    return 0


def add_verbs(sub, verb) -> None:
    """``viis audit verify`` and ``viis audit checkpoint``."""
    audit = sub.add_parser("audit", help="tamper-evident audit log").add_subparsers(
        dest="sub", required=True)
    v = verb("verify", cmd_audit_verify, "recompute the audit log and check it against its "
             "signed checkpoints and a saved one", audit)
    v.add_argument("--checkpoint", help="a checkpoint file saved earlier (viis audit checkpoint)")
    v.add_argument("--public-key", help="PEM public key to check signatures with "
                   "(default: this installation's audit key)")
    c = verb("checkpoint", cmd_audit_checkpoint, "commit the camera chain heads, sign the "
             "tree head and save it", audit)
    c.add_argument("--out", required=True, help="file to write (JSON)")
