"""A real peer as the upper platform (Q13.1; Q12.1, N12.1): sipp (Debian sip-tester) acts as
a city platform, queries VIIS's catalog and receives a well-formed, correctly split
response: every message parses as XML in its declared GB2312, carries SumNum 5 and a
DeviceList Num that matches its items, fits one Ethernet frame, and together they hold
exactly the shared cameras at or below the platform's grade."""

import asyncio
import shutil
from pathlib import Path

import pytest

from tests.interconnect.cascade_helpers import (
    CH,
    LOCAL,
    UPPER,
    add_camera,
    add_upper,
    app_on,
    free_udp_port,
    share,
)
from viis.interconnect.gb28181.cascade import Cascade
from viis.interconnect.gb28181.cascade_answers import parse_query
from viis.interconnect.gb28181.sip import parse

SIPP = shutil.which("sipp")
SCEN = Path(__file__).parent / "scenarios"
pytestmark = pytest.mark.skipif(SIPP is None, reason="sipp not installed (apt-get install sip-tester)")


def _received(log: str) -> list:
    """The SIP messages sipp received, from its -trace_msg log."""
    out = []
    for chunk in log.split("message received")[1:]:
        raw = chunk.split("\n", 1)[1].split("\n\n----------", 1)[0].lstrip("\n")
        data = raw.replace("\r\n", "\n").replace("\n", "\r\n").encode("latin-1", "replace")
        out.append(parse(data.rstrip(b"\r\n") + b"\r\n" if b"\r\n\r\n" in data else data + b"\r\n\r\n"))
    return out


def test_sipp_upper_platform_queries_the_catalog_and_gets_it_split_and_well_formed(
        tmp_path, sqlite_db, rules):
    app = app_on(sqlite_db)
    sipp_port = free_udp_port()

    async def main():
        cams = [add_camera(app, rules, f"入口{i}号摄像机", site="园区东门") for i in range(5)]
        secret = add_camera(app, rules, "档案室", level=2)
        u = add_upper(app, sipp_port, keepalive_s=600, register_expires=3600, level=1)
        share(app, u, [{"camera_id": c.id, "channel_id": CH.format(i)} for i, c in enumerate(cams)])
        c = Cascade(app, host="127.0.0.1", port=0)
        sent: list[bytes] = []
        c.endpoint.add_trace(lambda d, m, a, t: sent.append(m.encode()) if d == "out" else None)
        await c.start()
        try:
            proc = await asyncio.create_subprocess_exec(
                SIPP, f"127.0.0.1:{c.local_port}", "-sf", str(SCEN / "gb_upper_catalog.xml"),
                "-oocsf", str(SCEN / "gb_upper_catalog_ooc.xml"), "-m", "1", "-l", "1",
                "-t", "u1", "-i", "127.0.0.1", "-p", str(sipp_port),
                "-set", "lower", LOCAL, "-set", "server", UPPER, "-set", "domain", UPPER[:10],
                "-timeout", "20", "-timeout_error", "-nostdin", "-trace_msg", "-trace_err",
                cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
            out, _ = await asyncio.wait_for(proc.communicate(), 40)
            errs = "".join(p.read_text(errors="replace") for p in tmp_path.glob("*_errors.log"))
            assert proc.returncode == 0, out.decode(errors="replace")[-2000:] + errs[-2000:]
            assert "check_it" not in errs and "regexp" not in errs, errs[-2000:]
            log = "".join(p.read_text(encoding="latin-1") for p in tmp_path.glob("*_messages.log"))
        finally:
            await c.stop()
        got = [m for m in _received(log) if getattr(m, "method", "") == "MESSAGE"]
        # decode the bodies as sipp received them (bytes, declared GB2312)
        bodies = [m.body.decode("latin-1").encode("latin-1") for m in got]
        queries = [parse_query(b) for b in bodies]
        catalog = [q for q in queries if q.cmd == "Catalog"]
        assert len(catalog) >= 2, [q.cmd for q in queries]  # split
        items = []
        for q in catalog:
            assert q.root == "Response" and q.sn == 4711 and q.device_id == LOCAL
            assert q.get("SumNum") == "5" and q.list_tag == "DeviceList"
            assert q.num == len(q.items) >= 1
            items += [(it["DeviceID"], it["Name"], it["ParentID"]) for it in q.items]
        assert sorted(items) == [(CH.format(i), f"入口{i}号摄像机", LOCAL) for i in range(5)]
        assert all("档案室" not in b.decode("gb18030") for b in bodies)
        catalog_msgs = [s for s in sent if b"<CmdType>Catalog</CmdType>" in s]
        assert len(catalog_msgs) == len(catalog) and max(map(len, catalog_msgs)) <= 1472
        del secret

    asyncio.run(asyncio.wait_for(main(), 90))
