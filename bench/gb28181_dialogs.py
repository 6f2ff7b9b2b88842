"""GB/T 28181 UA core cost: INVITE sessions and in-dialog INFO between two SipEndpoints.

    .venv/bin/python bench/gb28181_dialogs.py --sessions 300

Two endpoints in one process on loopback (UDP and TCP): each session is INVITE (GB SDP) ->
100 -> 200 -> ACK -> INFO (MANSRTSP) -> 200 -> BYE -> 200, run ``concurrency`` at a time.
Reports sessions per second and per CPU-second (``time.process_time``: both endpoints'
work, the machine is shared), and, as the baseline measured in the same run, plain
MESSAGE round trips per CPU-second over the same sockets (one non-INVITE transaction, the
cheapest exchange there is). Writes bench/results/gb28181_dialogs.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import time
from pathlib import Path

import structlog

from viis.interconnect.gb28181.endpoint import InviteAnswer, SipEndpoint

UPPER, DEV, DOMAIN = "34020000002000000001", "34020000001320000001", "3402000000"
SDP = ("v=0\r\no=x 0 0 IN IP4 127.0.0.1\r\ns=Play\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=video 30000 RTP/AVP 96\r\na=recvonly\r\na=rtpmap:96 PS/90000\r\ny=0100000001\r\n")


async def _run(transport: str, sessions: int, concurrency: int) -> dict:
    a = SipEndpoint(UPPER, DOMAIN, "127.0.0.1", 0)
    b = SipEndpoint(DEV, DOMAIN, "127.0.0.1", 0)
    await a.start()
    await b.start()
    b.on_invite(lambda req, txn: InviteAnswer(200, SDP.replace("recvonly", "sendonly"),
                                              on_request=lambda d, r, t: 200))
    b.on_request("MESSAGE", lambda req, txn: txn.reply(200))
    dst = ("127.0.0.1", b.local_port)
    uri = f"sip:{DEV}@127.0.0.1:{b.local_port}"
    sem = asyncio.Semaphore(concurrency)

    async def session() -> None:
        async with sem:
            d, _ = await a.invite(uri, dst, transport, SDP, {"Subject": f"{DEV}:0100000001,{UPPER}:0"})
            await a.in_dialog(d, "INFO", b"PAUSE MANSRTSP/1.0\r\nCSeq: 1\r\n\r\n", "Application/MANSRTSP")
            await a.bye(d)

    async def message() -> None:
        async with sem:
            req = a.build_request("MESSAGE", uri, f"sip:{DEV}@{DOMAIN}", transport=transport,
                                  addr=dst, body=b"<Notify/>", content_type="Application/MANSCDP+xml")
            await a.request(req, dst, transport)

    out: dict = {}
    for name, fn, n in (("message", message, sessions * 3), ("session", session, sessions)):
        await asyncio.gather(*(fn() for _ in range(min(20, n))))  # warm up
        w0, c0 = time.perf_counter(), time.process_time()
        await asyncio.gather(*(fn() for _ in range(n)))
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        out[name] = {"count": n, "per_s": round(n / wall, 1), "per_cpu_s": round(n / cpu, 1)}
    out["left_dialogs"] = len(a.dialogs) + len(b.dialogs)
    out["2xx_retransmits"] = b.stats["2xx_retransmits"]
    await a.stop()
    await b.stop()
    return out


def measure(sessions: int = 300, concurrency: int = 20) -> dict:
    logging.getLogger().setLevel(logging.WARNING)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    res = {t: asyncio.run(_run(t, sessions, concurrency)) for t in ("UDP", "TCP")}
    for r in res.values():
        # One session = 3 transactions (INVITE, INFO, BYE) + ACK: its cost in MESSAGE units.
        r["session_cost_in_messages"] = round(r["message"]["per_cpu_s"] / r["session"]["per_cpu_s"], 2)
    return {"bench": "gb28181_dialogs", "sessions": sessions, "concurrency": concurrency,
            "cpus": os.cpu_count(), "python": platform.python_version(), "results": res}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=300)
    ap.add_argument("--concurrency", type=int, default=20)
    args = ap.parse_args()
    res = measure(args.sessions, args.concurrency)
    path = Path(__file__).parent / "results" / "gb28181_dialogs.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
