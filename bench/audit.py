"""Audit log benchmark (issue 4): appends per second on SQLite and PostgreSQL, verification
time for one million entries, and (from ``bench/export_speed.py``) export throughput.

    .venv/bin/python bench/audit.py [--entries 100000] [--verify 1000000] [--no-export]

* ``appends_per_s_sqlite`` / ``appends_per_s_postgres``: entries per second through
  :class:`viis.integrity.audit.AuditAppender` (batches of ``--batch`` entries, one
  transaction each; every entry hashed into the tree, frontier and root updated). Baseline in
  the same run: the same rows inserted into a plain table of the same shape with the same
  executemany and batch size and no hashing (``plain_insert_per_s_*``); the ratio
  ``appends_vs_plain_*`` is ours / plain (1.0 = the Merkle tree costs nothing).
  ``single_appends_per_s_*``: one entry per transaction, the way a hooked action writes.
* ``verify_1m_s``: ``verify_log`` over ``--verify`` entries on SQLite (every leaf recomputed
  from its row, the tree rebuilt, checked against a signed checkpoint). Baseline:
  reading the same rows the same way (Core, batches of 20,000) without checking
  (``read_1m_s``); ``verify_vs_read`` = ratio.
* ``export_x_realtime`` and the masked figures: ``bench/export_speed.py``'s ``measure``.

Writes bench/results/audit.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import (  # noqa: E402
    BigInteger,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    insert,
    select,
    text,
)

from viis.core.clock import SystemClock  # noqa: E402
from viis.core.db import Database  # noqa: E402
from viis.integrity.audit import (  # noqa: E402
    AuditAppender,
    AuditLog,
    canonical_details,
    signer_for,
    verify_log,
)
from viis.integrity.models import AuditEntry  # noqa: E402

PG_URL = os.environ.get("VIIS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def entry(i: int) -> dict:
    """A door decision as the register hook writes it (about 200 bytes of details)."""
    return {"kind": "footage.playback", "actor": f"inv{i % 50}", "subject": f"camera {i % 997}",
            "details": {"action": "playback", "from_ms": 1_767_225_600_000 + i * 1000,
                        "to_ms": 1_767_225_660_000 + i * 1000, "register_id": i,
                        "request_id": i // 100, "session_id": i // 1000,
                        "reason": "police_investigator within R-17"}}


def plain_table(md: MetaData) -> Table:
    return Table("bench_plain", md, Column("seq", BigInteger().with_variant(Integer(), "sqlite"),
                                           primary_key=True, autoincrement=False),
                 Column("at_ms", BigInteger), Column("kind", String(64)),
                 Column("actor", String(200)), Column("organisation", String(200)),
                 Column("subject", String(400)), Column("details", Text),
                 Column("leaf_hash", String(64)))


def appends(db: Database, n: int, batch: int) -> dict:
    clock = SystemClock()
    app = AuditAppender(db, clock, batch=batch)
    t0 = time.perf_counter()
    for i in range(n):
        e = entry(i)
        app.add(e["kind"], actor=e["actor"], subject=e["subject"], details=e["details"])
    app.flush()
    ours = n / (time.perf_counter() - t0)
    # baseline: same rows, same executemany and batch size, no tree
    md = MetaData()
    plain = plain_table(md)
    md.create_all(db.engine)
    t0 = time.perf_counter()
    for lo in range(0, n, batch):
        rows = []
        for i in range(lo, min(n, lo + batch)):
            e = entry(i)
            rows.append({"seq": i + 1, "at_ms": clock.wall_ms(), "kind": e["kind"],
                         "actor": e["actor"], "organisation": "", "subject": e["subject"],
                         "details": canonical_details(e["details"]), "leaf_hash": "0" * 64})
        with db.session() as s:
            s.execute(insert(plain), rows)
    plain_rate = n / (time.perf_counter() - t0)
    single_n = max(200, n // 100)
    t0 = time.perf_counter()
    for i in range(single_n):
        e = entry(i)
        with db.session() as s:
            AuditLog(s, clock).append(e["kind"], actor=e["actor"], subject=e["subject"],
                                      details=e["details"])
    single = single_n / (time.perf_counter() - t0)
    return {"appends_per_s": round(ours), "plain_insert_per_s": round(plain_rate),
            "appends_vs_plain": round(ours / plain_rate, 3), "single_appends_per_s": round(single)}


def fill(db: Database, n: int, batch: int = 10_000) -> None:
    app = AuditAppender(db, SystemClock(), batch=batch)
    for i in range(n):
        e = entry(i)
        app.add(e["kind"], actor=e["actor"], subject=e["subject"], details=e["details"])
    app.flush()


def verify_big(workdir: Path, n: int) -> dict:
    db = Database(f"sqlite:///{workdir / 'verify.db'}")
    db.migrate()
    t0 = time.perf_counter()
    fill(db, n - 1)  # the checkpoint adds the chain-heads entry: n in all
    signer = signer_for(workdir / "keys")
    with db.session() as s:
        AuditLog(s, SystemClock()).checkpoint(signer)
    fill_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with db.session() as s:
        count = 0
        for _row in s.connection().execute(select(AuditEntry.seq, AuditEntry.at_ms, AuditEntry.kind,
                                     AuditEntry.actor, AuditEntry.organisation,
                                     AuditEntry.subject, AuditEntry.details,
                                     AuditEntry.leaf_hash).order_by(AuditEntry.seq)
                              .execution_options(yield_per=20_000)):
            count += 1
    read_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with db.session() as s:
        rep = verify_log(s, signer.public_pem())
    verify_s = time.perf_counter() - t0
    assert rep.ok and rep.entries == n == count, rep.as_dict()
    db.dispose()
    return {"verify_entries": n, "verify_1m_s": round(verify_s * 1_000_000 / n, 2),
            "verify_measured_s": round(verify_s, 2), "read_1m_s": round(read_s * 1_000_000 / n, 2),
            "verify_vs_read": round(verify_s / read_s, 2), "fill_s": round(fill_s, 1)}


def pg_database() -> tuple[Database, callable]:
    name = "bench_" + uuid.uuid4().hex[:10]
    admin = create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://"),
                          isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE SCHEMA "{name}"'))
    sep = "&" if "?" in PG_URL else "?"
    db = Database(f"{PG_URL}{sep}options=-csearch_path%3D{name}")

    def drop() -> None:
        db.dispose()
        with admin.connect() as c:
            c.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()

    return db, drop


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--verify", type=int, default=1_000_000)
    ap.add_argument("--no-export", action="store_true")
    args = ap.parse_args()
    out: dict = {"entries": args.entries, "batch": args.batch, "target_appends_per_s": 5000}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        db = Database(f"sqlite:///{work / 'appends.db'}")
        db.migrate()
        r = appends(db, args.entries, args.batch)
        db.dispose()
        out.update({f"{k}_sqlite": v for k, v in r.items()})
        print("sqlite", r, flush=True)
        db, drop = pg_database()
        try:
            db.migrate()
            r = appends(db, args.entries, args.batch)
        finally:
            drop()
        out.update({f"{k}_postgres": v for k, v in r.items()})
        print("postgres", r, flush=True)
        r = verify_big(work, args.verify)
        out.update(r)
        print("verify", r, flush=True)
        if not args.no_export:
            try:
                sys.path.insert(0, str(ROOT / "bench"))
                from export_speed import measure  # the evidence export benchmark
            except ImportError as e:
                print(f"bench/export_speed.py not available ({e}); export figures left out")
            else:
                ex_dir = work / "export"
                ex_dir.mkdir()
                r = measure(ex_dir)
                out.update(r)
                print("export", r, flush=True)
    out["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                      "sqlite_synchronous": "FULL", "load_avg_1m_at_end": os.getloadavg()[0],
                      "note": "2 cores shared with other engineers' test runs"}
    res = ROOT / "bench" / "results" / "audit.json"
    res.parent.mkdir(parents=True, exist_ok=True)
    res.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
