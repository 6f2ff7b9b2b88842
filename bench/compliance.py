"""Compliance engine benchmark: one unit with 1,000 cameras, and a bureau of 10,000 units with
200,000 cameras (generated, about 5 % of records in breach), evaluated as of one day.

    .venv/bin/python bench/compliance.py [--units 10000 --cameras 200000]

Timed: parsing the snapshot JSON text (``snapshot.loads``) and ``evaluate`` — what
`viis compliance evaluate` does after reading the file. Generating the snapshots is not timed.
Writes bench/results/compliance.json (unit_1000_s, bureau_200k_s, findings counts).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from viis.compliance.engine import Evaluator  # noqa: E402
from viis.compliance.rulepack import RuleBook  # noqa: E402
from viis.compliance.snapshot import loads  # noqa: E402

ON = date(2026, 3, 1)
PLACES = ["entrance_exit", "public_area", "car_park", "road", "key_part"]
BAD_PLACES = ["toilet", "changing_room", "private_dining_room"]


def unit(rng: random.Random, n: int, uid: str) -> dict:
    bad = lambda: rng.random() < 0.05  # noqa: E731
    systems = []
    filings = []
    for s in range(max(1, n // 50)):
        day = f"2025-{rng.randint(5, 12):02d}-{rng.randint(1, 28):02d}"
        systems.append({"id": f"sys{s}", "site": "s0", "purpose": "public security", "storage_days": 30,
                        "accepted_on": day, "in_use_on": day,
                        "contractors": [{"role": "builder", "name": "B", "qualification": "Q",
                                         "qualification_expires": "2024-01-01" if bad() else "2030-01-01"}]})
        for k in ("acceptance", "in_use"):
            if not bad():
                filings.append({"id": f"f{s}{k}", "system": f"sys{s}", "kind": k, "filed_on": day})
    cams, ret, integ, faults = [], [], [], []
    for i in range(n):
        cid = f"c{i}"
        cams.append({"id": cid, "system": f"sys{i % len(systems)}",
                     "location_type": rng.choice(BAD_PLACES) if rng.random() < 0.005 else rng.choice(PLACES),
                     "retention_days": 29 if bad() else 30,
                     "signage": {"present": not bad(), "photo": True}, "audio": False})
        ret.append({"camera": cid, "recording_days": 200, "kept_days": rng.choice([25, 31]) if bad() else 30})
        integ.append({"camera": cid, "verified_at": "2026-02-28T23:00:00+08:00", "ok": not bad()})
        if integ[-1]["ok"] is False:
            integ[-1]["problems"] = [{"kind": "removed"}]
        if bad():
            faults.append({"id": f"F{i}", "camera": cid, "kind": "offline",
                           "first_seen": f"2026-02-{rng.randint(1, 28):02d}T10:00:00+08:00"})
    staff = [{"id": f"u{k}", "name": f"staff {k}", "trained_on": "2026-02-15" if bad() else "2025-01-01"}
             for k in range(max(2, n // 100))]
    shifts = [{"staff": s["id"], "on": f"2026-02-{d:02d}"} for s in staff for d in range(1, 29, 7)]
    retr = [{"id": f"r{k}", "at": f"2026-02-{rng.randint(1, 28):02d}T10:00:00+08:00", "requester_kind": "police",
             "requester_unit": "bureau", "requester_name": "Li", "reason": "case", "content": "c",
             "approved": not bad(), "approval_document": "doc", "staff_count": 2, "ids_shown": True}
            for k in range(max(1, n // 50))]
    return {"format": "viis-compliance-snapshot", "version": 1, "generated_at": "2026-03-01T08:00:00+08:00",
            "organisation": {"id": uid, "name": uid, "use": rng.choice(["business", "non_business"])},
            "sites": [{"id": "s0", "name": "site", "categories": [
                "qingdao-2020:residential_lodging_catering_markets_parking", "national-2025:crowded_venues"]}],
            "systems": systems, "cameras": cams, "filings": filings,
            "activity": {"retention": ret, "integrity": integ, "faults": faults,
                         "duty": {"log_kept": True, "staff": staff, "shifts": shifts}, "retrievals": retr}}


def live_unit(book: RuleBook, n: int) -> float:
    """A unit of ``n`` cameras in a fresh SQLite register: the time to build its snapshot from
    the database (viis.compliance.live) and evaluate it, as `viis compliance evaluate --live`."""
    import tempfile

    from viis.compliance import register
    from viis.compliance.live import snapshot_from_db
    from viis.core.db import Database
    from viis.registry.models import Camera

    with tempfile.TemporaryDirectory() as d:
        db = Database(f"sqlite:///{d}/viis.db")
        db.migrate()
        now = 1_772_323_200_000   # 2026-03-01T00:00Z
        with db.session() as s:
            register.add_unit(s, code="u", name="unit", use="business", now_ms=now)
            register.add_site(s, book, unit_code="u", code="s", name="site",
                              categories=["qingdao-2020:commerce_education_health_culture"], today=ON, now_ms=now)
            register.add_system(s, site_code="s", code="y", name="sys", purpose="security", storage_days=30,
                                accepted_on=date(2025, 6, 1), in_use_on=date(2025, 6, 1), now_ms=now)
            s.add_all(Camera(uid=f"c{i:05d}", name=f"cam {i}", main_url=f"rtsp://127.0.0.1/{i}", retention_days=30,
                             created_ms=now, updated_ms=now) for i in range(n))
            s.flush()
            ids = list(s.scalars(__import__("sqlalchemy").select(Camera.id)))
        with db.session() as s:
            for cid in ids:
                register.link_camera(s, camera_id=cid, system_code="y", public_place=False, now_ms=now)
        t0 = time.perf_counter()
        with db.session() as s:
            snap = snapshot_from_db(s, "u", now)
        from viis.compliance.snapshot import parse
        Evaluator(book, ON).evaluate(parse(snap))
        took = time.perf_counter() - t0
        db.dispose()
        return took


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cameras", type=int, default=200_000, help="bureau cameras")
    ap.add_argument("--units", type=int, default=10_000, help="bureau units")
    ap.add_argument("--unit-cameras", type=int, default=1000)
    ap.add_argument("--no-live", action="store_true", help="skip the live-database measurement")
    ap.add_argument("--out", default=str(ROOT / "bench/results/compliance.json"))
    a = ap.parse_args()
    rng = random.Random(20260301)
    book = RuleBook.load(ROOT / "rulepacks")

    text = json.dumps(unit(rng, a.unit_cameras, "unit-1000"))
    t0 = time.perf_counter()
    findings = Evaluator(book, ON).evaluate(loads(text))
    unit_s = time.perf_counter() - t0
    print(f"unit: {a.unit_cameras} cameras, {len(text)} bytes, {len(findings)} findings in {unit_s:.3f} s")

    per = a.cameras // a.units
    texts = [json.dumps(unit(rng, per, f"unit-{k}")) for k in range(a.units)]
    t0 = time.perf_counter()
    ev = Evaluator(book, ON)
    total = 0
    for t in texts:
        total += len(ev.evaluate(loads(t)))
    bureau_s = time.perf_counter() - t0
    print(f"bureau: {a.units} units, {per * a.units} cameras, {sum(map(len, texts))} bytes, "
          f"{total} findings in {bureau_s:.2f} s")

    live = None if a.no_live else live_unit(book, a.unit_cameras)
    if live is not None:
        print(f"live: {a.unit_cameras} cameras from the database (snapshot_from_db + parse + evaluate) "
              f"in {live:.3f} s; {live / unit_s:.1f}x the file path measured above")

    res = {"unit_1000_s": round(unit_s, 4), "unit_cameras": a.unit_cameras, "unit_findings": len(findings),
           "bureau_200k_s": round(bureau_s, 3), "bureau_units": a.units, "bureau_cameras": per * a.units,
           "bureau_findings": total, "on": ON.isoformat(), "timed": "snapshot.loads + evaluate",
           "machine": {"cpus": os.cpu_count(), "python": platform.python_version()}}
    if live is not None:
        res |= {"live_1000_s": round(live, 4), "live_vs_file_ratio": round(live / unit_s, 2),
                "live_timed": "snapshot_from_db (SQLite) + parse + evaluate; baseline: unit_1000_s"}
    Path(a.out).write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
