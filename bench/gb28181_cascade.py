"""GB/T 28181 cascade up: how long an upper platform waits for VIIS's catalog.

    .venv/bin/python bench/gb28181_cascade.py --cameras 200

An upper platform (a bare SIP endpoint) on loopback asks a running Cascade for its catalog
of N shared cameras and waits until all N items arrived, over UDP (bodies kept under one
Ethernet frame: one item per message with typical names) and over TCP; the baseline is the
in-process cost of building the same bodies. Writes bench/results/gb28181_cascade.json.
Wall time on a shared machine: read it as an order of magnitude.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.interconnect.cascade_helpers import (  # noqa: E402
    LOCAL,
    RecordingUpper,
    add_camera,
    add_upper,
    app_on,
    share,
    wait_for,
)
from viis.compliance.rulepack import RuleBook  # noqa: E402
from viis.core.config import REPO_ROOT  # noqa: E402
from viis.core.db import Database  # noqa: E402
from viis.core.logging import configure  # noqa: E402
from viis.interconnect.gb28181 import cascade_store as store  # noqa: E402
from viis.interconnect.gb28181.cascade import Cascade  # noqa: E402
from viis.interconnect.gb28181.cascade_answers import catalog_bodies  # noqa: E402

QUERY = ('<?xml version="1.0" encoding="GB2312"?><Query><CmdType>Catalog</CmdType><SN>1</SN>'
         f"<DeviceID>{LOCAL}</DeviceID></Query>").encode()


async def one(app, cams, transport: str) -> dict:
    up = await RecordingUpper(transport=transport).start()
    u = add_upper(app, up.port, transport=transport, keepalive_s=600, register_expires=3600)
    share(app, u, [{"camera_id": c.id, "channel_id": f"3402000000131{i:07d}"}
                   for i, c in enumerate(cams)])
    c = Cascade(app, host="127.0.0.1", port=0)
    await c.start()
    try:
        await wait_for(lambda: c.clients[u.id].registered)
        with app.db.session() as s:
            shares = store.shares(s, u.id)
        t0 = time.perf_counter()
        bodies = catalog_bodies(u, 1, shares, lambda _: True)
        build_ms = (time.perf_counter() - t0) * 1000

        t0 = time.perf_counter()
        await up.query(c.local_port, QUERY)
        await wait_for(lambda: len(up.messages) >= len(bodies), 120, 0.002)
        total_ms = (time.perf_counter() - t0) * 1000
        got = sum(q.num or 0 for _, q in up.bodies("Catalog"))
        ok = got == len(cams)
        return {"transport": transport, "cameras": len(cams), "complete": ok,
                "messages": len(up.bodies("Catalog")), "build_ms": round(build_ms, 1),
                "until_all_arrived_ms": round(total_ms, 1),
                "largest_body": max(map(len, bodies)),
                "largest_datagram": max(up.datagrams) if up.datagrams else None}
    finally:
        await c.stop()
        await up.stop()
        with app.db.session() as s:
            store.delete_upper(s, u.id, actor="bench", now_ms=0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cameras", type=int, default=200)
    args = ap.parse_args()
    configure("WARNING", True)
    with tempfile.TemporaryDirectory() as d:
        db = Database(f"sqlite:///{d}/bench.db")
        db.migrate()
        app = app_on(db)
        rules = RuleBook.load(REPO_ROOT / "rulepacks")
        cams = [add_camera(app, rules, f"东门入口{i}号摄像机", site="园区东门")
                for i in range(args.cameras)]
        out = {"runs": [asyncio.run(one(app, cams, t)) for t in ("UDP", "TCP")]}
        db.dispose()
    path = ROOT / "bench" / "results" / "gb28181_cascade.json"
    path.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(out, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
